"""fastnn._checks: the finiteness check's fast path (a finite sum proves the array finite) and its exact
fallback when the sum overflows on large but finite values."""
import re
import tracemalloc

import numpy as np
import pytest

from fastnn._checks import check_array

# The largest finite values of each dtype, a few of which already overflow a sum in that dtype.
BIG = {np.float32: np.float32(3e38), np.float64: 1.5e308}


def big_array(dtype):
    x = np.full((7, 5), BIG[dtype], dtype=dtype)
    x[::2] *= -0.5  # mixed signs: partial sums overflow to +inf and -inf, the total is inf or NaN
    with np.errstate(over="ignore", invalid="ignore"):
        assert not np.isfinite(x.sum()), "the test needs a sum that overflows"
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_finite_values_whose_sum_overflows_are_accepted(dtype):
    x = big_array(dtype)
    out = check_array(x, "X", ndim=2)
    assert out is x  # already C-contiguous in a float dtype: not copied
    np.testing.assert_array_equal(check_array(x.T, "X"), x.T)  # the copy path too


def message(name, what, where, dtype, allowed=""):
    if what == "NaN":
        return f"Input contains NaN. Argument {name!r} must not contain NaN; found NaN at index {where}."
    return (f"Input contains infinity or a value too large for dtype('{np.dtype(dtype)}'). Argument {name!r} "
            f"must be finite{allowed}; found {what} at index {where}.")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("large", [False, True], ids=["ordinary", "sum-overflows"])
@pytest.mark.parametrize("value, what", [(np.nan, "NaN"), (np.inf, "+inf"), (-np.inf, "-inf")])
def test_a_single_nan_or_inf_is_refused_with_the_same_message(dtype, large, value, what):
    x = big_array(dtype) if large else np.random.default_rng(0).normal(size=(7, 5)).astype(dtype)
    x[3, 2] = value
    with pytest.raises(ValueError, match=re.escape(message("X", what, (3, 2), dtype))):
        check_array(x, "X")


def test_the_first_of_several_bad_values_is_named_nan_before_inf():
    x = np.zeros(10, dtype=np.float32)
    x[[2, 5, 7]] = [np.inf, -np.inf, np.nan]  # sum is NaN either way
    with pytest.raises(ValueError, match=re.escape(message("x", "NaN", 7, np.float32))):
        check_array(x)
    x[7] = 0
    with pytest.raises(ValueError, match=re.escape(message("x", "+inf", 2, np.float32))):
        check_array(x)
    x[2] = 0
    with pytest.raises(ValueError, match=re.escape(message("x", "-inf", 5, np.float32))):
        check_array(x)


@pytest.mark.parametrize("large", [False, True], ids=["ordinary", "sum-overflows"])
def test_allowed_infinities_still_pass_and_nan_never_does(large):
    x = big_array(np.float64) if large else np.ones((7, 5))
    x[1, 1] = -np.inf
    assert check_array(x, "z", allow_neg_inf=True) is x
    x[4, 0] = np.inf
    assert check_array(x, "z", allow_inf=True) is x
    with pytest.raises(ValueError, match=re.escape(message("z", "+inf", (4, 0), np.float64, " (-inf is allowed)"))):
        check_array(x, "z", allow_neg_inf=True)
    x[6, 4] = np.nan
    with pytest.raises(ValueError, match=re.escape(message("z", "NaN", (6, 4), np.float64))):
        check_array(x, "z", allow_inf=True)


def test_values_that_overflow_the_target_dtype_are_refused():
    x = np.array([[1.0, 1e39]])  # finite in float64, +inf once converted to float32
    with pytest.raises(ValueError, match=re.escape(message("X", "+inf", (0, 1), np.float32))):
        check_array(x, "X", dtype=np.float32)


def test_finite_input_allocates_no_array_of_its_size():
    # np.isfinite(x).all() would allocate x.size bools; the fast path needs O(1) memory.
    x = np.random.default_rng(1).random((2000, 500), dtype=np.float32)
    tracemalloc.start()
    try:
        check_array(x, "X", ndim=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < x.size // 10, peak
