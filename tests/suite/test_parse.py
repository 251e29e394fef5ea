"""Suite files: every error names the file, the case and the key, and nothing runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lncheck
from lncheck.errors import InputError
from lncheck.suite.parse import load_suite
from lncheck.suite.random_input import RandomInput

from ..cli.helpers import assert_user_error, invoke
from .helpers import SUITE, write_suite

OK_CASE = '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\nskip = "not run"\n'


@pytest.mark.parametrize(
    ("text", "phrases"),
    [
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\nwieght = "w.npy"\n',
            ["case 'a'", "key 'wieght': unknown case key (did you mean 'weight'?)"],
        ),
        (
            '[defaults]\ntolerence = "auto"\n[[case]]\ninput = "x.npy"\nshape = [8]\n',
            ["s.toml: [defaults]: unknown key 'tolerence' (did you mean 'tolerance'?)"],
        ),
        (  # a bad default is the defaults' fault, not the first case's
            '[defaults]\nmomentum = "fast"\n[[case]]\ninput = "x.npy"\nshape = [8]\n',
            ["s.toml: [defaults]: key 'momentum' must be a number or 'none', got 'fast'"],
        ),
        (
            '[[case]]\nname = "a"\ninput = "missing.npy"\nshape = [8]\n',
            ["case 'a'", "key 'input': no such file"],
        ),
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\nweight = "w.npy"\n',
            ["key 'weight': no such file"],
        ),
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nshape = "eight"\n',
            ["case 'a'", "key 'shape': expected integers such as '3 4' or '3,4', got 'eight'"],
        ),
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\ndtype = "int8"\n',
            ["key 'dtype' must be one of"],
        ),
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\nmomentum = "fast"\n',
            ["key 'momentum' must be a number"],
        ),
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\ngrad = "yes"\n',
            ["key 'grad' must be true or false"],
        ),
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [5]\n',
            ["case 'a'", "x.npy: input has shape (4, 8)"],
        ),
        ('[[case]]\nname = "a"\nshape = [8]\n', ["key 'input' or 'random' is required"]),
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nrandom = {shape = [2, 8]}\nshape = [8]\n',
            ["both given"],
        ),
        (
            '[[case]]\nname = "a"\nrandom = {shape = [2, 8], sead = 1}\nshape = [8]\n',
            ["key 'random.sead': unknown"],
        ),
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\n' * 2,
            ["repeats another case's name"],
        ),
        ('[[case]]\nname = "a/b"\ninput = "x.npy"\nshape = [8]\n', ["without '/'"]),
        ("[[case]\n", ["invalid TOML"]),
        ('title = "x"\n', ["unknown top-level key 'title'"]),
        ("[defaults]\neps = 1e-5\n", ["no cases"]),
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nop = "group_norm"\n',
            ["case 'a'", "group_norm needs key 'groups'"],
        ),
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\ngroups = 2\n',
            ["case 'a'", "key 'groups' does not apply to layer_norm"],
        ),
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\nnormalized_shape = [8]\n',
            ["case 'a'", "given twice"],
        ),
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\nchunks = false\n',
            ["case 'a'", "key 'chunks': unknown case key"],
        ),
        # [defaults]' own faults are its own, whichever case would have met them first
        ("[defaults]\nchunks = false\n" + OK_CASE, ["s.toml: [defaults]: unknown key 'chunks'"]),
        ('[defaults]\nname = "all"\n' + OK_CASE, ["[defaults]: key 'name' names one case"]),
        (
            "[defaults]\nrandom = {shape = [2, 8], sed = 1}\n" + OK_CASE,
            ["s.toml: [defaults]: key 'random.sed': unknown"],
        ),
        ("[defaults]\nskip = 3\n" + OK_CASE, ["[defaults]: key 'skip' must be a string, got 3"]),
        (
            '[[case]]\nname = "a"\nrandom = {shape = [2, 8], dist = "uniform", mean = 3}\n'
            "shape = [8]\n",
            ["key 'random.mean' does not apply to dist = 'uniform' (it takes low and high)"],
        ),
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\nseed = 3\n',
            ["case 'a'", "key 'seed' is for the backward pass's random upstream gradient"],
        ),
        (
            '[defaults]\ninput = "x.npy"\nrandom = {shape = [2, 8]}\n' + OK_CASE,
            ["[defaults]: keys 'input' and 'random' both given"],
        ),
        # one table where there should be a list of them
        ('[case]\nname = "a"\ninput = "x.npy"\nshape = [8]\n', ["[case] is one table: write"]),
        (  # an unnamed case whose default name is taken says so
            '[[case]]\nname = "case2"\ninput = "x.npy"\nshape = [8]\n'
            '[[case]]\ninput = "x.npy"\nshape = [8]\n',
            ["case 'case2': its default name (case #2) repeats another case's name"],
        ),
        (  # a skipped case never runs to fail
            '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\nskip = "x"\nxfail = "y"\n',
            ["case 'a': keys 'skip' and 'xfail' both given: give one"],
        ),
        (
            '[[case]]\ninput = "x.npy"\nshape = [8]\n'
            '[[case]]\nname = "case1"\ninput = "x.npy"\nshape = [8]\n',
            ["case 'case1': key 'name' repeats case #1's default name"],
        ),
    ],
)
def test_suite_errors(tmp_path: Path, text: str, phrases: list[str]) -> None:
    path = write_suite(tmp_path, text)
    junit = tmp_path / "r.xml"
    result = invoke("run", str(path), "--junit", str(junit))
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith(f"lncheck: error: {path}")
    for phrase in phrases:
        assert phrase in line
    assert result.stdout == "" and not junit.exists()  # nothing ran, nothing written


def test_a_cases_xfail_replaces_a_default_skip(tmp_path: Path) -> None:
    text = '[defaults]\nskip = "later"\n[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\n'
    (a,) = load_suite(write_suite(tmp_path, text + 'xfail = "known"\n')).cases
    assert (a.skip, a.xfail) == (None, "known")


def test_skip_and_xfail_false_mean_neither(tmp_path: Path) -> None:
    case = '[[case]]\nname = "{}"\ninput = "x.npy"\nshape = [8]\n'
    text = case.format("a") + "skip = false\n" + case.format("b") + "xfail = false\n"
    a, b = load_suite(write_suite(tmp_path, text)).cases
    assert (a.skip, b.xfail) == (None, None)


def test_missing_suite_file(tmp_path: Path) -> None:
    result = invoke("run", str(tmp_path / "nope.toml"))
    assert result.exit_code == 2 and "no such suite file" in result.stderr


def test_a_suite_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    text = '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\n'
    (case,) = load_suite(write_suite(tmp_path, text)).cases
    path = write_suite(tmp_path, text)
    path.write_text("\ufeff" + text, encoding="utf-8")
    (marked,) = load_suite(path).cases
    assert marked.name == case.name == "a"


def test_a_binary_file_is_no_suite(tmp_path: Path) -> None:
    array = tmp_path / "x.npy"
    np.save(array, np.zeros(3))
    result = invoke("run", str(array))
    assert result.exit_code == 2
    assert f"{array}: not a TOML suite file (not UTF-8 text)" in result.stderr


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ("random = {shape = [2, 4], std = -1.0}", "key 'random.std' must be 0 or more"),
        ("random = {shape = [2, 4], seed = -3}", "key 'random.seed' must be 0 or more"),
        (f"random = {{shape = {[1] * 69 + [4]}}}", "has 70 dims; NumPy holds at most 64"),
        ('random = {shape = [2, 4], dist = "uniform", low = -1e308, high = 1e308}', "low < high"),
        ("random = {shape = [2, 4]}\nseed = -1\ngrad = true", "key 'seed' must be 0 or more"),
        (
            'random = {shape = [2, 4]}\ndevice = "tpu"',
            "key 'device' must be cpu, cuda, cuda:N or mps",
        ),
    ],
)
def test_suite_values_checked_before_running(tmp_path: Path, body: str, phrase: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(f'[[case]]\nname = "a"\nshape = [4]\n{body}\n')
    result = invoke("run", str(path))
    assert result.exit_code == 2, result.output
    assert phrase in result.stderr and "case 'a'" in result.stderr


def test_a_case_input_replaces_a_default_random(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.ones((2, 4), np.float32) + np.arange(4))
    path = tmp_path / "s.toml"
    path.write_text(
        "[defaults]\nrandom = {shape = [3, 4]}\nshape = [4]\n"
        '[[case]]\nname = "file"\ninput = "x.npy"\n'
        '[[case]]\nname = "generated"\n'
    )
    report = lncheck.run_suite(path)
    shapes = {r.name: r.report.header.input_shape for r in report.results if r.report}
    assert shapes == {"file": (2, 4), "generated": (3, 4)}


def test_defaults_apply_only_to_the_ops_that_read_them(tmp_path: Path) -> None:
    path = write_suite(
        tmp_path,
        "[defaults]\ngroups = 2\nshape = [8]\neps = 1e-3\n"
        '[[case]]\nname = "ln"\ninput = "x.npy"\n'
        '[[case]]\nname = "gn"\nrandom = {shape = [2, 4, 3]}\nop = "group_norm"\n',
    )
    cases = {c.name: c.settings for c in load_suite(path).cases}
    assert not cases["ln"].given("groups") and cases["ln"]["normalized_shape"] == (8,)
    assert cases["gn"]["groups"] == 2 and not cases["gn"].given("normalized_shape")
    assert cases["ln"]["eps"] == cases["gn"]["eps"] == 1e-3


@pytest.mark.parametrize(
    ("defaults", "words"),
    [
        ("groups = 2", "key 'groups' is read by no case (group_norm reads it; the cases are "
         "layer_norm, rms_norm)"),
        ("train = false", "key 'train' is read by no case (instance_norm, batch_norm read it; "
         "the cases are layer_norm, rms_norm)"),
    ],
)  # fmt: skip
def test_a_default_that_no_cases_op_reads_is_refused(
    tmp_path: Path, defaults: str, words: str
) -> None:
    # as the same key in a case is, instead of being dropped from every case in silence
    path = write_suite(
        tmp_path,
        f"[defaults]\n{defaults}\nshape = [8]\n"
        '[[case]]\nname = "ln"\ninput = "x.npy"\n'
        '[[case]]\nname = "rms"\ninput = "x.npy"\nop = "rms_norm"\n',
    )
    line = assert_user_error(invoke("run", str(path)))
    assert line == f"lncheck: error: {path}: [defaults]: {words}"
    with pytest.raises(InputError) as raised:
        lncheck.run_suite(path)
    assert str(raised.value) == f"{path}: [defaults]: {words}"


@pytest.mark.parametrize(
    ("defaults", "why"),
    [
        ("momentum = 0.3", "instance_norm keeps no running statistics with key "
         "'track_running_stats' off"),
        ("train = true", "instance_norm keeps no running statistics with key "
         "'track_running_stats' off, and normalizes with the batch's statistics in train and "
         "eval alike"),
    ],
)  # fmt: skip
def test_a_default_that_does_nothing_in_every_case_reading_it_is_refused(
    tmp_path: Path, defaults: str, why: str
) -> None:
    # a case's own momentum is refused there; a default one stayed out of it in silence
    case = '[[case]]\nname = "in"\nrandom = {shape = [2, 4, 3]}\nop = "instance_norm"\n'
    text = f"[defaults]\n{defaults}\n{case}"
    path = write_suite(tmp_path, text)
    line = assert_user_error(invoke("run", str(path)))
    key = defaults.split(" ")[0]
    assert line == (
        f"lncheck: error: {path}: [defaults]: key {key!r} does nothing in any case that "
        f"inherits it ({why})"
    )
    # one case it acts in keeps it (and the others leave it out)
    bn = '[[case]]\nname = "bn"\nrandom = {shape = [2, 4, 3]}\nop = "batch_norm"\n'
    cases = {c.name: c.settings for c in load_suite(write_suite(tmp_path, text + bn)).cases}
    assert cases["bn"].given(key.replace("train", "training"))
    assert not cases["in"].given(key.replace("train", "training"))


@pytest.mark.parametrize(
    ("defaults", "why"),
    [("seed = 7", "the backward pass's random upstream gradient"),
     ("candidate_timeout = 5", "a program candidate")],
)  # fmt: skip
def test_a_default_that_works_only_with_an_option_no_case_has_is_refused(
    tmp_path: Path, defaults: str, why: str
) -> None:
    # --seed without --grad is refused on the command line; a default one stayed out unsaid
    case = '[[case]]\nname = "ln"\ninput = "x.npy"\nshape = [8]\n'
    path = write_suite(tmp_path, f"[defaults]\n{defaults}\n{case}")
    line = assert_user_error(invoke("run", str(path)))
    key = defaults.split(" ")[0]
    assert line == (
        f"lncheck: error: {path}: [defaults]: key {key!r} does nothing in any case that "
        f"inherits it (it is for {why}, which none of them has)"
    )
    # one case it works in keeps it (the others leave it out)
    used = '[[case]]\nname = "g"\ninput = "x.npy"\nshape = [8]\ngrad = true\n'
    used += 'candidate_cmd = "true {output}"\n'
    cases = load_suite(write_suite(tmp_path, f"[defaults]\n{defaults}\n{case}{used}")).cases
    assert [c.settings.given(key) for c in cases] == [False, True]


def test_a_default_that_only_a_skipped_case_reads_is_kept(tmp_path: Path) -> None:
    text = (
        '[defaults]\ngroups = 2\n[[case]]\nname = "ln"\ninput = "x.npy"\nshape = [8]\n'
        '[[case]]\nname = "gn"\ninput = "x.npy"\nop = "group_norm"\nskip = "later"\n'
    )
    ln, gn = load_suite(write_suite(tmp_path, text)).cases
    assert not ln.settings.given("groups") and gn.settings["groups"] == 2


def test_a_default_momentum_applies_only_where_running_statistics_are_updated(
    tmp_path: Path,
) -> None:
    """A default goes to the cases it takes effect in; a case's own idle momentum is refused."""
    np.save(tmp_path / "img.npy", np.random.default_rng(1).normal(size=(4, 3, 5)))
    np.save(tmp_path / "m.npy", np.zeros(3))
    np.save(tmp_path / "v.npy", np.ones(3))
    cases = '[[case]]\nname = "train"\ninput = "img.npy"\n' + (
        '[[case]]\nname = "eval"\ninput = "img.npy"\ntrain = false\n'
        'running_mean = "m.npy"\nrunning_var = "v.npy"\n'
        '[[case]]\nname = "in"\ninput = "img.npy"\nop = "instance_norm"\n'
    )
    text = '[defaults]\nop = "batch_norm"\nmomentum = 0.2\n' + cases
    train, idle, instance = load_suite(write_suite(tmp_path, text)).cases
    assert train.settings["momentum"] == 0.2
    assert not idle.settings.given("momentum") and not instance.settings.given("momentum")
    own = write_suite(
        tmp_path,
        '[defaults]\nop = "batch_norm"\n'
        + cases.replace("train = false\n", "train = false\nmomentum = 0.2\n"),
        "own.toml",
    )
    with pytest.raises(InputError) as raised:
        load_suite(own)
    assert str(raised.value) == (
        f"{own}: case 'eval': key 'momentum' does nothing here: batch_norm updates no running "
        "statistics in eval"
    )


def test_a_default_train_or_eval_applies_only_where_running_statistics_are_kept(
    tmp_path: Path,
) -> None:
    """A default eval goes to the BatchNorm case, not to the InstanceNorm one that keeps no
    running statistics; a case's own is refused there."""
    np.save(tmp_path / "img.npy", np.random.default_rng(1).normal(size=(4, 3, 5)))
    np.save(tmp_path / "m.npy", np.zeros(3))
    np.save(tmp_path / "v.npy", np.ones(3))
    cases = (
        '[[case]]\nname = "bn"\nop = "batch_norm"\ninput = "img.npy"\n'
        'running_mean = "m.npy"\nrunning_var = "v.npy"\n'
        '[[case]]\nname = "in"\ninput = "img.npy"\nop = "instance_norm"\n'
    )
    bn, instance = load_suite(write_suite(tmp_path, "[defaults]\ntrain = false\n" + cases)).cases
    assert bn.settings["training"] is False and not instance.settings.given("training")
    own = write_suite(tmp_path, cases + "train = false\n", "own.toml")
    with pytest.raises(InputError) as raised:
        load_suite(own)
    assert str(raised.value).startswith(
        f"{own}: case 'in': key 'train' does nothing here: instance_norm keeps no running "
        "statistics"
    )


def test_paths_are_relative_to_the_suite_file(tmp_path: Path) -> None:
    path = write_suite(tmp_path, '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\n')
    (case,) = load_suite(path).cases
    assert case.source == str(tmp_path / "x.npy")
    assert case.load().x.shape == (4, 8)


def test_the_example_suite_parses() -> None:
    cases = {c.name: c for c in load_suite(SUITE).cases}
    assert len(cases) == 16
    assert cases["layer_norm-cuda"].skip == "needs a CUDA device"
    assert cases["batch_norm-eval"].settings["training"] is False  # the alias `train`
    assert cases["rms_norm"].random == RandomInput(shape=(8, 256), seed=3)


def test_suite_case_names_must_be_printable(tmp_path: Path) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text('[[case]]\nname = "a\\u0007b"\nrandom = {shape = [2, 4]}\nshape = [4]\n')
    result = invoke("run", str(suite))
    assert result.exit_code == 2 and "printable" in result.stderr


def test_huge_random_std_in_float32_warns_nothing() -> None:
    with np.errstate(all="raise"):
        x = RandomInput(shape=(2, 2), std=1e300).generate("float32")
    assert np.isinf(x).any()


def test_random_inputs_depend_on_the_seed_only() -> None:
    a = RandomInput(shape=(3, 4), seed=5).generate("float32")
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, RandomInput(shape=(3, 4), seed=5).generate(None))
    assert RandomInput(shape=(3, 4), seed=5).generate("float64").dtype == np.float64
    assert not np.array_equal(a, RandomInput(shape=(3, 4), seed=6).generate("float32"))


def test_a_case_overrides_a_default_under_another_of_its_names(tmp_path: Path) -> None:
    text = (
        '[defaults]\nshape = [3]\n[[case]]\nname = "a"\ninput = "x.npy"\nnormalized_shape = [8]\n'
    )
    suite = load_suite(write_suite(tmp_path, text))
    assert suite.cases[0].settings["normalized_shape"] == (8,)


def test_a_default_that_works_only_with_another_key_stays_out_of_cases_without_it(
    tmp_path: Path,
) -> None:
    text = (
        '[defaults]\nseed = 3\n[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\n'
        '[[case]]\nname = "b"\ninput = "x.npy"\nshape = [8]\ngrad = true\n'
    )
    a, b = load_suite(write_suite(tmp_path, text)).cases
    assert not a.settings.given("seed") and b.settings["seed"] == 3
    # ...and out of one that gives what it would make (the upstream gradient)
    np.save(tmp_path / "dy.npy", np.ones((4, 8), np.float32))
    text += '[[case]]\nname = "c"\ninput = "x.npy"\nshape = [8]\ngrad_output = "dy.npy"\n'
    c = load_suite(write_suite(tmp_path, text)).cases[2]
    assert not c.settings.given("seed") and c.settings["grad_output"].endswith("dy.npy")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_suite_file_that_never_ends_is_refused(tmp_path: Path, device: str) -> None:
    suite = tmp_path / "s.toml"
    suite.symlink_to(device)
    with pytest.raises(InputError, match=r"s\.toml: is more than 16 MiB; a suite is TOML text"):
        load_suite(suite)
