"""The search: structures pruned on a sample of groups, survivors fitted on every group, the
best hypotheses replayed on every element.

1. For each structure and affine map (``hypotheses``), fit the sampled groups (``fit.sample_fit``):
   a structure or affine map that does not fit leaves a residual far above the rounding, a
   wrong centring shows in the fitted centres, and no eps at all fits a wrong grouping.
2. A per-feature weight and bias are fitted by least squares only when nothing else fits.
3. Survivors are fitted on every group (``fit.full_fit``): each variance estimator, algorithm
   and eps placement gets the interval of eps values every group allows, and an eps from it.
4. The simplest hypotheses of each survivor are replayed on every element (``confirm``).

When nothing explains the output, the structures that came closest are replayed with the
common defaults, so that the report shows how far off they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from lncheck.dtypes import round_to
from lncheck.explain import eps as epsilon
from lncheck.explain import fit as fits
from lncheck.explain.attempts import (
    Attempt,
    Problem,
    closest_structures,
    residual_level,
    shown_affine,
    structure_key,
)
from lncheck.explain.confirm import Residual, confirm
from lncheck.explain.eps import EpsChoice
from lncheck.explain.fit import Deadline, GroupFit, OutOfTime
from lncheck.explain.fitted_affine import channels, fit_affine
from lncheck.explain.hypotheses import (
    AFFINE_PENALTY,
    EPS_PRIOR,
    Affine,
    CastOrder,
    Denominator,
    Structure,
    affine_options,
    denominators,
    none_label,
)
from lncheck.explain.report import (
    EXPLAINING,
    Candidate,
    Config,
    alternatives_note,
    describe,
    fitted_notes,
)
from lncheck.explain.torch_code import torch_code

F64 = npt.NDArray[np.float64]
Array = npt.NDArray[Any]

HYPOTHESES_PER_SURVIVOR = 3  # denominators replayed on every element before giving up
NEAREST_MISSES = 3
EPS_TRIES = 3  # usual eps values replayed per denominator
# A candidate within rounding that already matches this share of the values exactly may be off
# only by an eps too small to see in the scales: the next usual eps is replayed too.
NEAR_EXACT = 0.9
MAX_CANDIDATES = 10


@dataclass(frozen=True)
class _Hypothesis:
    """A denominator with its eps, on the per-group fit it was judged on (rescaled by
    ``factor`` where the weight is fitted)."""

    denominator: Denominator
    choice: EpsChoice
    fit: GroupFit
    factor: float


@dataclass
class Outcome:
    candidates: list[Candidate]
    hypotheses: int
    complete: bool


def run(problem: Problem, deadline: Deadline, cast_first: Problem | None = None) -> Outcome:
    """Search, stopping cleanly when ``deadline`` passes (``complete`` is then False).

    ``cast_first``: the same search on the input (and parameters) rounded to the output's
    dtype, a layer run in it; each stage is tried on it where the same stage on ``problem``
    explains nothing, before the next stage: a given weight (or none) on the rounded input
    is a simpler explanation than a weight fitted to the values as given."""
    states = [_State(problem, deadline)]
    if cast_first is not None:
        states.append(_State(cast_first, deadline))
    try:
        for stage in (_State.given_stage, _State.fitted_stage):
            for state in states:
                if not any(s.explained() for s in states):
                    stage(state)
        if not any(s.explained() for s in states):
            states[0].nearest_misses()
        complete = True
    except OutOfTime:
        complete = False
    found = sorted((c for s in states for c in s.candidates), key=Candidate.rank_key)
    if any(c.explains for c in found):  # the misses are only worth showing when all miss
        found = [c for c in found if c.explains]
    return Outcome(found[:MAX_CANDIDATES], sum(s.hypotheses for s in states), complete)


class _State:
    def __init__(self, problem: Problem, deadline: Deadline) -> None:
        self.p = problem
        self.deadline = deadline
        self.candidates: list[Candidate] = []
        self.attempts: list[Attempt] = []
        self.hypotheses = 0

    def given_stage(self) -> None:
        """No affine map, or the given weight and bias: sampled, then on every group."""
        survivors = self._sample_stage()
        survivors.sort(key=lambda a: AFFINE_PENALTY[a.affine])
        for attempt in survivors:
            self._full_stage(attempt)

    def fitted_stage(self) -> None:
        """A weight and bias fitted by least squares, where the affine map is not pinned off."""
        if self.p.pins.affine is not False:
            for attempt in self._fitted_stage():
                self._full_stage(attempt)

    def explained(self) -> bool:
        return any(c.explains for c in self.candidates)

    # --- stage 1: the sample --------------------------------------------------------------

    def _sample_stage(self) -> list[Attempt]:
        p = self.p
        survivors: list[Attempt] = []
        scored: set[tuple[Any, ...]] = set()
        for s in p.structures:
            sample: fits.Sample | None = None
            for affine in affine_options(s, p.weight, p.bias, p.pins):
                key = (s.partition,) if affine == "none" else (s.partition, s.param_axes, affine)
                if key in scored:
                    continue  # the same grouping and parameters: the same predictions
                scored.add(key)
                self.deadline.check()
                if sample is None:
                    sample = fits.take_sample(s.layout, p.x, p.y)
                weight, bias = self._parameters(s, affine)
                fit = fits.sample_fit(s.layout, sample, weight, bias, p.precision)
                for centered in s.centers:
                    attempt = Attempt(s, affine, centered, fit.rho, sample.repeats, weight, bias)
                    self.attempts.append(attempt)
                    if self._plausible(fit, centered):
                        survivors.append(attempt)
        return survivors

    def _plausible(self, fit: GroupFit, centered: bool, fitted: bool = False) -> bool:
        """Whether some eps fits every sampled group; with a ``fitted`` weight, after the
        common factor the weight leaves in the scales is fitted with it (``rescaled``): the
        factor assumed where eps is negligible left eps = 1e-3 fitting no group."""
        p = self.p
        found = denominators(centered)
        self.hypotheses += len(found) * (len(EPS_PRIOR["centered"]) + 1)
        if fit.rho > fits.shape_tolerance(p.precision):
            return False
        if not fits.centering_ok(fit, centered, p.precision):
            return False
        for d in found:
            if fitted and d.variance == "unbiased":
                continue  # a common factor the weight absorbs (``_hypotheses``)
            judged = epsilon.rescaled(fit, d, centered, p.precision)[0] if fitted else fit
            if epsilon.eps_interval(judged, d, centered, p.precision).feasible:
                return True
        return False

    def _parameters(self, s: Structure, affine: Affine) -> tuple[Array | None, Array | None]:
        """The weight and bias of ``affine``, shaped to broadcast against the structure's view."""
        w, b = self.p.weight, self.p.bias
        if affine == "none":
            return None, None
        if affine == "swapped":
            w, b = b, w
        elif affine == "weight_only":
            b = None
        elif affine == "given_offset" and w is not None:
            w = w + 1.0
        view = s.param_view
        return (
            None if w is None else np.asarray(w, dtype=np.float64).reshape(view),
            None if b is None else np.asarray(b, dtype=np.float64).reshape(view),
        )

    # --- stage 2: a fitted affine map -----------------------------------------------------

    def _fitted_stage(self) -> list[Attempt]:
        p = self.p
        survivors: list[Attempt] = []
        for s in p.structures:
            sample = fits.take_sample(s.layout, p.x, p.y)
            features = channels(s, sample) if s.features == "channel" else None
            for centered in s.centers:
                self.deadline.check()
                fitted = fit_affine(sample, centered, p.precision, features)
                if fitted is None or fitted.rho > fits.shape_tolerance(p.precision):
                    continue
                if fitted.replays(p.weight, p.bias, none_tried=not p.pins.affine):
                    continue
                weight = fitted.weight.reshape(s.param_view)
                bias = fitted.bias.reshape(s.param_view)
                fit = fits.sample_fit(s.layout, sample, weight, bias, p.precision)
                attempt = Attempt(
                    s, "fitted", centered, fit.rho, sample.repeats, weight, bias, fitted
                )
                self.attempts.append(attempt)
                if self._plausible(fit, centered, fitted=True):
                    survivors.append(attempt)
        return survivors

    # --- stage 3: every group; stage 4: every element -------------------------------------

    def _full_stage(self, a: Attempt) -> None:
        p = self.p
        s = a.structure
        full = fits.full_fit(s.layout, p.x, p.y, a.weight, a.bias, a.rho, self.deadline, a.repeats)
        a.full = full
        if not fits.centering_ok(full, a.centered, p.precision):
            return
        found, twins = self._hypotheses(full, a)
        best: Candidate | None = None
        order = [(h, False) for h in found[:HYPOTHESES_PER_SURVIVOR]] + [(h, True) for h in twins]
        for h, twin in order:
            if twin and best is not None and best.explains:
                continue
            others = [o.denominator for o in found if o.denominator != h.denominator]
            # the usual eps values the per-group scales allow, most likely first
            for value in (h.choice.eps, *h.choice.alternatives[: EPS_TRIES - 1]):
                tried = replace(h, choice=replace(h.choice, eps=value))
                for cast in self._cast_orders(a):
                    candidate = self._replay(a, tried, cast, others)
                    self.candidates.append(candidate)
                    if best is None or candidate.rank_key() < best.rank_key():
                        best = candidate
                if best is not None and (
                    best.verdict == "exact" or (best.explains and best.exact_share < NEAR_EXACT)
                ):
                    break  # a broad mismatch is the computation's rounding, not eps
            # "rounding" may hide a better hypothesis that is "exact": a scale off by less
            # than the rounding (n/(n-1) in bfloat16) only shows in how many values match
            if best is not None and best.verdict == "exact":
                return

    def _hypotheses(
        self, full: GroupFit, a: Attempt
    ) -> tuple[list[_Hypothesis], list[_Hypothesis]]:
        """The denominators that some eps fits on every group, simplest first, and their twins
        (below). A one-pass variance is only tried when no two-pass one fits; with a fitted
        weight the variance estimator is a common factor the weight absorbs, so only the
        biased one is tried."""
        p = self.p
        found: list[_Hypothesis] = []
        for d in denominators(a.centered):
            if d.algorithm == "one_pass" and any(
                h.denominator.algorithm == "two_pass" for h in found
            ):
                continue
            fit, factor = full, 1.0
            if a.affine == "fitted":
                if d.variance == "unbiased":
                    continue
                fit, factor = epsilon.rescaled(full, d, a.centered, p.precision)
            kind = "centered" if a.centered else "uncentered"
            prior = EPS_PRIOR["one_pass" if d.algorithm == "one_pass" else kind]
            loose = epsilon.eps_interval(fit, d, a.centered, p.precision)
            tight = epsilon.eps_interval(fit, d, a.centered, p.precision, systematic=False)
            choice = epsilon.choose_eps(loose, tight, prior, p.pins.eps, a.centered)
            if choice is not None:
                found.append(_Hypothesis(d, choice, fit, factor))
        found.sort(key=lambda h: h.denominator.penalty + h.choice.fitted)
        # Where the scales cannot tell eps (eps ~ 0 fits), eps inside the sqrt and on the std
        # predict nearly the same output: the simpler one is tried, its twin on the std only
        # where no usual eps inside the sqrt replays within rounding (eps 1e-5 on a std of 1
        # is eps 2e-5 inside the sqrt, 1.1x the rounding from the usual 1e-5 over 256 values)
        kept: list[_Hypothesis] = []
        twins: list[_Hypothesis] = []
        for h in found:
            d = h.denominator
            same = [
                k
                for k in kept
                if (k.denominator.variance, k.denominator.algorithm) == (d.variance, d.algorithm)
                and not k.choice.identifiable
            ]
            (twins if same and not h.choice.identifiable else kept).append(h)
        return kept, twins

    def _cast_orders(self, a: Attempt) -> tuple[CastOrder | None, ...]:
        """RMSNorm with a weight, rounded to float16 or bfloat16: the weight may multiply
        before the cast (Gemma) or after it (Llama, T5)."""
        low = self.p.precision in ("float16", "bfloat16")
        weighted = (
            a.affine in ("given", "weight_only", "given_offset") and self.p.weight is not None
        )
        if low and weighted and not a.centered:
            return ("weight_before_cast", "weight_after_cast")
        return (None,)

    def _replay(
        self, a: Attempt, h: _Hypothesis, cast: CastOrder | None, others: list[Denominator]
    ) -> Candidate:
        p = self.p
        s = a.structure
        full, d = h.fit, h.denominator
        scale = epsilon.scale(full, d, a.centered, h.choice.eps, p.precision)
        center = full.mean if a.centered else np.zeros_like(full.mean)
        kappa = full.kappa() if a.centered else np.zeros_like(full.mean)
        weight, bias = a.weight, a.bias
        if weight is not None and h.factor != 1.0:
            weight = weight / h.factor
        if cast == "weight_after_cast" and weight is not None:
            # Llama multiplies by the weight as the module holds it: in the output's dtype
            weight = np.asarray(round_to(np.asarray(weight), p.precision), dtype=np.float64)
        fitted = None if a.fitted is None else a.fitted.pinned(h.factor, s.param_view)
        residual = confirm(
            s.layout, p.x, p.y, center, scale, weight, bias, p.precision, kappa, self.deadline,
            cast, fitted,
        )  # fmt: skip
        notes = alternatives_note(d, others)
        if a.affine == "weight_only":
            notes += ("the given bias is not added",)
        if a.fitted is not None:
            fitted_weight = a.fitted.weight / h.factor
            notes += fitted_notes(fitted_weight, a.fitted.bias, p.weight, p.bias)
        return self._candidate(a, d, h.choice, cast, residual, notes)

    def _candidate(
        self,
        a: Attempt,
        d: Denominator,
        choice: EpsChoice,
        cast: CastOrder | None,
        residual: Residual,
        notes: tuple[str, ...],
    ) -> Candidate:
        p = self.p
        s = a.structure
        op, channel_axis = s.op, s.channel_axis
        if not a.centered:
            op = "rms_norm"
        elif a.affine == "none" and p.pins.op is None and s.partition[0] == "axes":
            # without parameters, the grouping alone names the op
            op = none_label(s.spec.input_shape, s.axes)
            channel_axis = 1 if op in ("instance_norm", "batch_norm") else None
        config = Config(
            op=op,
            input_shape=s.spec.input_shape,
            axes=s.axes,
            groups=s.groups,
            grouping=s.grouping,
            channel_axis=channel_axis,
            view_shape=s.spec.view_shape,
            reduce_axes=s.spec.reduce_axes,
            param_shape=s.param_shape,
            centered=a.centered,
            variance=d.variance,
            variance_algorithm=d.algorithm,
            eps_placement=d.placement,
            eps=choice.eps,
            affine=shown_affine(a.affine),
            weight=a.affine != "none" and (a.affine == "fitted" or p.weight is not None),
            bias=self._adds_bias(a),
            cast_order=cast,
            precision=p.precision,
            input_cast=p.input_cast,
        )
        penalty = d.penalty + AFFINE_PENALTY[a.affine] + int(choice.fitted)
        penalty += int(s.grouping == "interleaved")
        return Candidate(
            **vars(config),
            eps_low=choice.low,
            eps_high=choice.high,
            eps_fitted=choice.fitted,
            max_abs_residual=residual.max_abs,
            rms_residual=residual.rms,
            rounding_ratio=residual.ratio,
            exact_share=residual.exact_share,
            verdict=residual.verdict,
            penalty=penalty,
            torch_code=torch_code(config),
            description=describe(
                config,
                choice.low,
                choice.high,
                choice.fitted,
                eps_pinned=p.pins.eps is not None,
                explains=residual.verdict in EXPLAINING,
            ),
            notes=notes,
        )

    # --- when nothing explains the output -------------------------------------------------

    def nearest_misses(self) -> None:
        """Replay the structures that fitted best with the common defaults (biased variance,
        eps inside the sqrt, the usual eps), so the report says how far off they are: each
        with its best-fitting affine map and with the parameters given."""
        tried = {(c.op, c.axes, c.groups, c.grouping, c.affine, c.bias) for c in self.candidates}
        for found in closest_structures(self.attempts)[:NEAREST_MISSES]:
            # the sample fit absorbs a weight and bias uniform in a group (BatchNorm's given
            # ones, none or swapped alike), and measures given ones over |w|: the parameters
            # given are replayed beside the best fit
            first = min(found, key=residual_level)
            given = [a for a in found if a.affine == "given" and a is not first]
            for a in [first, *given[:1]]:
                done = (*structure_key(a), shown_affine(a.affine), self._adds_bias(a))
                if done not in tried:
                    tried.add(done)
                    self._replay_default(a)

    def _adds_bias(self, a: Attempt) -> bool:
        return a.affine not in ("none", "weight_only") and (
            a.affine == "fitted" or self.p.bias is not None
        )

    def _replay_default(self, a: Attempt) -> None:
        """``a`` replayed with the common defaults (``nearest_misses``)."""
        p = self.p
        full = a.full
        if full is None:
            mean, var = fits.group_moments(a.structure.layout, p.x, self.deadline)
            nothing = np.zeros_like(mean)
            invalid = np.zeros(mean.shape, dtype=bool)
            size = a.structure.layout.group_size
            full = GroupFit(mean, var, nothing, nothing, nothing, nothing, invalid, size, a.rho)
        eps = p.pins.eps
        if eps is None:
            eps = EPS_PRIOR["centered" if a.centered else "uncentered"][0]
        # NaN bounds: eps was not fitted (the pinned one or the usual default; the words say so)
        default = EpsChoice(eps, False, math.nan, math.nan, False)
        h = _Hypothesis(Denominator(), default, full, 1.0)
        self.candidates.append(self._replay(a, h, self._cast_orders(a)[0], []))
