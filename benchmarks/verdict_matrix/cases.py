"""The random inputs of the matrix: one ``Case`` per index, drawn from ``(seed, index)`` alone.

Every op is reduced to one layout, *rows*: an ``(R, n)`` array whose row ``r`` is the ``n``
values one group of statistics is taken over (a sample for layer_norm and rms_norm, a (sample,
group) for group_norm, a (sample, channel) for instance_norm, a channel for batch_norm). The
implementations work on rows, so one vectorized algorithm serves every op; ``Geometry`` maps an
array of the input's shape to rows and back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from lncheck.dtypes import round_to

OPS = (
    "layer_norm",
    "group_norm",
    "instance_norm",
    "batch_norm_train",
    "batch_norm_eval",
    "rms_norm",
)
DTYPES = ("float32", "float16", "bfloat16", "float64")
DTYPE_WEIGHTS = (0.34, 0.28, 0.28, 0.10)  # float64 for a few
KAPPAS = (0.0, 1.0, 30.0, 300.0, 1e3, 1e4, 1e5)  # |mean| / std of a row
STDS = (1e-3, 1.0, 100.0)
W_ABS = (1.0, 30.0, 1000.0)
B_ABS = (0.0, 1.0, 100.0, 1e4)
EPS = 1e-5
FLOAT16_SAFE = 3.0e4  # keep inputs and outputs well inside float16's range (65504)


@dataclass(frozen=True)
class Config:
    """What the draw depends on: the same config and index give the same case."""

    seed: int = 0
    count: int = 360
    max_log2: float = 20.0  # largest group size 2^max_log2
    max_elements: int = 2**21  # largest input
    max_rows: int = 64


@dataclass(frozen=True)
class Geometry:
    """How an input of ``shape`` maps to rows.

    ``kind`` is "trailing" (the last ``nd`` dims form a row), "groups" (``(N, C, L)`` with
    ``groups`` groups of channels) or "channels" (``(N, C, L)``, one row per channel).
    """

    kind: str
    shape: tuple[int, ...]
    groups: int = 0
    nd: int = 0

    def to_rows(self, a: np.ndarray) -> np.ndarray:
        if self.kind == "channels":
            c = self.shape[1]
            return np.ascontiguousarray(np.moveaxis(a, 1, 0).reshape(c, -1))
        lead = math.prod(self.shape[: len(self.shape) - self.nd]) if self.kind == "trailing" else 0
        rows = lead if self.kind == "trailing" else self.shape[0] * self.groups
        return np.ascontiguousarray(a.reshape(rows, -1))

    def from_rows(self, r: np.ndarray) -> np.ndarray:
        if self.kind == "channels":
            n, c, length = self.shape
            return np.ascontiguousarray(np.moveaxis(r.reshape(c, n, length), 0, 1))
        return r.reshape(self.shape)

    def broadcast(self, param: np.ndarray, param_axes: str) -> np.ndarray:
        """Rows of a parameter: ``param_axes`` "trailing" (the normalized dims) or "channel"."""
        if param_axes == "channel":
            view = (1, param.shape[0]) + (1,) * (len(self.shape) - 2)
        else:
            view = (1,) * (len(self.shape) - param.ndim) + param.shape
        return self.to_rows(np.broadcast_to(param.reshape(view), self.shape))

    @property
    def rows(self) -> int:
        if self.kind == "channels":
            return self.shape[1]
        if self.kind == "groups":
            return self.shape[0] * self.groups
        return math.prod(self.shape[: len(self.shape) - self.nd])

    @property
    def n(self) -> int:
        return math.prod(self.shape) // self.rows


@dataclass(frozen=True)
class Case:
    """One random input: op, dtype, geometry and the distribution it is drawn from."""

    index: int
    seed: int
    op: str
    dtype: str
    shape: tuple[int, ...]
    groups: int  # group_norm's groups; 0 elsewhere
    normalized_shape: tuple[int, ...]  # layer_norm and rms_norm; () elsewhere
    kappa: float
    std: float
    outlier: bool
    tiny: bool
    w_abs: float
    b_abs: float
    eps: float = EPS

    @property
    def id(self) -> str:
        return f"c{self.index:04d}"

    @property
    def geometry(self) -> Geometry:
        if self.op in ("layer_norm", "rms_norm"):
            return Geometry("trailing", self.shape, nd=len(self.normalized_shape))
        if self.op == "group_norm":
            return Geometry("groups", self.shape, groups=self.groups)
        if self.op == "instance_norm":
            return Geometry("groups", self.shape, groups=self.shape[1])
        return Geometry("channels", self.shape)

    @property
    def n(self) -> int:
        return self.geometry.n

    @property
    def rows(self) -> int:
        return self.geometry.rows

    @property
    def has_bias(self) -> bool:
        return self.op != "rms_norm"

    @property
    def param_axes(self) -> str:
        return "trailing" if self.op in ("layer_norm", "rms_norm") else "channel"

    def describe(self) -> str:
        """One line that says what the input is."""
        extra = f" groups={self.groups}" if self.groups else ""
        if self.normalized_shape:
            extra = f" normalized_shape={list(self.normalized_shape)}"
        bias = f" |b|~{self.b_abs:g}" if self.has_bias else ""
        return (
            f"{self.op} {self.dtype} shape={list(self.shape)}{extra} n={self.n} "
            f"rows={self.rows} mean/std={self.kappa:g} std={self.std:g} "
            f"outlier={self.outlier} tiny-var={self.tiny} |w|~{self.w_abs:g}{bias} "
            f"eps={self.eps:g}"
        )


def _group_size(rng: np.random.Generator, max_log2: float) -> int:
    log2n = rng.uniform(1.0, max_log2)
    if rng.random() < 0.3:
        return 2 ** round(log2n)
    return max(2, round(2.0**log2n))


def _shape(rng: np.random.Generator, op: str, n: int, rows: int) -> tuple[tuple[int, ...], int]:
    """An input shape whose groups hold about ``n`` values, about ``rows`` of them."""
    pick = lambda options: int(rng.choice([o for o in options if o <= n] or [1]))  # noqa: E731
    if op in ("layer_norm", "rms_norm"):
        d1 = pick((2, 3, 4, 8))
        return (rows, d1, max(1, round(n / d1))), 0
    if op == "group_norm":
        g = int(rng.choice([g for g in (2, 4, 8) if g <= rows] or [2]))
        cpg = pick((1, 2, 4))
        return (max(1, rows // g), g * cpg, max(1, round(n / cpg))), g
    if op == "instance_norm":
        c = int(rng.choice([c for c in (2, 3, 4, 8) if c <= rows] or [2]))
        return (max(1, rows // c), c, n), 0
    batch = pick((2, 3, 4, 8))
    return (batch, max(2, rows), max(1, round(n / batch))), 0


def draw(config: Config, index: int) -> Case:
    """The case at ``index``: ops in turn, everything else random but reproducible."""
    rng = np.random.default_rng([config.seed, index])
    op = OPS[index % len(OPS)]
    dtype = str(rng.choice(DTYPES, p=DTYPE_WEIGHTS))
    n = _group_size(rng, config.max_log2)
    most_rows = min(config.max_rows, max(2, config.max_elements // n))
    rows = max(2, round(math.exp(rng.uniform(math.log(2), math.log(most_rows)))))
    shape, groups = _shape(rng, op, n, rows)
    normalized = shape[1:] if op in ("layer_norm", "rms_norm") else ()
    outlier = bool(rng.random() < 0.25)
    tiny = bool(rng.random() < 0.2)
    kappa, std = float(rng.choice(KAPPAS)), float(rng.choice(STDS))
    w_abs, b_abs = float(rng.choice(W_ABS)), float(rng.choice(B_ABS))
    if op == "rms_norm":
        b_abs = 0.0
    if dtype == "float16":
        # redraw until the input fits float16 (an outlier is up to 1000 std, std up to 2x)
        while (1.25 * kappa + 8 + (1000 if outlier else 0)) * 2 * std > FLOAT16_SAFE:
            kappa, std = float(rng.choice(KAPPAS)), float(rng.choice(STDS))
        case = Case(index, config.seed, op, dtype, shape, groups, normalized, kappa, std,
                    outlier, tiny, w_abs, b_abs)  # fmt: skip
        z = 2000.0 if outlier and op == "batch_norm_eval" else 12.0
        z = max(z, math.sqrt(case.n) if outlier else 0.0)
        while w_abs > 1 and 1.5 * w_abs * z + 1.5 * b_abs > FLOAT16_SAFE:
            w_abs = W_ABS[W_ABS.index(w_abs) - 1]
    return Case(index, config.seed, op, dtype, shape, groups, normalized, kappa, std, outlier,
                tiny, w_abs, b_abs)  # fmt: skip


@dataclass
class Inputs:
    """A case's arrays: as handed to lncheck (the dtype's storage), and as rows in the
    accumulation dtype (float64 for float64 inputs, float32 otherwise)."""

    case: Case
    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None
    running_mean: np.ndarray | None
    running_var: np.ndarray | None
    row_signs: np.ndarray  # +-1 per row, for bugs that err in a random direction
    copied_row: int  # the row a "row copied from a neighbour" bug overwrites
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def acc(self) -> type[np.floating]:
        return np.float64 if self.case.dtype == "float64" else np.float32

    @property
    def geometry(self) -> Geometry:
        return self.case.geometry

    def rows(self, geometry: Geometry | None = None, weight: np.ndarray | None = None) -> tuple:
        """``(x, w, b, running_mean, running_var)`` as rows in the accumulation dtype (the
        running statistics ``(R, 1)``, ``None`` where the op has none); read-only, cached for
        the given weight."""
        g = geometry or self.geometry
        if weight is not None:
            return self._rows(g, weight)
        if repr(g) not in self.cache:
            self.cache[repr(g)] = self._rows(g, self.weight)
        return self.cache[repr(g)]

    def _rows(self, g: Geometry, weight: np.ndarray) -> tuple:
        acc, axes = self.acc, self.case.param_axes
        stats = [None if s is None else g.broadcast(s.astype(acc), axes)[:, :1].copy()
                 for s in (self.running_mean, self.running_var)]  # fmt: skip
        found = (
            g.to_rows(self.x.astype(acc)),
            g.broadcast(weight.astype(acc), axes),
            None if self.bias is None else g.broadcast(self.bias.astype(acc), axes),
            *stats,
        )
        for a in found:
            if a is not None:
                a.flags.writeable = False
        return found

    @cached_property
    def exact(self) -> np.ndarray:
        from .exact import exact

        return exact(self)

    def round(self, y: np.ndarray) -> np.ndarray:
        """``y`` rounded once to the case's dtype (in the dtype's storage)."""
        with np.errstate(over="ignore", invalid="ignore"):
            return round_to(np.asarray(y), self.case.dtype)  # type: ignore[arg-type]


def make(case: Case) -> Inputs:
    """Draw the arrays of ``case`` (deterministic: seeded by the case's seed and index)."""
    rng = np.random.default_rng([case.seed, case.index, 1])
    g = case.geometry
    rows, n = g.rows, g.n
    std = case.std * 2.0 ** rng.uniform(-1, 1, size=(rows, 1))
    if case.tiny:  # some rows with a variance near eps
        tiny = rng.random((rows, 1)) < 0.5
        tiny[rng.integers(rows)] = True
        std = np.where(tiny, np.sqrt(case.eps * rng.choice([0.1, 1.0, 10.0], (rows, 1))), std)
    sign = rng.choice([-1.0, 1.0], size=(rows, 1))
    mean = sign * case.kappa * std * rng.uniform(0.8, 1.25, size=(rows, 1))
    x = mean + std * rng.standard_normal((rows, n))
    if case.outlier:  # one large value early in half of the rows
        hit = np.flatnonzero(rng.random(rows) < 0.5)
        hit = hit if hit.size else np.array([0])
        where = rng.integers(0, max(1, n // 4), size=hit.size)
        size = 10.0 ** rng.uniform(1.5, 3.0, size=hit.size) * rng.choice([-1.0, 1.0], hit.size)
        x[hit, where] = mean[hit, 0] + size * std[hit, 0]
    xs = round_to(g.from_rows(x), case.dtype)  # type: ignore[arg-type]
    pshape = case.normalized_shape if case.param_axes == "trailing" else (case.shape[1],)
    signs = lambda shape: rng.choice([-1.0, 1.0], size=shape)  # noqa: E731
    w = case.w_abs * rng.uniform(0.5, 1.5, pshape) * signs(pshape)
    b = case.b_abs * rng.uniform(0.5, 1.5, pshape) * signs(pshape) if case.has_bias else None
    rm = rv = None
    if case.op.startswith("batch_norm"):
        # running statistics near the batch's, so eval has O(1) outputs but is not train
        c = case.shape[1]
        xr = g.to_rows(xs.astype(np.float64))
        bm, bs = xr.mean(axis=1), xr.std(axis=1)
        rm = bm + 0.5 * bs * rng.standard_normal(c)
        rv = bs**2 * np.exp(rng.uniform(-0.6, 0.6, c))

    def rnd(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else round_to(np.asarray(a), case.dtype)  # type: ignore[arg-type]

    return Inputs(
        case,
        xs,
        rnd(w),
        rnd(b),
        rnd(rm),
        rnd(rv),
        rng.choice([-1.0, 1.0], size=(rows, 1)),
        int(rng.integers(0, rows - 1)),
    )
