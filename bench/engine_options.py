"""What each option of ``fit`` costs in the compiled epoch: every optimizer against Adam, gradient clipping,
the ``mse`` loss against ``quadratic``, and a progress callback, on 784-100-10 and 784-256-128-10 at batches
32 and 128 (full Fashion-MNIST, float32, the default threads).

Every variant of a configuration is timed in the same run, round-robin (one epoch of each variant in turn,
``--rounds`` times), and the best epoch of each is kept, so the ratios compare epochs measured side by side.
Run from the repository root: ``.venv/bin/python bench/engine_options.py [--rounds 3] [--json out.json]``;
``--rows N`` trains on the first N rows (a quick check). Prints a markdown table: seconds per epoch and the
ratio to the configuration's reference variant (Adam; ``mse`` against ``quadratic``; progress against none).
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402

NETWORKS = {"784-100-10": (784, 100, 10), "784-256-128-10": (784, 256, 128, 10)}
BATCHES = (32, 128)
# variant: (optimizer factory name, fit options, loss, output); "adam" is the reference of the optimizer rows
VARIANTS = {
    "adam": ("adam", {}, "log_likelihood", "softmax"),
    "sgd": ("sgd", {}, "log_likelihood", "softmax"),
    "momentum": ("momentum", {}, "log_likelihood", "softmax"),
    "nesterov": ("nesterov", {}, "log_likelihood", "softmax"),
    "adamw": ("adamw", {}, "log_likelihood", "softmax"),
    "adagrad": ("adagrad", {}, "log_likelihood", "softmax"),
    "rmsprop": ("rmsprop", {}, "log_likelihood", "softmax"),
    "adadelta": ("adadelta", {}, "log_likelihood", "softmax"),
    "adam+clip_norm": ("adam", {"clip_norm": 1.0}, "log_likelihood", "softmax"),
    "adam+progress": ("adam", {"progress": True}, "log_likelihood", "softmax"),
    "quadratic": ("sgd", {}, "quadratic", "identity"),
    "mse": ("sgd", {}, "mse", "identity"),
}
REFERENCE = {"mse": "quadratic", "adam+progress": "adam"}  # the others: against adam
LIMIT = {"optimizer": 1.15, "adam+clip_norm": 1.2, "mse": 1.0, "adam+progress": 1.03}


def _optimizer(name):
    from fastnn import optim

    return {"adam": lambda: optim.Adam(1e-3), "sgd": lambda: optim.SGD(0.01),
            "momentum": lambda: optim.SGD(0.01, momentum=0.9),
            "nesterov": lambda: optim.SGD(0.01, momentum=0.9, nesterov=True), "adamw": lambda: optim.AdamW(1e-3),
            "adagrad": lambda: optim.Adagrad(0.01), "rmsprop": lambda: optim.RMSprop(1e-3),
            "adadelta": lambda: optim.Adadelta()}[name]()


class _Bar:
    """A progress bar's callback: it formats a line as the CLI's does, into nothing."""

    def __new__(cls):
        from fastnn.training import Callback

        class Bar(Callback):
            def on_progress(self, epoch, batches_done, logs=None):
                self.line = f"\r{batches_done}/{logs['batches']}"

        return Bar()


class Run:
    def __init__(self, sizes, batch, variant, X, y):
        from fastnn import Sequential, layers

        opt, options, loss, output = VARIANTS[variant]
        stack = []
        for i in range(len(sizes) - 1):
            stack.append(layers.Dense(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                stack.append(layers.ReLU())
        if output == "softmax":
            stack.append(layers.Softmax())
        self.model = Sequential(stack, dtype=X.dtype, seed=0)
        self.options = dict(options)
        self.callbacks = [_Bar()] if self.options.pop("progress", False) else []
        self.optimizer, self.loss, self.batch = _optimizer(opt), loss, batch
        self.X, self.y = X, (y if loss == "log_likelihood" else np.eye(sizes[-1], dtype=X.dtype)[y])
        self.rng = np.random.default_rng(0)
        self.best = float("inf")

    def epoch(self):
        history = self.model.fit(self.X, self.y, loss=self.loss, optimizer=self.optimizer, epochs=1,
                                 batch_size=self.batch, seed=self.rng, verbose=0, callbacks=self.callbacks,
                                 **self.options)
        assert history.engine == "compiled", history.reason
        self.best = min(self.best, float(history.seconds[-1]))


def measure(rounds, rows=None):
    (X, y), _, source = e2e.load_data("float32")
    if rows:
        X, y = np.ascontiguousarray(X[:rows]), y[:rows]
    results = {}
    for net, sizes in NETWORKS.items():
        for batch in BATCHES:
            runs = {v: Run(sizes, batch, v, X, y) for v in VARIANTS}
            for run in runs.values():  # warm-up: compile, first touches
                run.epoch()
                run.best = float("inf")
            for _ in range(rounds):
                for run in runs.values():
                    run.epoch()
            results[f"{net} batch {batch}"] = {v: run.best for v, run in runs.items()}
    return results, source


def table(results):
    lines = ["| configuration | " + " | ".join(VARIANTS) + " |", "|---|" + "---|" * len(VARIANTS)]
    worst = {}
    for config, seconds in results.items():
        cells = []
        for v, s in seconds.items():
            ratio = s / seconds[REFERENCE.get(v, "adam")]
            cells.append(f"{s:.3f} ({ratio:.2f}x)")
            kind = v if v in LIMIT else "optimizer"
            if v not in ("adam", "quadratic"):
                worst[kind] = max(worst.get(kind, 0.0), ratio)
        lines.append(f"| {config} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Worst ratio against the target: " + ", ".join(
        f"{kind} {ratio:.2f}x (target {LIMIT[kind]:.2f}x{'' if ratio <= LIMIT[kind] else ', missed'})"
        for kind, ratio in worst.items()))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    results, source = measure(args.rounds, args.rows)
    print(f"Seconds per epoch (best of {args.rounds}, round-robin), data: {source}, rows: {args.rows or 'all'}\n")
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"source": source, "rounds": args.rounds, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
