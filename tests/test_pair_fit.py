"""What a group's two extreme elements pin (``lncheck.pair_fit``): Cramer's rule by hand, its
bounds hold for any roundings within them (Hypothesis), and the judgement it sharpens where a
group's bulk repeats."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lncheck import affine_fit
from lncheck.pair_fit import pair_fit

from .test_output_model import distorted, judged, model_of, whole


def test_the_pair_is_solved_by_hand() -> None:
    # normalized values of [1, 2, 3, 6] (mean 3, var 3.5, eps 0): n = (x - 3) / sqrt(3.5)
    x = np.array([[1.0, 2.0, 3.0, 6.0]])
    w, b = np.array([1.0, 1.0, 2.0, 0.5]), np.zeros(4)
    block = whole(model_of(x, normalized_shape=4, eps=0.0, weight=w, bias=b, dtype="float64"))
    n = (x[0] - 3.0) / np.sqrt(3.5)
    np.testing.assert_allclose(block.nhat[0], n, rtol=1e-15)
    # a distortion s = 1.1, t = 0.2 plus 0.01 on the largest element (index 3, w 0.5) and
    # -0.02 on the smallest (index 0, w 1)
    actual = distorted(block, np.array([1.1]), np.array([0.2]))
    actual[0, 3] += 0.01
    actual[0, 0] -= 0.02
    bound = np.full((1, 4), 0.05)
    p = pair_fit(block, affine_fit.fit(block, actual), bound)
    a1, c1, e1 = 0.5 * n[3], 0.5, 0.1 * 0.5 * n[3] + 0.2 * 0.5 + 0.01
    a2, c2, e2 = 1.0 * n[0], 1.0, 0.1 * n[0] + 0.2 - 0.02
    det = a1 * c2 - a2 * c1
    np.testing.assert_allclose(p.ds, [(e1 * c2 - e2 * c1) / det], rtol=1e-12)
    np.testing.assert_allclose(p.shift, [(a1 * e2 - a2 * e1) / det], rtol=1e-12)
    np.testing.assert_allclose(p.ds_bound, [0.05 * (c1 + c2) / abs(det)], rtol=1e-12)
    np.testing.assert_allclose(p.shift_bound, [0.05 * (abs(a1) + abs(a2)) / abs(det)], rtol=1e-12)
    assert abs(p.ds[0] - 0.1) <= p.ds_bound[0] and abs(p.shift[0] - 0.2) <= p.shift_bound[0]


def test_without_a_shift_the_largest_element_alone_pins_the_scale() -> None:
    x = np.array([[1.0, -4.0, 2.0, 0.5]])
    block = whole(model_of(x, "rms_norm", normalized_shape=4, eps=0.0, dtype="float64"))
    actual = distorted(block, np.array([0.9]), np.zeros(1))
    actual[0, 1] += 0.003
    p = pair_fit(block, affine_fit.fit(block, actual), np.full((1, 4), 0.01))
    a = block.nhat[0, 1]  # the largest |n|
    np.testing.assert_allclose(p.ds, [(-0.1 * a + 0.003) / a], rtol=1e-12)
    np.testing.assert_allclose(p.ds_bound, [0.01 / abs(a)], rtol=1e-12)
    assert np.isinf(p.shift_bound).all()


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(2, 40),
    scale=st.floats(0.5, 2.0),
    shift=st.floats(-1.0, 1.0),
    centred=st.booleans(),
)
def test_the_bounds_hold_for_any_roundings_within_them(
    seed: int, size: int, scale: float, shift: float, centred: bool
) -> None:
    """Whatever each element's error within its bound, the pair lands within its bounds of the
    distortion made."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, size)) * rng.uniform(0.1, 10.0)
    w = rng.choice([-2.0, 0.0, 0.5, 1.0, 3.0], size)
    w[0] = 1.0  # at least one weight pins something
    op = "layer_norm" if centred else "rms_norm"
    options = {"bias": rng.standard_normal(size)} if centred else {}
    block = whole(model_of(x, op, normalized_shape=size, weight=w, dtype="float64", **options))
    shifts = np.full(3, shift if centred else 0.0)
    bound = rng.uniform(0.0, 0.1, (3, size))
    actual = distorted(block, np.full(3, scale), shifts) + bound * rng.choice(
        [-1.0, 1.0], (3, size)
    )
    p = pair_fit(block, affine_fit.fit(block, actual), bound)
    slack = 1e-9 * (1.0 + np.abs(p.ds_bound))
    assert np.all(np.abs(p.ds - (scale - 1.0)) <= p.ds_bound + slack)
    if centred:
        assert np.all(np.abs(p.shift - shift) <= p.shift_bound * (1 + 1e-9) + 1e-9)


def test_a_scale_the_bulk_hides_is_pinned_by_the_outlier() -> None:
    """float16 groups whose large bias leaves the output's last place at 4: the bulk (|n| near
    2 at most) cannot show a scale 1.3 (a least-squares fit of the correctly rounded output
    finds ds -0.35), the outlier at n = 112 does. The correctly rounded output stays
    ``accurate``; without the pair the wrong one was too."""
    rng = np.random.default_rng(3)
    n = 20000
    x = np.round(rng.standard_normal((2, n)) * 4) / 4
    x[:, 7] = 200.0  # 112 std, once the variance counts it
    x = (x * 1e-3 + 0.4).astype(np.float16).astype(np.float64)
    block = whole(
        model_of(x, normalized_shape=n, bias=np.full(n, 7000.0), dtype="float16", eps=1e-7)
    )
    exact = np.asarray(block.y.astype(np.float16), dtype=np.float64)
    assert judged(block, exact, "float16")[0] == ["accurate", "accurate"]
    wrong = distorted(block, np.array([1.3, 1.0]), np.zeros(2)).astype(np.float16)
    classes, _ = judged(block, np.asarray(wrong, dtype=np.float64), "float16")
    assert classes[1] == "accurate" and classes[0] not in ("accurate", "sequential")
