"""Correct implementations: legitimate kernels that differ only in how they round.

Each takes the rounded input (``Inputs``), accumulates in float32 (float64 for float64 inputs),
and rounds once to the dtype at the end. ``normalize`` is the one core they share (and the bugs
in ``bugs.py`` are this core with one thing changed); torch's CPU kernels and the exact output
rounded to the dtype complete the set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import algorithms as alg
from .cases import OPS, Geometry, Inputs

STATISTICS = {  # centred ops: (mean, biased variance) per row
    "numpy": alg.two_pass,
    "pairwise": lambda a: alg.two_pass(a, alg.pairwise_sum),
    "kahan": lambda a: alg.two_pass(a, alg.kahan_sum),
    "tree_welford": alg.tree_welford,
    "sequential_welford": alg.sequential_welford,
    "strided_welford": alg.strided_welford,
    "one_pass": alg.one_pass,
}
SUMS = {  # rms_norm: the same orders of addition for the sum of squares
    "numpy": alg.numpy_sum,
    "pairwise": alg.pairwise_sum,
    "kahan": alg.kahan_sum,
    "tree_welford": alg.pairwise_sum,
    "sequential_welford": alg.sequential_sum,
    "strided_welford": alg.strided_sum,
    "one_pass": alg.numpy_sum,
}


@dataclass(frozen=True)
class Impl:
    """One implementation (correct) or one bug: what it is, where it applies, how to run it.

    ``label`` is what a right verdict expects: "accurate" or "sequential" for correct ones
    (they must pass), "semantic" or "precision" for bugs (they must fail; a "precision" bug may
    be classed ``low_precision``, a "semantic" one must be a ``mismatch``).
    """

    name: str
    kind: str  # "correct", "exact" (the exact output rounded to the dtype) or "bug"
    label: str
    run: Callable[[Inputs], np.ndarray]
    description: str
    ops: tuple[str, ...] = OPS
    dtypes: tuple[str, ...] = ("float32", "float16", "bfloat16", "float64")
    needs: Callable[[Inputs], bool] = lambda inp: True
    relabel: Callable[[Inputs], str] | None = None  # a label that depends on the input

    def applies(self, inp: Inputs) -> bool:
        return inp.case.op in self.ops and inp.case.dtype in self.dtypes and self.needs(inp)

    def label_of(self, inp: Inputs) -> str:
        return self.label if self.relabel is None else self.relabel(inp)

    @property
    def semantic(self) -> bool:
        return self.label == "semantic"


def normalize(
    inp: Inputs,
    *,
    stats: str = "numpy",
    output: str = "direct",
    geometry: Geometry | None = None,
    weight: np.ndarray | None = None,
    eps: float | None = None,
    eps_on_std: bool = False,
    ddof: int = 0,
    center: bool | None = None,
    weight_offset: bool = False,
    bias_first: bool = False,
    bias: bool = True,
    batch_stats: bool = False,
    rsqrt_error: float = 0.0,
) -> np.ndarray:
    """The op of ``inp`` in its accumulation dtype, rounded once to its dtype.

    ``stats`` picks the reduction (``STATISTICS``/``SUMS``); ``output`` is "direct"
    (``(x - mean) * rstd * w + b``) or "fused" (``x * scale + shift`` with ``scale = rstd * w``,
    ``shift = b - mean * scale``, as torch's CPU kernels and fused BatchNorm-eval kernels do).
    The other keywords are the bugs' knobs; all off is a correct kernel.
    """
    case = inp.case
    g = geometry or inp.geometry
    x, w, b, rm, rv = inp.rows(g, weight)
    dt = inp.acc
    n = x.shape[1]
    eps = case.eps if eps is None else eps
    center = case.op != "rms_norm" if center is None else center
    if case.op == "batch_norm_eval" and not batch_stats:
        mean, var = rm, rv
    elif center:
        mean, var = STATISTICS[stats](x)
    else:
        mean, var = np.zeros((x.shape[0], 1), dt), SUMS[stats](x * x) / dt(n)
    if ddof:
        var = var * dt(n) / dt(max(n - ddof, 1))
    r = dt(1) / (np.sqrt(var) + dt(eps)) if eps_on_std else alg.rstd(var, eps)
    if rsqrt_error:
        r = r * (dt(1) + dt(rsqrt_error) * inp.row_signs.astype(dt))
    if weight_offset:
        w = w + dt(1)
    if not bias:
        b = None
    if output == "fused":
        scale = r * w
        shift = -mean * scale if b is None else b - mean * scale
        y = x * scale + shift
    elif bias_first:
        y = ((x - mean) * r + (0 if b is None else b)) * w
    else:
        y = (x - mean) * r * w
        if b is not None:
            y = y + b
    return g.from_rows(inp.round(y))


def torch_cpu(inp: Inputs) -> np.ndarray:
    """torch's own CPU kernel (torch.nn.functional) in the dtype, one thread."""
    import torch

    F = torch.nn.functional
    case = inp.case
    tdt = getattr(torch, case.dtype)

    def t(a: np.ndarray | None) -> torch.Tensor | None:
        return None if a is None else torch.from_numpy(np.ascontiguousarray(a)).to(tdt)

    x, w, b = t(inp.x), t(inp.weight), t(inp.bias)
    with torch.no_grad():
        if case.op == "layer_norm":
            y = F.layer_norm(x, case.normalized_shape, w, b, case.eps)
        elif case.op == "rms_norm":
            y = F.rms_norm(x, case.normalized_shape, w, case.eps)
        elif case.op == "group_norm":
            y = F.group_norm(x, case.groups, w, b, case.eps)
        elif case.op == "instance_norm":
            y = F.instance_norm(x, None, None, w, b, use_input_stats=True, eps=case.eps)
        else:
            rm, rv = t(inp.running_mean), t(inp.running_var)
            y = F.batch_norm(x, rm, rv, w, b, case.op == "batch_norm_train", 0.1, case.eps)
    return y.float().numpy() if case.dtype == "bfloat16" else y.numpy()


def torch_label(inp: Inputs) -> str:
    """torch's CPU BatchNorm (and InstanceNorm, which runs through it) rounds its float16 and
    bfloat16 batch mean and rstd to the input dtype before normalizing (bit for bit, see
    tests/backends/test_torch.py): the right function, low precision."""
    kept = inp.case.op in ("batch_norm_train", "instance_norm")
    return "low_precision" if kept and inp.case.dtype in ("float16", "bfloat16") else "accurate"


def exact_rounded(inp: Inputs) -> np.ndarray:
    """The exact output rounded to the dtype: the best any kernel can do."""
    return inp.round(inp.exact)


STATS_OPS = ("layer_norm", "group_norm", "instance_norm", "batch_norm_train", "rms_norm")
CENTRED_STATS = STATS_OPS[:-1]  # the ops that take a mean and a variance

CORRECT: tuple[Impl, ...] = (
    Impl("torch", "correct", "accurate", torch_cpu,
         "torch's CPU kernel (torch.nn.functional); sequential: float16/bfloat16 BatchNorm "
         "train and InstanceNorm", relabel=torch_label),
    Impl("two_pass", "correct", "accurate", lambda i: normalize(i, stats="numpy"),
         "two-pass, NumPy's blocked pairwise sums", STATS_OPS),
    Impl("pairwise", "correct", "accurate", lambda i: normalize(i, stats="pairwise"),
         "two-pass, binary-tree sums", STATS_OPS),
    Impl("kahan", "correct", "accurate", lambda i: normalize(i, stats="kahan"),
         "two-pass, 64-lane Kahan sums", STATS_OPS),
    Impl("tree_welford", "correct", "accurate",
         lambda i: normalize(i, stats="tree_welford", output="fused"),
         "Welford merged as a tree (Chan), fused scale/shift output", CENTRED_STATS),
    Impl("sequential_welford", "correct", "sequential",
         lambda i: normalize(i, stats="sequential_welford"),
         "sequential Welford, one element at a time per row (rms_norm: sequential sum)",
         STATS_OPS),
    Impl("apex_welford", "correct", "sequential",
         lambda i: normalize(i, stats="strided_welford"),
         "Apex-style: 32 strided lanes of sequential Welford, Chan tree merge, rsqrt in f32",
         STATS_OPS),
    Impl("direct_eval", "correct", "accurate", lambda i: normalize(i),
         "eval: (x - running_mean) * rstd * w + b", ("batch_norm_eval",)),
    Impl("fused_eval", "correct", "accurate", lambda i: normalize(i, output="fused"),
         "eval: scale = w*rstd, shift = b - running_mean*scale, y = x*scale + shift",
         ("batch_norm_eval",)),
    Impl("exact_rounded", "exact", "accurate", exact_rounded,
         "the exact output rounded to the dtype"),
)  # fmt: skip
