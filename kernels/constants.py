"""The constants every backend's compiled training epoch shares: codes, slots, layout rows, limits.

Defined here once. The reference and Numba backends import them; the Cython backend includes
``kernels/cython/_constants.pxi``, which setup.py writes from this module (``cython_constants``) before it
compiles, and ``fused.constants()`` of each backend returns what it was compiled with, so a test checks that
every backend agrees with this file. Plain ints and floats only: Numba freezes module globals into the
compiled code.
"""

# -- what a layer, the loss and the optimizer are (kernels/reference/fused.py's train_epoch) --------------

# Activation after each Dense (or Maxout) layer. SOFTMAX only on the output layer.
IDENTITY, SIGMOID, TANH, RELU, SOFTMAX, LEAKY_RELU, SOFTPLUS, PRELU, EXP = 0, 1, 2, 3, 4, 5, 6, 7, 8
N_ACTS = 9
# Losses. BCE after SIGMOID, NLL after SOFTMAX and POISSON after EXP backpropagate the fused delta
# w (a - y) / W.
BCE, NLL, QUADRATIC, MSE, POISSON = 0, 1, 2, 3, 4
N_LOSSES = 5
# Optimizers (torch.optim's rules, kernels/reference/optim.py).
SGD, MOMENTUM, NESTEROV, ADAM, ADAMW, ADAGRAD, RMSPROP, ADADELTA = 0, 1, 2, 3, 4, 5, 6, 7
N_OPTS = 8
# Rows of optimizer state per optimizer code: momentum buffer; Adam's m, v; Adagrad's sum; RMSprop's
# square_avg; Adadelta's square_avg, acc_delta.
STATE_ROWS = (0, 1, 1, 2, 2, 1, 1, 2)

# -- hyper: float64 (N_HYPER,) ------------------------------------------------------------------------------
# LR .. EPS, ALPHA (RMSprop), RHO (Adadelta), LR_DECAY (Adagrad): the optimizer's hyperparameters;
# WEIGHT_DECAY its decay (L2 added to the gradient of every parameter, AdamW's decoupled shrink);
# L2, L1: fit's penalties on weights, already divided by the training-set size; LOSS_EPS: the clipping of
# BCE, NLL and POISSON values; FLUSH_DENORMALS != 0: flush subnormals (x86 FTZ/DAZ) during the call; CLIP_NORM > 0:
# scale the gradients so that their global norm is at most this (torch.nn.utils.clip_grad_norm_).
LR, MU, BETA1, BETA2, EPS, WEIGHT_DECAY, L2, L1, LOSS_EPS, FLUSH_DENORMALS = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9
ALPHA, RHO, LR_DECAY, CLIP_NORM = 10, 11, 12, 13
N_HYPER = 14
CLIP_EPS = 1e-6  # clip factor max_norm / (norm + CLIP_EPS), as torch

# -- the control array: int64 (CONTROL_SIZE,), shared by the threads of one epoch and its caller ----------
# Slots sit 8 elements (64 bytes) apart so that spinning readers of one do not contend with writers of
# another. COUNT, SENSE: the barrier's arrivals and phase; ABORT != 0: a thread failed, every waiting
# thread leaves; STOP != 0: the caller asks the epoch to stop after the batch under way (Ctrl-C);
# DECIDED: STOP as the last thread into a barrier saw it, so that every thread takes the same decision;
# DONE: batches applied so far (written after each batch, read by the caller for progress);
# STATUS: why the epoch ended (the STATUS_ codes).
COUNT, SENSE, ABORT, STOP, DECIDED, DONE, STATUS = 0, 8, 16, 24, 32, 40, 48
CONTROL_SIZE = 56
STATUS_DONE, STATUS_LOSS, STATUS_NORM, STATUS_STOPPED = 0, 1, 2, 3

# -- the layout table (kernels/reference/fused.py's epoch_layout): int64 (N_LAYOUT, L + 1) -----------------
(LAY_W, LAY_B, LAY_WIDTH, LAY_GAMMA, LAY_RUNNING, LAY_ALPHA, LAY_LD, LAY_LDM, LAY_Z, LAY_D, LAY_DROP, LAY_NORM,
 LAY_PRELU, LAY_MAX, LAY_AUG, LAY_TOTAL) = range(16)
N_LAYOUT = 16
# Columns of LAY_TOTAL: parameters, running statistics, workspace elements.
TOTAL_PARAMS, TOTAL_RUNNING, TOTAL_SHARED = 0, 1, 2

# -- a thread's share of the parameters (epoch_ranges): int64 (R, N_RANGE) rows ----------------------------
# The elements lo + i * stride + j, i < rows, j < width, of the flat layout; in the thread's private copy
# (PRIVATE 1) or updated in place in the shared parameters (0); WEIGHT 1 where fit's L1/L2 apply.
R_LO, R_ROWS, R_WIDTH, R_STRIDE, R_PRIVATE, R_WEIGHT = 0, 1, 2, 3, 4, 5
N_RANGE = 6

# -- limits ------------------------------------------------------------------------------------------------
ALIGN = 16  # elements: units are shared out, and workspace rows padded, in multiples of 16 (64-byte lines)
SMALL_BATCH = 512  # batches up to this many rows use the hand-written AVX-512 products where the CPU has them
# ... when the weight block a product reads or writes (one thread's share) fits in this many bytes; BLAS,
# which packs them, is faster on larger ones. Measured (BENCHMARKS.md): hand-written 15% faster on 784x100
# float64 (627 KB) at batch 128, BLAS 10% faster on 784x256 float32 (800 KB) and 1.6-1.9x on 512x512 float64.
SMALL_PANEL_BYTES = 640 << 10
SMALL_NT = 8192  # a b^T products below this many multiply-adds run as loops (a BLAS call costs more)
# The fused epoch's delta W^T (a deeper layer's delta to the layer below) on a weight block of at most this
# many bytes is the hand-written product of delta and a copy of W^T (which stays in L1), not BLAS's a b^T,
# whose call and packing cost more than such a block's arithmetic (BENCHMARKS.md, "delta W^T").
TRANSPOSE_BYTES = 32 << 10
# Every thread reads every row of a batch. Rows the first layer reads in place are asked for all at once as
# the batch starts when it takes more than PREFETCH_BYTES (into L1: BENCHMARKS.md, "Threads on cores of
# their own, ... the first reads of a large batch"), and not at all in smaller batches (asking for them a
# batch ahead made batches of 10 6-9% slower: BENCHMARKS.md, "Asking for rows"). Copied rows (and the
# targets) of the next batch are prefetched while this one computes when they take at most PREFETCH_BYTES:
# into L1 up to PREFETCH_L1_BYTES, else into L2.
PREFETCH_BYTES = 512 << 10
PREFETCH_L1_BYTES = 32 << 10
SPIN_PAUSES = 512  # pauses (~13 us on Zen 4) a thread waits at a barrier before it starts yielding its core
INFER_CHUNK = 256  # rows the compiled forward pass takes at a time (its buffers stay in the caches)


def constants():
    """Every constant of this module by name (ints, floats and the STATE_ROWS tuple)."""
    return {k: v for k, v in globals().items() if k.isupper() and isinstance(v, (int, float, tuple))}


def cython_constants():
    """The text of kernels/cython/_constants.pxi: the int constants as one anonymous enum, the floats as
    C macros, STATE_ROWS as a C array (setup.py writes it before compiling)."""
    ints = {k: v for k, v in constants().items() if isinstance(v, int)}
    lines = ["# Written by setup.py from kernels/constants.py (cython_constants); do not edit.", "cdef enum:"]
    lines += [f"    {name} = {value}" for name, value in ints.items()]
    rows = ", ".join(str(r) for r in STATE_ROWS)
    floats = {k: v for k, v in constants().items() if isinstance(v, float)}
    lines += ['cdef extern from *:', '    """']
    lines += [f"    #define FNN_{name} {value!r}" for name, value in floats.items()]
    lines += [f"    static const long FNN_STATE_ROWS[{len(STATE_ROWS)}] = {{{rows}}};", '    """']
    lines += [f"    double FNN_{name}" for name in floats]
    lines += [f"    const long FNN_STATE_ROWS[{len(STATE_ROWS)}]", ""]
    # What the module was compiled with, by name (fused.pyx's constants(), for the test against this file).
    lines += ["", "cdef inline dict compiled_constants():", "    return {"]
    lines += [f'        "{name}": {name},' for name in ints]
    lines += [f'        "{name}": FNN_{name},' for name in floats]
    lines += [f'        "STATE_ROWS": tuple([FNN_STATE_ROWS[i] for i in range({len(STATE_ROWS)})]),', "    }", ""]
    return "\n".join(lines)
