"""Batch normalization kernels: by hand, every backend against the reference, gradients against finite
differences, and torch.nn.BatchNorm1d semantics (running statistics with the unbiased variance)."""
import numpy as np
import pytest

from kernel_helpers import RTOL, assert_close, assert_grad, assert_same_kind, numeric_grad
from torch_reference import require_torch

SHAPES = [(2, 1), (7, 1), (2, 13), (7, 13), (128, 784)]  # n > 1: the unbiased variance needs two rows
MOMENTUM, EPS = 0.1, 1e-5


def _args(rng, shape, dtype):
    n, k = shape
    x = (3.0 + 2.0 * rng.standard_normal(shape)).astype(dtype)  # off-centre, as real activations are
    gamma = rng.uniform(0.5, 1.5, k).astype(dtype)
    beta = rng.standard_normal(k).astype(dtype)
    rmean = rng.standard_normal(k).astype(dtype)
    rvar = rng.uniform(0.5, 2.0, k).astype(dtype)
    return x, gamma, beta, rmean, rvar


def _dx_terms(dy, xhat, gamma, inv_std):
    """The size of the three terms of dx = gamma inv_std / n (n dy - sum dy - xhat sum(dy xhat)), which
    cancel (for n = 2, dx is ~0 up to eps): its rounding error scales with them."""
    n = dy.shape[0]
    ady, axh = np.abs(dy.astype(np.float64)), np.abs(xhat.astype(np.float64))
    return np.abs(gamma) * inv_std / n * (n * ady + ady.sum(axis=0) + axh * (ady * axh).sum(axis=0))


def test_train_and_running_stats_by_hand(bk, dtype):
    # column 0: values 1, 3 -> mean 2, biased variance 1, unbiased 2; column 1: constant 10 -> variance 0.
    x = np.array([[1.0, 10.0], [3.0, 10.0]], dtype=dtype)
    gamma = np.array([2.0, 1.0], dtype=dtype)
    beta = np.array([0.5, -1.0], dtype=dtype)
    rmean = np.array([0.0, 0.0], dtype=dtype)
    rvar = np.array([1.0, 1.0], dtype=dtype)
    y, xhat, inv_std = bk.batchnorm_forward_train(x, gamma, beta, rmean, rvar, 0.1, 1e-5)
    s = 1 / np.sqrt(1 + 1e-5)
    np.testing.assert_allclose(inv_std, [s, 1 / np.sqrt(1e-5)], rtol=1e-6)
    np.testing.assert_allclose(xhat, [[-s, 0.0], [s, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(y, [[0.5 - 2 * s, -1.0], [0.5 + 2 * s, -1.0]], rtol=1e-6)
    # running = 0.9 * running + 0.1 * batch statistic, with the unbiased variance (torch.nn.BatchNorm1d)
    np.testing.assert_allclose(rmean, [0.9 * 0 + 0.1 * 2, 0.1 * 10], rtol=1e-6)
    np.testing.assert_allclose(rvar, [0.9 * 1 + 0.1 * 2, 0.9 * 1 + 0.1 * 0], rtol=1e-6)
    # inference uses the running statistics
    y_eval = bk.batchnorm_forward_eval(x, gamma, beta, rmean, rvar, 1e-5)
    want = gamma * (x.astype(np.float64) - rmean) / np.sqrt(rvar.astype(np.float64) + 1e-5) + beta
    np.testing.assert_allclose(y_eval, want, rtol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_compiled_matches_reference(compiled, ref, dtype, rng, shape):
    x, gamma, beta, rmean, rvar = _args(rng, shape, dtype)
    rtol = RTOL[dtype]
    rm_c, rv_c, rm_r, rv_r = rmean.copy(), rvar.copy(), rmean.copy(), rvar.copy()
    y, xhat, inv_std = compiled.batchnorm_forward_train(x, gamma, beta, rm_c, rv_c, MOMENTUM, EPS)
    ry, rxhat, rinv = ref.batchnorm_forward_train(x, gamma, beta, rm_r, rv_r, MOMENTUM, EPS)
    assert_same_kind(y, x, "y")
    assert xhat.dtype == inv_std.dtype == dtype and inv_std.shape == (shape[1],)
    assert_close(inv_std, rinv, rtol, what="inv_std")
    # x - mean cancels: the error of xhat scales with |x| * inv_std, not with |xhat|.
    xscale = np.abs(x.astype(np.float64)) * rinv
    assert_close(xhat, rxhat, rtol, xscale, "xhat")
    assert_close(y, ry, rtol, np.abs(gamma) * xscale + np.abs(beta), "y")
    assert_close(rm_c, rm_r, rtol, np.abs(rm_r).max(), "running_mean")
    assert_close(rv_c, rv_r, rtol, what="running_var")

    ye = compiled.batchnorm_forward_eval(x, gamma, beta, rmean, rvar, EPS)
    assert_same_kind(ye, x, "eval y")
    rye = ref.batchnorm_forward_eval(x, gamma, beta, rmean, rvar, EPS)
    escale = (np.abs(x.astype(np.float64)) + np.abs(rmean)) * np.abs(gamma) / np.sqrt(rvar + EPS) + np.abs(beta)
    assert_close(ye, rye, rtol, escale, "eval y")

    dy = rng.standard_normal(shape).astype(dtype)
    dx, dgamma, dbeta = compiled.batchnorm_backward(dy, rxhat, gamma, rinv)
    rdx, rdgamma, rdbeta = ref.batchnorm_backward(dy, rxhat, gamma, rinv)
    assert_same_kind(dx, dy, "dx")
    ady, axh = np.abs(dy.astype(np.float64)), np.abs(rxhat.astype(np.float64))
    sum_dy, sum_dyx = ady.sum(axis=0), (ady * axh).sum(axis=0)
    assert_close(dbeta, rdbeta, rtol, sum_dy, "dbeta")
    assert_close(dgamma, rdgamma, rtol, sum_dyx, "dgamma")
    assert_close(dx, rdx, rtol, _dx_terms(dy, rxhat, gamma, rinv), "dx")


@pytest.mark.parametrize("shape", [(2, 1), (7, 13), (128, 784)])
def test_compiled_float32_matches_float64_reference(compiled, ref, rng, shape):
    x, gamma, beta, rmean, rvar = _args(rng, shape, np.float32)
    d = lambda a: a.astype(np.float64)  # noqa: E731
    rtol = RTOL[np.dtype(np.float32)]
    rm32, rv32, rm64, rv64 = rmean.copy(), rvar.copy(), d(rmean), d(rvar)
    y, xhat, inv_std = compiled.batchnorm_forward_train(x, gamma, beta, rm32, rv32, MOMENTUM, EPS)
    ry, rxhat, rinv = ref.batchnorm_forward_train(d(x), d(gamma), d(beta), rm64, rv64, MOMENTUM, EPS)
    xscale = np.abs(d(x)) * rinv
    assert_close(inv_std, rinv, rtol)
    assert_close(xhat, rxhat, rtol, xscale)
    assert_close(y, ry, rtol, np.abs(d(gamma)) * xscale + np.abs(d(beta)))
    assert_close(rm32, rm64, rtol, np.abs(rm64).max())
    assert_close(rv32, rv64, rtol)


@pytest.mark.parametrize("shape", [(2, 1), (3, 4), (5, 2)])
def test_backward_matches_finite_differences(bk, rng, shape):
    x, gamma, beta, rmean, rvar = _args(rng, shape, np.float64)
    dy = rng.standard_normal(shape)

    def loss():
        y, _, _ = bk.batchnorm_forward_train(x, gamma, beta, rmean.copy(), rvar.copy(), MOMENTUM, EPS)
        return float(np.sum(y * dy))

    _, xhat, inv_std = bk.batchnorm_forward_train(x, gamma, beta, rmean.copy(), rvar.copy(), MOMENTUM, EPS)
    dx, dgamma, dbeta = bk.batchnorm_backward(dy, xhat, gamma, inv_std)
    assert_grad(dx, numeric_grad(loss, x), "dx")
    assert_grad(dgamma, numeric_grad(loss, gamma), "dgamma")
    assert_grad(dbeta, numeric_grad(loss, beta), "dbeta")


@pytest.mark.parametrize("shape", [(2, 3), (16, 5)])
def test_matches_torch_batchnorm1d(bk, dtype, rng, shape):
    torch = require_torch()
    x, gamma, beta, rmean, rvar = _args(rng, shape, dtype)
    layer = torch.nn.BatchNorm1d(shape[1], eps=EPS, momentum=MOMENTUM).to(torch.float64 if dtype == np.float64
                                                                          else torch.float32)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(gamma))
        layer.bias.copy_(torch.from_numpy(beta))
        layer.running_mean.copy_(torch.from_numpy(rmean))
        layer.running_var.copy_(torch.from_numpy(rvar))
    rtol = RTOL[dtype]
    rm, rv = rmean.copy(), rvar.copy()
    for _ in range(3):  # three training steps: the running statistics compound
        tx = torch.from_numpy(x.copy()).requires_grad_(True)
        layer.train()
        ty = layer(tx)
        dy = rng.standard_normal(shape).astype(dtype)
        ty.backward(torch.from_numpy(dy))
        y, xhat, inv_std = bk.batchnorm_forward_train(x, gamma, beta, rm, rv, MOMENTUM, EPS)
        dx, dgamma, dbeta = bk.batchnorm_backward(dy, xhat, gamma, inv_std)
        scale = np.abs(ty.detach().numpy()).max()
        assert_close(y, ty.detach().numpy(), rtol, scale, "y")
        assert_close(rm, layer.running_mean.numpy(), rtol, np.abs(rm).max(), "running_mean")
        assert_close(rv, layer.running_var.numpy(), rtol, what="running_var")
        assert_close(dx, tx.grad.numpy(), rtol, _dx_terms(dy, xhat, gamma, inv_std), "dx")
        ady, axh = np.abs(dy.astype(np.float64)), np.abs(xhat.astype(np.float64))
        assert_close(dgamma, layer.weight.grad.numpy(), rtol, (ady * axh).sum(axis=0), "dgamma")
        assert_close(dbeta, layer.bias.grad.numpy(), rtol, ady.sum(axis=0), "dbeta")
        layer.zero_grad()
        x = (x + 0.5 * rng.standard_normal(shape)).astype(dtype)
    layer.eval()
    with torch.no_grad():
        want = layer(torch.from_numpy(x)).numpy()
    assert_close(bk.batchnorm_forward_eval(x, gamma, beta, rm, rv, EPS), want, rtol, np.abs(want).max(), "eval")
