"""Every element-wise activation and its derivative, side by side, in one PNG.

The seeds compare activations by their shape, their output range and where the gradient vanishes
(sigmoid and tanh saturate at both ends; ReLU's gradient is 0 for every negative input). The values
come from fastnn's own layers: ``forward`` gives f(z), ``backward`` of a gradient of ones gives f'(z).

    python examples/plot_activations.py [--out activations.png] [--backend numpy]

Prints a table of the same facts; the PNG needs matplotlib (``pip install matplotlib``).
"""
import argparse
import sys

import numpy as np

import fastnn
from fastnn import layers

ACTIVATIONS = [
    ("sigmoid", layers.Sigmoid()),
    ("tanh", layers.Tanh()),
    ("relu", layers.ReLU()),
    ("leaky_relu(0.1)", layers.LeakyReLU(0.1)),
    ("prelu(alpha=0.25)", layers.PReLU(1, alpha_init=0.25)),
    ("softplus", layers.Softplus()),
    ("identity", layers.Identity()),
]


def curves(layer, z):
    """f(z) and f'(z) for a 1-D float64 z, through the layer's forward and backward passes."""
    a = layer.forward(z[:, None], training=True)
    da = layer.backward(np.ones_like(a))
    return a[:, 0], da[:, 0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="activations.png", help="PNG to write (default: %(default)s)")
    parser.add_argument("--backend", default="numpy", choices=fastnn.backend.BACKENDS)
    args = parser.parse_args(argv)
    fastnn.set_backend(args.backend)

    z = np.linspace(-6.0, 6.0, 1201)
    results = [(name, *curves(layer, z)) for name, layer in ACTIVATIONS]

    print(f"{'activation':<18} {'f(-6)':>8} {'f(6)':>8} {'f(0)':>7} {'f_prime(-6)':>12} {'f_prime(0)':>11} {'f_prime(6)':>11}  vanishing gradient")
    i0 = len(z) // 2
    for name, a, d in results:
        small = z[np.abs(d) < 0.01]
        where = "nowhere on [-6, 6]" if small.size == 0 else "|f'| < 0.01 on " + _ranges(small)
        print(f"{name:<18} {a[0]:8.4f} {a[-1]:8.4f} {a[i0]:7.4f} {d[0]:12.5f} {d[i0]:11.5f} {d[-1]:11.5f}  {where}")

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install matplotlib): no PNG written", file=sys.stderr)
        return 0
    cols = 4
    rows = -(-(len(results) + 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), sharex=True)
    for ax, (name, a, d) in zip(axes.flat, results):
        ax.axhline(0, color="0.8", lw=0.8)
        ax.axvline(0, color="0.8", lw=0.8)
        ax.plot(z, a, label="f(z)", lw=2)
        ax.plot(z, d, label="f'(z)", lw=2, ls="--")
        ax.fill_between(z, -1.2, 6.2, where=np.abs(d) < 0.01, color="tab:red", alpha=0.08, label="|f'| < 0.01")
        ax.set_ylim(-1.2, 3.0)
        ax.set_title(name)
        ax.set_xlabel("z")
    # The last panel overlays every derivative: how much gradient each lets through, where.
    ax = axes.flat[len(results)]
    for name, _, d in results:
        ax.plot(z, d, lw=1.5, label=name)
    ax.set_ylim(-0.1, 1.1)
    ax.set_title("all derivatives f'(z)")
    ax.set_xlabel("z")
    ax.legend(fontsize=7, loc="center left")
    for ax in list(axes.flat)[len(results) + 1:]:
        ax.axis("off")
    axes.flat[0].legend(loc="upper left", fontsize=8)
    fig.suptitle("fastnn activations and their derivatives (shaded: the gradient vanishes)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


def _ranges(values, step=0.011):
    """Compact text for the sorted z values where a condition holds, e.g. '[-6.00, -4.60] and [4.60, 6.00]'."""
    parts, start, prev = [], values[0], values[0]
    for v in values[1:]:
        if v - prev > step:
            parts.append((start, prev))
            start = v
        prev = v
    parts.append((start, prev))
    return " and ".join(f"[{a:.2f}, {b:.2f}]" for a, b in parts)


if __name__ == "__main__":
    sys.exit(main())
