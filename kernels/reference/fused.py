"""One whole training epoch of a stack of Dense layers in one call: every mini-batch, forward, backward, update.

This is the meaning of the fused kernel; the numba and cython backends do the same arithmetic without
Python per batch and without allocation inside the loop. It is composed of the per-layer reference kernels
(dense, activations, softmax, losses, optim, dropout, norm), so one epoch here equals the layer-by-layer
path of ``Sequential.fit`` (same batches, same updates, same reported loss and accuracy). Each layer is
Dense, then optionally BatchNorm (hidden layers), then its activation, then optionally Dropout (hidden
layers). A hidden layer may be a Maxout layer instead (``pieces[l]`` = k > 1, kernels/reference/
activations.py's ``maxout``): its product has ``sizes[l+1] * k`` columns, and the max over each group of k
adjacent columns gives its ``sizes[l+1]`` units, which its activation (often IDENTITY) then takes.

Flat parameter layout (see ``param_layout``): for layer l = 0 .. L-1 with ``sizes[l]`` inputs and
``w = sizes[l+1] * pieces[l]`` product columns, the weights W_l (sizes[l], w) row-major, then the bias b_l
(w,), back to back in one 1-D buffer ``params``, followed by the BatchNorm layers' gamma and beta
(``norm_layout``), then the PReLU layers' slopes alpha (``prelu_layout``): P elements in all. Optimizer
state is a 2-D (k, P) array in the same layout: k = 0 for SGD, 1 for (Nesterov) momentum (the momentum
buffer), 2 for Adam (m, then v).

Codes (module constants, identical in every backend):
- activation after each Dense layer (``acts``, int64 (L,)): IDENTITY 0, SIGMOID 1, TANH 2, RELU 3,
  SOFTMAX 4 (last layer only), LEAKY_RELU 5, SOFTPLUS 6 and PRELU 7 (hidden layers only; LeakyReLU's
  slope, >= 0, in ``slopes``; PReLU's learned slopes alpha, one per unit, in ``params``)
- loss: BCE 0 (requires a sigmoid output), NLL 1 (requires a softmax output), QUADRATIC 2 (any
  element-wise output). BCE and NLL backpropagate the fused delta (a - y)/n; QUADRATIC (a - y)/n * f'(z).
- optimizer: SGD 0, MOMENTUM 1, NESTEROV 2, ADAM 3 (torch.optim semantics, see kernels/reference/optim.py)

``hyper`` is float64 (10,): lr, momentum, beta1, beta2, eps, weight_decay, l2, l1, loss_eps,
flush_denormals.
``weight_decay`` is the optimizer's (torch: added to the gradient of every parameter, biases too); ``l2``
and ``l1`` are penalties on weights only, added to the weight gradient before the step as ``add_l2_grad``
then ``add_l1_grad`` do (g += l2 * W, g += l1 * sign(W)): the objective is C0 + l2/2 ||W||^2 + l1 ||W||_1.
``loss_eps`` is the clipping of the reported BCE / NLL values (``bce_loss``, ``nll_loss``).
``flush_denormals`` != 0 lets the compiled backends flush subnormal floats to zero during the call (x86
FTZ/DAZ, restored afterwards): a speed option, as subnormal arithmetic is slow; results then differ
from this reference, which never flushes, only where values fall below the smallest normal float
(1.2e-38 in float32). Unused entries are ignored.

Threads (compiled backends; ``n_threads`` is ignored here). With ``n_threads`` = T > 1 every thread runs
the whole epoch and takes a share of each mini-batch's work: thread t owns a contiguous range of the
units of every layer width (``split``: near n t / T, on multiples of 16 so that shares start on cache-line
boundaries). Forward, thread t computes its own columns (output units) of every layer's product, bias
and activation, and the threads meet at a barrier after each layer (the next layer needs all of them).
Every thread then computes the whole output layer's loss and delta (a few hundred values) so that no
barrier is needed there. Backward, layer 0's weights are split by columns (output units, the same
columns as forward, so no other thread ever touches them) and every deeper layer's by rows (input
units: the thread's own columns of the layer below, whose deltas it then computes); the threads meet
again only where a layer's full delta is needed below it (networks of 3+ layers). Each thread updates
only the parameters it owns, and keeps those no other thread reads (its columns of W_0, its share of
every bias), their gradients and all its optimizer state in its own copy during the epoch: threads
writing to one cache line would stall each other at every step. The arithmetic of every value is that
of one thread, so results differ from T = 1 only where BLAS rounds a block of a product differently from
the whole product. Threads share one workspace of ``shared_size(sizes, batch_size, ...)`` elements: every
layer's outputs and the hidden layers' deltas, rows padded to 16 elements. A Maxout layer's units are
split as any layer's, and a thread computes the k product columns of each unit it owns (its product
columns start at k times its first unit); a PReLU's alpha is owned, like a bias, by the thread that owns
its unit.
"""
import math

import numpy as np

from . import activations as _act
from . import dense as _dense
from . import dropout as _dropout
from . import norm as _norm
from . import losses as _loss
from . import optim as _optim
from .softmax import softmax

IDENTITY, SIGMOID, TANH, RELU, SOFTMAX, LEAKY_RELU, SOFTPLUS, PRELU = 0, 1, 2, 3, 4, 5, 6, 7
HIDDEN_ONLY = (LEAKY_RELU, SOFTPLUS, PRELU)  # activations the output layer may not have
BCE, NLL, QUADRATIC = 0, 1, 2
SGD, MOMENTUM, NESTEROV, ADAM = 0, 1, 2, 3
# Indices into ``hyper``.
LR, MU, BETA1, BETA2, EPS, WEIGHT_DECAY, L2, L1, LOSS_EPS, FLUSH_DENORMALS = range(10)
N_HYPER = 10
# Rows of optimizer state per optimizer code.
STATE_ROWS = (0, 1, 1, 2)

_FORWARD = {IDENTITY: _act.identity, SIGMOID: _act.sigmoid, TANH: _act.tanh, RELU: _act.relu,
            SOFTPLUS: _act.softplus}
_BACKWARD = {
    IDENTITY: _act.identity_backward, SIGMOID: _act.sigmoid_backward, TANH: _act.tanh_backward,
    RELU: _act.relu_backward, SOFTPLUS: _act.softplus_backward,
}


def widths(sizes, pieces=None):
    """Product columns of every layer: sizes[l + 1] * pieces[l] (pieces None: all 1), as a list of ints."""
    sizes = [int(s) for s in sizes]
    return [sizes[l + 1] * (1 if pieces is None else int(pieces[l])) for l in range(len(sizes) - 1)]


def param_layout(sizes, pieces=None):
    """Offsets of the flat layout: int64 (L, 2) array of (weight offset, bias offset), and the size of the
    Dense (and Maxout) parameters, which the BatchNorm and PReLU ones follow."""
    sizes = [int(s) for s in sizes]
    offsets = np.empty((len(sizes) - 1, 2), dtype=np.int64)
    at = 0
    for l, w in enumerate(widths(sizes, pieces)):
        offsets[l, 0] = at
        at += sizes[l] * w
        offsets[l, 1] = at
        at += w
    return offsets, at


def norm_layout(sizes, norm, pieces=None):
    """Where the BatchNorm arrays live: ``(gamma_offsets, running_offsets, P, R)``.

    norm: float64 (L, 2) rows (momentum, eps), eps > 0 where layer l has a BatchNorm, or None. The
    parameters of the BatchNorm layers follow the Dense ones (``param_layout``) in ``params``: for each
    such layer in order, gamma (sizes[l+1]) then beta; their running statistics fill ``running`` the same
    way, running_mean then running_var. gamma_offsets, running_offsets: int64 (L,), -1 where there is
    none; P, R: the total sizes of params and running.
    """
    sizes = [int(s) for s in sizes]
    _, at = param_layout(sizes, pieces)
    gammas = np.full(len(sizes) - 1, -1, dtype=np.int64)
    runs = np.full(len(sizes) - 1, -1, dtype=np.int64)
    r = 0
    for l in range(len(sizes) - 1):
        if norm is not None and norm[l][1] > 0:
            gammas[l], runs[l] = at, r
            at += 2 * sizes[l + 1]
            r += 2 * sizes[l + 1]
    return gammas, runs, at, r


def prelu_layout(sizes, acts, norm, pieces=None):
    """Where the PReLU slopes live: ``(alpha_offsets, P)``. They follow the BatchNorm parameters
    (``norm_layout``), sizes[l + 1] for each layer l whose activation is PRELU, in order; alpha_offsets:
    int64 (L,), -1 where there is none; P: the total size of params."""
    sizes = [int(s) for s in sizes]
    _, _, at, _ = norm_layout(sizes, norm, pieces)
    alphas = np.full(len(sizes) - 1, -1, dtype=np.int64)
    for l in range(len(sizes) - 1):
        if int(acts[l]) == PRELU:
            alphas[l] = at
            at += sizes[l + 1]
    return alphas, at


def layer_options(n_layers, drop=None, seeds=None, norm=None, slopes=None, pieces=None):
    """``train_epoch``'s optional per-layer arrays, C-contiguous, with None as "none on any layer":
    (drop float64 (L,), seeds int64 (batches, L), norm float64 (L, 2), slopes float64 (L,), pieces int64
    (L,))."""
    drop = np.zeros(n_layers) if drop is None else np.ascontiguousarray(drop, dtype=np.float64)
    seeds = np.zeros((1, n_layers), np.int64) if seeds is None else np.ascontiguousarray(seeds, dtype=np.int64)
    norm = np.zeros((n_layers, 2)) if norm is None else np.ascontiguousarray(norm, dtype=np.float64)
    slopes = np.zeros(n_layers) if slopes is None else np.ascontiguousarray(slopes, dtype=np.float64)
    pieces = np.ones(n_layers, np.int64) if pieces is None else np.ascontiguousarray(pieces, dtype=np.int64)
    return drop, seeds, norm, slopes, pieces


def check_options(sizes, acts, drop, norm, slopes, pieces):
    """Raise ValueError unless the per-layer options are ones ``train_epoch`` supports: one entry per layer,
    nothing but a plain activation on the output layer, pieces >= 1, no batch norm on a Maxout layer."""
    n_layers = len(sizes) - 1
    if any(len(a) != n_layers for a in (acts, drop, norm, slopes, pieces)):
        raise ValueError("acts, drop, norm, slopes and pieces must hold one entry per layer")
    on_output = [what for what, found in (
        ("dropout", drop[-1] != 0), ("batch norm", norm[-1][1] > 0), ("Maxout", int(pieces[-1]) != 1),
        ("LeakyReLU", int(acts[-1]) == LEAKY_RELU), ("Softplus", int(acts[-1]) == SOFTPLUS),
        ("PReLU", int(acts[-1]) == PRELU)) if found]
    if on_output:
        raise ValueError(f"{' and '.join(on_output)} on the output layer: not supported by the fused epoch")
    if any(int(k) < 1 or (int(k) > 1 and row[1] > 0) for k, row in zip(pieces, norm)):
        raise ValueError("pieces must be >= 1, and a Maxout layer (pieces > 1) cannot have a batch norm")


def split(n, t, n_threads):
    """Start of thread t's share of n units (``t = n_threads`` gives n): near n t / T, on a multiple of 16.

    Over two threads 30 units split as 16 + 14, 100 as 48 + 52, 512 as 256 + 256, and 10 as 0 + 10 (a
    layer that narrow is not worth sharing).
    """
    if t >= n_threads:
        return n
    return min(n, 16 * ((n * t + 8 * n_threads) // (16 * n_threads)))


def _pad(n):
    return (int(n) + 15) // 16 * 16


# Rows of the ``epoch_layout`` table.
(LAY_W, LAY_B, LAY_WIDTH, LAY_GAMMA, LAY_RUNNING, LAY_ALPHA, LAY_LD, LAY_LDM, LAY_Z, LAY_D, LAY_DROP, LAY_NORM,
 LAY_PRELU, LAY_MAX, LAY_TOTAL) = range(15)
N_LAYOUT = 15


def epoch_layout(sizes, batch_size, acts=None, drop=None, norm=None, pieces=None):
    """Every offset the compiled workers use, as one int64 table (N_LAYOUT, max(L + 1, 3)), column l for
    layer l (row LAY_LD: column w for width w = 0 .. L), made once per epoch call (kernels/workers.py).

    Parameters: LAY_W, LAY_B layer l's weight and bias offsets in ``params`` and LAY_WIDTH its product
    columns (``param_layout``); LAY_GAMMA, LAY_RUNNING (``norm_layout``) and LAY_ALPHA (``prelu_layout``),
    -1 where a layer has none. The threads' shared workspace, offsets from its first 64-byte boundary:
    LAY_LD the row length of width w's values (sizes[0] for the input, else padded to 16 elements, so that
    shares on multiples of 16 never share a cache line), LAY_LDM a Maxout layer's padded product width;
    LAY_Z every layer's output (nb, LD[l+1]); LAY_D the hidden deltas D_l (nb, LD[l]), l >= 1; after a
    dropout, LAY_DROP: the activations before it (for f') then the mask; after a batch norm, LAY_NORM: its
    normalized values (nb, LD[l+1]) then 1/std (LD[l+1]); before a PReLU, LAY_PRELU: its input; a Maxout
    layer's product before the max, later its delta, LAY_MAX (nb, LDM[l]). LAY_TOTAL: (P, R, workspace
    elements) in columns 0 .. 2.
    """
    sizes = [int(s) for s in sizes]
    n_layers = len(sizes) - 1
    drop, _, norm, _, pieces = layer_options(n_layers, drop, None, norm, None, pieces)
    acts = np.zeros(n_layers, np.int64) if acts is None else acts
    batch_size = int(batch_size)
    lay = np.zeros((N_LAYOUT, max(n_layers + 1, 3)), dtype=np.int64)
    offsets, _ = param_layout(sizes, pieces)
    lay[LAY_W, :n_layers], lay[LAY_B, :n_layers] = offsets[:, 0], offsets[:, 1]
    lay[LAY_WIDTH, :n_layers] = widths(sizes, pieces)
    lay[LAY_GAMMA, :n_layers], lay[LAY_RUNNING, :n_layers], _, n_running = norm_layout(sizes, norm, pieces)
    lay[LAY_ALPHA, :n_layers], n_params = prelu_layout(sizes, acts, norm, pieces)
    ld = lay[LAY_LD]
    ld[0] = sizes[0]
    ld[1:n_layers + 1] = [_pad(s) for s in sizes[1:]]
    lay[LAY_LDM, :n_layers] = [_pad(w) for w in lay[LAY_WIDTH, :n_layers]]
    at = 0

    def take(row, l, elements):
        nonlocal at
        lay[row, l] = at
        at += elements

    for l in range(n_layers):
        take(LAY_Z, l, batch_size * ld[l + 1])
    for l in range(1, n_layers):
        take(LAY_D, l, batch_size * ld[l])
    for l in range(n_layers):
        if drop[l] > 0:
            take(LAY_DROP, l, 2 * batch_size * ld[l + 1])
    for l in range(n_layers):
        if norm[l, 1] > 0:
            take(LAY_NORM, l, (batch_size + 1) * ld[l + 1])
    for l in range(n_layers):
        if int(acts[l]) == PRELU:
            take(LAY_PRELU, l, batch_size * ld[l + 1])
        if pieces[l] > 1:
            take(LAY_MAX, l, batch_size * lay[LAY_LDM, l])
    lay[LAY_TOTAL, :3] = n_params, n_running, at
    return lay


def shared_size(sizes, batch_size, drop=None, norm=None, acts=None, pieces=None):
    """Elements of the threads' shared workspace (``epoch_layout``), and 16 more to start it on a 64-byte
    boundary."""
    return int(epoch_layout(sizes, batch_size, acts, drop, norm, pieces)[LAY_TOTAL, 2]) + 16


def _views(buf, sizes, pieces):
    """Per-layer (W, b) views into a flat buffer laid out by ``param_layout``."""
    offsets, _ = param_layout(sizes, pieces)
    out = []
    for l, w in enumerate(widths(sizes, pieces)):
        w0, b0 = offsets[l]
        out.append((buf[w0:b0].reshape(sizes[l], w), buf[b0:b0 + w]))
    return out


def _output_loss_and_delta(z, a, y, out_act, loss, eps):
    """Mean float64 data loss of the batch (as fastnn.losses reports it) and dC/dz of it."""
    n = z.shape[0]
    if loss == BCE:
        return _loss.bce_loss(a, y, eps), _loss.sigmoid_bce_delta(a, y)
    if loss == NLL:
        # -1/n sum y ln max(a, eps): nll_loss for one-hot y (the only y fit passes), and soft targets too.
        logs = np.log(np.maximum(a.astype(np.float64), eps))
        value = -float(np.sum(np.where(y != 0, y * logs, 0), dtype=np.float64)) / n
        return value, (a - y) / a.dtype.type(n)
    return _loss.quadratic_loss(a, y), _BACKWARD[out_act](z, a, _loss.quadratic_grad(a, y))


def _correct(a, y):
    """Rows whose prediction matches the target: argmax (first on ties), or a > 0.5 for one column."""
    if a.shape[1] == 1:
        return int(np.count_nonzero((a[:, 0] > 0.5) == (y[:, 0] > 0.5)))
    return int(np.count_nonzero(np.argmax(a, axis=1) == np.argmax(y, axis=1)))


def train_epoch(x, y, order, params, state, sizes, acts, loss, opt, hyper, batch_size, step, gemm_min, n_threads=1,
                drop=None, seeds=None, norm=None, running=None, slopes=None, pieces=None):
    """Train one epoch in place; return ``(objective_sum, n_correct, n_updates, last_objective)``.

    x: (n, sizes[0]) float32/float64; y: (n, sizes[-1]) targets of the same dtype (one-hot for NLL);
    order: int64 (m,) row indices, mini-batches are order[k:k + batch_size] (the last one may be short);
    params: (P,) flat parameters, updated in place; state: (k, P) optimizer state, updated in place;
    sizes: int64 (L + 1,) layer widths; acts: int64 (L,) activation codes; loss, opt: codes;
    hyper: float64 (10,) hyperparameters (see the module docstring); batch_size: int >= 1;
    step: number of optimizer updates done before this call (Adam's bias correction uses step + 1, ...);
    gemm_min: compiled backends use BLAS for products of at least this many multiply-adds and loops below
    it (a speed choice only; ignored here); n_threads: int >= 1, threads the compiled backends split each
    batch across (see "Threads" in the module docstring; ignored here).
    drop: float64 (L,) or None: the probability of inverted dropout (kernels/reference/dropout.py) after
    layer l's activation, 0 for none; the output layer's must be 0. seeds: int64 (ceil(m / batch_size), L),
    0 .. 2**63 - 1: the dropout seed of every batch and layer (read where drop > 0). A layer's mask covers
    the batch's (nb, sizes[l + 1]) activations, element (i, j) drawn at counter i * sizes[l + 1] + j, as
    ``dropout_forward`` draws it: the masks of fit's layer-by-layer path when the seeds are the ones its
    Dropout layers would draw.
    norm: float64 (L, 2) or None: (momentum, eps) of a BatchNorm (kernels/reference/norm.py, training
    mode) between layer l's product and its activation where eps > 0 (hidden layers only, batches of
    2+ rows); its gamma and beta then sit in ``params`` after the Dense parameters and its running
    statistics in ``running`` ((R,), updated in place), as ``norm_layout`` places them.
    slopes: float64 (L,) or None: LeakyReLU's slope (>= 0) of each layer whose activation is LEAKY_RELU.
    pieces: int64 (L,) or None: k > 1 makes hidden layer l a Maxout layer of k pieces (no batch norm then);
    1 elsewhere. PReLU layers (acts[l] == PRELU) find their alpha in ``params`` (``prelu_layout``).

    Returns, as Python numbers: ``objective_sum`` (float), the sum over the batches of batch size times
    (mean data loss + l2/2 ||W||^2 + l1 ||W||_1) at the parameters the batch saw; ``n_correct`` (int), the
    rows classified right before their update (see ``_correct``; meaningless unless y holds classes);
    ``n_updates`` (int), the number of batches applied: ceil(m / batch_size), unless a batch's objective was
    NaN or infinite. That batch (0-based index ``n_updates``) is then not applied, not counted, and the
    epoch stops there; ``last_objective`` (float) is the objective of the last batch evaluated, so the
    non-finite value in that case. The caller adds ``n_updates`` to ``step``.
    """
    del gemm_min, n_threads
    sizes = [int(s) for s in sizes]
    n_layers = len(sizes) - 1
    drop, seeds, norm, slopes, pieces = layer_options(n_layers, drop, seeds, norm, slopes, pieces)
    check_options(sizes, acts, drop, norm, slopes, pieces)
    layers = _views(params, sizes, pieces)
    grads = np.zeros_like(params)
    glayers = _views(grads, sizes, pieces)
    gammas, runs, _, _ = norm_layout(sizes, norm, pieces)
    alphas, n_params = prelu_layout(sizes, acts, norm, pieces)
    if len(params) != n_params:
        raise ValueError(f"params has {len(params)} elements, the layout of these layers {n_params}")

    def bn(buf, l, k):  # gamma (k = 0) or beta (k = 1) of layer l's BatchNorm in a flat buffer
        n = sizes[l + 1]
        return buf[gammas[l] + k * n:gammas[l] + (k + 1) * n]

    def alpha(buf, l):  # layer l's PReLU slopes in a flat buffer
        return buf[alphas[l]:alphas[l] + sizes[l + 1]]

    lr, mu, beta1, beta2, eps, weight_decay, l2, l1, loss_eps, _ = (float(h) for h in hyper[:N_HYPER])
    total, correct, updates, value = 0.0, 0, 0, 0.0
    for batch, start in enumerate(range(0, len(order), batch_size)):
        idx = order[start:start + batch_size]
        xb, yb = x[idx], y[idx]
        zs, acts_out, masks, normed, winners, outs = [], [], [], [], [], [xb]
        for l, (w, b) in enumerate(layers):
            z = _dense.dense_forward(outs[-1], w, b)
            if pieces[l] > 1:
                z, won = _act.maxout(z, int(pieces[l]))
                winners.append(won)
            else:
                winners.append(None)
            cache = None
            if gammas[l] >= 0:
                n = sizes[l + 1]
                rmean, rvar = running[runs[l]:runs[l] + n], running[runs[l] + n:runs[l] + 2 * n]
                z, xhat, inv_std = _norm.batchnorm_forward_train(z, bn(params, l, 0), bn(params, l, 1), rmean,
                                                                 rvar, float(norm[l, 0]), float(norm[l, 1]))
                cache = (xhat, inv_std)
            normed.append(cache)
            if acts[l] == SOFTMAX:
                a = softmax(z)
            elif acts[l] == LEAKY_RELU:
                a = _act.leaky_relu(z, float(slopes[l]))
            elif acts[l] == PRELU:
                a = _act.prelu(z, alpha(params, l))
            else:
                a = _FORWARD[int(acts[l])](z)
            zs.append(z)
            acts_out.append(a)
            mask = None
            if drop[l] > 0:
                a, mask = _dropout.dropout_forward(a, float(drop[l]), int(seeds[batch, l]))
            masks.append(mask)
            outs.append(a)
        value, delta = _output_loss_and_delta(zs[-1], outs[-1], yb, int(acts[-1]), loss, loss_eps)
        if l2:
            value += l2 / 2 * sum(_optim.sum_squares(w.reshape(-1)) for w, _ in layers)
        if l1:
            value += l1 * sum(_optim.sum_abs(w.reshape(-1)) for w, _ in layers)
        if not math.isfinite(value):
            break
        total += value * len(idx)
        correct += _correct(outs[-1], yb)
        for l in range(n_layers - 1, -1, -1):
            gw, gb = _dense.dense_backward_params(outs[l], delta)
            glayers[l][0][...] = gw
            glayers[l][1][...] = gb
            if l2:
                _optim.add_l2_grad(glayers[l][0], layers[l][0], l2)
            if l1:
                _optim.add_l1_grad(glayers[l][0], layers[l][0], l1)
            if l > 0:
                da = _dense.dense_backward_input(delta, layers[l][0])
                if masks[l - 1] is not None:
                    da = _dropout.dropout_backward(da, masks[l - 1])
                if acts[l - 1] == LEAKY_RELU:
                    delta = _act.leaky_relu_backward(zs[l - 1], acts_out[l - 1], da, float(slopes[l - 1]))
                elif acts[l - 1] == PRELU:
                    delta, alpha(grads, l - 1)[...] = _act.prelu_backward(zs[l - 1], alpha(params, l - 1), da)
                else:
                    delta = _BACKWARD[int(acts[l - 1])](zs[l - 1], acts_out[l - 1], da)
                if winners[l - 1] is not None:
                    delta = _act.maxout_backward(delta, winners[l - 1], int(pieces[l - 1]))
                if normed[l - 1] is not None:
                    xhat, inv_std = normed[l - 1]
                    delta, bn(grads, l - 1, 0)[...], bn(grads, l - 1, 1)[...] = _norm.batchnorm_backward(
                        delta, xhat, bn(params, l - 1, 0), inv_std)
        step += 1
        updates += 1
        if opt == SGD:
            _optim.sgd_step(params, grads, lr, weight_decay)
        elif opt in (MOMENTUM, NESTEROV):
            _optim.momentum_step(params, grads, state[0], lr, mu, weight_decay, opt == NESTEROV)
        else:
            _optim.adam_step(params, grads, state[0], state[1], lr, beta1, beta2, eps, weight_decay, step)
    return total, correct, updates, value
