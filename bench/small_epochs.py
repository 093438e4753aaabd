"""Epochs of a few batches on one thread and on two: what ``fastnn.fused.EPOCH_PARALLEL_MIN`` is set from.

    .venv/bin/python bench/small_epochs.py                       # cython and numba, float32
    .venv/bin/python bench/small_epochs.py --backends cython --batches 1,2,4

A second thread costs a fixed amount per epoch (waking the kept helper, meeting it at the first and the last
barrier) and saves a share of every batch's work, so epochs of little work run faster on one thread. For
three networks on Fashion-MNIST rows (784-100-10 Adam at batch 200 and 32, 784-30-10 SGD at batch 10), this
times the compiled epoch (``train_epoch``, best of 5 x 40 calls) over 1, 2, 3, 4 and 8 batches on 1 and on 2
threads, and prints each epoch's multiply-adds (rows x the sum of the layers' n_in x n_out) beside them.
"""
import argparse
import os
import sys
import timeit

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402
from fastnn import backend  # noqa: E402
from fastnn._kernels.reference import fused as F  # noqa: E402

NETWORKS = ((100, 200, F.ADAM), (100, 32, F.ADAM), (30, 10, F.SGD))  # (hidden units, batch, optimizer)


def epoch_ms(kernels, X, Y, order, sizes, opt, batch, threads, rng):
    """Best milliseconds of one compiled epoch over ``order`` on ``threads`` threads."""
    acts = np.array([F.RELU, F.SOFTMAX], np.int64)
    _, n_params = F.param_layout(sizes)
    params = (0.05 * rng.standard_normal(n_params)).astype(X.dtype)
    state = np.zeros((F.STATE_ROWS[opt], n_params), X.dtype)
    hyper = np.zeros(F.N_HYPER)
    hyper[[F.LR, F.BETA1, F.BETA2, F.EPS, F.LOSS_EPS, F.FLUSH_DENORMALS]] = 1e-3, 0.9, 0.999, 1e-8, 1e-7, 1

    def epoch():
        kernels.train_epoch(X, Y, order, params, state, sizes, acts, F.NLL, opt, hyper, batch, 1, 0, threads)

    epoch()
    return min(timeit.repeat(epoch, number=40, repeat=5)) / 40 * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="cython,numba")
    parser.add_argument("--batches", default="1,2,3,4,8", help="epoch lengths in batches")
    args = parser.parse_args()
    (X, y), _, source = e2e.subset(e2e.load_data("float32"), 10_000)
    Y = np.eye(10, dtype=X.dtype)[y]
    rng = np.random.default_rng(0)
    print(f"{source}; ms per epoch on 1 / 2 threads")
    print("| backend | network, batch | " + " | ".join(f"{b} batches" for b in args.batches.split(",")) + " |")
    print("|---|---|" + "---|" * len(args.batches.split(",")))
    for name in args.backends.split(","):
        kernels = backend.kernels(name)
        for hidden, batch, opt in NETWORKS:
            sizes = np.array([784, hidden, 10], np.int64)
            per_row = int(np.sum(sizes[:-1] * sizes[1:]))
            cells = []
            for n_batches in (int(b) for b in args.batches.split(",")):
                order = rng.permutation(len(X))[:n_batches * batch].astype(np.int64)
                one, two = (epoch_ms(kernels, X, Y, order, sizes, opt, batch, t, rng) for t in (1, 2))
                cells.append(f"{one:.3f} / {two:.3f} ({len(order) * per_row / 1e6:.1f} M)")
            print(f"| {name} | 784-{hidden}-10, {batch} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
