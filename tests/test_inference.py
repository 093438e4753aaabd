"""The compiled forward pass (kernels/*/inference.py's ``predict_rows``) against the reference's, which is
composed of the reference per-layer kernels: Maxout, BatchNorm (on the output too), PReLU, LeakyReLU, tanh and
softmax or exp (a Poisson regression's output), one row, a few rows and more rows than one chunk (INFER_CHUNK), float32 and float64; the first row
whose output is not finite is reported."""
import numpy as np
import pytest

from fastnn._kernels.reference import fused as F
from fastnn._kernels.reference import inference as ref_inference
from kernel_helpers import DTYPES, assert_close

SIZES = np.array([7, 37, 21, 9, 3], np.int64)
ACTS = np.array([F.PRELU, F.TANH, F.LEAKY_RELU, F.SOFTMAX], np.int64)
PIECES = np.array([2, 1, 3, 1], np.int64)
NORM = np.array([[0.1, 1e-5], [0, 0], [0.1, 1e-3], [0.1, 1e-5]])  # after a Maxout, and on the output
SLOPES = np.array([0.0, 0.0, 0.2, 0.0])


def _model(rng, dtype, acts=ACTS):
    """Parameters and running statistics of the layout, the BatchNorm ones near their usual values."""
    layout = F.epoch_layout(SIZES, 1, acts, None, NORM, PIECES)
    gammas, runs, n_params, n_running = F.norm_layout(SIZES, NORM, PIECES)
    _, n_params = F.prelu_layout(SIZES, acts, NORM, PIECES)
    params = 0.4 * rng.standard_normal(n_params)
    running = np.empty(n_running)
    for l in np.flatnonzero(gammas >= 0):
        k = SIZES[l + 1]
        params[gammas[l]:gammas[l] + k] += 1
        running[runs[l]:runs[l] + k] = 0.3 * rng.standard_normal(k)
        running[runs[l] + k:runs[l] + 2 * k] = rng.uniform(0.5, 2, k)
    return layout, params.astype(dtype), running.astype(dtype)


@pytest.mark.parametrize("out_act", [F.SOFTMAX, F.EXP], ids=["softmax", "exp"])
@pytest.mark.parametrize("n", [1, 7, 300])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_predict_rows_equals_reference(compiled, rng, dtype, n, out_act):
    acts = np.array([*ACTS[:-1], out_act], np.int64)
    layout, params, running = _model(rng, dtype, acts)
    x = rng.standard_normal((n, SIZES[0])).astype(dtype)
    args = (params, running, layout, SIZES, acts, PIECES, NORM, SLOPES)
    expected, got = np.empty((n, 3), dtype), np.empty((n, 3), dtype)
    assert ref_inference.predict_rows(x, *args, expected) == -1
    assert compiled.predict_rows(x, *args, got) == -1
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    if out_act == F.SOFTMAX:
        assert_close(got, expected, rtol, scale=1.0, what="outputs")  # probabilities
        assert np.allclose(got.sum(axis=1), 1, rtol=1e-5)
    else:
        assert_close(got, expected, rtol, what="outputs")  # e^z: relative error
        assert (got > 0).all()


def test_predict_rows_reports_the_first_row_that_is_not_finite(compiled, rng):
    layout, params, running = _model(rng, np.float64)
    x = rng.standard_normal((300, SIZES[0]))
    x[[270, 290], 3] = np.nan
    out = np.empty((300, 3))
    assert compiled.predict_rows(x, params, running, layout, SIZES, ACTS, PIECES, NORM, SLOPES, out) == 270
    assert np.isnan(out[270]).all() and np.isfinite(out[:270]).all()
