"""One whole training epoch of a stack of Dense layers in one compiled call (Numba).

Same signature, layout, codes and arithmetic as kernels/reference/fused.py (read its docstring, including
"Threads" and "Control"), and the same algorithm as kernels/cython/fused.pyx. ``train_epoch`` makes the
threads' shared workspace and tables (kernels/workers.py) and runs ``train_epoch_worker`` on
``n_threads`` threads; the worker is compiled with ``nogil=True``, so the threads run in parallel.

The worker is a driver over this backend's own block kernels, each written once and shared with the
public per-layer kernels: products (kernels/numba/dense.py), ``act_block`` and the other activation
blocks, ``bn_forward_block``, ``dropout_block``, ``output_block`` (the output layer, its loss and delta),
``step_block`` (every optimizer), ``penalize_block`` and ``sumsq_block``. Per batch: gather the rows (or
their addresses), augment this thread's share of them, forward each layer on this thread's units,
the output layer whole, backward each layer, the penalties' and the gradient norm's sums across
threads, then each thread's update of what it owns (``epoch_ranges``). Each worker allocates its own
buffers at its top (targets, weights, the output layer's values and delta, its copies of the parameters,
gradient and optimizer state); the loop over mini-batches allocates nothing.

Products of at least ``gemm_min`` multiply-adds go, for batches up to SMALL_BATCH rows and weight blocks
up to SMALL_PANEL_BYTES on a CPU with AVX-512, to the hand-written products (layer 0 reads the batch's rows in place through their addresses),
else to BLAS; smaller ones run as loops. Plain SGD (no weight decay, penalties or clipping) folds the
weight update into the gradient product, W += -lr * A^T delta, saving a pass over the weights per step; it
then differs from the reference only in BLAS's rounding of that expression. With FLUSH_DENORMALS set,
subnormal floats are flushed to zero (x86 MXCSR FTZ/DAZ) in each worker's thread for the duration of the
call. Note: Numba's cache does not notice when a module that a cached function calls into changes
(numba #8926): use a fresh ``NUMBA_CACHE_DIR`` after editing any of this backend's modules.
"""
import numpy as np
from numba import njit

from .. import workers as _workers
from ..constants import (ALIGN, CLIP_EPS, CLIP_NORM, DONE, FLUSH_DENORMALS, IDENTITY, L1, L2, LAY_ALPHA,
                         LAY_AUG, LAY_B, LAY_D, LAY_DROP, LAY_GAMMA, LAY_LD, LAY_LDM, LAY_MAX, LAY_NORM, LAY_PRELU,
                         LAY_RUNNING, LAY_TOTAL, LAY_W, LAY_WIDTH, LAY_Z, LOSS_EPS, LR, N_LAYOUT, N_RANGE,
                         PREFETCH_BYTES, PREFETCH_L1_BYTES, PRELU, R_LO, R_PRIVATE, R_ROWS, R_STRIDE, R_WEIGHT, R_WIDTH, SGD,
                         STATUS, STATUS_DONE, STATUS_LOSS, STATUS_NORM, STATUS_STOPPED,
                         TOTAL_PARAMS, TOTAL_RUNNING, TOTAL_SHARED, TRANSPOSE_BYTES, WEIGHT_DECAY)
from ._small_gemm import set_row_pointers, small_rows
from ._sync import (aborted, barrier, get_mxcsr, keep_alive, prefetch_rows, publish, set_mxcsr, stop_decided,
                    unowned)
from .activations import act_backward_block, act_block, maxout_backward_block, maxout_block, prelu_backward_block
from .activations import prelu_block
from .augment import augment_image
from .dense import hand_written, product, sgd_product
from .dropout import dropout_block, mask_block
from .losses import output_block
from .norm import bn_backward_block, bn_forward_block, column_sums
from .optim import N_STEP, penalize_block, step_block, step_constants, sumsq_block
from .sparse import csr_rows_backward_params, csr_rows_forward

_FTZ_DAZ = np.uint32(0x8040)  # MXCSR bits: flush-to-zero (results) and denormals-are-zero (inputs)


@njit(cache=True, error_model="numpy")
def _check(tid, n_threads, control, partials, shared, layout, ranges, shares, x, y, order, params, state, sizes,
           acts, batch_size, drop, seeds, norm, running, slopes, pieces, weights, aug, xindptr):
    """ValueError for arguments that do not fit together (the Python layer checks the user's before)."""
    n_layers = sizes.shape[0] - 1
    for a in (drop.shape[0], slopes.shape[0], norm.shape[0], pieces.shape[0], acts.shape[0]):
        if a != n_layers:
            raise ValueError("acts, drop, norm, slopes and pieces must hold one entry per layer")
    if layout.shape[0] != N_LAYOUT or layout.shape[1] < n_layers + 1 or ranges.shape[2] != N_RANGE:
        raise ValueError("layout must be epoch_layout(sizes, ...) and ranges epoch_ranges(...)")
    if shared.shape[0] < layout[LAY_TOTAL, TOTAL_SHARED] + ALIGN:
        raise ValueError("the shared workspace is smaller than shared_size(sizes, batch_size, ...)")
    if params.shape[0] != layout[LAY_TOTAL, TOTAL_PARAMS] or running.shape[0] < layout[LAY_TOTAL, TOTAL_RUNNING]:
        raise ValueError("params or running do not match epoch_layout(sizes, ...)")
    n = xindptr.shape[0] - 1 if xindptr.shape[0] else x.shape[0]
    if x.shape[1] != sizes[0] or y.shape[1] != sizes[n_layers] or y.shape[0] != n or (weights.shape[0] and
                                                                                      weights.shape[0] != n):
        raise ValueError("x, y or weights do not match sizes")
    if aug.shape[0] and (aug.shape[0] < order.shape[0] or layout[LAY_AUG, 0] < 0):
        raise ValueError("the augmentation table needs a row per entry of order")
    m = order.shape[0]
    for l in range(n_layers):
        if drop[l] > 0 and (seeds.shape[0] < (m + batch_size - 1) // batch_size or seeds.shape[1] != n_layers):
            raise ValueError("seeds must be (number of batches, layers)")
    if (control.shape[0] <= STATUS or partials.shape[0] < 3 * n_threads or not 0 <= tid < n_threads
            or ranges.shape[0] < n_threads or shares.shape[0] < n_threads + 1):
        raise ValueError("bad thread arguments")


@njit(cache=True, error_model="numpy")
def _gather(x, y, weights, order, start, nb, batch_size, in_place, copy_rows, xrows, xbuf, ybuf, wbuf):
    """The batch's rows of x (their addresses, or a copy, or neither when they are augmented), of y and of
    the weights, asked for as the Cython backend's gather asks for them (rows read in place: all at once
    in a batch over PREFETCH_BYTES, not at all in smaller ones; copied rows, the next batch's, while this
    one computes when they fit). (Element loops: a slice assignment xbuf[...] = x[row] was 3x slower, 30
    ms an epoch at batch 10.)"""
    n_in, n_y, m = x.shape[1], y.shape[1], order.shape[0]
    if in_place:
        set_row_pointers(xrows, x, order, start, nb)
    for i in range(nb):
        row = order[start + i]
        if copy_rows:
            xs = x[row]
            xd = xbuf[i * n_in:(i + 1) * n_in]
            for j in range(n_in):
                xd[j] = xs[j]
        ys = y[row]
        yd = ybuf[i * n_y:(i + 1) * n_y]
        for j in range(n_y):
            yd[j] = ys[j]
        if wbuf.shape[0]:
            wbuf[i] = weights[row]
    batch_bytes = batch_size * (n_in + n_y) * x.itemsize
    if in_place:
        if batch_bytes > PREFETCH_BYTES:
            prefetch_rows(x, order, start, start + nb, True)
    elif batch_bytes <= PREFETCH_BYTES and start + nb < m:
        into_l1 = batch_bytes <= PREFETCH_L1_BYTES
        end = min(start + nb + batch_size, m)
        prefetch_rows(x, order, start + nb, end, into_l1)
        prefetch_rows(y, order, start + nb, end, into_l1)


@njit(cache=True, error_model="numpy")
def _augment_rows(tid, n_threads, x, order, start, nb, aug, side, out):
    """This thread's share of the batch's rows, transformed (augment_image) into out (rows of x's width)."""
    n_in = x.shape[1]
    for i in range(nb * tid // n_threads, nb * (tid + 1) // n_threads):
        t = aug[start + i]
        augment_image(x[order[start + i]], side, t[0], t[1], t[2], out[i * n_in:(i + 1) * n_in])


@njit(cache=True, error_model="numpy")
def _forward_layer(l, nb, batch, batch_size, ws, layout, u0, u1, ain, lda, xrows, in_place, params, pq, running,
                   sizes, acts, drop, seeds, norm, slopes, pieces, gemm_min, scratch, xdata, xindices, xindptr, rows):
    """This thread's units u0 .. u1 of layer l: product, bias, then (hidden layers) maxout, batch norm,
    activation and dropout; the output layer's activation is output_block's."""
    t = pq.dtype.type
    width, k, units, ld = layout[LAY_WIDTH, l], pieces[l], sizes[l + 1], layout[LAY_LD, l + 1]
    c0, c1 = k * u0, k * u1
    z = ws[layout[LAY_Z, l]:]
    zp, ldp = (ws[layout[LAY_MAX, l]:], layout[LAY_LDM, l]) if k > 1 else (z, ld)
    w = (pq if l == 0 else params)[layout[LAY_W, l] + c0:]
    if l == 0 and in_place:
        small_rows(False, nb, c1 - c0, sizes[0], 1, xrows, w, width, 0, zp[c0:], ldp)
    elif l == 0 and xindptr.shape[0]:  # the batch's stored values times W_0's own columns
        out0 = zp[:nb * ldp].reshape((nb, ldp))
        out0[:, c0:c1] = 0
        csr_rows_forward(xdata, xindices, xindptr, rows, pq[layout[LAY_W, 0]:layout[LAY_B, 0]].reshape((sizes[0], width)),
                         out0, c0, c1)
    else:
        product(False, False, nb, c1 - c0, sizes[l], ain, lda, w, width, zp[c0:], ldp, gemm_min)
    bias = pq[layout[LAY_B, l]:layout[LAY_B, l] + width]
    act, slope = acts[l], t(slopes[l])
    out = ws[layout[LAY_DROP, l]:] if drop[l] > 0 else z  # the activations (before any dropout)
    last = l == sizes.shape[0] - 2
    if k == 1 and layout[LAY_GAMMA, l] < 0 and act != PRELU and not last:  # bias and activation in one pass
        act_block(z, ld, out, ld, nb, c0, c1, act, slope, bias, True)
    else:
        act_block(zp, ldp, zp, ldp, nb, c0, c1, IDENTITY, slope, bias, True)
        if k > 1:
            maxout_block(zp, ldp, z, ld, nb, u0, u1, k, pieces[:0], False)
        if last:
            return
        g0, r0 = layout[LAY_GAMMA, l], layout[LAY_RUNNING, l]
        if g0 >= 0:
            h = ws[layout[LAY_NORM, l]:]
            bn_forward_block(z, ld, z, ld, nb, u0, u1, pq[g0:g0 + units], pq[g0 + units:g0 + 2 * units],
                             running[r0:r0 + units], running[r0 + units:r0 + 2 * units], t(norm[l, 0]),
                             t(norm[l, 1]), h, ld, h[batch_size * ld:], scratch, False)
        if act == PRELU:  # (its input kept for the backward pass)
            zin = ws[layout[LAY_PRELU, l]:]
            act_block(z, ld, zin, ld, nb, u0, u1, IDENTITY, slope, bias, False)
            a0 = layout[LAY_ALPHA, l]
            prelu_block(zin, ld, out, ld, nb, u0, u1, pq[a0:a0 + units])
        else:
            act_block(z, ld, out, ld, nb, u0, u1, act, slope, bias, False)
    if drop[l] > 0:
        dropout_block(out, ld, z, ld, out[batch_size * ld:], ld, nb, u0, u1, units, drop[l], np.uint64(seeds[batch, l]))


@njit(cache=True, error_model="numpy")
def _through(j, nb, r0, r1, nd, batch_size, ws, layout, pq, gq, acts, drop, slopes, pieces):
    """dC/d(layer j's product) on this thread's units r0 .. r1, in place from nd = dC/d(layer j's output):
    through its dropout, activation, batch norm and maxout. Returns the delta's block and row length."""
    ld, units = layout[LAY_LD, j + 1], layout[LAY_WIDTH, j] // pieces[j]
    a = ws[layout[LAY_Z, j]:]
    if drop[j] > 0:  # the mask, then f' at the activations before the dropout
        a = ws[layout[LAY_DROP, j]:]
        mask_block(nd, ld, a[batch_size * ld:], ld, nd, ld, nb, r0, r1)
    if acts[j] == PRELU:
        a0 = layout[LAY_ALPHA, j]
        prelu_backward_block(ws[layout[LAY_PRELU, j]:], ld, nd, ld, nd, ld, nb, r0, r1, pq[a0:a0 + units],
                             gq[a0:a0 + units])
    else:
        act_backward_block(a, ld, nd, ld, nd, ld, nb, r0, r1, acts[j], pq.dtype.type(slopes[j]))
    g0 = layout[LAY_GAMMA, j]
    if g0 >= 0:
        h = ws[layout[LAY_NORM, j]:]
        bn_backward_block(nd, ld, nd, ld, nb, r0, r1, h, ld, pq[g0:g0 + units], h[batch_size * ld:],
                          gq[g0:g0 + units], gq[g0 + units:g0 + 2 * units], False)
    if pieces[j] > 1:  # to the winning product columns, over the kept product
        pre = ws[layout[LAY_MAX, j]:]
        maxout_backward_block(nd, ld, pre, layout[LAY_LDM, j], nb, r0, r1, pieces[j], pre, pieces[:0])
        return pre, layout[LAY_LDM, j]
    return nd, ld


@njit(cache=True, error_model="numpy")
def _transpose_block(a, lda, m, n, t):
    """t (n, m) = a (m, n)^T, t's rows m long."""
    for i in range(m):
        for j in range(n):
            t[j * m + i] = a[i * lda + j]


@njit(cache=True, error_model="numpy")
def _transposed_size(n_layers, layout, own0, own1, itemsize):
    """The largest of this thread's weight blocks of layers 1.. (its rows) that delta W^T copies as W^T for
    the hand-written products (which take no transposed b): up to TRANSPOSE_BYTES."""
    size = 0
    for l in range(1, n_layers):
        block = (own1[l] - own0[l]) * layout[LAY_WIDTH, l]
        if block * itemsize <= TRANSPOSE_BYTES:
            size = max(size, block)
    return size


@njit(cache=True, error_model="numpy")
def _backward_layer(l, nb, batch_size, delta, ldd, ws, layout, own0, own1, ain, lda, xrows, in_place, params, pq,
                    gq, acts, drop, slopes, pieces, gemm_min, fold, lr, xdata, xindices, xindptr, rows, wt):
    """Layer l's gradients from its product's delta: its bias's on this thread's columns; layer 0's weights by
    those columns; a deeper layer's by this thread's rows (input units), whose delta below it then computes
    (before its weights change); wt: room for the transposed weight block (see _transposed_size). Returns the
    next delta's block and row length."""
    width, k = layout[LAY_WIDTH, l], pieces[l]
    c0, c1 = k * own0[l + 1], k * own1[l + 1]
    w0 = layout[LAY_W, l]
    column_sums(delta, ldd, nb, c0, c1, gq[layout[LAY_B, l]:layout[LAY_B, l] + width], False)
    n_in = layout[LAY_LD, 0] if l == 0 else 0
    if l == 0 and in_place:
        small_rows(True, n_in, c1 - c0, nb, -lr if fold else 1, xrows, delta[c0:], ldd, 1 if fold else 0,
                   (pq if fold else gq)[w0 + c0:], width)
    elif l == 0 and xindptr.shape[0]:
        dw = gq[w0:w0 + n_in * width].reshape((n_in, width))
        dw[:, c0:c1] = 0
        csr_rows_backward_params(xdata, xindices, xindptr, rows, delta[:nb * ldd].reshape((nb, ldd)), dw, c0, c1)
    elif l == 0 and fold:
        sgd_product(n_in, c1 - c0, nb, ain, lda, delta[c0:], ldd, pq[w0 + c0:], width, gq[w0 + c0:], lr, gemm_min)
    elif l == 0:
        product(True, False, n_in, c1 - c0, nb, ain, lda, delta[c0:], ldd, gq[w0 + c0:], width, gemm_min)
    else:
        r0, r1, ld = own0[l], own1[l], layout[LAY_LD, l]
        prev = ws[layout[LAY_Z, l - 1]:]
        nd = ws[layout[LAY_D, l]:]
        w = params[w0 + r0 * width:]
        if (r1 - r0) * width <= wt.shape[0] and hand_written(nb, (r1 - r0) * width, params.itemsize):
            _transpose_block(w, width, r1 - r0, width, wt)  # delta W^T as the hand-written NN product's delta W'
            product(False, False, nb, r1 - r0, width, delta, ldd, wt, r1 - r0, nd[r0:], ld, gemm_min)
        else:
            product(False, True, nb, r1 - r0, width, delta, ldd, w, width, nd[r0:], ld, gemm_min)
        if fold:
            sgd_product(r1 - r0, width, nb, prev[r0:], ld, delta, ldd, w, width, gq[w0 + r0 * width:], lr, gemm_min)
        else:
            product(True, False, r1 - r0, width, nb, prev[r0:], ld, delta, ldd, gq[w0 + r0 * width:], width, gemm_min)
        return _through(l - 1, nb, r0, r1, nd, batch_size, ws, layout, pq, gq, acts, drop, slopes, pieces)
    return delta, ldd


@njit(cache=True, error_model="numpy")
def _penalties(mine, params, pq, gq, l2, l1):
    """The penalties' gradients on this thread's weights; their (sum p^2, sum |p|)."""
    t = pq.dtype.type
    squares = absolute = 0.0
    for r in mine:
        if r[R_WEIGHT] and r[R_ROWS]:
            sq, ab = penalize_block(pq if r[R_PRIVATE] else params, gq, r[R_LO], r[R_ROWS], r[R_WIDTH], r[R_STRIDE],
                                    t(l2), t(l1), l2 != 0, l1 != 0)
            squares += sq
            absolute += ab
    return squares, absolute


@njit(cache=True, error_model="numpy")
def _grad_squares(mine, gq):
    """sum g^2 over this thread's parameters (global-norm clipping)."""
    total = 0.0
    for r in mine:
        if r[R_ROWS]:
            total += sumsq_block(gq, r[R_LO], r[R_ROWS], r[R_WIDTH], r[R_STRIDE])
    return total


@njit(cache=True, error_model="numpy")
def _update(mine, opt, params, pq, gq, s0, s1, c, fold):
    """One optimizer step of what this thread owns (with ``fold``, the weights are already updated)."""
    for r in mine:
        if r[R_ROWS] and not (fold and r[R_WEIGHT]):
            step_block(opt, pq if r[R_PRIVATE] else params, gq, s0, s1, r[R_LO], r[R_ROWS], r[R_WIDTH], r[R_STRIDE], c)


@njit(cache=True, error_model="numpy")
def _write_back(mine, params, pq, state, own_state):
    """What this thread owned: its private parameters and its optimizer state, back to the caller's."""
    for r in mine:
        for i in range(r[R_ROWS]):
            lo = r[R_LO] + i * r[R_STRIDE]
            hi = lo + r[R_WIDTH]
            if r[R_PRIVATE]:
                params[lo:hi] = pq[lo:hi]
            for k in range(state.shape[0]):
                state[k, lo:hi] = own_state[k, lo:hi]


@njit(cache=True, nogil=True, error_model="numpy")
def train_epoch_worker(tid, n_threads, control, partials, shared, layout, ranges, shares, x, y, order, params, state,
                       sizes, acts, loss, opt, hyper, batch_size, step, gemm_min, drop, seeds, norm, running, slopes,
                       pieces, weights, aug, side, xdata, xindices, xindptr):
    """Thread ``tid``'s part of one epoch of ``n_threads``; returns what ``train_epoch`` returns.

    control: int64 (CONTROL_SIZE,) (kernels/constants.py); partials: float64 (3 n_threads,), the sums each
    thread contributes; shared: the workspace (``shared_size``); layout, ranges, shares: ``epoch_layout``,
    ``epoch_ranges``, ``thread_shares`` (kernels/reference/fused.py); weights: (n,) or empty; aug: float64
    (m, 3) or empty, side: the images' side; xdata, xindices, xindptr: x as CSR arrays (x then unused), or
    empty; the rest as ``train_epoch``. Every thread must be given the same arrays.
    """
    _check(tid, n_threads, control, partials, shared, layout, ranges, shares, x, y, order, params, state, sizes,
           acts, batch_size, drop, seeds, norm, running, slopes, pieces, weights, aug, xindptr)
    n_layers, m, n_y = sizes.shape[0] - 1, order.shape[0], sizes[-1]
    misalign = shared.ctypes.data % np.uint64(64)  # (uint64 throughout: mixed with int64 it would be float)
    ws = shared[np.int64((np.uint64(64) - misalign) % np.uint64(64)) // shared.itemsize:]
    own0, own1, mine = shares[tid], shares[tid + 1], ranges[tid]
    augmenting, sparse = aug.shape[0] > 0, xindptr.shape[0] > 0
    # Layer 0 reads the batch's rows where they are (through their addresses) when its products are hand-written.
    panel0 = sizes[0] * pieces[0] * (own1[1] - own0[1])
    in_place = hand_written(batch_size, panel0, params.itemsize) and gemm_min <= 0 and not augmenting and not sparse
    dtype = params.dtype
    xbuf = ws[layout[LAY_AUG, 0]:] if augmenting else np.empty(0 if in_place else batch_size * sizes[0], dtype)
    xrows = np.zeros(batch_size, np.int64)
    ybuf, obuf, terms = np.empty(batch_size * n_y, dtype), np.empty(batch_size * n_y, dtype), np.empty(batch_size * n_y)
    dbuf, gbuf = np.empty(batch_size * n_y, dtype), np.empty(batch_size * n_y, dtype)
    wbuf = np.empty(batch_size if weights.shape[0] else 0, dtype)
    k_out = pieces[n_layers - 1]
    routed = np.empty(batch_size * layout[LAY_LDM, n_layers - 1] if k_out > 1 else 0, dtype)
    pq, own_state, gq = params.copy(), state.copy(), np.zeros(max(params.shape[0], 1), dtype)
    s0 = own_state[0] if state.shape[0] > 0 else gq[:0]
    s1 = own_state[1] if state.shape[0] > 1 else gq[:0]
    scratch = np.empty(layout[LAY_LD].max(), dtype)
    wt = np.empty(_transposed_size(n_layers, layout, own0, own1, params.itemsize), dtype)
    c = np.empty(N_STEP, dtype)
    sense = np.zeros(1, np.int64)
    l2, l1, clip = hyper[L2], hyper[L1], hyper[CLIP_NORM]
    penalized = l2 != 0 or l1 != 0
    fold = opt == SGD and hyper[WEIGHT_DECAY] == 0 and not penalized and clip <= 0 and not sparse
    lr = dtype.type(hyper[LR])
    # Every batch takes dozens of slices of these: as views that count no references (unowned), they cost
    # no atomic operations. The arrays allocated here stay alive in ``owners`` until the loop is done.
    owners = (pq, own_state, gq, xbuf, ybuf, obuf, terms, dbuf, gbuf, wbuf, routed, scratch, c, wt)
    ws, params, pq, gq, s0, s1 = unowned(ws), unowned(params), unowned(pq), unowned(gq), unowned(s0), unowned(s1)
    xbuf, ybuf, obuf, terms, dbuf = unowned(xbuf), unowned(ybuf), unowned(obuf), unowned(terms), unowned(dbuf)
    gbuf, wbuf, routed, scratch, c = unowned(gbuf), unowned(wbuf), unowned(routed), unowned(scratch), unowned(c)
    wt = unowned(wt)
    x, y, order, aug, mine = unowned(x), unowned(y), unowned(order), unowned(aug), unowned(mine)
    partials, pieces, running = unowned(partials), unowned(pieces), unowned(running)
    mxcsr = get_mxcsr()
    if hyper[FLUSH_DENORMALS] != 0:  # subnormal moments of dead units made float32 Adam ~15% slower
        set_mxcsr(mxcsr | _FTZ_DAZ)
    total, correct, updates, value, status, batch, start = 0.0, 0, 0, 0.0, STATUS_DONE, 0, 0
    while start < m:
        nb = min(batch_size, m - start)
        _gather(x, y, weights, order, start, nb, batch_size, in_place, not (in_place or augmenting or sparse), xrows,
                xbuf, ybuf, wbuf)
        rows = order[start:start + nb]
        if augmenting:  # (into one of two buffers by the batch's parity, see epoch_layout)
            xbuf = ws[layout[LAY_AUG, 0] + (batch % 2) * batch_size * sizes[0]:]
            _augment_rows(tid, n_threads, x, order, start, nb, aug, side, xbuf)
            if barrier(control, n_threads, sense):
                break
        ain, lda = xbuf, sizes[0]
        for l in range(n_layers):
            _forward_layer(l, nb, batch, batch_size, ws, layout, own0[l + 1], own1[l + 1], ain, lda, xrows, in_place,
                           params, pq, running, sizes, acts, drop, seeds, norm, slopes, pieces, gemm_min, scratch,
                           xdata, xindices, xindptr, rows)
            ain, lda = ws[layout[LAY_Z, l]:], layout[LAY_LD, l + 1]
            if barrier(control, n_threads, sense):
                break
        if aborted(control):
            break
        # The whole output layer in every thread (a few hundred values): no barrier needed after it.
        value, weight, right = output_block(ws[layout[LAY_Z, n_layers - 1]:], layout[LAY_LD, n_layers], obuf, ybuf,
                                            wbuf[:nb] if wbuf.shape[0] else wbuf, nb, n_y, acts[n_layers - 1], loss,
                                            hyper[LOSS_EPS], dtype.type(slopes[n_layers - 1]), dbuf, gbuf, terms)
        if not penalized and not np.isfinite(value):
            status = STATUS_LOSS  # this batch is not applied; the caller reports divergence at batch `updates`
            break
        delta, ldd = dbuf, n_y
        if k_out > 1:  # a Maxout output: its delta to the winning product columns
            ldm = layout[LAY_LDM, n_layers - 1]
            maxout_backward_block(dbuf, n_y, routed, ldm, nb, 0, n_y, k_out, ws[layout[LAY_MAX, n_layers - 1]:],
                                  pieces[:0])
            delta, ldd = routed, ldm
        for l in range(n_layers - 1, -1, -1):
            delta, ldd = _backward_layer(l, nb, batch_size, delta, ldd, ws, layout, own0, own1, xbuf, sizes[0], xrows,
                                         in_place, params, pq, gq, acts, drop, slopes, pieces, gemm_min, fold, lr,
                                         xdata, xindices, xindptr, rows, wt)
            if l >= 2 and barrier(control, n_threads, sense):  # rows of the next layer need all of its delta
                break
        if aborted(control):
            break
        if penalized:
            partials[3 * tid], partials[3 * tid + 1] = _penalties(mine, params, pq, gq, l2, l1)
            if barrier(control, n_threads, sense):
                break
            value += l2 / 2 * partials[0:3 * n_threads:3].sum() + l1 * partials[1:3 * n_threads:3].sum()
            if not np.isfinite(value):
                status = STATUS_LOSS
                break
        factor = 1.0
        if clip > 0:
            partials[3 * tid + 2] = _grad_squares(mine, gq)
            if barrier(control, n_threads, sense):
                break
            grad_norm = np.sqrt(partials[2:3 * n_threads:3].sum())
            if not np.isfinite(grad_norm):
                value, status = grad_norm, STATUS_NORM
                break
            if grad_norm > clip:
                factor = clip / (grad_norm + CLIP_EPS)
        step += 1
        updates += 1
        step_constants(opt, hyper, step, factor, c)
        _update(mine, opt, params, pq, gq, s0, s1, c, fold)
        total += value * weight
        correct += right
        batch += 1
        start += nb
        if tid == 0:
            publish(control, DONE, updates)
        if start < m and stop_decided(control, n_threads):
            status = STATUS_STOPPED
            break
    set_mxcsr(mxcsr)
    _write_back(mine, params, pq, state, own_state)
    keep_alive(owners)
    if tid == 0:
        publish(control, STATUS, status)
    return total, correct, updates, value


@njit(cache=True, error_model="numpy")
def matmul(a, b, out, gemm_min):
    """out = a @ b on C-contiguous 2-D arrays, a (m, k), b (k, n), out (m, n) (bench/fused_epoch_timing.py)."""
    m, k = a.shape
    n = b.shape[1]
    product(False, False, m, n, k, a.ravel(), k, b.ravel(), n, out.ravel(), n, gemm_min)


def constants():
    """The shared constants this backend was compiled with (kernels/constants.py, imported)."""
    from .. import constants as _c

    return _c.constants()


def train_epoch(x, y, order, params, state, sizes, acts, loss, opt, hyper, batch_size, step, gemm_min,
                n_threads=1, drop=None, seeds=None, norm=None, running=None, slopes=None, pieces=None, weights=None,
                augment=None, control=None, sparse=None):
    """Train one epoch in place; return ``(objective_sum, n_correct, n_updates, last_objective)``.

    The same arguments and results as kernels/reference/fused.py's ``train_epoch``; ``n_threads`` > 1
    splits each batch across that many threads (its "Threads").
    """
    return _workers.run_epoch(train_epoch_worker, x, y, order, params, state, sizes, acts, loss, opt, hyper,
                              batch_size, step, gemm_min, n_threads, drop, seeds, norm, running, slopes, pieces,
                              weights, augment, control, sparse)
