"""Artificial expansion of the training data: does it raise test accuracy?

The seeds' fourth regularizer (beside L1, L2 and dropout): show the network a slightly shifted and
rotated copy of every training digit each epoch, drawn afresh by ``fastnn.augment.Augment`` and made by
the backend's compiled ``augment_images`` kernel. It helps most when training data is scarce, so this
trains the same network on the first N embedded digits with and without it, for a few seeds, and tests
on the 2,000 held-out digits.

    python examples/augmentation.py [--train 1000] [--epochs 40] [--seeds 3] [--backend numba]
    python examples/augmentation.py --out augmented.png     # also draw some augmented digits

Network: 784-100-10, sigmoid, cross-entropy, SGD eta 0.5, mini-batch 10, normalized init.
"""
import argparse
import sys
import time

import numpy as np

import fastnn
from fastnn.augment import Augment
from fastnn.datasets import load_mnist
from fastnn.layers import Dense, Sigmoid


def train(X, y, Xt, yt, augment, epochs, seed, backend):
    """Final and best test accuracy, and seconds, of one run."""
    model = fastnn.Sequential([Dense(784, 100), Sigmoid(), Dense(100, 10), Sigmoid()], backend=backend, seed=seed)
    start = time.perf_counter()
    history = model.fit(X, y, loss="cross_entropy", optimizer=fastnn.optim.SGD(0.5), epochs=epochs, batch_size=10,
                        validation_data=(Xt, yt), seed=seed, augment=augment, verbose=0)
    return history.val_accuracy[-1], max(history.val_accuracy), time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=1000, help="training digits used (default: 1000)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=3, help="runs per setting (default: 3)")
    parser.add_argument("--max-shift", type=int, default=2)
    parser.add_argument("--max-angle", type=float, default=10.0)
    parser.add_argument("--backend", default=None, choices=fastnn.backend.BACKENDS)
    parser.add_argument("--out", default=None, help="PNG of original and augmented digits (needs matplotlib)")
    args = parser.parse_args(argv)

    (X, y), (Xt, yt) = load_mnist()
    X, y = X[: args.train], y[: args.train]
    backend = args.backend or fastnn.get_backend()
    augment = Augment(args.max_shift, args.max_angle)
    print(f"{len(X):,} training digits, {len(Xt):,} test digits; 784-100-10 sigmoid, cross-entropy, SGD 0.5, "
          f"batch 10, {args.epochs} epochs; backend {backend}\n")
    print(f"{'training data':<42} {'seed':>4} {'final acc':>9} {'best acc':>9} {'seconds':>8}")
    results = {}
    for label, aug in (("as is", None), (f"expanded (shift <= {augment.max_shift}px, angle <= {augment.max_angle_deg:g} deg)", augment)):
        finals = []
        for seed in range(args.seeds):
            final, best, seconds = train(X, y, Xt, yt, aug, args.epochs, seed, backend)
            finals.append(final)
            print(f"{label:<42} {seed:>4} {final:>9.4f} {best:>9.4f} {seconds:>8.1f}", flush=True)
        results[label] = finals
    print()
    for label, finals in results.items():
        print(f"{label:<42} mean final test accuracy {np.mean(finals):.4f} (sd {np.std(finals):.4f})")

    if args.out:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("matplotlib is not installed (pip install matplotlib): no PNG written")
            return 0
        rng = np.random.default_rng(0)
        with fastnn.use_backend(backend):
            copies = [augment(X[:8], rng) for _ in range(4)]
        fig, axes = plt.subplots(5, 8, figsize=(8, 5.4))
        for row, images in enumerate([X[:8]] + copies):
            for col, image in enumerate(images):
                axes[row, col].imshow(image.reshape(28, 28), cmap="gray_r")
                axes[row, col].axis("off")
        fig.suptitle(f"top: the first 8 training digits; below: 4 draws of {augment!r}", fontsize=9)
        fig.tight_layout()
        fig.savefig(args.out, dpi=100)
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
