"""The structural limit's row check (``lncheck.caps``): the pre-screen by each row's largest
value never changes which rows have an element beyond ``|w| * reach + rounding``."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lncheck.caps import _over

from .support import output_check


def _by_element(
    centred: np.ndarray, big_w: np.ndarray | float, reach: np.ndarray, rounding: np.ndarray
) -> np.ndarray:
    with np.errstate(all="ignore"):
        over = centred > big_w * reach[:, None] * (1 + 1e-2) + rounding
        return np.any(over & np.isfinite(centred), axis=1)


values = st.sampled_from([0.0, 0.5, 1.0, 2.9, 3.0, 3.1, 1e300, np.inf, np.nan])


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 4),
    st.integers(1, 5),
    st.data(),
    st.booleans(),
)
def test_pre_screen_agrees_with_every_element(
    rows: int, size: int, data: st.DataObject, per_element: bool
) -> None:
    def block(shape: tuple[int, ...]) -> np.ndarray:
        return np.array(
            data.draw(st.lists(values, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        ).reshape(shape)

    centred = np.abs(block((rows, size)))
    rounding = np.abs(block((rows, size)))
    reach = block((rows,)) * data.draw(st.sampled_from([1.0, -1.0]))
    big_w = np.abs(block((rows, size))) if per_element else 1.0
    np.testing.assert_array_equal(
        _over(centred, big_w, reach, rounding), _by_element(centred, big_w, reach, rounding)
    )


def test_a_value_beyond_the_reach_is_found() -> None:
    centred = np.array([[1.0, 3.2], [1.0, 2.0]])
    found = _over(centred, 1.0, np.array([3.0, 3.0]), np.zeros((2, 2)))
    assert found.tolist() == [True, False]  # 3.2 > 3.03; 2.0 is not


def test_a_negative_eps_stretches_the_limit_as_it_stretches_rstd() -> None:
    # var + eps with eps = -1 normalizes by more than 1 / std: torch's outputs exceed
    # sqrt(n - 1) = 3.87 and are right (the exact output reaches 6.77 here)
    import lncheck

    x = np.random.default_rng(0).standard_normal(16)
    x = (x - x.mean()) * np.sqrt(1.0923783 / x.var())
    report = lncheck.compare(x[None, :].astype(np.float32), "layer_norm", normalized_shape=16,
                             eps=-1.0, equal_nan=True)  # fmt: skip
    output = [c for c in report.checks if c.quantity == "output"]
    assert output and all(c.passed for c in output), [c.message() for c in output]
    assert max(abs(c.worst_expected) for c in output) > np.sqrt(15)


def test_constant_rows_whose_sums_round_admit_a_mean_and_a_variance_reduced_apart() -> None:
    # a Restormer/ConvNeXt-style LayerNorm in torch: x.mean() (a cascade sum) is off by a few
    # ulps on rows of equal values, x.var() (Welford) is 0 there, so |y| = d / sqrt(eps) is
    # 1.95 at 10000.3: a correct kernel's output, within the accurate class's mean error
    # (a limit of 1 / sqrt(1 - n v), right only for a variance about the kernel's own mean,
    # failed it as a mismatch)
    values = torch.tensor([1000.1, 3.3, -77.77, 0.1, 255.0, 12345.6, 1e4 + 0.3, 2.5e4 + 0.7])
    x = values[:, None].repeat(1, 1024).float()
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True, unbiased=False)
    y = (x - mean) / torch.sqrt(var + 1e-6)
    assert float(var.abs().max()) == 0.0 and float(y.abs().max()) > 1.9
    c = output_check(x.numpy(), "layer_norm", normalized_shape=1024, eps=1e-6, expected=y.numpy())
    assert c.passed and c.accuracy_class == "accurate", c.message()
