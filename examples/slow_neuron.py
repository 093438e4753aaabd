"""The seeds' slow-learning neuron: why cross-entropy beats the quadratic cost for sigmoid outputs.

One sigmoid neuron, one training input x = 1 with target y = 0, plain gradient descent with eta 0.15.
From w = 0.6, b = 0.9 the first output is sigmoid(1.5) = 0.82; from w = b = 2.0 it is sigmoid(4) = 0.98.
With the quadratic cost the gradient carries a factor sigmoid'(z), tiny when the neuron is saturated,
so the second start barely moves for many epochs. With cross-entropy that factor cancels (the delta is
a - y) and both starts learn fast.

    python examples/slow_neuron.py [--epochs 300] [--eta 0.15] [--out slow_neuron.png]

Prints the cost and output of all four runs as a table; saves a plot if matplotlib is installed.
"""
import argparse
import sys

import numpy as np

import fastnn
from fastnn.layers import Dense, Sigmoid
from fastnn.training import Callback

STARTS = ((0.6, 0.9), (2.0, 2.0))
LOSSES = ("quadratic", "cross_entropy")


class _Record(Callback):
    """The cost and the neuron's output after every epoch."""

    def __init__(self, X, y, loss):
        self.X, self.y, self.loss = X, y, loss
        self.costs, self.outputs = [], []

    def record(self):
        self.costs.append(self.model.evaluate(self.X, self.y, loss=self.loss)["loss"])
        self.outputs.append(float(self.model.predict(self.X)[0, 0]))

    def on_epoch_end(self, epoch, logs=None):
        self.record()


def run(w, b, loss, eta=0.15, epochs=300):
    """Train the neuron from (w, b); return (costs, outputs), each of length epochs + 1 (index 0 = start)."""
    X = np.ones((1, 1))
    y = np.zeros((1, 1))
    model = fastnn.Sequential([Dense(1, 1), Sigmoid()], dtype="float64", backend="numpy")
    model.set_weights([np.array([[w]]), np.array([b])])
    recorder = _Record(X, y, loss)
    recorder.set_model(model)
    recorder.record()
    model.fit(X, y, loss=loss, optimizer=fastnn.optim.SGD(eta), epochs=epochs, batch_size=1, shuffle=False,
              callbacks=[recorder], verbose=0)
    return np.array(recorder.costs), np.array(recorder.outputs)


def first_epoch_below(outputs, level=0.1):
    """The first epoch whose output is below ``level`` (None if none is)."""
    below = np.nonzero(outputs < level)[0]
    return int(below[0]) if below.size else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--eta", type=float, default=0.15)
    parser.add_argument("--out", default="slow_neuron.png", help="plot file (needs matplotlib)")
    args = parser.parse_args(argv)

    runs = {(w, b, loss): run(w, b, loss, args.eta, args.epochs) for w, b in STARTS for loss in LOSSES}
    names = [f"w={w},b={b} {'quad' if loss == 'quadratic' else 'x-ent'}" for (w, b, loss) in runs]
    print(f"One sigmoid neuron, input 1, target 0, eta {args.eta}: cost C and output a after each epoch\n")
    print(f"{'epoch':>5}  " + "  ".join(f"{n:>21}" for n in names))
    print(f"{'':>5}  " + "  ".join(f"{'C':>10} {'a':>10}" for _ in names))
    shown = sorted({e for e in (0, 1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 250, 300) if e <= args.epochs}
                   | {args.epochs})
    for e in shown:
        print(f"{e:>5}  " + "  ".join(f"{c[e]:10.5f} {a[e]:10.5f}" for c, a in runs.values()))
    print()
    for name, (_, outputs) in zip(names, runs.values()):
        k = first_epoch_below(outputs)
        print(f"{name:>21}: output below 0.1 " + (f"after {k} epochs" if k is not None else f"never in {args.epochs} epochs"))

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\nmatplotlib is not installed (pip install matplotlib): no plot written")
        return 0
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    epochs = np.arange(args.epochs + 1)
    for (w, b, loss), (costs, outputs), name in zip(runs.keys(), runs.values(), names):
        style = "-" if loss == "cross_entropy" else "--"
        axes[0].plot(epochs, costs, style, label=name)
        axes[1].plot(epochs, outputs, style, label=name)
    axes[0].set(title="cost", xlabel="epoch", ylabel="C")
    axes[1].set(title="output of the neuron (target 0)", xlabel="epoch", ylabel="a")
    axes[1].legend()
    fig.suptitle(f"The slow-learning neuron: quadratic cost vs cross-entropy (eta {args.eta})")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
