"""``lncheck compare`` with the user's candidates: bundles and named files (--expected), programs
(--candidate-cmd), callables (--candidate), --repeat and --weight-offset, as a user types them."""

from __future__ import annotations

import json
import re
import shlex
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import lncheck
from lncheck.errors import InputError

from ..conftest import EXAMPLES
from .helpers import assert_user_error, invoke, invoke_json

TOKENS = str(EXAMPLES / "tokens.npy")
PYTHON = shlex.quote(sys.executable)


def _verdicts(doc: dict[str, object], *candidates: str) -> dict[tuple[str, str], bool]:
    checks = doc["checks"]
    assert isinstance(checks, list)
    return {
        (c["candidate"], c["quantity"]): c["passed"]
        for c in checks
        if not candidates or c["candidate"] in candidates
    }


def _layer_norm(x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    x = x.astype(np.float64)
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)


def test_several_named_files_are_several_candidates(write: Callable[..., Path]) -> None:
    x = np.load(TOKENS)
    good = write("good.npy", _layer_norm(x).astype(np.float32))
    bad = write("bad.npz", output=(_layer_norm(x) * 1.01).astype(np.float32))
    code, doc = invoke_json(
        "compare", TOKENS, "--shape", "4", "--expected", f"triton={good}", "--expected",
        f"cuda={bad}", "--expected", str(good),
    )  # fmt: skip
    assert code == 1
    assert _verdicts(doc, "triton", "cuda", "expected") == {
        ("triton", "output"): True,
        ("cuda", "output"): False,
        ("expected", "output"): True,
    }
    result = invoke(
        "compare", TOKENS, "--shape", "4", "--expected", f"cuda={bad}", "--format", "junit"
    )
    (case,) = ET.fromstring(result.stdout).iter("testcase")
    named = [p.get("value") for p in case.iter("property") if p.get("name") == "candidate"]
    assert named == ["torch.nn.LayerNorm", "torch.nn.functional.layer_norm",
                     "torch.native_layer_norm", "cuda"]  # fmt: skip
    failure = case.find("failure")
    assert failure is not None and failure.get("message", "").startswith("cuda output does not")


def _printed(t: torch.Tensor) -> np.ndarray:
    """What a tutorial prints (torch's 4 decimals), read back as numbers."""
    text = str(t).replace("tensor(", "").split("grad_fn")[0]
    return np.array([float(v) for v in re.findall(r"-?\d+\.\d+(?:e[-+]\d+)?", text)],
                    dtype=np.float32).reshape(t.shape)  # fmt: skip


@pytest.mark.parametrize(
    ("module", "flag"),
    [
        (torch.nn.ReLU(), "relu"),
        (torch.nn.PReLU(init=0.25), "prelu=0.25"),
        (torch.nn.LeakyReLU(0.01), "leaky_relu=0.01"),
    ],
)
def test_the_tutorials_printed_post_activation_output_passes(
    module: torch.nn.Module, flag: str, write: Callable[..., Path]
) -> None:
    # the classic tutorial: LayerNorm(10, eps=0) then an activation, output printed
    torch.manual_seed(0)
    x = torch.randn(3, 10)
    y = module(torch.nn.LayerNorm(10, eps=0)(x))
    data, printed = write("x.npy", x.numpy()), write("printed.npy", _printed(y))
    args = ["compare", str(data), "--shape", "10", "--eps", "0", "--activation", flag,
            "--expected", str(printed), "--atol", "1e-4", "--rtol", "0"]  # fmt: skip
    code, doc = invoke_json(*args)
    assert code == 0, [c for c in doc["checks"] if not c["passed"]]
    # a plain array is the final output: checked as the activation, not the norm before it
    assert _verdicts(doc, "expected") == {("expected", "activation"): True}


def test_a_kernels_gradients_by_quantity(write: Callable[..., Path]) -> None:
    # n14: dx right, dweight and dbias summed over shape[0] rows of a 3-D input
    rng = np.random.default_rng(14)
    x = rng.standard_normal((2, 3, 8)).astype(np.float32)
    dy = rng.standard_normal((2, 3, 8)).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_(True)
    torch.nn.functional.layer_norm(xt, (8,)).backward(torch.from_numpy(dy))
    n = _layer_norm(x)
    dw = (dy * n).reshape(-1, 8)[:2].sum(0).astype(np.float32)
    db = dy.reshape(-1, 8)[:2].sum(0)
    files = {k: write(f"{k}.npy", v) for k, v in
             {"x": x, "dy": dy, "dx": xt.grad.numpy(), "dw": dw, "db": db}.items()}  # fmt: skip
    code, doc = invoke_json(
        "compare", str(files["x"]), "--shape", "8", "--grad", "--grad-output", str(files["dy"]),
        "--expected", f"grad_input={files['dx']}", "--expected", f"grad_weight={files['dw']}",
        "--expected", f"grad_bias={files['db']}",
    )  # fmt: skip
    assert code == 1
    assert _verdicts(doc, "expected") == {
        ("expected", "grad_input"): True,
        ("expected", "grad_weight"): False,
        ("expected", "grad_bias"): False,
    }
    assert_user_error(
        invoke(
            "compare", str(files["x"]), "--shape", "8", "--expected", f"grad_input={files['dx']}"
        ),
        f"{files['dx']} (given to --expected): gives grad_input, but gradients are checked "
        "only with --grad",
    )


def test_a_kernels_gradients_by_their_own_options(write: Callable[..., Path]) -> None:
    # n14's spelling: --expected-grad-input/-weight/-bias FILE, the keywords and suite keys
    # expected_grad_*; dbias summed over the first 2 of 6 rows
    rng = np.random.default_rng(140)
    x = rng.standard_normal((2, 3, 8)).astype(np.float32)
    dy = rng.standard_normal((2, 3, 8)).astype(np.float32)
    db_right = dy.reshape(-1, 8).sum(0)
    db_wrong = dy.reshape(-1, 8)[:2].sum(0)
    files = {k: write(f"{k}.npy", v) for k, v in
             {"x": x, "dy": dy, "right": db_right, "wrong": db_wrong}.items()}  # fmt: skip
    base = ["compare", str(files["x"]), "--shape", "8", "--grad", "--grad-output",
            str(files["dy"])]  # fmt: skip
    for name, code_wanted in (("right", 0), ("wrong", 1)):
        code, doc = invoke_json(*base, "--expected-grad-bias", str(files[name]))
        assert code == code_wanted
        assert _verdicts(doc, "expected") == {("expected", "grad_bias"): code_wanted == 0}
    report = lncheck.compare(
        x, normalized_shape=8, grad=True, grad_output=dy, backend=None,
        expected_grad_bias=db_wrong, expected_grad_weight=np.zeros(8, np.float32),
    )  # fmt: skip
    assert {(c.quantity, c.passed) for c in report.checks} == {
        ("grad_bias", False),
        ("grad_weight", False),
    }
    assert_user_error(
        invoke(
            *base,
            "--expected-grad-bias",
            str(files["right"]),
            "--expected",
            f"grad_bias={files['wrong']}",
        ),
        "--expected-grad-bias gives 'expected.grad_bias' twice",
    )
    with pytest.raises(InputError, match="expected_grad_weight= needs a file, got ''"):
        lncheck.compare(x, normalized_shape=8, grad=True, expected_grad_weight="")
    with pytest.raises(InputError, match="expected_grad_bias= takes one file or array, got"):
        lncheck.compare(
            x, normalized_shape=8, grad=True, expected_grad_bias={"grad_bias": db_wrong}
        )
    # a suite names its own key
    suite = files["x"].parent / "suite.toml"
    suite.write_text(
        '[[case]]\ninput = "x.npy"\nnormalized_shape = [8]\ngrad = true\n'
        'expected_grad_weight = "nope.npy"\n'
    )
    assert_user_error(invoke("run", str(suite)), "key 'expected_grad_weight': no such file")
    # a missing file is named as typed, with the option that gave it, in the caller's spelling
    missing = str(files["x"].parent / "gone.npy")
    for flag in ("--expected-grad-weight", "--expected"):
        value = missing if flag != "--expected" else f"grad_weight={missing}"
        assert_user_error(
            invoke(*base, flag, value), f"error: {value} (given to {flag}): no such file"
        )
    with pytest.raises(InputError, match=r"gone\.npy \(given to expected_grad_weight=\): no such"):
        lncheck.compare(x, normalized_shape=8, grad=True, expected_grad_weight=missing)


def test_a_cases_expected_entry_overrides_the_defaults_under_either_key(
    write: Callable[..., Path],
) -> None:
    # [defaults] expected_grad_weight and a case's expected = {grad_weight = ...} name the same
    # entry: the case's wins, as every case key does, in both directions; other entries stay
    rng = np.random.default_rng(141)
    x = rng.standard_normal((4, 8)).astype(np.float32)
    n = _layer_norm(x)
    write("x.npy", x)
    write("right_dw.npy", n.sum(0).astype(np.float32))  # dy = 1: the sum of n
    write("right_db.npy", np.full(8, 4.0, np.float32))
    suite = write("dy.npy", np.ones((4, 8), np.float32)).parent / "suite.toml"
    head = (
        '[[case]]\nname = "a"\ninput = "x.npy"\nnormalized_shape = [8]\ngrad = true\n'
        'grad_output = "dy.npy"\n'
    )
    for defaults, own in (
        ('expected_grad_weight = "gone.npy"', 'expected = {grad_weight = "right_dw.npy"}'),
        ('expected = {grad_weight = "gone.npy", grad_bias = "right_db.npy"}',
         'expected_grad_weight = "right_dw.npy"'),
    ):  # fmt: skip
        suite.write_text(f"[defaults]\n{defaults}\n{head}{own}\n")
        result = invoke("run", str(suite), "--format", "json")
        code, doc = result.exit_code, json.loads(result.stdout)
        checked = {(c["quantity"], c["passed"]) for c in doc["cases"][0]["report"]["checks"]
                   if c["candidate"] == "expected"}  # fmt: skip
        assert code == 0
        assert checked == ({("grad_weight", True)} if "grad_bias" not in defaults
                           else {("grad_weight", True), ("grad_bias", True)})  # fmt: skip
    # the same entry twice in one place is still an error
    suite.write_text(
        f'{head}expected_grad_weight = "right_dw.npy"\n'
        'expected = {grad_weight = "right_dw.npy"}\n'
    )
    assert_user_error(
        invoke("run", str(suite)), "key 'expected_grad_weight' gives 'expected.grad_weight' twice"
    )


def test_gradients_in_a_pt_dict(tmp_path: Path) -> None:
    # b17: a kernel's grad_weight and grad_bias in a .pt dict are a bundle, not input arrays
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(17))
    grads = tmp_path / "kernel_grads.pt"
    right_dw = torch.from_numpy(_layer_norm(x.numpy()).sum(0)).float()  # dy = 1: sum of n
    torch.save({"grad_weight": right_dw, "grad_bias": torch.zeros(8)}, grads)
    data = tmp_path / "x.pt"
    torch.save({"input": x, "grad_output": torch.ones(16, 8)}, data)
    assert_user_error(
        invoke("compare", str(grads), "--shape", "8"),
        f"{grads}: unknown array 'grad_bias' (known names: input, x, weight, bias",
        "a result to check goes in --expected FILE, or here as 'expected_grad_bias'",
    )
    code, doc = invoke_json("compare", str(data), "--shape", "8", "--expected", str(grads))
    # the upstream gradient is all ones: dbias is 16 per element, not 0
    assert code == 1
    assert _verdicts(doc, "expected") == {
        ("expected", "grad_weight"): True,
        ("expected", "grad_bias"): False,
    }


def test_an_unknown_member_lists_the_known_ones(write: Callable[..., Path]) -> None:
    bundle = write("b.npz", output=np.zeros((2, 3, 4)), rtsd=np.zeros((2, 3)))
    assert_user_error(
        invoke("compare", TOKENS, "--shape", "4", "--expected", str(bundle)),
        f"{bundle} (given to --expected): unknown member 'rtsd': a bundle's members are named "
        "after quantities "
        "(output, activation, mean, rstd, var, running_mean, running_var, grad_input, "
        "grad_weight, grad_bias)",
    )
    assert_user_error(
        invoke("compare", TOKENS, "--shape", "4", "--expected", f"mine.rtsd={bundle}"),
        "--expected: unknown quantity 'rtsd' in 'mine.rtsd'",
    )


def test_the_shipped_one_pass_example_is_caught_through_candidate_cmd() -> None:
    program = shlex.quote(str(EXAMPLES / "onepass_layernorm.py"))
    line = f"{PYTHON} {program} {{input}} {{output}} --eps {{eps}} --shape {{shape}}"
    shifted = str(EXAMPLES / "shifted.npy")
    code, doc = invoke_json(
        "compare", shifted, "--shape", "64", "--candidate-cmd", line,
        "--candidate-cmd", f"two-pass={line} --two-pass",
    )  # fmt: skip
    assert code == 1
    assert _verdicts(doc, "command", "two-pass") == {
        ("command", "output"): False,
        ("two-pass", "output"): True,
    }
    assert all(v for k, v in _verdicts(doc).items() if k[0].startswith("torch."))


def test_a_crashing_or_hanging_program_is_a_failed_check(tmp_path: Path) -> None:
    crash = tmp_path / "crash.py"
    crash.write_text("import sys\nprint('CUDA error: illegal memory access', file=sys.stderr)\n"
                     "sys.exit(3)\n")  # fmt: skip
    code, doc = invoke_json(
        "compare", TOKENS, "--shape", "4", "--candidate-cmd", f"{PYTHON} {crash} {{output}}",
        "--candidate-cmd", f"hang={PYTHON} -c 'import time; time.sleep(60)' {{output}}",
        "--candidate-timeout", "0.5",
    )  # fmt: skip
    assert code == 1
    notes = {c["candidate"]: c["note"] for c in doc["checks"] if c["note"]}
    assert notes == {
        "command": "exited with status 3; stderr: CUDA error: illegal memory access",
        "hang": "stopped after 0.5 s (--candidate-timeout)",
    }


def test_a_callable_by_file_and_repeat(tmp_path: Path) -> None:
    (tmp_path / "kernels.py").write_text(
        "import torch\n"
        "def racy(x, normalized_shape, eps):\n"
        "    noise = torch.randint(0, 2, x.shape[:-1] + (1,)) * 2.0**-20\n"  # a race's last bit
        "    return torch.nn.functional.layer_norm(x, normalized_shape, eps=eps) * (1 + noise)\n"
    )
    target = f"{tmp_path / 'kernels.py'}:racy"
    code, doc = invoke_json(
        "compare", TOKENS, "--shape", "4", "--candidate", target, "--repeat", "5"
    )
    assert code == 1
    repeat = [c for c in doc["checks"] if c["kind"] == "repeat" and not c["passed"]]
    assert [(c["candidate"], c["quantity"]) for c in repeat] == [("racy", "output")]
    assert repeat[0]["note"].startswith("differs bitwise between runs: ")
    assert_user_error(
        invoke("compare", TOKENS, "--shape", "4", "--candidate", "kernels.racy"),
        "--candidate 'kernels.racy': expected module.path:function",
    )
    assert_user_error(invoke("compare", TOKENS, "--shape", "4", "--repeat", "0"),
                      "--repeat must be positive, got 0")  # fmt: skip


def test_weight_offset_gives_gemmas_verdicts(write: Callable[..., Path]) -> None:
    # n09: Gemma scales by (1 + w) in float32; a kernel that forgets the offset must fail
    torch.manual_seed(74)
    x = torch.randn(4, 256).bfloat16()
    w = (0.3 * torch.randn(256)).bfloat16()
    w[5] = 15.8125
    xf = x.float()
    rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)
    gemma = (xf * rstd * (1.0 + w.float())).bfloat16().float().numpy()
    no_offset = (xf * rstd * w.float()).bfloat16().float().numpy()
    arrays = {"x": xf.numpy(), "w": w.float().numpy(), "gemma": gemma, "bug": no_offset}
    files = {k: str(write(f"{k}.npy", v)) for k, v in arrays.items()}
    base = ["compare", files["x"], "--op", "rms_norm", "--shape", "256", "--eps", "1e-6",
            "--dtype", "bfloat16", "--weight", files["w"], "--weight-offset", "1"]  # fmt: skip
    assert invoke(*base, "--expected", files["bug"]).exit_code == 1
    result = invoke(*base, "--expected", files["gemma"])
    assert result.exit_code == 0, result.stdout
    assert "weight_offset=1.0" in result.stdout  # the layer says so
    assert_user_error(
        invoke("compare", TOKENS, "--op", "group_norm", "--groups", "1", "--weight-offset", "1"),
        "--weight-offset does not apply to group_norm (it is read by layer_norm, rms_norm)",
    )


def test_the_shipped_examples_give_the_readmes_verdicts() -> None:
    kernels = str(EXAMPLES / "kernels.py")
    base = ["compare", TOKENS, "--shape", "4"]
    code, doc = invoke_json(*base, "--expected", str(EXAMPLES / "ln_kernel.npz"))
    assert code == 0 and _verdicts(doc, "expected") == {
        ("expected", "output"): True,
        ("expected", "mean"): True,
        ("expected", "rstd"): True,
    }
    code, doc = invoke_json(*base, "--expected", f"fused.rstd={EXAMPLES / 'rstd_float16.npy'}")
    assert code == 1 and _verdicts(doc, "fused") == {("fused", "rstd"): False}
    code, doc = invoke_json(*base, "--candidate", f"{kernels}:layer_norm", "--grad")
    assert code == 0 and len(_verdicts(doc, "layer_norm")) == 6
    code, doc = invoke_json(*base, "--candidate", f"{kernels}:racy_layer_norm", "--repeat", "5")
    failed = [(c["quantity"], c["kind"]) for c in doc["checks"] if not c["passed"]]
    assert code == 1 and failed == [("output", "repeat")]
    code, doc = invoke_json(*base, "--candidate", f"{kernels}:in_place_layer_norm")
    notes = [c["note"] for c in doc["checks"] if c["note"]]
    assert code == 1 and notes == [
        "changed its input in place (24 of 24 elements); a candidate must not modify its inputs"
    ]
    gemma = ["compare", str(EXAMPLES / "gemma.npz"), "--op", "rms_norm", "--shape", "64",
             "--eps", "1e-6", "--dtype", "bfloat16"]  # fmt: skip
    assert invoke(*gemma, "--weight-offset", "1").exit_code == 0
    code, doc = invoke_json(*gemma)  # read as Llama's RMSNorm, Gemma's output is wrong
    assert code == 1 and _verdicts(doc, "expected") == {("expected", "output"): False}


def test_a_file_name_inside_a_candidates_table_is_never_read_as_text(
    write: Callable[..., Path],
) -> None:
    # a suite's expected = {mine = {grad_weight = "dw.npy"}}: the inner value is not a file
    # (only the outer table names files), and a string is no array: say how to write it
    write("x.npy", np.ones((4, 8), np.float32))
    suite = write("dw.npy", np.ones(8, np.float32)).parent / "suite.toml"
    suite.write_text(
        '[[case]]\nname = "a"\ninput = "x.npy"\nnormalized_shape = [8]\ngrad = true\n'
        'expected = {mine = {grad_weight = "dw.npy"}}\n'
    )
    assert_user_error(
        invoke("run", str(suite)),
        "case 'a': the arrays given to key 'expected' as 'mine': 'grad_weight' is 'dw.npy', not "
        "an array; a file goes in as 'mine.grad_weight' = FILE",
    )
    suite.write_text(suite.read_text().replace('{mine = {grad_weight = "dw.npy"}}', "5"))
    assert_user_error(
        invoke("run", str(suite)),
        "case 'a': the array given to key 'expected': output has shape ()",
    )
