"""One whole training epoch of a stack of Dense layers in one compiled call (Cython).

Same signature, layout, codes and arithmetic as kernels/reference/fused.py (read its docstring, including
"Threads" and "Control"), and the same algorithm as kernels/numba/fused.py. ``train_epoch`` makes the
threads' shared workspace and tables (kernels/workers.py) and runs ``train_epoch_worker`` on ``n_threads``
threads; the worker releases the GIL, so the threads run in parallel.

The worker is a driver over this backend's own block kernels, each written once in the .pxi files included
below and shared with the public per-layer kernels: the products (_dense.pxi), ``act_block`` and the other
activation blocks (_act.pxi), ``bn_forward_block`` (_norm.pxi), ``dropout_block`` (_dropout.pxi),
``output_block`` (_output.pxi: the output layer, its loss and delta), ``step_block`` (_optim.pxi: every
optimizer), ``penalize_block`` and ``sumsq_block``, ``augment_image`` (_augment.pxi). Per batch: gather the
rows (or their addresses), augment this thread's share of them, forward each layer on this thread's units,
the output layer whole, backward each layer, the penalties' and the gradient norm's sums across threads,
then each thread's update of what it owns (``epoch_ranges``). Each worker allocates its own buffers at its
top (targets, weights, the output layer's values and delta, its copies of the parameters, gradient and
optimizer state); the loop over mini-batches runs without the GIL and allocates nothing.

Products of at least ``gemm_min`` multiply-adds go, for batches up to SMALL_BATCH rows and weight blocks
up to SMALL_PANEL_BYTES on a CPU with AVX-512, to the hand-written products of small_gemm.h (layer 0 reads the batch's rows in place through their
addresses), else to BLAS; smaller ones run as loops. A sparse x (CSR arrays) goes through _sparse.pxi's
blocks at layer 0: the batch's stored values only. Plain SGD (no weight decay, penalties or clipping)
folds the weight update into the gradient product, W += -lr * A^T delta, saving a pass over the weights per
step; it then differs from the reference only in the rounding of that expression. With FLUSH_DENORMALS set,
subnormal floats are flushed to zero (x86 FTZ/DAZ) in each worker's thread for the duration of the call.
"""
import numpy as np

from fastnn._kernels import workers as _workers

include "_common.pxi"
include "_constants.pxi"
include "_act.pxi"
include "_softmax.pxi"
include "_norm.pxi"
include "_dropout.pxi"
include "_loss.pxi"
include "_output.pxi"
include "_optim.pxi"
include "_augment.pxi"
include "_dense.pxi"
include "_sparse.pxi"
include "_sync.pxi"

from libc.math cimport isfinite
from libc.string cimport memcpy, memset


cdef struct Net:
    # What the layer functions read, fixed for the epoch: train_epoch_worker's tables and per-layer options.
    const int64_t* layout  # epoch_layout: N_LAYOUT rows of `cols` elements
    Py_ssize_t cols
    const int64_t* sizes
    const int64_t* acts
    const int64_t* pieces
    const double* drop
    const double* slopes
    const double* norm  # (L, 2): momentum, eps
    const int64_t* seeds  # (batches, L)
    Py_ssize_t n_layers
    Py_ssize_t batch_size
    long long gemm_min
    bint in_place  # layer 0 reads the batch's rows where they are, through their addresses
    bint sparse  # x comes as CSR arrays: layer 0 multiplies the batch's stored values only
    const void* xdata  # (the CSR values, of the parameter dtype: a struct cannot hold a fused type)
    const int64_t* xindices
    const int64_t* xindptr
    const int64_t* rows  # the batch's rows of x (into order)


cdef inline Py_ssize_t lay(const Net* net, Py_ssize_t row, Py_ssize_t col) noexcept nogil:
    """The layout table's entry (row, col)."""
    return net.layout[row * net.cols + col]


cdef void gather(const floating* x, Py_ssize_t n_in, const floating* y, Py_ssize_t n_y, const floating* weights,
                 const int64_t* order, Py_ssize_t m, Py_ssize_t start, Py_ssize_t nb, Py_ssize_t batch_size,
                 bint in_place, bint copy_rows, const floating** xrows, floating* xb, floating* yb,
                 floating* wb) noexcept nogil:
    """The batch's rows of x (their addresses, or a copy, or neither when they are augmented or x is sparse:
    then x is NULL), of y and of the weights (wb NULL: none). Rows the first layer reads in place are asked
    for now, all at once, when the batch is larger than PREFETCH_BYTES (the product's own first reads, a few
    lines of each row at a time, waited longer for them), and not at all in smaller batches (asking a batch
    ahead cost more than it saved); copied rows, the next batch's, are asked for while this one computes
    when they fit in PREFETCH_BYTES."""
    cdef Py_ssize_t i, row
    for i in range(nb):
        row = order[start + i]
        if in_place:
            xrows[i] = x + row * n_in
        elif copy_rows:
            memcpy(xb + i * n_in, x + row * n_in, n_in * sizeof(floating))
        memcpy(yb + i * n_y, y + row * n_y, n_y * sizeof(floating))
        if wb != NULL:
            wb[i] = weights[row]
    cdef Py_ssize_t batch_bytes = batch_size * (n_in + n_y) * sizeof(floating)
    cdef bint into_l1 = batch_bytes <= PREFETCH_L1_BYTES
    if in_place:
        if batch_bytes > PREFETCH_BYTES:
            prefetch_rows(<const char*>x, order + start, nb, n_in * sizeof(floating), True)
    elif batch_bytes <= PREFETCH_BYTES and start + nb < m:
        i = min(batch_size, m - start - nb)
        if x != NULL:
            prefetch_rows(<const char*>x, order + start + nb, i, n_in * sizeof(floating), into_l1)
        prefetch_rows(<const char*>y, order + start + nb, i, n_y * sizeof(floating), into_l1)


cdef void augment_rows(Py_ssize_t tid, Py_ssize_t n_threads, const floating* x, Py_ssize_t n_in,
                       const int64_t* order, Py_ssize_t start, Py_ssize_t nb, const double* aug, Py_ssize_t side,
                       floating* out) noexcept nogil:
    """This thread's share of the batch's rows, transformed (augment_image, aug rows (dx, dy, angle)) into
    out (rows of x's width)."""
    cdef Py_ssize_t i
    cdef const double* t
    for i in range(nb * tid // n_threads, nb * (tid + 1) // n_threads):
        t = aug + 3 * (start + i)
        augment_image(x + order[start + i] * n_in, side, t[0], t[1], t[2], out + i * n_in)


cdef void forward_layer(const Net* net, Py_ssize_t l, Py_ssize_t nb, Py_ssize_t batch, Py_ssize_t u0, Py_ssize_t u1,
                        const floating* ain, Py_ssize_t lda, const floating** xrows, floating* ws,
                        const floating* params, const floating* pq, floating* running,
                        floating* scratch) noexcept nogil:
    """This thread's units u0 .. u1 of layer l: product, bias, then (hidden layers) maxout, batch norm,
    activation and dropout; the output layer's activation is output_block's."""
    cdef Py_ssize_t width = lay(net, LAY_WIDTH, l), k = net.pieces[l], units = net.sizes[l + 1]
    cdef Py_ssize_t ld = lay(net, LAY_LD, l + 1), c0 = k * u0, c1 = k * u1
    cdef Py_ssize_t g0 = lay(net, LAY_GAMMA, l), r0 = lay(net, LAY_RUNNING, l), a0 = lay(net, LAY_ALPHA, l)
    cdef floating* z = ws + lay(net, LAY_Z, l)
    cdef floating* zp = ws + lay(net, LAY_MAX, l) if k > 1 else z  # the product (before the max)
    cdef Py_ssize_t ldp = lay(net, LAY_LDM, l) if k > 1 else ld
    cdef const floating* w = (pq if l == 0 else params) + lay(net, LAY_W, l) + c0
    cdef const floating* bias = pq + lay(net, LAY_B, l)
    cdef long act = net.acts[l]
    cdef floating slope = <floating>net.slopes[l]
    cdef floating* out = ws + lay(net, LAY_DROP, l) if net.drop[l] > 0 else z  # the activations, before dropout
    cdef floating* h
    cdef Py_ssize_t i
    if l == 0 and net.in_place:
        rows_product(False, nb, c1 - c0, net.sizes[0], <floating>1, xrows, w, width, 0, zp + c0, ldp)
    elif l == 0 and net.sparse:  # the batch's stored values times W_0's own columns
        for i in range(nb):
            memset(zp + i * ldp + c0, 0, (c1 - c0) * sizeof(floating))
        csr_rows_forward(<const floating*>net.xdata, net.xindices, net.xindptr, net.rows, nb, w - c0, width, zp,
                         ldp, c0, c1)
    else:
        product(False, False, nb, c1 - c0, net.sizes[l], <floating>1, ain, lda, w, width, 0, zp + c0, ldp,
                net.gemm_min)
    if k == 1 and g0 < 0 and act != PRELU and l < net.n_layers - 1:  # bias and activation in one pass
        act_block(z, ld, out, ld, nb, c0, c1, act, slope, bias)
    else:
        act_block(zp, ldp, zp, ldp, nb, c0, c1, IDENTITY, slope, bias)
        if k > 1:
            maxout_block(zp, ldp, z, ld, nb, u0, u1, k, NULL)
        if l == net.n_layers - 1:
            return
        if g0 >= 0:
            h = ws + lay(net, LAY_NORM, l)
            bn_forward_block(z, ld, z, ld, nb, u0, u1, pq + g0, pq + g0 + units, running + r0, running + r0 + units,
                             <floating>net.norm[2 * l], <floating>net.norm[2 * l + 1], h, ld,
                             h + net.batch_size * ld, scratch)
        if act == PRELU:  # (its input kept for the backward pass)
            h = ws + lay(net, LAY_PRELU, l)
            act_block(z, ld, h, ld, nb, u0, u1, IDENTITY, slope, <floating*>NULL)
            prelu_block(h, ld, out, ld, nb, u0, u1, pq + a0)
        else:
            act_block(z, ld, out, ld, nb, u0, u1, act, slope, <floating*>NULL)
    if net.drop[l] > 0:
        dropout_block(out, ld, z, ld, out + net.batch_size * ld, ld, nb, u0, u1, units, net.drop[l],
                      <uint64_t>net.seeds[batch * net.n_layers + l])


cdef floating* through(const Net* net, Py_ssize_t j, Py_ssize_t nb, Py_ssize_t r0, Py_ssize_t r1, floating* nd,
                       floating* ws, const floating* pq, floating* gq, Py_ssize_t* ldd) noexcept nogil:
    """dC/d(layer j's product) on this thread's units r0 .. r1, in place from nd = dC/d(layer j's output):
    through its dropout, activation, batch norm and maxout. Returns the delta's block; its row length goes
    to ldd."""
    cdef Py_ssize_t ld = lay(net, LAY_LD, j + 1), units = net.sizes[j + 1], k = net.pieces[j]
    cdef Py_ssize_t g0 = lay(net, LAY_GAMMA, j), a0 = lay(net, LAY_ALPHA, j)
    cdef const floating* a = ws + lay(net, LAY_Z, j)
    cdef floating* h
    if net.drop[j] > 0:  # the mask, then f' at the activations before the dropout
        a = ws + lay(net, LAY_DROP, j)
        mask_block(nd, ld, a + net.batch_size * ld, ld, nd, ld, nb, r0, r1)
    if net.acts[j] == PRELU:
        prelu_backward_block(ws + lay(net, LAY_PRELU, j), ld, nd, ld, nd, ld, nb, r0, r1, pq + a0, gq + a0)
    else:
        act_backward_block(a, ld, nd, ld, nd, ld, nb, r0, r1, net.acts[j], <floating>net.slopes[j])
    if g0 >= 0:
        h = ws + lay(net, LAY_NORM, j)
        bn_backward_block(nd, ld, nd, ld, nb, r0, r1, h, ld, pq + g0, h + net.batch_size * ld, gq + g0,
                          gq + g0 + units)
    ldd[0] = ld
    if k > 1:  # to the winning product columns, over the kept product
        h = ws + lay(net, LAY_MAX, j)
        ldd[0] = lay(net, LAY_LDM, j)
        maxout_backward_block(nd, ld, h, ldd[0], nb, r0, r1, k, h, NULL)
        return h
    return nd


cdef inline void transpose_block(const floating* a, Py_ssize_t lda, Py_ssize_t m, Py_ssize_t n,
                                 floating* t) noexcept nogil:
    """t (n, m) = a (m, n)^T, t's rows m long."""
    cdef Py_ssize_t i, j
    for i in range(m):
        for j in range(n):
            t[j * m + i] = a[i * lda + j]


cdef Py_ssize_t transposed_size(Py_ssize_t n_layers, const int64_t[:, ::1] layout, const int64_t* own0,
                                const int64_t* own1, size_t itemsize) noexcept nogil:
    """The largest of this thread's weight blocks of layers 1.. (its rows) that delta W^T copies as W^T for
    the hand-written products (which take no transposed b): up to TRANSPOSE_BYTES."""
    cdef Py_ssize_t l, block, size = 0
    for l in range(1, n_layers):
        block = (own1[l] - own0[l]) * layout[LAY_WIDTH, l]
        if block * itemsize <= TRANSPOSE_BYTES:
            size = max(size, block)
    return size


cdef floating* backward_layer(const Net* net, Py_ssize_t l, Py_ssize_t nb, floating* delta, Py_ssize_t* ldd,
                              const int64_t* own0, const int64_t* own1, const floating* xb,
                              const floating** xrows, floating* ws, floating* params, floating* pq, floating* gq,
                              bint fold, floating lr, floating* wt, Py_ssize_t n_wt) noexcept nogil:
    """Layer l's gradients from its product's delta (rows of ldd): its bias's on this thread's columns; layer
    0's weights by those columns; a deeper layer's by this thread's rows (input units), whose delta below it
    then computes (before its weights change). With ``fold`` the weights are updated instead (plain SGD).
    wt: room for n_wt elements, where a weight block up to TRANSPOSE_BYTES is copied transposed.
    Returns the next delta's block (its row length in ldd)."""
    cdef Py_ssize_t width = lay(net, LAY_WIDTH, l), w0 = lay(net, LAY_W, l), ld = lay(net, LAY_LD, l)
    cdef Py_ssize_t c0 = net.pieces[l] * own0[l + 1], c1 = net.pieces[l] * own1[l + 1], r0 = own0[l], r1 = own1[l]
    cdef floating alpha = -lr if fold else 1, beta = 1 if fold else 0
    cdef floating* w = params + w0 + r0 * width
    cdef floating* nd = ws + lay(net, LAY_D, l)
    cdef Py_ssize_t i
    column_sums(delta, ldd[0], nb, c0, c1, gq + lay(net, LAY_B, l))
    if l == 0:
        if net.sparse:  # (never folded)
            for i in range(net.sizes[0]):
                memset(gq + w0 + i * width + c0, 0, (c1 - c0) * sizeof(floating))
            csr_rows_backward_params(<const floating*>net.xdata, net.xindices, net.xindptr, net.rows, nb, delta,
                                     ldd[0], gq + w0, width, c0, c1)
        elif net.in_place:
            rows_product(True, net.sizes[0], c1 - c0, nb, alpha, xrows, delta + c0, ldd[0], beta,
                         (pq if fold else gq) + w0 + c0, width)
        else:
            product(True, False, net.sizes[0], c1 - c0, nb, alpha, xb, net.sizes[0], delta + c0, ldd[0], beta,
                    (pq if fold else gq) + w0 + c0, width, net.gemm_min)
        return delta
    if (r1 - r0) * width <= n_wt and hand_written(nb, (r1 - r0) * width, sizeof(floating)):
        transpose_block(w, width, r1 - r0, width, wt)  # delta W^T as the hand-written NN product's delta W'
        product(False, False, nb, r1 - r0, width, 1, delta, ldd[0], wt, r1 - r0, 0, nd + r0, ld, net.gemm_min)
    else:
        product(False, True, nb, r1 - r0, width, 1, delta, ldd[0], w, width, 0, nd + r0, ld, net.gemm_min)
    product(True, False, r1 - r0, width, nb, alpha, ws + lay(net, LAY_Z, l - 1) + r0, ld, delta, ldd[0], beta,
            w if fold else gq + w0 + r0 * width, width, net.gemm_min)
    return through(net, l - 1, nb, r0, r1, nd, ws, pq, gq, ldd)


cdef enum:
    # What each thread adds to ``partials`` (3 per thread): its weights' sum of p^2 and of |p| (the
    # penalties' values), its gradients' sum of g^2 (the global norm that clip_norm needs).
    P_SQUARES = 0
    P_ABS = 1
    P_GRAD = 2
    N_PARTIALS = 3


cdef inline double thread_sum(const double* partials, Py_ssize_t slot, Py_ssize_t n_threads) noexcept nogil:
    """One of the sums across threads, added in thread order (so every thread gets the same bits)."""
    cdef Py_ssize_t t
    cdef double total = 0
    for t in range(n_threads):
        total += partials[N_PARTIALS * t + slot]
    return total


cdef double grad_squares(const int64_t[:, ::1] mine, const floating* gq) noexcept nogil:
    """sum g^2 over this thread's parameters (global-norm clipping)."""
    cdef Py_ssize_t r
    cdef double total = 0
    for r in range(mine.shape[0]):
        total += sumsq_block(gq, mine[r, R_LO], mine[r, R_ROWS], mine[r, R_WIDTH], mine[r, R_STRIDE])
    return total


cdef bint add_penalties(const int64_t[:, ::1] mine, const floating* params, const floating* pq, floating* gq,
                        double l2, double l1, double* partials, Py_ssize_t tid, Py_ssize_t n_threads,
                        int64_t* control, int64_t* sense, double* value) noexcept nogil:
    """The penalties' gradients on this thread's weights, and their value over every thread's weights (l2/2
    sum p^2 + l1 sum |p|, after a barrier) added to ``value``. Returns True when a thread failed."""
    cdef Py_ssize_t r
    cdef double* sums = partials + N_PARTIALS * tid
    sums[P_SQUARES] = sums[P_ABS] = 0
    for r in range(mine.shape[0]):
        if mine[r, R_WEIGHT] and mine[r, R_ROWS]:
            penalize_block(pq if mine[r, R_PRIVATE] else params, gq, mine[r, R_LO], mine[r, R_ROWS],
                           mine[r, R_WIDTH], mine[r, R_STRIDE], <floating>l2, <floating>l1, l2 != 0, l1 != 0,
                           sums + P_SQUARES, sums + P_ABS)
    if barrier(control, n_threads, sense):
        return True
    value[0] += l2 / 2 * thread_sum(partials, P_SQUARES, n_threads) + l1 * thread_sum(partials, P_ABS, n_threads)
    return False


cdef bint global_norm(const int64_t[:, ::1] mine, const floating* gq, double* partials, Py_ssize_t tid,
                      Py_ssize_t n_threads, int64_t* control, int64_t* sense, double* norm) noexcept nogil:
    """The global norm of every thread's gradients (torch.nn.utils.clip_grad_norm_'s), after a barrier, into
    ``norm``. Returns True when a thread failed."""
    partials[N_PARTIALS * tid + P_GRAD] = grad_squares(mine, gq)
    if barrier(control, n_threads, sense):
        return True
    norm[0] = sqrt(thread_sum(partials, P_GRAD, n_threads))
    return False


cdef void update(const int64_t[:, ::1] mine, long opt, floating* params, floating* pq, const floating* gq,
                 floating* s0, floating* s1, const floating* c, bint fold) noexcept nogil:
    """One optimizer step of what this thread owns (with ``fold``, the weights are already updated)."""
    cdef Py_ssize_t r
    for r in range(mine.shape[0]):
        if not (fold and mine[r, R_WEIGHT]):
            step_block(opt, pq if mine[r, R_PRIVATE] else params, gq, s0, s1, mine[r, R_LO], mine[r, R_ROWS],
                       mine[r, R_WIDTH], mine[r, R_STRIDE], c)


cdef void write_back(const int64_t[:, ::1] mine, floating* params, const floating* pq, floating[:, ::1] state,
                     const floating[:, ::1] own_state) noexcept nogil:
    """What this thread owned: its private parameters and its optimizer state, back to the caller's."""
    cdef Py_ssize_t r, i, k, lo, n
    for r in range(mine.shape[0]):
        n = mine[r, R_WIDTH] * sizeof(floating)
        for i in range(mine[r, R_ROWS]):
            lo = mine[r, R_LO] + i * mine[r, R_STRIDE]
            if mine[r, R_PRIVATE]:
                memcpy(params + lo, pq + lo, n)
            for k in range(state.shape[0]):
                memcpy(&state[k, lo], &own_state[k, lo], n)


cdef floating* output_layer(const Net* net, Py_ssize_t nb, floating* ws, floating* yb, const floating* wb, long loss,
                           double eps, floating* routed, double* value, double* weight, long long* right,
                           Py_ssize_t* ldd) noexcept nogil:
    """The whole output layer (output_block) from its product's rows in the workspace, against the batch's
    targets yb, followed in the buffer by the layer's output, its delta and dC/da (batch_size rows each).
    Puts the mean data loss in ``value`` and the weight in ``weight``; returns the delta of the layer's
    product (routed to the winning columns for a Maxout output), its row length in ``ldd``."""
    cdef Py_ssize_t last = net.n_layers - 1, n_y = net.sizes[net.n_layers], k = net.pieces[last]
    cdef Py_ssize_t rows = net.batch_size * n_y
    cdef floating* delta = yb + 2 * rows
    right[0] = 0
    value[0] = output_block(ws + lay(net, LAY_Z, last), lay(net, LAY_LD, net.n_layers), yb + rows, yb, wb, nb, n_y,
                            net.acts[last], loss, eps, <floating>net.slopes[last], delta, yb + 3 * rows, weight, right)
    ldd[0] = n_y
    if k == 1:
        return delta
    ldd[0] = lay(net, LAY_LDM, last)
    maxout_backward_block(delta, n_y, routed, ldd[0], nb, 0, n_y, k, ws + lay(net, LAY_MAX, last), NULL)
    return routed


cdef Net epoch_net(const int64_t[:, ::1] layout, const int64_t[::1] sizes, const int64_t[::1] acts,
                   const int64_t[::1] pieces, const double[::1] drop, const double[::1] slopes,
                   const double[:, ::1] norm, const int64_t[:, ::1] seeds, Py_ssize_t batch_size, long long gemm_min,
                   const int64_t[::1] order, const floating[::1] xdata, const int64_t[::1] xindices,
                   const int64_t[::1] xindptr, bint augmenting, Py_ssize_t panel0):
    """The worker's Net, over its arrays (which outlive it); panel0: the elements of W_0 the thread owns."""
    cdef bint sparse = xindptr.shape[0] > 0
    cdef Net net = Net(&layout[0, 0], layout.shape[1], &sizes[0], &acts[0], &pieces[0], &drop[0], &slopes[0],
                       &norm[0, 0], &seeds[0, 0], sizes.shape[0] - 1, batch_size, gemm_min, False, sparse, NULL,
                       NULL, NULL, &order[0])
    # Layer 0 reads the batch's rows where they are (through their addresses) when its products are hand-written.
    net.in_place = (hand_written(batch_size, panel0, sizeof(floating)) and gemm_min <= 0
                    and not (augmenting or sparse))
    if sparse:
        net.xdata, net.xindices, net.xindptr = &xdata[0], &xindices[0], &xindptr[0]
    return net


def _check(Py_ssize_t tid, Py_ssize_t n_threads, control, partials, shared, layout, ranges, shares, x, y, order,
           params, state, sizes, acts, long loss, long opt, Py_ssize_t batch_size, drop, seeds, norm, running, slopes,
           pieces, weights, aug, Py_ssize_t side, const int64_t[::1] xindices, const int64_t[::1] xindptr,
           Py_ssize_t n_data):
    """ValueError for arguments that do not fit together (the Python layer checks the user's before)."""
    n_layers, m = len(sizes) - 1, len(order)
    if any(len(a) != n_layers for a in (drop, slopes, norm, pieces, acts)) or np.shape(norm)[1:] != (2,):
        raise ValueError("acts, drop, norm, slopes and pieces must hold one entry per layer")
    if not (0 <= loss < N_LOSSES and 0 <= opt < N_OPTS and all(0 <= a < N_ACTS for a in acts) and min(pieces) >= 1):
        raise ValueError("unknown loss, optimizer or activation code, or pieces < 1")
    if np.shape(layout)[0] != N_LAYOUT or np.shape(layout)[1] < n_layers + 1 or np.shape(ranges)[2] != N_RANGE:
        raise ValueError("layout must be epoch_layout(sizes, ...) and ranges epoch_ranges(...)")
    if len(shared) < layout[LAY_TOTAL, TOTAL_SHARED] + ALIGN:
        raise ValueError("the shared workspace is smaller than shared_size(sizes, batch_size, ...)")
    if len(params) != layout[LAY_TOTAL, TOTAL_PARAMS] or len(running) < layout[LAY_TOTAL, TOTAL_RUNNING]:
        raise ValueError("params or running do not match epoch_layout(sizes, ...)")
    if np.shape(state)[0] < FNN_STATE_ROWS[opt] or np.shape(state)[1] != len(params):
        raise ValueError(f"state must be ({FNN_STATE_ROWS[opt]}, {len(params)}) for this optimizer")
    cdef Py_ssize_t n = len(xindptr) - 1 if len(xindptr) else len(x), n_in = sizes[0]
    if len(xindptr):
        _check_csr(n_data, xindices, xindptr, n_in)
    if np.shape(x)[1] != sizes[0] or np.shape(y) != (n, sizes[n_layers]) or len(weights) not in (0, n):
        raise ValueError("x, y or weights do not match sizes")
    if m and not 0 <= np.min(order) <= np.max(order) < n:
        raise ValueError("order holds row indices outside x")
    if len(aug) and (len(aug) < m or layout[LAY_AUG, 0] < 0 or side * side != sizes[0] or len(xindptr)):
        raise ValueError("the augmentation table needs a row per entry of order, and dense images of sizes[0] pixels")
    if batch_size < 1 or (np.max(drop) > 0 and (len(seeds) < (m + batch_size - 1) // batch_size
                                               or np.shape(seeds)[1] != n_layers)):
        raise ValueError("batch_size must be >= 1 and seeds (number of batches, layers)")
    if (len(control) < CONTROL_SIZE or len(partials) < N_PARTIALS * n_threads or not 0 <= tid < n_threads
            or len(ranges) < n_threads or len(shares) < n_threads + 1):
        raise ValueError("bad thread arguments")


def train_epoch_worker(Py_ssize_t tid, Py_ssize_t n_threads, int64_t[::1] control, double[::1] partials,
                       floating[::1] shared, const int64_t[:, ::1] layout, const int64_t[:, :, ::1] ranges,
                       const int64_t[:, ::1] shares, const floating[:, ::1] x, const floating[:, ::1] y,
                       const int64_t[::1] order, floating[::1] params, floating[:, ::1] state,
                       const int64_t[::1] sizes, const int64_t[::1] acts, long loss, long opt, const double[::1] hyper,
                       Py_ssize_t batch_size, long long step, long long gemm_min, const double[::1] drop,
                       const int64_t[:, ::1] seeds, const double[:, ::1] norm, floating[::1] running,
                       const double[::1] slopes, const int64_t[::1] pieces, const floating[::1] weights,
                       const double[:, ::1] aug, Py_ssize_t side, const floating[::1] xdata,
                       const int64_t[::1] xindices, const int64_t[::1] xindptr):
    """Thread ``tid``'s part of one epoch of ``n_threads``; returns what ``train_epoch`` returns.

    control: int64 (CONTROL_SIZE,) (kernels/constants.py); partials: float64 (3 n_threads,), the sums each
    thread contributes; shared: the workspace (``shared_size``); layout, ranges, shares: ``epoch_layout``,
    ``epoch_ranges``, ``thread_shares`` (kernels/reference/fused.py); weights: (n,) or empty; aug: float64
    (m, 3) or empty, side: the images' side; xdata, xindices, xindptr: x as CSR arrays (x is then (0, n_in)),
    or empty; the rest as ``train_epoch``. Every thread must be given the same arrays.
    """
    _check(tid, n_threads, control, partials, shared, layout, ranges, shares, x, y, order, params, state, sizes,
           acts, loss, opt, batch_size, drop, seeds, norm, running, slopes, pieces, weights, aug, side, xindices,
           xindptr, len(xdata))
    cdef Net net = epoch_net(layout, sizes, acts, pieces, drop, slopes, norm, seeds, batch_size, gemm_min, order,
                             xdata, xindices, xindptr, aug.shape[0] > 0,
                             sizes[0] * pieces[0] * (shares[tid + 1, 1] - shares[tid, 1]))
    cdef Py_ssize_t n_layers = net.n_layers, m = order.shape[0], n_in = sizes[0], P = params.shape[0]
    cdef bint augmenting = aug.shape[0] > 0, sparse = net.sparse
    # This thread's own buffers, in one allocation: its copy of the parameters (it keeps those no other thread
    # reads there: its columns of W_0, its share of every bias, gamma, beta and PReLU slope), their gradient,
    # batch norm's scratch, the gathered rows, the output layer's targets, output, delta and dC/da, the row
    # weights, a Maxout output's routed delta, the transposed weight block of delta W^T; and its copy of the
    # optimizer state.
    cdef Py_ssize_t n_x = 0 if net.in_place or augmenting or sparse else batch_size * n_in
    cdef Py_ssize_t ld_max = np.max(layout[LAY_LD])
    cdef Py_ssize_t n_routed = layout[LAY_LDM, n_layers - 1] if pieces[n_layers - 1] > 1 else 0
    cdef Py_ssize_t n_wt = transposed_size(n_layers, layout, &shares[tid, 0], &shares[tid + 1, 0], sizeof(floating))
    cdef floating[::1] own = np.zeros(2 * P + ld_max + n_x + batch_size * (4 * sizes[n_layers] + 1 + n_routed)
                                      + n_wt, np.float32 if floating is float else np.float64)
    cdef floating[:, ::1] own_state = np.array(state)
    cdef size_t[::1] row_addresses = np.zeros(batch_size, np.uintp)
    cdef const floating** xrows = <const floating**>&row_addresses[0]
    cdef floating* pq = &own[0]
    cdef floating* gq = pq + P
    cdef floating* scratch = gq + P
    cdef floating* xb = scratch + ld_max
    cdef floating* yb = xb + n_x
    cdef floating* wb = yb + 4 * batch_size * sizes[n_layers]
    cdef floating* routed = wb + batch_size
    cdef floating* wt = routed + batch_size * n_routed
    cdef floating* s0 = &own_state[0, 0] if state.shape[0] > 0 else NULL
    cdef floating* s1 = &own_state[1, 0] if state.shape[0] > 1 else NULL
    cdef floating* ws = &shared[0] + (64 - (<size_t>&shared[0]) % 64) % 64 // sizeof(floating)
    cdef floating* pp = &params[0]
    cdef int64_t* cp = &control[0]
    cdef const int64_t[:, ::1] mine = ranges[tid]
    cdef const floating* ain
    cdef floating* delta
    cdef floating consts[N_STEP]
    cdef double l2 = hyper[L2], l1 = hyper[L1], clip = hyper[CLIP_NORM], total = 0, value = 0, weight, factor
    cdef double grad_norm
    cdef bint penalized = l2 != 0 or l1 != 0
    cdef bint fold = opt == SGD and hyper[WEIGHT_DECAY] == 0 and not penalized and clip <= 0 and not sparse
    cdef long long correct = 0, right, updates = 0
    cdef Py_ssize_t l, nb, ldd, start = 0, batch = 0
    cdef int64_t sense = 0, status = STATUS_DONE
    cdef unsigned int fpmode
    memcpy(pq, pp, P * sizeof(floating))
    with nogil:
        fpmode = fnn_get_fpmode()
        if hyper[FLUSH_DENORMALS] != 0:  # subnormal moments of dead units made float32 Adam ~15% slower
            fnn_set_fpmode(fpmode | FNN_FTZ_DAZ)
        while start < m:
            nb = min(batch_size, m - start)
            net.rows = &order[start]
            gather(&x[0, 0] if not sparse else NULL, n_in, &y[0, 0], sizes[n_layers],
                   &weights[0] if weights.shape[0] else NULL, &order[0], m, start, nb, batch_size, net.in_place,
                   n_x > 0, xrows, xb, yb, wb if weights.shape[0] else NULL)
            if augmenting:  # into one of two buffers by the batch's parity (see epoch_layout)
                xb = ws + lay(&net, LAY_AUG, 0) + (batch % 2) * batch_size * n_in
                augment_rows(tid, n_threads, &x[0, 0], n_in, &order[0], start, nb, &aug[0, 0], side, xb)
                if barrier(cp, n_threads, &sense):
                    break
            ain = xb
            for l in range(n_layers):
                forward_layer(&net, l, nb, batch, shares[tid, l + 1], shares[tid + 1, l + 1], ain,
                              lay(&net, LAY_LD, l), xrows, ws, pp, pq, &running[0], scratch)
                ain = ws + lay(&net, LAY_Z, l)
                if barrier(cp, n_threads, &sense):
                    break
            if aborted(cp):
                break
            # The whole output layer in every thread (a few hundred values): no barrier needed after it.
            delta = output_layer(&net, nb, ws, yb, wb if weights.shape[0] else NULL, loss, hyper[LOSS_EPS], routed,
                                 &value, &weight, &right, &ldd)
            if not penalized and not isfinite(value):
                status = STATUS_LOSS  # this batch is not applied; the caller reports divergence at `updates`
                break
            for l in range(n_layers - 1, -1, -1):
                delta = backward_layer(&net, l, nb, delta, &ldd, &shares[tid, 0], &shares[tid + 1, 0], xb, xrows, ws,
                                       pp, pq, gq, fold, <floating>hyper[LR], wt, n_wt)
                if l >= 2 and barrier(cp, n_threads, &sense):  # rows of the next layer need all of its delta
                    break
            if aborted(cp):
                break
            if penalized:  # (the objective fit reports: the data loss plus the penalties at these weights)
                if add_penalties(mine, pp, pq, gq, l2, l1, &partials[0], tid, n_threads, cp, &sense, &value):
                    break
                if not isfinite(value):
                    status = STATUS_LOSS
                    break
            factor = 1
            if clip > 0:
                if global_norm(mine, gq, &partials[0], tid, n_threads, cp, &sense, &grad_norm):
                    break
                if not isfinite(grad_norm):
                    value, status = grad_norm, STATUS_NORM
                    break
                factor = clip / (grad_norm + FNN_CLIP_EPS) if grad_norm > clip else 1
            step += 1
            updates += 1
            step_constants(opt, &hyper[0], step, factor, consts)
            update(mine, opt, pp, pq, gq, s0, s1, consts, fold)
            total += value * weight
            correct += right
            batch += 1
            start += nb
            if tid == 0:
                publish(cp, DONE, updates)
            if start < m and stop_decided(cp, n_threads):
                status = STATUS_STOPPED
                break
        fnn_set_fpmode(fpmode)
        write_back(mine, pp, pq, state, own_state)
        if tid == 0:
            publish(cp, STATUS, status)
    return total, correct, updates, value


def constants():
    """The shared constants this extension was compiled with (the _constants.pxi that setup.py writes from
    kernels/constants.py), by name: a test checks that they are kernels/constants.py's."""
    return compiled_constants()


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
