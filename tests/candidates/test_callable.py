"""A Python function as a candidate: found by name, called with torch tensors and the layer's
options, its output (and autograd's gradients) checked; a function that changes its input
fails."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lncheck
from lncheck.candidates.callable import resolve, source_file
from lncheck.candidates.specs import Target
from lncheck.errors import InputError
from lncheck.pipeline import check_case

from ..support import make_case


class Stopped(BaseException):
    """A BaseException of the user's own (not an Exception, nor SystemExit)."""


def _x(shape: tuple[int, ...] = (4, 8), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _checks(x: np.ndarray, fn: Any, op: str = "layer_norm", **options: Any) -> dict[Any, Any]:
    if op in ("layer_norm", "rms_norm"):
        options.setdefault("normalized_shape", x.shape[-1])
    report = check_case(make_case(x, op, candidate={"mine": fn}, **options), backend=None)
    return {(c.quantity, c.kind): c for c in report.checks if c.candidate == "mine"}


def test_torch_functional_ops_pass_as_they_are() -> None:
    x = _x()
    checks = _checks(x, F.layer_norm, weight=np.full(8, 2.0, np.float32), grad=True)
    assert {q for q, _ in checks} == {"output", "grad_input", "grad_weight", "grad_bias"}
    assert all(c.passed for c in checks.values())
    image = _x((2, 4, 3, 3))
    assert all(c.passed for c in _checks(image, F.group_norm, "group_norm", groups=2).values())


def test_batch_norm_updates_its_running_statistics_in_place() -> None:
    # F.batch_norm updates running_mean/running_var in place, as torch's buffers are: they are
    # its updated running statistics
    checks = _checks(_x((8, 3)), F.batch_norm, "batch_norm", momentum=0.3)
    assert {q: c.passed for (q, _), c in checks.items()} == {
        "output": True,
        "running_mean": True,
        "running_var": True,
    }


def test_only_the_options_its_signature_names_are_passed() -> None:
    seen: dict[str, Any] = {}

    def mine(hidden: torch.Tensor, eps: float, weight: torch.Tensor | None = None) -> Any:
        seen.update(eps=eps, weight=weight)
        return F.rms_norm(hidden, hidden.shape[-1:], weight, eps)

    checks = _checks(_x(), mine, "rms_norm", eps=1e-3)
    assert checks[("output", "reference")].passed
    assert seen["eps"] == 1e-3 and seen["weight"].dtype == torch.float32

    def everything(x: torch.Tensor, **options: Any) -> torch.Tensor:
        seen.clear()
        seen.update(options)
        return F.group_norm(x, options["num_groups"], options["weight"], options["bias"])

    _checks(_x((2, 4, 3)), everything, "group_norm", groups=2, eps=1e-5, channel_axis=1)
    assert set(seen) == {"eps", "groups", "num_groups", "channel_axis", "weight", "bias"}


def test_a_dict_of_quantities_with_a_wrong_statistic() -> None:
    def mine(x: torch.Tensor, normalized_shape: tuple[int, ...], eps: float) -> dict[str, Any]:
        y, mean, rstd = torch.native_layer_norm(x, normalized_shape, None, None, eps)
        return {"output": y, "mean": mean, "rstd": rstd * 1.001}

    checks = _checks(_x(), mine)
    assert {q: c.passed for (q, _), c in checks.items()} == {
        "output": True,
        "mean": True,
        "rstd": False,
    }


def test_a_function_that_changes_its_input_fails() -> None:
    def in_place(x: torch.Tensor, normalized_shape: tuple[int, ...]) -> torch.Tensor:
        x.sub_(x.mean(-1, keepdim=True))  # centres its input in place
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)

    (((quantity, _), c),) = _checks(_x(), in_place).items()
    assert (quantity, c.passed) == ("output", False)
    assert c.note == (
        "changed its input in place (32 of 32 elements); a candidate must not modify its inputs"
    )

    def weight_in_place(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        weight[0] = 0.0
        return F.layer_norm(x, x.shape[-1:], weight)

    (c,) = _checks(_x(), weight_in_place).values()
    assert c.note is not None and c.note.startswith("changed its weight in place (1 of 8 elements)")


@pytest.mark.parametrize("kind", ["numpy", "torch", "read-only numpy"])
def test_a_function_that_writes_into_its_arguments_never_reaches_the_callers(kind: str) -> None:
    # float32 data are used as they are (torch.from_numpy shares their memory): the candidate
    # must get copies, and the check fails all the same
    def in_place(
        x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
    ) -> torch.Tensor:
        x.mul_(2)
        weight.mul_(3)
        bias.add_(1)
        return F.layer_norm(x, x.shape[-1:], weight, bias, eps)

    originals = (_x(), np.ones(8, np.float32), np.zeros(8, np.float32))
    snapshot = tuple(a.copy() for a in originals)
    if kind == "read-only numpy":
        for a in originals:
            a.flags.writeable = False
    args = tuple(torch.from_numpy(a) for a in originals) if kind == "torch" else originals
    report = lncheck.compare(
        args[0], normalized_shape=8, weight=args[1], bias=args[2], candidate={"c": in_place}
    )
    (check,) = [c for c in report.checks if c.candidate == "c"]
    assert not check.passed and (check.note or "").startswith("changed its input in place")
    for before, now in zip(snapshot, originals, strict=True):
        np.testing.assert_array_equal(now, before)


@pytest.mark.parametrize(
    ("fn", "note"),
    [
        (lambda x: 1 / 0, "raised ZeroDivisionError: division by zero"),
        (lambda x: sys.exit(0), "raised SystemExit: 0"),  # it must not end lncheck's run
        (lambda x: sys.exit(3), "raised SystemExit: 3"),
        # a BaseException that is neither: it fails the candidate, and never ends the run
        (lambda x: (_ for _ in ()).throw(GeneratorExit), "raised GeneratorExit"),
        (lambda x: (_ for _ in ()).throw(Stopped("boom")), "raised Stopped: boom"),
        # os._exit would end the process at once, with status 0 and no report
        (lambda x: os._exit(0), "raised OsExit: os._exit(0) would end lncheck"),
        (lambda x: __import__("posix")._exit(3), "raised OsExit: os._exit(3) would end"),
        (lambda x: (x, x), "returned a tuple; return a tensor or a dict of quantities"),
        (lambda x: x.to("meta"), "returned output on the meta device, which holds no values"),
        (lambda x: {"output": x.to("meta")}, "returned output on the meta device"),
        (lambda x: {"y": x}, "returned an unknown quantity 'y' (known: output, activation"),
        (lambda x: {"output": [1.0]}, "returned output as a list, not a tensor"),
        (lambda x: x[:, :4], "its result: output has shape (4, 4); layer_norm on an input"),
        (lambda *, x: x, "it must take the input as its first (positional) argument"),
        (torch.layer_norm, "its signature cannot be inspected"),
    ],
)
def test_a_function_that_fails_is_a_failed_check(fn: Any, note: str) -> None:
    (c,) = _checks(_x(), fn).values()
    assert (c.quantity, c.passed) == ("output", False)
    assert c.note is not None and c.note.startswith(note), c.note


def test_gradients_by_autograd_or_a_note_when_there_is_no_graph() -> None:
    def detached(x: torch.Tensor, normalized_shape: Any) -> torch.Tensor:
        return F.layer_norm(x, normalized_shape).detach()

    (c,) = _checks(_x(), detached, grad=True).values()
    assert not c.passed and c.note is not None
    assert c.note.startswith("its output does not require grad, so its gradients cannot be")

    def own_backward(x: torch.Tensor, normalized_shape: Any) -> dict[str, Any]:
        # a kernel with its own backward hands its gradients over; autograd is not used
        return {"output": F.layer_norm(x, normalized_shape), "grad_input": torch.zeros_like(x)}

    checks = _checks(_x(), own_backward, grad=True)
    assert {q: c.passed for (q, _), c in checks.items()} == {"output": True, "grad_input": False}


def test_a_fused_activation_is_the_final_output() -> None:
    def fused(x: torch.Tensor, normalized_shape: Any, weight: Any, bias: Any) -> torch.Tensor:
        return F.relu(F.layer_norm(x, normalized_shape, weight, bias))

    checks = _checks(_x(), fused, activation="relu", grad=True)
    assert {q for q, _ in checks} == {"activation", "grad_input", "grad_weight", "grad_bias"}
    assert all(c.passed for c in checks.values())

    def ignores_its_weight(x: torch.Tensor, normalized_shape: Any, weight: Any) -> torch.Tensor:
        return F.relu(F.layer_norm(x, normalized_shape))

    # its output does not depend on the weight: autograd's grad_weight is zero, which is wrong
    checks = _checks(_x(), ignores_its_weight, activation="relu", grad=True)
    assert not checks[("grad_weight", "reference")].passed
    assert checks[("grad_weight", "reference")].note is None  # a mismatch, like any other
    assert checks[("activation", "reference")].passed


def test_a_parameter_it_never_takes_has_no_gradient_and_a_note_says_so() -> None:
    def only_x(x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:])

    # the layer is affine (weight ones, bias zeros): its output is right, but autograd has no
    # gradient for parameters the function never received, which is not a gradient of zeros
    checks = _checks(_x(), only_x, grad=True)
    assert {q: c.passed for (q, _), c in checks.items()} == {
        "output": True,
        "grad_input": True,
        "grad_weight": False,
        "grad_bias": False,
    }
    weight, bias = checks[("grad_weight", "reference")], checks[("grad_bias", "reference")]
    assert weight.note == "takes no weight: autograd gives it no grad_weight"
    assert bias.note == "takes no bias: autograd gives it no grad_bias"
    assert (weight.total, bias.total) == (8, 8)

    def no_bias(x: torch.Tensor, normalized_shape: Any, weight: Any) -> torch.Tensor:
        return F.layer_norm(x, normalized_shape, weight)

    checks = _checks(_x(), no_bias, grad=True)
    assert checks[("grad_weight", "reference")].passed
    assert (
        checks[("grad_bias", "reference")].note == "takes no bias: autograd gives it no grad_bias"
    )


def test_a_module_path_is_imported_from_the_current_folder_or_the_targets_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``mod:fn`` and ``pkg.mod:fn`` are imported as modules (a package's relative imports
    work), searched for first in the current folder, or in a suite's folder (``Target
    .folder``); the file found is the one ``source_file`` names."""
    here, suite = tmp_path / "here", tmp_path / "suite"
    for folder, scale in ((here, 1.0), (suite, 2.0)):
        (folder / "pkg").mkdir(parents=True)
        (folder / "pkg" / "__init__.py").write_text("")
        (folder / "pkg" / "helpers.py").write_text(f"SCALE = {scale}\n")
        (folder / "pkg" / "kernels.py").write_text(
            "from .helpers import SCALE\n"
            "def ln(x, normalized_shape, **kw):\n"
            "    import torch.nn.functional as F\n"
            "    return F.layer_norm(x, normalized_shape) * SCALE\n"
        )
    monkeypatch.chdir(here)
    for name in [m for m in sys.modules if m == "pkg" or m.startswith("pkg.")]:
        monkeypatch.delitem(sys.modules, name)
    target = Target("mine", "pkg.kernels:ln")
    assert source_file(target) == str(Path("pkg") / "kernels.py")
    checks = _checks(_x(), "pkg.kernels:ln")
    assert checks[("output", "reference")].passed
    in_suite = Target("mine", "pkg.kernels:ln", folder=str(suite))
    assert source_file(in_suite) == str(suite / "pkg" / "kernels.py")
    # Python keeps the first pkg.kernels: the suite folder's would run the other's code
    with pytest.raises(InputError) as raised:
        resolve(in_suite)
    assert str(raised.value) == (
        f"candidate 'pkg.kernels:ln': a module named 'pkg.kernels' is already imported from "
        f"{(here / 'pkg' / 'kernels.py').resolve()}, not {suite / 'pkg' / 'kernels.py'}: name "
        f"the file instead ({suite / 'pkg' / 'kernels.py'}:ln)"
    )


def test_functions_are_found_by_module_or_file(tmp_path: Path) -> None:
    (tmp_path / "kernels.py").write_text(
        "import torch.nn.functional as F\n"
        "def ln(x, normalized_shape, weight=None, bias=None, eps=1e-5):\n"
        "    return F.layer_norm(x, normalized_shape, weight, bias, eps)\n"
        "not_callable = 3\n"
    )
    (tmp_path / "broken.py").write_text("raise RuntimeError('no GPU here')\n")
    (tmp_path / "quits.py").write_text("import sys\nsys.exit(0)\n")
    (tmp_path / "stops.py").write_text("raise GeneratorExit\n")
    (tmp_path / "ends.py").write_text("import os\nos._exit(0)\n")
    found = resolve(Target("ln", f"{tmp_path / 'kernels.py'}:ln"))
    assert found is resolve(Target("again", f"{tmp_path / 'kernels.py'}:ln"))  # imported once
    assert resolve(Target("f", "torch.nn.functional:layer_norm")) is F.layer_norm
    for target, phrase in [
        ("no_such_module_here:f", "cannot import it: ModuleNotFoundError: No module named"),
        (f"{tmp_path / 'kernels.py'}:nope", "kernels.py has no callable 'nope'"),
        (f"{tmp_path / 'kernels.py'}:not_callable", "has no callable 'not_callable'"),
        (f"{tmp_path / 'broken.py'}:f", "cannot import it: RuntimeError: no GPU here"),
        (f"{tmp_path / 'quits.py'}:f", "cannot import it: SystemExit: 0"),
        (f"{tmp_path / 'stops.py'}:f", "cannot import it: GeneratorExit"),
        (f"{tmp_path / 'ends.py'}:f", "cannot import it: OsExit: os._exit(0) would end lncheck"),
        (f"{tmp_path / 'missing.py'}:f", "no such file"),
    ]:
        with pytest.raises(InputError) as info:
            make_case(_x(), normalized_shape=8, candidate=target)
        assert str(info.value).startswith(f"candidate= {target!r}: ")
        assert phrase in str(info.value)


def test_a_function_that_changes_the_running_statistics_in_eval_mode_fails() -> None:
    # eval mode updates none: they are inputs, as the weight is
    def sloppy(x: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor) -> Any:
        running_mean.add_(1.0)
        return F.batch_norm(x, running_mean - 1.0, running_var, training=False)

    stats = {"running_mean": np.zeros(3, np.float32), "running_var": np.ones(3, np.float32)}
    (c,) = _checks(_x((8, 3)), sloppy, "batch_norm", train=False, **stats).values()
    assert not c.passed
    assert (c.note or "").startswith("changed its running_mean in place (3 of 3 elements)")
    honest = _checks(_x((8, 3)), F.batch_norm, "batch_norm", train=False, **stats)
    assert all(c.passed for c in honest.values())
