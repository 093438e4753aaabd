"""The seeds' MNIST networks: 784-30-10 and 784-100-10 sigmoid networks trained with SGD (mini-batch 10),
cross-entropy (eta 0.5) vs the quadratic cost (eta 3.0), "large" N(0, 1) vs "normalized" N(0, 1/n_in)
initial weights.

    python examples/mnist_networks.py                   # embedded digits: 8,000 train / 2,000 test
    python examples/mnist_networks.py --data DIR        # full MNIST IDX files in DIR (60,000 / 10,000)
    python examples/mnist_networks.py --data fashion-mnist --epochs 30

Prints a table of test accuracies: after the last epoch and the best epoch.
"""
import argparse
import os
import sys
import time

import fastnn
from fastnn import datasets
from fastnn.layers import Dense, Sigmoid

ETA = {"cross_entropy": 0.5, "quadratic": 3.0}


def load(data, dtype):
    """(train, test) and a description, for mnist (embedded or FASTNN_DATA), fashion-mnist or a directory."""
    if data == "mnist":
        directory = os.environ.get("FASTNN_DATA")
        source = f"MNIST from {directory}" if directory else "embedded MNIST test set"
        return datasets.load_mnist(dtype=dtype), source
    if data == "fashion-mnist":
        return datasets.load_fashion_mnist(dtype=dtype), f"Fashion-MNIST ({datasets.FASHION_MNIST_DIR})"
    return datasets.load_idx_directory(data, dtype=dtype), data


def train_one(hidden, loss, init, data, epochs, seed, dtype, backend):
    """Train one configuration; returns (final test accuracy, best test accuracy, best epoch, seconds)."""
    (X, y), (Xt, yt) = data
    model = fastnn.Sequential([Dense(784, hidden, init=init), Sigmoid(), Dense(hidden, 10, init=init), Sigmoid()],
                              dtype=dtype, backend=backend, seed=seed)
    start = time.perf_counter()
    history = model.fit(X, y, loss=loss, optimizer=fastnn.optim.SGD(ETA[loss]), epochs=epochs, batch_size=10,
                        validation_data=(Xt, yt), seed=seed, verbose=0)
    seconds = time.perf_counter() - start
    accs = history.val_accuracy
    best = max(range(len(accs)), key=accs.__getitem__)
    return accs[-1], accs[best], best + 1, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="mnist", help="mnist, fashion-mnist or a directory of IDX files (default: mnist)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per network (default: 10; the seeds used 30)")
    parser.add_argument("--hidden", default="30,100", help="hidden-layer sizes to compare (default: 30,100)")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N training samples only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--backend", default=None, choices=fastnn.backend.BACKENDS)
    args = parser.parse_args(argv)

    try:
        (train, test), source = load(args.data, args.dtype)
    except FileNotFoundError as exc:
        parser.exit(1, f"error: {exc}\n")
    if args.limit:
        train = (train[0][: args.limit], train[1][: args.limit])
    backend = args.backend or fastnn.get_backend()
    print(f"data: {source}: {len(train[0]):,} train, {len(test[0]):,} test; {args.epochs} epochs, "
          f"SGD mini-batch 10, backend {backend}, {args.dtype}, seed {args.seed}\n")
    print(f"{'network':<11} {'cost':<14} {'eta':>4} {'init':<11} {'final acc':>9} {'best acc':>9} "
          f"{'(epoch)':>7} {'seconds':>8}")
    for hidden in (int(h) for h in args.hidden.split(",")):
        for loss in ("cross_entropy", "quadratic"):
            for init in ("large", "normalized"):
                final, best, epoch, seconds = train_one(hidden, loss, init, (train, test), args.epochs, args.seed,
                                                        args.dtype, backend)
                print(f"{f'784-{hidden}-10':<11} {loss:<14} {ETA[loss]:>4} {init:<11} {final:>9.4f} {best:>9.4f} "
                      f"{f'({epoch})':>7} {seconds:>8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
