"""One whole training epoch of a stack of Dense layers in one call: every mini-batch, forward, backward, update.

This is the meaning of the fused kernel; the numba and cython backends do the same arithmetic without
Python per batch and without allocation inside the loop. It is composed of the per-layer reference kernels
(dense, activations, softmax, losses, optim, dropout, norm, augment), so one epoch here equals the step-by-step
path of ``Sequential.fit`` (same batches, same updates, same reported loss and accuracy).

Layers. Layer l is a Dense product with ``sizes[l + 1] * pieces[l]`` columns plus its bias; with
``pieces[l]`` = k > 1 it is a Maxout layer, whose ``sizes[l + 1]`` units take the max over each group of k
adjacent columns (kernels/reference/activations.py's ``maxout``). Then, in hidden layers, optionally a
BatchNorm over the units (training mode), then the activation ``acts[l]``, then, in hidden layers,
optionally inverted dropout. The output layer has no BatchNorm, no dropout and no PReLU; SOFTMAX is only
allowed there; every other activation is allowed anywhere.

The loss (codes below) is a weighted mean over each batch's rows, sum_i w_i C_i / W (kernels/reference/
losses.py; w_i = 1 and W = n without ``weights``). BCE after a SIGMOID output and NLL after a SOFTMAX
output (and POISSON after an EXP output) backpropagate their fused delta w (a - y) / W; every other pairing takes the loss's gradient with
respect to the output and the output activation's backward pass (softmax's Jacobian included).

Flat parameter layout (``param_layout``): for layer l = 0 .. L-1 with ``sizes[l]`` inputs and
``w = sizes[l+1] * pieces[l]`` product columns, the weights W_l (sizes[l], w) row-major, then the bias b_l
(w,), back to back in one 1-D buffer ``params``, followed by the BatchNorm layers' gamma and beta
(``norm_layout``, sizes[l + 1] each), then the PReLU layers' slopes alpha (``prelu_layout``): P elements in
all. Optimizer state is a 2-D (k, P) array in the same layout, k = ``STATE_ROWS[opt]``: the momentum
buffer; Adam's / AdamW's m then v; Adagrad's sum; RMSprop's square average; Adadelta's square average then
accumulated delta.

Codes, the slots of ``hyper`` and ``control``, the layout rows and the limits are kernels/constants.py's
(re-exported here). ``weight_decay`` is the optimizer's (torch: added to the gradient of every parameter,
biases too; AdamW shrinks the parameter instead); ``l2`` and ``l1`` are penalties on weights only, added to
the weight gradient before the step as ``add_l2_grad`` then ``add_l1_grad`` do (g += l2 * W,
g += l1 * sign(W)): the objective is C0 + l2/2 ||W||^2 + l1 ||W||_1. ``clip_norm`` > 0 then scales every
gradient by clip_norm / (norm + 1e-6) when their global norm (of all parameters' gradients, penalties
included) exceeds it, as torch.nn.utils.clip_grad_norm_. ``loss_eps`` is the clipping of BCE, NLL and POISSON.
``flush_denormals`` != 0 lets the compiled backends flush subnormal floats to zero during the call (x86
FTZ/DAZ, restored afterwards): a speed option, as subnormal arithmetic is slow; results then differ from
this reference, which never flushes, only where values fall below the smallest normal float (1.2e-38 in
float32). Unused entries are ignored.

Control (``control``, int64 (CONTROL_SIZE,), optional): the caller may set ``control[STOP]`` while the
epoch runs (another thread: the compiled backends release the GIL); the epoch then ends after the batch
under way, which is applied whole, so parameters and optimizer state stay consistent. After every applied
batch ``control[DONE]`` holds the number of batches applied so far (progress), and at the end
``control[STATUS]`` says why it ended: STATUS_DONE, STATUS_LOSS (a non-finite batch objective),
STATUS_NORM (a non-finite gradient norm, with clip_norm) or STATUS_STOPPED.

Threads (compiled backends; ``n_threads`` is ignored here). With ``n_threads`` = T > 1 every thread runs
the whole epoch and takes a share of each mini-batch's work: thread t owns a contiguous range of the
units of every layer width (``split``: near n t / T, on multiples of ALIGN = 16 so that shares start on
cache-line boundaries; ``thread_shares`` tabulates them). Forward, thread t computes its own columns of
every layer's product (a Maxout layer's k columns per unit it owns), bias, maxout, batch norm, activation
and dropout, and the threads meet at a barrier after each layer (the next layer needs all of them).
Every thread then computes the whole output layer's activation, loss and delta (a few hundred values) so
that no barrier is needed there. Backward, layer 0's weights are split by columns (the same columns as
forward, so no other thread ever touches them) and every deeper layer's by rows (input units: the
thread's own units of the layer below, whose deltas it then computes through dropout, activation, batch
norm and maxout); the threads meet again only where a layer's full delta is needed below it (networks of
3+ layers), to sum the penalties' values and the gradients' squared norm (with clip_norm), and after an
augmented batch is written (each thread transforms its share of its rows). Each thread updates only the
parameters it owns (``epoch_ranges``), and keeps those no other thread reads (its columns of W_0, its
share of every bias, BatchNorm parameter and PReLU slope), their gradients and all its optimizer state in
its own copy during the epoch: threads writing to one cache line would stall each other at every step.
The arithmetic of every value is that of one thread, so results differ from T = 1 only where BLAS rounds
a block of a product differently from the whole product. Threads share one workspace of
``shared_size(...)`` elements (``epoch_layout``). A stop request is read by the last thread to arrive at a
barrier and published in ``control[DECIDED]``, so that every thread ends the epoch after the same batch.
"""
import math

import numpy as np

from ..constants import *  # noqa: F401,F403 (the codes, slots, layout rows and limits; re-exported)
from . import activations as _act
from . import augment as _augment
from . import dense as _dense
from . import dropout as _dropout
from . import losses as _loss
from . import norm as _norm
from . import optim as _optim
from .softmax import softmax, softmax_backward


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


def check_options(sizes, acts, drop, norm, slopes, pieces, loss=QUADRATIC, opt=SGD):
    """Raise ValueError unless the codes and per-layer options are ones ``train_epoch`` supports: one entry
    per layer, known codes, pieces >= 1, SOFTMAX only on the output layer, LeakyReLU slopes >= 0 (the
    compiled backends take its derivative from its output), no batch norm, dropout or PReLU on the output
    (its learned slopes would be read by every thread while their owner updates them)."""
    n_layers = len(sizes) - 1
    if any(len(a) != n_layers for a in (acts, drop, norm, slopes, pieces)):
        raise ValueError("acts, drop, norm, slopes and pieces must hold one entry per layer")
    if not (0 <= int(loss) < N_LOSSES and 0 <= int(opt) < N_OPTS and all(0 <= int(a) < N_ACTS for a in acts)):
        raise ValueError(f"unknown loss {loss}, optimizer {opt} or activation codes {list(acts)}")
    on_output = [what for what, found in (("dropout", drop[-1] != 0), ("batch norm", norm[-1][1] > 0),
                                          ("PReLU", int(acts[-1]) == PRELU)) if found]
    if on_output:
        raise ValueError(f"{' and '.join(on_output)} on the output layer: not supported by the fused epoch")
    if any(int(a) == SOFTMAX for a in acts[:-1]):
        raise ValueError("softmax before the output layer: not supported by the fused epoch")
    if any(int(k) < 1 for k in pieces):
        raise ValueError("pieces must be >= 1")
    if any(int(a) == LEAKY_RELU and not s >= 0 for a, s in zip(acts, slopes)):
        raise ValueError("a LeakyReLU slope below 0: not supported by the fused epoch")


def check_batches(n_rows, batch_size, norm):
    """The one home of the rule that training-mode BatchNorm needs batches of 2+ rows: ValueError when a
    layer has a batch norm (norm: (L, 2) rows, eps > 0) and a batch of ``n_rows`` would leave one row."""
    if norm is not None and any(row[1] > 0 for row in norm) and (batch_size == 1 or n_rows % batch_size == 1):
        raise ValueError(
            f"BatchNorm needs at least 2 samples per batch in training, but batch_size={batch_size} with "
            f"{n_rows} samples leaves a batch of 1; choose another batch_size"
        )


def split(n, t, n_threads):
    """Start of thread t's share of n units (``t = n_threads`` gives n): near n t / T, on a multiple of ALIGN.

    Over two threads 30 units split as 16 + 14, 100 as 48 + 52, 512 as 256 + 256, and 10 as 0 + 10 (a
    layer that narrow is not worth sharing).
    """
    if t >= n_threads:
        return n
    return min(n, ALIGN * ((n * t + ALIGN // 2 * n_threads) // (ALIGN * n_threads)))


def thread_shares(sizes, n_threads):
    """int64 (n_threads + 1, L + 1): row t holds where thread t's share of every width starts (``split``),
    so thread t owns units shares[t, w] .. shares[t + 1, w] of width w."""
    return np.array([[split(int(s), t, n_threads) for s in sizes] for t in range(n_threads + 1)], dtype=np.int64)


def _pad(n):
    return (int(n) + ALIGN - 1) // ALIGN * ALIGN


def epoch_layout(sizes, batch_size, acts=None, drop=None, norm=None, pieces=None, augment=False):
    """Every offset the compiled workers use, as one int64 table (N_LAYOUT, max(L + 1, 3)), column l for
    layer l (row LAY_LD: column w for width w = 0 .. L), made once per set of options and kept
    (kernels/workers.py, ``_epoch_tables``).

    Parameters: LAY_W, LAY_B layer l's weight and bias offsets in ``params`` and LAY_WIDTH its product
    columns (``param_layout``); LAY_GAMMA, LAY_RUNNING (``norm_layout``) and LAY_ALPHA (``prelu_layout``),
    -1 where a layer has none. The threads' shared workspace, offsets from its first 64-byte boundary:
    LAY_LD the row length of width w's values (sizes[0] for the input, else padded to ALIGN elements, so
    that shares on multiples of ALIGN never share a cache line), LAY_LDM a Maxout layer's padded product
    width; LAY_Z every layer's output (nb, LD[l+1]); LAY_D the hidden deltas D_l (nb, LD[l]), l >= 1; after
    a dropout, LAY_DROP: the activations before it (for f') then the mask; after a batch norm, LAY_NORM: its
    normalized values (nb, LD[l+1]) then 1/std (LD[l+1]); before a PReLU, LAY_PRELU: its input; a Maxout
    layer's product before the max, LAY_MAX (nb, LDM[l]); with ``augment``, LAY_AUG (column 0): two
    buffers of a batch's transformed rows (nb, sizes[0]), for even and odd batches (a thread may write the
    next batch's rows while another still reads this batch's: no barrier separates them). LAY_TOTAL: (P, R, workspace elements) in columns
    TOTAL_PARAMS, TOTAL_RUNNING, TOTAL_SHARED.
    """
    sizes = [int(s) for s in sizes]
    n_layers = len(sizes) - 1
    drop, _, norm, _, pieces = layer_options(n_layers, drop, None, norm, None, pieces)
    acts = np.zeros(n_layers, np.int64) if acts is None else acts
    batch_size = int(batch_size)
    lay = np.full((N_LAYOUT, max(n_layers + 1, 3)), -1, dtype=np.int64)
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
    if augment:
        take(LAY_AUG, 0, 2 * batch_size * sizes[0])
    lay[LAY_TOTAL, :3] = n_params, n_running, _pad(at)
    return lay


def shared_size(sizes, batch_size, drop=None, norm=None, acts=None, pieces=None, augment=False):
    """Elements of the threads' shared workspace (``epoch_layout``), and ALIGN more to start it on a 64-byte
    boundary."""
    return int(epoch_layout(sizes, batch_size, acts, drop, norm, pieces, augment)[LAY_TOTAL, TOTAL_SHARED]) + ALIGN


def epoch_ranges(sizes, layout, n_threads):
    """What each thread owns of the flat parameters: int64 (n_threads, R, N_RANGE), one row per block
    (R_LO, R_ROWS, R_WIDTH, R_STRIDE, R_PRIVATE, R_WEIGHT; empty blocks have R_ROWS 0).

    Thread t owns, of every layer l: the product columns of its units (k per unit for a Maxout layer) of
    W_0 (kept in its private copy) or, for l >= 1, the rows of W_l of its units of width l (updated in
    place: other threads read them); its columns of b_l, its units of gamma and beta and of the PReLU
    slopes (private). Its optimizer state is private for all of them.
    """
    n_layers = len(sizes) - 1
    shares = thread_shares(sizes, n_threads)
    table = np.zeros((n_threads, 4 * n_layers, N_RANGE), dtype=np.int64)
    for t in range(n_threads):
        rows = []
        for l in range(n_layers):
            width, units = int(layout[LAY_WIDTH, l]), int(sizes[l + 1])
            k = width // units
            u0, u1 = int(shares[t, l + 1]), int(shares[t + 1, l + 1])
            if l == 0:
                rows.append((int(layout[LAY_W, 0]) + k * u0, int(sizes[0]), k * (u1 - u0), width, 1, 1))
            else:
                r0, r1 = int(shares[t, l]), int(shares[t + 1, l])
                rows.append((int(layout[LAY_W, l]) + r0 * width, 1, (r1 - r0) * width, 0, 0, 1))
            rows.append((int(layout[LAY_B, l]) + k * u0, 1, k * (u1 - u0), 0, 1, 0))
            if layout[LAY_GAMMA, l] >= 0:
                rows.append((int(layout[LAY_GAMMA, l]) + u0, 2, u1 - u0, units, 1, 0))
            if layout[LAY_ALPHA, l] >= 0:
                rows.append((int(layout[LAY_ALPHA, l]) + u0, 1, u1 - u0, 0, 1, 0))
        table[t, :len(rows)] = rows
    table[:, :, R_ROWS] *= table[:, :, R_WIDTH] > 0  # an empty share is no block
    return table


def _views(buf, sizes, pieces):
    """Per-layer (W, b) views into a flat buffer laid out by ``param_layout``."""
    offsets, _ = param_layout(sizes, pieces)
    out = []
    for l, w in enumerate(widths(sizes, pieces)):
        w0, b0 = offsets[l]
        out.append((buf[w0:b0].reshape(sizes[l], w), buf[b0:b0 + w]))
    return out


def _correct(a, y):
    """Rows whose prediction matches the target: argmax (first on ties), or a > 0.5 for one column."""
    if a.shape[1] == 1:
        return int(np.count_nonzero((a[:, 0] > 0.5) == (y[:, 0] > 0.5)))
    return int(np.count_nonzero(np.argmax(a, axis=1) == np.argmax(y, axis=1)))


def _loss_value_and_grad(a, y, w, loss, eps):
    """The batch's weighted mean data loss (float) and its gradient with respect to the outputs a."""
    if loss == NLL:
        labels = np.argmax(y, axis=1)
        return _loss.nll_loss(a, labels, eps, w), _loss.nll_grad(a, labels, eps, w)
    if loss == BCE:
        return _loss.bce_loss(a, y, eps, w), _loss.bce_grad(a, y, eps, w)
    if loss == MSE:
        return _loss.mse_loss(a, y, w), _loss.mse_grad(a, y, w)
    if loss == POISSON:
        return _loss.poisson_loss(a, y, eps, w), _loss.poisson_grad(a, y, eps, w)
    return _loss.quadratic_loss(a, y, w), _loss.quadratic_grad(a, y, w)


def _fused_delta(a, y, w, loss, out_act):
    """dC/dz of a sigmoid + BCE, softmax + NLL or exp + POISSON output from its output a, or None for other
    pairings."""
    if loss == BCE and out_act == SIGMOID:
        return _loss.sigmoid_bce_delta(a, y, w)
    if loss == POISSON and out_act == EXP:
        return _loss.exp_poisson_delta(a, y, w)
    if loss == NLL and out_act == SOFTMAX:
        return _loss.softmax_nll_delta(a, np.argmax(y, axis=1), w)
    return None


def _step(opt, params, grads, state, h, step):
    """One optimizer step of every parameter (the flat buffers; torch.optim's rules)."""
    lr, wd = h[LR], h[WEIGHT_DECAY]
    if opt == SGD:
        _optim.sgd_step(params, grads, lr, wd)
    elif opt in (MOMENTUM, NESTEROV):
        _optim.momentum_step(params, grads, state[0], lr, h[MU], wd, opt == NESTEROV)
    elif opt == ADAM:
        _optim.adam_step(params, grads, state[0], state[1], lr, h[BETA1], h[BETA2], h[EPS], wd, step)
    elif opt == ADAMW:
        _optim.adamw_step(params, grads, state[0], state[1], lr, h[BETA1], h[BETA2], h[EPS], wd, step)
    elif opt == ADAGRAD:
        _optim.adagrad_step(params, grads, state[0], lr, h[LR_DECAY], h[EPS], wd, step)
    elif opt == RMSPROP:
        _optim.rmsprop_step(params, grads, state[0], lr, h[ALPHA], h[EPS], wd)
    else:
        _optim.adadelta_step(params, grads, state[0], state[1], lr, h[RHO], h[EPS], wd)


def train_epoch(x, y, order, params, state, sizes, acts, loss, opt, hyper, batch_size, step, gemm_min, n_threads=1,
                drop=None, seeds=None, norm=None, running=None, slopes=None, pieces=None, weights=None,
                augment=None, control=None, sparse=None):
    """Train one epoch in place; return ``(objective_sum, n_correct, n_updates, last_objective)``.

    x: (n, sizes[0]) float32/float64; y: (n, sizes[-1]) targets of the same dtype (one-hot for NLL);
    order: int64 (m,) row indices, mini-batches are order[k:k + batch_size] (the last one may be short);
    params: (P,) flat parameters, updated in place; state: (k, P) optimizer state, updated in place;
    sizes: int64 (L + 1,) layer widths; acts: int64 (L,) activation codes; loss, opt: codes;
    hyper: float64 (N_HYPER,) hyperparameters (see the module docstring); batch_size: int >= 1;
    step: number of optimizer updates done before this call (Adam's bias correction uses step + 1, ...);
    gemm_min: compiled backends use BLAS for products of at least this many multiply-adds and loops below
    it (a speed choice only; ignored here); n_threads: int >= 1, threads the compiled backends split each
    batch across (see "Threads" in the module docstring; ignored here).
    drop: float64 (L,) or None: the probability of inverted dropout (kernels/reference/dropout.py) after
    layer l's activation, 0 for none; the output layer's must be 0. seeds: int64 (ceil(m / batch_size), L),
    0 .. 2**63 - 1: the dropout seed of every batch and layer (read where drop > 0). A layer's mask covers
    the batch's (nb, sizes[l + 1]) activations, element (i, j) drawn at counter i * sizes[l + 1] + j, as
    ``dropout_forward`` draws it: the masks of fit's step-by-step path when the seeds are the ones its
    Dropout layers would draw.
    norm: float64 (L, 2) or None: (momentum, eps) of a BatchNorm (kernels/reference/norm.py, training
    mode) between layer l's units (after a Maxout's max) and its activation where eps > 0 (hidden layers
    only, batches of 2+ rows); its gamma and beta then sit in ``params`` after the Dense parameters and its
    running statistics in ``running`` ((R,), updated in place), as ``norm_layout`` places them.
    slopes: float64 (L,) or None: LeakyReLU's slope (>= 0) of each layer whose activation is LEAKY_RELU.
    pieces: int64 (L,) or None: k > 1 makes layer l a Maxout layer of k pieces; 1 elsewhere. PReLU layers
    (acts[l] == PRELU) find their alpha in ``params`` (``prelu_layout``).
    weights: (n,) or None: non-negative per-row sample weights of the parameter dtype (see the losses).
    augment: None or (side, table): the batch's rows are images (side, side) transformed by
    ``augment_images`` before layer 0, row k of ``order`` with the float64 parameters table[k] = (dx, dy,
    angle). control: int64 (CONTROL_SIZE,) or None (see the module docstring). sparse: None, or x as the
    CSR arrays (data, indices, indptr) of an (n, sizes[0]) matrix (kernels/reference/sparse.py; x is then
    not read): layer 0 multiplies the batch's stored values only (no augmentation then).

    Returns, as Python numbers: ``objective_sum`` (float), the sum over the batches of the batch's weight
    W (its row count without weights) times (mean data loss + l2/2 ||W||^2 + l1 ||W||_1) at the parameters
    the batch saw; ``n_correct`` (int), the rows classified right before their update (see ``_correct``;
    meaningless unless y holds classes); ``n_updates`` (int), the number of batches applied:
    ceil(m / batch_size), unless a batch's objective (or, with clip_norm, its gradient norm) was NaN or
    infinite, or a stop was asked for. A non-finite batch (0-based index ``n_updates``) is not applied, not
    counted, and the epoch stops there; ``last_objective`` (float) is the objective of the last batch
    evaluated, so the non-finite value in that case (the gradient norm for STATUS_NORM). The caller adds
    ``n_updates`` to ``step``.
    """
    del gemm_min, n_threads
    sizes = [int(s) for s in sizes]
    n_layers = len(sizes) - 1
    drop, seeds, norm, slopes, pieces = layer_options(n_layers, drop, seeds, norm, slopes, pieces)
    check_options(sizes, acts, drop, norm, slopes, pieces, loss, opt)
    check_batches(len(order), batch_size, norm)
    layers = _views(params, sizes, pieces)
    grads = np.zeros_like(params)
    glayers = _views(grads, sizes, pieces)
    gammas, runs, _, _ = norm_layout(sizes, norm, pieces)
    alphas, n_params = prelu_layout(sizes, acts, norm, pieces)
    if len(params) != n_params:
        raise ValueError(f"params has {len(params)} elements, the layout of these layers {n_params}")
    if weights is not None:
        weights = np.asarray(weights, dtype=params.dtype)
    if sparse is not None:
        from . import sparse as _sparse  # (scipy.sparse: imported only for sparse input)

        if augment is not None:
            raise ValueError("augmentation needs dense rows (images), not a sparse x")
        x = _sparse.as_csr(*sparse, sizes[0])
    h = [float(v) for v in hyper[:N_HYPER]]
    l2, l1, clip, out_act = h[L2], h[L1], h[CLIP_NORM], int(acts[-1])

    def bn(buf, l, k):  # gamma (k = 0) or beta (k = 1) of layer l's BatchNorm in a flat buffer
        n = sizes[l + 1]
        return buf[gammas[l] + k * n:gammas[l] + (k + 1) * n]

    def alpha(buf, l):  # layer l's PReLU slopes in a flat buffer
        return buf[alphas[l]:alphas[l] + sizes[l + 1]]

    def activate(l, z):
        if acts[l] == SOFTMAX:
            return softmax(z)
        if acts[l] == LEAKY_RELU:
            return _act.leaky_relu(z, float(slopes[l]))
        if acts[l] == PRELU:
            return _act.prelu(z, alpha(params, l))
        return _act.FORWARD[int(acts[l])](z)

    def through(l, da, cache):
        """dC/d(layer l's product) from dC/d(its output before dropout), through activation, norm, maxout."""
        z, a, winners, normed = cache
        if acts[l] == SOFTMAX:
            d = softmax_backward(z, a, da)
        elif acts[l] == LEAKY_RELU:
            d = _act.leaky_relu_backward(z, a, da, float(slopes[l]))
        elif acts[l] == PRELU:
            d, alpha(grads, l)[...] = _act.prelu_backward(z, alpha(params, l), da)
        else:
            d = _act.BACKWARD[int(acts[l])](z, a, da)
        if normed is not None:
            xhat, inv_std = normed
            d, bn(grads, l, 0)[...], bn(grads, l, 1)[...] = _norm.batchnorm_backward(d, xhat, bn(params, l, 0), inv_std)
        if winners is not None:
            d = _act.maxout_backward(d, winners, int(pieces[l]))
        return d

    total, correct, updates, value, status = 0.0, 0, 0, 0.0, STATUS_DONE
    for batch, start in enumerate(range(0, len(order), batch_size)):
        if control is not None and control[STOP]:
            status = STATUS_STOPPED
            break
        idx = order[start:start + batch_size]
        xb, yb = x[idx], y[idx]
        wb = None if weights is None else weights[idx]
        if augment is not None:
            side, table = augment
            t = table[start:start + len(idx)]
            xb = _augment.augment_images(xb, int(side), t[:, 0].copy(), t[:, 1].copy(), t[:, 2].copy())
        caches, masks, outs = [], [], [xb]
        for l, (w, b) in enumerate(layers):
            z = _sparse.dense_forward(outs[-1], w, b) if l == 0 and sparse is not None else \
                _dense.dense_forward(outs[-1], w, b)
            winners = normed = None
            if pieces[l] > 1:
                z, winners = _act.maxout(z, int(pieces[l]))
            if gammas[l] >= 0:
                n = sizes[l + 1]
                rmean, rvar = running[runs[l]:runs[l] + n], running[runs[l] + n:runs[l] + 2 * n]
                z, xhat, inv_std = _norm.batchnorm_forward_train(z, bn(params, l, 0), bn(params, l, 1), rmean,
                                                                 rvar, float(norm[l, 0]), float(norm[l, 1]))
                normed = (xhat, inv_std)
            a = activate(l, z)
            caches.append((z, a, winners, normed))
            mask = None
            if drop[l] > 0:
                a, mask = _dropout.dropout_forward(a, float(drop[l]), int(seeds[batch, l]))
            masks.append(mask)
            outs.append(a)
        a = outs[-1]
        value, g = _loss_value_and_grad(a, yb, wb, loss, h[LOSS_EPS])
        if l2:
            value += l2 / 2 * sum(_optim.sum_squares(w.reshape(-1)) for w, _ in layers)
        if l1:
            value += l1 * sum(_optim.sum_abs(w.reshape(-1)) for w, _ in layers)
        if not math.isfinite(value):
            status = STATUS_LOSS
            break
        delta = _fused_delta(a, yb, wb, loss, out_act)
        if delta is None:
            delta = through(n_layers - 1, g, caches[-1])
        elif pieces[-1] > 1:
            delta = _act.maxout_backward(delta, caches[-1][2], int(pieces[-1]))
        for l in range(n_layers - 1, -1, -1):
            gw, gb = _sparse.dense_backward_params(outs[l], delta) if l == 0 and sparse is not None else \
                _dense.dense_backward_params(outs[l], delta)
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
                delta = through(l - 1, da, caches[l - 1])
        if clip > 0:
            grad_norm = math.sqrt(_optim.sum_squares(grads))
            if not math.isfinite(grad_norm):
                value, status = grad_norm, STATUS_NORM
                break
            if grad_norm > clip:
                _optim.scale_inplace(grads, clip / (grad_norm + CLIP_EPS))
        step += 1
        updates += 1
        _step(opt, params, grads, state, h, step)
        total += value * (len(idx) if wb is None else float(np.sum(wb, dtype=np.float64)))
        correct += _correct(a, yb)
        if control is not None:
            control[DONE] = updates
    if control is not None:
        control[STATUS] = status
    return total, correct, updates, value
