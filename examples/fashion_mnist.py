"""Fashion-MNIST with two modern networks, reported like examples/mnist_networks.py:

1. softmax output + log-likelihood cost: 784-100-10, sigmoid hidden layer, SGD eta 0.1, mini-batch 10;
2. ReLU with Adam, dropout and batch norm: 784-256-128-10, Dense -> BatchNorm -> ReLU -> Dropout(0.2)
   per hidden layer, softmax + log-likelihood, Adam lr 0.001, mini-batch 64.

    python examples/fashion_mnist.py [--epochs 5] [--limit N] [--backend numba]
    python examples/fashion_mnist.py --data mnist        # the embedded MNIST digits instead

Fashion-MNIST comes from Debian: `apt-get install dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).
"""
import argparse
import sys
import time

import numpy as np

import fastnn
from fastnn import datasets
from fastnn.layers import BatchNorm, Dense, Dropout, ReLU, Sigmoid, Softmax


def networks():
    """(name, layers, optimizer, batch size) of the two networks compared."""
    return [
        ("784-100-10 sigmoid/softmax, log-likelihood, SGD 0.1, batch 10",
         [Dense(784, 100), Sigmoid(), Dense(100, 10), Softmax()], fastnn.optim.SGD(0.1), 10),
        ("784-256-128-10 ReLU+BN+dropout 0.2, softmax, Adam 1e-3, batch 64",
         [Dense(784, 256, init="he"), BatchNorm(256), ReLU(), Dropout(0.2),
          Dense(256, 128, init="he"), BatchNorm(128), ReLU(), Dropout(0.2),
          Dense(128, 10, init="xavier"), Softmax()], fastnn.optim.Adam(1e-3), 64),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="fashion-mnist", help="fashion-mnist (default), mnist or a directory of IDX files")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N training samples only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--backend", default=None, choices=fastnn.backend.BACKENDS)
    args = parser.parse_args(argv)

    try:
        if args.data == "fashion-mnist":
            (X, y), (Xt, yt) = datasets.load_fashion_mnist(dtype=args.dtype)
            source = f"Fashion-MNIST ({datasets.FASHION_MNIST_DIR})"
        elif args.data == "mnist":
            (X, y), (Xt, yt) = datasets.load_mnist(dtype=args.dtype)
            source = "MNIST"
        else:
            (X, y), (Xt, yt) = datasets.load_idx_directory(args.data, dtype=args.dtype)
            source = args.data
    except FileNotFoundError as exc:
        parser.exit(1, f"error: {exc}\n(or run on the embedded digits: --data mnist)\n")
    if args.limit:
        X, y = X[: args.limit], y[: args.limit]
    backend = args.backend or fastnn.get_backend()
    print(f"data: {source}: {len(X):,} train, {len(Xt):,} test; {args.epochs} epochs, backend {backend}, "
          f"{args.dtype}, seed {args.seed}\n")
    print(f"{'network':<66} {'final acc':>9} {'best acc':>9} {'(epoch)':>7} {'samples/s':>10}")
    for name, layers, optimizer, batch in networks():
        model = fastnn.Sequential(layers, dtype=args.dtype, backend=backend, seed=args.seed)
        start = time.perf_counter()
        history = model.fit(X, y, loss="log_likelihood", optimizer=optimizer, epochs=args.epochs, batch_size=batch,
                            validation_data=(Xt, yt), seed=args.seed, verbose=0)
        seconds = time.perf_counter() - start
        accs = history.val_accuracy
        best = int(np.argmax(accs))
        rate = len(X) * len(history) / sum(history.seconds)
        print(f"{name:<66} {accs[-1]:>9.4f} {accs[best]:>9.4f} {f'({best + 1})':>7} {rate:>10,.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
