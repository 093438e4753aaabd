"""Whole training runs against implementations that are not fastnn's.

- A plain NumPy trainer written here from the textbook formulas, example by example as a textbook's
  backpropagation does: sigmoid + binary cross-entropy with SGD and L2 as
  ``w -> (1 - eta lambda / n) w - eta / m sum_x dC_x/dw`` (Nielsen, "Neural Networks and Deep Learning",
  ch. 3, network2), and softmax + log-likelihood with Adam by its published algorithm (Kingma & Ba 2015,
  Algorithm 1). Both output layers backpropagate delta = a - y.
- torch (autograd and torch.optim) for every optimizer fastnn has, with fastnn's L2 penalty
  lambda / (2n) sum w^2 added to torch's loss.

Each is compared with ``Sequential.fit`` on every backend, with ``use_fused`` True and False (the
compiled epoch where fit takes it, the step-by-step one otherwise; which one ran is not asserted), in
float64 over two epochs from the same initial weights and the same batches: fit draws each epoch's order as
``np.random.default_rng(seed).permutation(n)``, one call per epoch (fastnn/network.py), and the references
here draw the same.
"""
import functools

import numpy as np
import pytest

from fastnn import Sequential, optim
from fastnn.layers import Dense, Sigmoid, Softmax, Tanh
from torch_reference import OPTIMIZERS, require_torch

BACKENDS = ["numpy", "numba", "cython"]
N, N_IN, N_HIDDEN, N_OUT = 60, 6, 12, 4
BATCH = 8  # 60 = 7 x 8 + 4: a short last batch
EPOCHS = 2
SEED = 11  # fit's shuffling seed
# max |w_fastnn - w_reference| / max |w_reference| per array after two epochs (float64). Measured over every
# backend, both paths and all cases below: <= 9.4e-16 (textbook SGD + L2), <= 4.7e-16 (torch); 5e-14 is ~50x.
RTOL = 5e-14


def data():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((N, N_IN))
    labels = rng.integers(0, N_OUT, size=N)
    return X, labels, np.eye(N_OUT)[labels]


def epoch_orders(n=N, seed=SEED, epochs=EPOCHS):
    """The sample order of each epoch as fit draws it."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(n) for _ in range(epochs)]


def batches(order, batch_size=BATCH):
    return [order[lo:lo + batch_size] for lo in range(0, len(order), batch_size)]


def fastnn_run(layers, loss, make_opt, backend, use_fused, l2=0.0):
    """(initial weights, weights after fit) for a new Sequential of ``layers``."""
    X, labels, _ = data()
    model = Sequential(layers(), dtype="float64", backend=backend, seed=3)
    start = model.get_weights()
    model.fit(X, labels, loss=loss, optimizer=make_opt(), epochs=EPOCHS, batch_size=BATCH, seed=SEED, l2=l2,
              verbose=0, use_fused=use_fused)
    return start, model.get_weights()


def assert_same_weights(got, want, what):
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"{what} array {i}: shape {g.shape} != {w.shape}"
        err = np.max(np.abs(g - w)) / np.max(np.abs(w))
        assert err <= RTOL, f"{what} array {i}: max |difference| {err:.2e} of max |w| > {RTOL}"


# -- the textbook trainer ---------------------------------------------------------------------------------


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def backprop(Ws, bs, x, y, hidden, output):
    """dC_x/dW and dC_x/db of one example (lists by layer): the four equations of backpropagation.

    ``hidden`` is (f, f') of the hidden layers; the output layer (sigmoid with cross-entropy, or softmax
    with log-likelihood) gives delta = a - y."""
    f, df = hidden
    activations, zs = [x], []
    for layer, (W, b) in enumerate(zip(Ws, bs)):
        z = activations[-1] @ W + b
        zs.append(z)
        activations.append(output(z) if layer == len(Ws) - 1 else f(z))
    delta = activations[-1] - y
    gW, gb = [None] * len(Ws), [None] * len(Ws)
    for layer in reversed(range(len(Ws))):
        gW[layer], gb[layer] = np.outer(activations[layer], delta), delta
        if layer:
            delta = (Ws[layer] @ delta) * df(zs[layer - 1])
    return gW, gb


def batch_gradients(Ws, bs, X, Y, idx, hidden, output):
    """The mean over the batch ``idx`` of every example's gradient."""
    sums = None
    for i in idx:
        gW, gb = backprop(Ws, bs, X[i], Y[i], hidden, output)
        sums = (gW, gb) if sums is None else ([s + g for s, g in zip(sums[0], gW)],
                                               [s + g for s, g in zip(sums[1], gb)])
    return [s / len(idx) for s in sums[0]], [s / len(idx) for s in sums[1]]


SIGMOID = (sigmoid, lambda z: sigmoid(z) * (1 - sigmoid(z)))
TANH = (np.tanh, lambda z: 1 - np.tanh(z) ** 2)


def textbook_sgd_l2(weights, eta, lam):
    """Sigmoid layers, cross-entropy, mini-batch SGD with L2: w -> (1 - eta lam/n) w - eta/m sum dC_x/dw,
    b -> b - eta/m sum dC_x/db (network2's update_mini_batch)."""
    X, _, Y = data()
    Ws, bs = [w.copy() for w in weights[0::2]], [b.copy() for b in weights[1::2]]
    for order in epoch_orders():
        for idx in batches(order):
            gW, gb = batch_gradients(Ws, bs, X, Y, idx, SIGMOID, sigmoid)
            Ws = [(1 - eta * lam / N) * W - eta * g for W, g in zip(Ws, gW)]
            bs = [b - eta * g for b, g in zip(bs, gb)]
    return [a for pair in zip(Ws, bs) for a in pair]


def textbook_adam(weights, alpha, beta1, beta2, eps):
    """Tanh hidden layer, softmax + log-likelihood, Adam (Kingma & Ba, Algorithm 1) on every parameter:
    m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, m^ = m / (1 - b1^t), v^ = v / (1 - b2^t),
    theta = theta - alpha m^ / (sqrt(v^) + eps)."""
    X, _, Y = data()
    params = [w.copy() for w in weights]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    t = 0
    for order in epoch_orders():
        for idx in batches(order):
            gW, gb = batch_gradients(params[0::2], params[1::2], X, Y, idx, TANH, softmax)
            grads = [a for pair in zip(gW, gb) for a in pair]
            t += 1
            for i, g in enumerate(grads):
                m[i] = beta1 * m[i] + (1 - beta1) * g
                v[i] = beta2 * v[i] + (1 - beta2) * g * g
                m_hat, v_hat = m[i] / (1 - beta1**t), v[i] / (1 - beta2**t)
                params[i] = params[i] - alpha * m_hat / (np.sqrt(v_hat) + eps)
    return params


@pytest.mark.parametrize("use_fused", [True, False], ids=["fused", "step-by-step"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_sigmoid_cross_entropy_sgd_l2_equals_the_textbook(backend, use_fused):
    start, got = fastnn_run(lambda: [Dense(N_IN, N_HIDDEN), Sigmoid(), Dense(N_HIDDEN, N_OUT), Sigmoid()],
                            "cross_entropy", lambda: optim.SGD(0.5), backend, use_fused, l2=5.0)
    assert_same_weights(got, textbook_sgd_l2(start, eta=0.5, lam=5.0), f"{backend} SGD + L2")


@pytest.mark.parametrize("use_fused", [True, False], ids=["fused", "step-by-step"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_log_likelihood_adam_equals_the_published_algorithm(backend, use_fused):
    start, got = fastnn_run(lambda: [Dense(N_IN, N_HIDDEN), Tanh(), Dense(N_HIDDEN, N_OUT), Softmax()],
                            "log_likelihood", lambda: optim.Adam(0.01, betas=(0.9, 0.999), eps=1e-8), backend,
                            use_fused)
    assert_same_weights(got, textbook_adam(start, alpha=0.01, beta1=0.9, beta2=0.999, eps=1e-8), f"{backend} Adam")


# -- torch ----------------------------------------------------------------------------------------------

L2 = 0.5  # fastnn's fit(l2=...): lambda / (2n) sum of the squared weights (not biases) added to the loss


def torch_layers():
    return [Dense(N_IN, N_HIDDEN), Tanh(), Dense(N_HIDDEN, N_OUT), Softmax()]


@functools.lru_cache(maxsize=None)
def torch_run(name):
    """(initial weights, weights after two epochs) of the network trained by torch with the torch.optim
    optimizer of ``OPTIMIZERS[name]``: log_softmax + nll_loss (the mean over the batch) + the L2 term."""
    torch = require_torch()
    from torch_reference import torch_optimizer

    X, labels, _ = data()
    start = Sequential(torch_layers(), dtype="float64", seed=3).get_weights()
    params = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in start]
    opt = torch_optimizer(OPTIMIZERS[name](), params)
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(labels)
    for order in epoch_orders():
        for idx in batches(order):
            idx = torch.from_numpy(idx)
            W1, b1, W2, b2 = params
            logits = torch.tanh(X_t[idx] @ W1 + b1) @ W2 + b2
            loss = torch.nn.functional.nll_loss(torch.log_softmax(logits, dim=1), y_t[idx])
            loss = loss + L2 / (2 * N) * ((W1**2).sum() + (W2**2).sum())
            opt.zero_grad()
            loss.backward()
            opt.step()
    return start, [p.detach().numpy().copy() for p in params]


@pytest.mark.parametrize("use_fused", [True, False], ids=["fused", "step-by-step"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_whole_run_equals_torch(name, backend, use_fused):
    torch_start, want = torch_run(name)
    start, got = fastnn_run(torch_layers, "log_likelihood", OPTIMIZERS[name], backend, use_fused, l2=L2)
    for a, b in zip(start, torch_start):
        np.testing.assert_array_equal(a, b)  # the same initial weights
    assert_same_weights(got, want, f"{backend} {name}")
    # and the run moved the weights well beyond the tolerance: the comparison is not of two starting points
    assert max(np.max(np.abs(g - s)) / np.max(np.abs(s)) for g, s in zip(got, start)) > 1e3 * RTOL
