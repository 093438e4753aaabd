"""Time to 0.90 test accuracy on Fashion-MNIST with an MLP: fastnn against the same recipe in PyTorch and JAX.

The recipe: 784-256-128-10, each hidden layer Dense (He-normal weights, zero biases) -> BatchNorm ->
ReLU -> Dropout(0.1), softmax output with the log-likelihood (cross-entropy) loss; Adam, learning rate
0.003 annealed to 0 over 14 epochs (cosine, stepped once per epoch); mini-batches of 128 rows in a fresh
random order each epoch; float32. Each library trains epoch by epoch until the test accuracy, measured
after each epoch (not timed), reaches the target; the seconds are the training epochs' wall time. JAX's
trainer is one compiled function per epoch (``jax.jit`` around a ``jax.lax.scan`` over the batches),
compiled before the clock starts; its compile time is reported beside.

    python examples/time_to_accuracy.py                  # fastnn, and the peers that are installed
    python examples/time_to_accuracy.py --peers none     # fastnn alone
    python examples/time_to_accuracy.py --json           # one JSON line (bench/report.py reads it)

Fashion-MNIST comes from Debian (`make fashion-mnist`, /usr/share/datasets/fashion-mnist). PyTorch and
JAX are in the optional `bench` extra (`make bench-peers`). fastnn and PyTorch use ``--threads`` threads
(default: every core this process may use); JAX always uses every core this process may use (limit it with
``taskset``).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

import fastnn
from fastnn import datasets, optim
from fastnn.layers import BatchNorm, Dense, Dropout, ReLU, Softmax

HIDDEN = (256, 128)
DROPOUT = 0.1
LR = 0.003
EPOCHS = 14  # the length of the cosine schedule, and the most epochs any library gets
BATCH = 128
TARGET = 0.90
BN_MOMENTUM, BN_EPS = 0.1, 1e-5  # torch.nn.BatchNorm1d's, and fastnn's
RECIPE = (f"784-{'-'.join(map(str, HIDDEN))}-10, Dense -> BatchNorm -> ReLU -> Dropout({DROPOUT}) per hidden "
          f"layer, softmax + log-likelihood, Adam lr {LR:g} with cosine annealing over {EPOCHS} epochs, "
          f"batch {BATCH}, float32")


def cosine_lr(epoch):
    """The learning rate of 0-based ``epoch`` (torch's CosineAnnealingLR, eta_min 0)."""
    return LR * (1 + math.cos(math.pi * epoch / EPOCHS)) / 2


class FastnnRun:
    """The recipe with fastnn's public API: one ``fit`` call per epoch, the schedule carried across calls."""

    name = "fastnn"

    def __init__(self, seed):
        layers, n_in = [], 784
        for width in HIDDEN:
            layers += [Dense(n_in, width, init="he"), BatchNorm(width, BN_MOMENTUM, BN_EPS), ReLU(), Dropout(DROPOUT)]
            n_in = width
        self.model = fastnn.Sequential(layers + [Dense(n_in, 10, init="he"), Softmax()], seed=seed)
        self.optimizer = optim.Adam(LR)
        self.schedule = optim.CosineAnnealingLR(T_max=EPOCHS)
        self.rng = np.random.default_rng(seed)

    def train_epoch(self, X, y):
        self.model.fit(X, y, loss="log_likelihood", optimizer=self.optimizer, epochs=1, batch_size=BATCH,
                       seed=self.rng, callbacks=[self.schedule], verbose=0)

    def accuracy(self, X, y):
        return self.model.evaluate(X, y)["accuracy"]


class TorchRun:
    """The recipe as a PyTorch user writes it: nn.Sequential, the loss on logits, torch.optim."""

    name = "torch"

    def __init__(self, seed):
        import torch
        from torch import nn

        torch.manual_seed(seed)
        layers, n_in = [], 784
        for width in HIDDEN:
            layers += [nn.Linear(n_in, width), nn.BatchNorm1d(width, BN_EPS, BN_MOMENTUM), nn.ReLU(),
                       nn.Dropout(DROPOUT)]
            n_in = width
        self.model = nn.Sequential(*layers, nn.Linear(n_in, 10))
        for layer in self.model:
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=EPOCHS)
        self.torch, self.generator = torch, torch.Generator().manual_seed(seed)

    def train_epoch(self, X, y):
        torch = self.torch
        X, y = torch.from_numpy(X), torch.from_numpy(y)
        self.model.train()
        order = torch.randperm(len(X), generator=self.generator)
        for start in range(0, len(X), BATCH):
            idx = order[start:start + BATCH]
            self.optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(self.model(X[idx]), y[idx])
            loss.backward()
            self.optimizer.step()
        self.schedule.step()

    def accuracy(self, X, y):
        self.model.eval()
        with self.torch.inference_mode():
            return float((self.model(self.torch.from_numpy(X)).argmax(1).numpy() == y).mean())


class JaxRun:
    """The recipe as a JAX user writes a fast trainer: the epoch one ``jax.jit`` function whose body is a
    ``jax.lax.scan`` over the epoch's batches of row indices (and dropout keys); the learning rate is an
    argument, so one compiled function serves every epoch. Compiled ahead of time in ``compile``."""

    name = "jax"

    def __init__(self, seed):
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        key = jax.random.PRNGKey(seed)
        self.params, self.stats, n_in = [], [], 784
        for width in HIDDEN + (10,):
            key, sub = jax.random.split(key)
            layer = {"W": jax.random.normal(sub, (n_in, width)) * math.sqrt(2 / n_in), "b": jnp.zeros(width)}
            if width != 10:
                layer.update(gamma=jnp.ones(width), beta=jnp.zeros(width))
                self.stats.append((jnp.zeros(width), jnp.ones(width)))  # running mean and variance
            self.params.append(layer)
            n_in = width
        zeros = lambda: jax.tree_util.tree_map(jnp.zeros_like, self.params)  # noqa: E731
        self.adam = (zeros(), zeros(), jnp.zeros(()))  # first and second moments, step count
        self.key, self.rng, self.epochs_done = key, np.random.default_rng(seed), 0
        self.compile_seconds = None

    def forward(self, params, stats, x, key=None):
        """Logits; in training (a dropout key given) also the updated running statistics."""
        jax, jnp = self.jax, self.jnp
        new_stats = []
        for layer, (mean, var) in zip(params[:-1], stats):
            z = x @ layer["W"] + layer["b"]
            if key is None:
                z = (z - mean) / jnp.sqrt(var + BN_EPS)
            else:
                mu, sigma2, m = z.mean(0), z.var(0), z.shape[0]
                z = (z - mu) / jnp.sqrt(sigma2 + BN_EPS)
                new_stats.append(((1 - BN_MOMENTUM) * mean + BN_MOMENTUM * mu,
                                  (1 - BN_MOMENTUM) * var + BN_MOMENTUM * sigma2 * m / (m - 1)))
            x = jax.nn.relu(layer["gamma"] * z + layer["beta"])
            if key is not None:
                key, sub = jax.random.split(key)
                x = jnp.where(jax.random.bernoulli(sub, 1 - DROPOUT, x.shape), x / (1 - DROPOUT), 0.0)
        return x @ params[-1]["W"] + params[-1]["b"], new_stats

    def _epoch_function(self, n):
        jax, jnp = self.jax, self.jnp
        tree = jax.tree_util.tree_map

        def loss_fn(params, stats, x, labels, key):
            logits, new_stats = self.forward(params, stats, x, key)
            log_p = jax.nn.log_softmax(logits)
            return -jnp.mean(jnp.take_along_axis(log_p, labels[:, None], axis=1)), new_stats

        def epoch(params, stats, adam, X, y, order, key, lr):
            def step(carry, batch):
                params, stats, (m, v, k) = carry
                idx, key = batch
                grads, stats = jax.grad(loss_fn, has_aux=True)(params, stats, X[idx], y[idx], key)
                k = k + 1  # Adam with torch.optim's rule
                m = tree(lambda m, g: 0.9 * m + 0.1 * g, m, grads)
                v = tree(lambda v, g: 0.999 * v + 0.001 * g * g, v, grads)
                size, root = lr / (1 - 0.9**k), jnp.sqrt(1 - 0.999**k)
                params = tree(lambda p, m, v: p - size * m / (jnp.sqrt(v) / root + 1e-8), params, m, v)
                return (params, stats, (m, v, k)), None

            full = n // BATCH
            keys = jax.random.split(key, full + 1)
            carry, _ = jax.lax.scan(step, (params, stats, adam), (order[:full * BATCH].reshape(full, BATCH), keys[:full]))
            if n % BATCH:
                carry, _ = step(carry, (order[full * BATCH:], keys[full]))
            return carry

        return jax.jit(epoch, donate_argnums=(0, 1, 2))

    def compile(self, X, y):
        t0 = time.perf_counter()
        self.X, self.y = self.jnp.asarray(X), self.jnp.asarray(y.astype(np.int32))
        order = np.arange(len(X), dtype=np.int32)
        self._epoch = self._epoch_function(len(X)).lower(self.params, self.stats, self.adam, self.X, self.y, order,
                                                         self.key, np.float32(LR)).compile()
        self._predict = self.jax.jit(lambda params, stats, x: self.forward(params, stats, x)[0])
        self.compile_seconds = time.perf_counter() - t0

    def train_epoch(self, X, y):
        self.key, key = self.jax.random.split(self.key)
        order = self.rng.permutation(len(X)).astype(np.int32)
        self.params, self.stats, self.adam = self._epoch(self.params, self.stats, self.adam, self.X, self.y, order,
                                                         key, np.float32(cosine_lr(self.epochs_done)))
        self.jax.block_until_ready(self.params)
        self.epochs_done += 1

    def accuracy(self, X, y):
        logits = np.asarray(self._predict(self.params, self.stats, X))
        return float((logits.argmax(1) == y).mean())


RUNS = {"fastnn": FastnnRun, "torch": TorchRun, "jax": JaxRun}


def race(run, X, y, Xt, yt, target, epochs):
    """Train ``run`` epoch by epoch until the test accuracy reaches ``target`` (or ``epochs`` run out)."""
    if hasattr(run, "compile"):
        run.compile(X, y)
    seconds, accuracies = 0.0, []
    for _ in range(epochs):
        t0 = time.perf_counter()
        run.train_epoch(X, y)
        seconds += time.perf_counter() - t0
        accuracies.append(run.accuracy(Xt, yt))
        if accuracies[-1] >= target:
            break
    return {"library": run.name, "seconds": seconds, "epochs": len(accuracies), "accuracy": accuracies[-1],
            "reached": accuracies[-1] >= target, "accuracies": accuracies,
            "compile_seconds": getattr(run, "compile_seconds", None)}


def installed(name):
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", default="torch,jax", help="comma-separated peers, or none (default torch,jax)")
    parser.add_argument("--threads", type=int, default=None, help="fastnn and torch threads (default: all cores)")
    parser.add_argument("--target", type=float, default=TARGET)
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"most epochs per library (default {EPOCHS})")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N samples only (smoke runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    args = parser.parse_args(argv)
    try:
        (X, y), (Xt, yt) = datasets.load_fashion_mnist()
    except FileNotFoundError as exc:
        parser.exit(1, f"error: {exc}\n(install it with `make fashion-mnist`)\n")
    if args.limit:
        X, y = X[:args.limit], y[:args.limit]
    threads = args.threads or len(os.sched_getaffinity(0))
    fastnn.set_num_threads(threads)
    names = ["fastnn"]
    for peer in filter(None, args.peers.split(",")):
        if peer != "none":
            if not installed(peer):
                print(f"# {peer}: not installed (bench extra), skipped", file=sys.stderr)
                continue
            names.append(peer)
    if "torch" in names:
        import torch

        torch.set_num_threads(threads)
    results = []
    for name in names:
        results.append(race(RUNS[name](args.seed), X, y, Xt, yt, args.target, args.epochs))
        if not args.json:
            r = results[-1]
            status = "reached" if r["reached"] else "NOT reached"
            compiled = f" (+ {r['compile_seconds']:.2f} s compile)" if r["compile_seconds"] else ""
            print(f"{name:<7} {status} {r['accuracy']:.4f} after {r['epochs']} epochs: {r['seconds']:.2f} s"
                  f"{compiled}", flush=True)
    if args.json:
        print(json.dumps({"recipe": RECIPE, "target": args.target, "threads": threads, "rows": len(X),
                          "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
