"""End-to-end training benchmarks shared by test_bench_training.py (pytest-benchmark) and report.py.

The four configurations of issue 4, one trainer per implementation with the same data, sizes, batch
size and number of updates:

- ``numba`` / ``cython`` / ``numpy``: ``fastnn.Sequential.fit(epochs=1)`` on that backend (``fit`` takes
  the fused one-call-per-epoch path by itself; ``numpy`` is fastnn's reference backend);
- ``numpy-loop``: a hand-written vectorized NumPy per-batch loop (the strongest plain-NumPy baseline);
- ``torch``: the idiomatic PyTorch CPU loop (``nn.Sequential``, loss on logits, ``torch.optim``);
- ``sklearn``: ``MLPClassifier(warm_start=True, max_iter=1).fit`` (one epoch per call); sigmoid outputs
  with binary cross-entropy come from a one-hot (multilabel) target, as sklearn does it;
- ``jax``: the way a JAX user writes a fast trainer: the whole epoch one ``jax.jit``-compiled function
  whose body is one ``jax.lax.scan`` over the epoch's pre-batched index arrays (see ``JaxTrainer``),
  compiled ahead of time (its ``compile_seconds`` are reported beside the epoch).

torch, sklearn and jax are the peers of the optional ``bench`` extra; ``available`` says when one is missing.

Seconds per epoch are wall-clock seconds of one training epoch over the whole training set (60,000 rows).
For fastnn, ``Trainer.epoch`` returns the wall time of the ``fit`` call and the epoch time ``fit``'s
History records (without the per-call input checks); see ``Trainer.epoch``. Every trainer can start
from given weights and train one epoch in a given order (``weights=``, ``epoch(order)``): the tests in
test_peers.py check that the peers compute what fastnn computes.
"""
import gc
import os
import time
import warnings
from dataclasses import dataclass

import numpy as np

FASHION = "/usr/share/datasets/fashion-mnist"
N_TRAIN, N_TEST, N_IN, N_CLASSES = 60000, 10000, 784, 10
IMPLS = ("numba", "cython", "numpy", "numpy-loop", "torch", "sklearn", "jax")
FASTNN = ("numba", "cython", "numpy")
# The peers: implementation -> (module to import, name to install); all in the optional `bench` extra.
PEERS = {"torch": ("torch", "torch"), "sklearn": ("sklearn.neural_network", "scikit-learn"), "jax": ("jax", "jax")}


@dataclass(frozen=True)
class Config:
    key: str
    sizes: tuple
    hidden: str  # "sigmoid" or "relu"
    output: str  # "sigmoid" (+ binary cross-entropy) or "softmax" (+ log-likelihood)
    optimizer: str  # "sgd", "momentum" or "adam"
    lr: float
    batch: int

    @property
    def name(self):
        return "-".join(str(s) for s in self.sizes)

    @property
    def label(self):
        loss = "sigmoid+CE" if self.output == "sigmoid" else "softmax+NLL"
        opt = {"sgd": "SGD", "momentum": "SGD momentum 0.9", "adam": "Adam"}[self.optimizer]
        return f"({self.key}) {self.name} {self.hidden} {loss}, {opt} lr {self.lr:g}, batch {self.batch}"

    def flops_per_epoch(self, n=N_TRAIN):
        """The arithmetic one epoch needs, 2 flops per multiply-add of the layer products: forward and
        weight gradient of every layer, input gradient of every layer but the first (nobody computes the
        gradient of the data). Issue 4 counted 6 n sum(layer products), 1.25-1.5x more for these networks."""
        products = [a * b for a, b in zip(self.sizes[:-1], self.sizes[1:])]
        return 2 * n * (2 * sum(products) + sum(products[1:]))

    def param_count(self):
        return sum(a * b + b for a, b in zip(self.sizes[:-1], self.sizes[1:]))


CONFIGS = {
    "a": Config("a", (784, 30, 10), "sigmoid", "sigmoid", "sgd", 0.5, 10),
    "b": Config("b", (784, 100, 10), "sigmoid", "sigmoid", "sgd", 0.5, 10),
    "c": Config("c", (784, 100, 10), "relu", "softmax", "adam", 1e-3, 128),
    # Issue 4 gives no learning rate for (d): 0.01, a usual choice for SGD with momentum 0.9.
    "d": Config("d", (784, 512, 512, 10), "relu", "softmax", "momentum", 0.01, 256),
}

_DATA = {}


def load_data(dtype):
    """((X, y), (X_test, y_test), source): full Fashion-MNIST as ``dtype``, or synthetic data of its shape.

    The synthetic data (when the Debian package ``dataset-fashion-mnist`` is not installed) is uniform
    pixels labelled by a random linear teacher, so it is learnable but says nothing about accuracy.
    """
    dtype = np.dtype(dtype)
    if dtype not in _DATA:
        if os.path.isdir(FASHION):
            from fastnn.datasets import load_fashion_mnist

            (X, y), (Xt, yt) = load_fashion_mnist(dtype=dtype)
            source = f"Fashion-MNIST ({FASHION})"
        else:
            rng = np.random.default_rng(1)
            X = rng.random((N_TRAIN, N_IN)).astype(dtype)
            Xt = rng.random((N_TEST, N_IN)).astype(dtype)
            teacher = rng.standard_normal((N_IN, N_CLASSES))
            y = np.argmax((X - 0.5) @ teacher, axis=1).astype(np.int64)
            yt = np.argmax((Xt - 0.5) @ teacher, axis=1).astype(np.int64)
            source = "synthetic (Fashion-MNIST not installed)"
        _DATA[dtype] = ((X, y), (Xt, yt), source)
    return _DATA[dtype]


def subset(data, n):
    """The first n training rows (smoke runs)."""
    (X, y), test, source = data
    return (np.ascontiguousarray(X[:n]), y[:n].copy()), test, source


def missing(package):
    """The reason a benchmark of a peer skips (one fixed text per package, so CI can allow-list it)."""
    return f"{package} not installed (bench extra)"


def available(impl):
    """None when ``impl`` can run here, else the reason it cannot (a missing optional package)."""
    if impl in PEERS:
        module, package = PEERS[impl]
        try:
            __import__(module)
        except ImportError:
            return missing(package)
    if impl in FASTNN:
        from fastnn import backend

        try:
            backend.kernels(impl)
        except ImportError as exc:
            return str(exc)
    return None


# -- trainers -----------------------------------------------------------------------------------------


def initial_weights(config, dtype, seed=0):
    """[(W (n_in, n_out), b), ...] drawn as torch's ``nn.Linear`` draws them: U(-1/sqrt(n_in), 1/sqrt(n_in))
    for weights and biases (the JAX trainer's start, so it starts like the torch trainer)."""
    rng = np.random.default_rng(seed)
    out = []
    for a, b in zip(config.sizes[:-1], config.sizes[1:]):
        bound = 1 / np.sqrt(a)
        out.append((rng.uniform(-bound, bound, (a, b)).astype(dtype), rng.uniform(-bound, bound, b).astype(dtype)))
    return out


class Trainer:
    """One implementation training one configuration. ``epoch(order=None)`` trains one epoch on (X, y), in
    ``order`` (row indices) or a fresh random one, and returns ``(wall_seconds, epoch_seconds)``;
    ``accuracy(X, y)`` is the test accuracy; ``compile_seconds`` the ahead-of-time compile (JAX), else None."""

    fused = None
    compile_seconds = None

    def epoch(self, order=None):
        t0 = time.perf_counter()
        self._epoch(order)
        wall = time.perf_counter() - t0
        return wall, wall


class FastnnTrainer(Trainer):
    def __init__(self, backend, config, X, y, seed=0, weights=None):
        import fastnn
        from fastnn import layers

        act = {"sigmoid": layers.Sigmoid, "relu": layers.ReLU}[config.hidden]
        stack = []
        sizes = config.sizes
        for i in range(len(sizes) - 1):
            stack.append(layers.Dense(sizes[i], sizes[i + 1]))
            last = i == len(sizes) - 2
            stack.append((layers.Sigmoid() if config.output == "sigmoid" else layers.Softmax()) if last else act())
        self.model = fastnn.Sequential(stack, dtype=X.dtype, backend=backend, seed=seed)
        if weights is not None:
            self.model.set_weights([array for layer in weights for array in layer])
        if config.optimizer == "adam":
            self.optimizer = fastnn.optim.Adam(lr=config.lr)
        else:
            self.optimizer = fastnn.optim.SGD(lr=config.lr, momentum=0.9 if config.optimizer == "momentum" else 0.0)
        self.loss = "cross_entropy" if config.output == "sigmoid" else "log_likelihood"
        self.X, self.y, self.batch = X, y, config.batch
        self.rng = np.random.default_rng(seed)

    def epoch(self, order=None):
        """(wall seconds of fit(epochs=1), the epoch's seconds in fit's History: without input checks).
        With ``order``, fit runs unshuffled on the rows in that order (a copy: for tests, not timing)."""
        X, y, shuffle = (self.X, self.y, True) if order is None else (self.X[order], self.y[order], False)
        t0 = time.perf_counter()
        history = self.model.fit(X, y, loss=self.loss, optimizer=self.optimizer, epochs=1, batch_size=self.batch,
                                 seed=self.rng, shuffle=shuffle, verbose=0)
        wall = time.perf_counter() - t0
        self.fused = self.model.fused_runner is not None
        return wall, float(history.seconds[-1])

    def weights(self):
        return [w.copy() for w in self.model.get_weights()]

    def accuracy(self, X, y):
        return float(np.mean(np.argmax(self.model.predict(X), axis=1) == y))


class NumpyLoopTrainer(Trainer):
    """A plain vectorized NumPy loop: per mini-batch forward, backward, update (no framework)."""

    def __init__(self, config, X, y, seed=0):
        rng = np.random.default_rng(seed)
        t = X.dtype.type
        self.t = t
        self.params = []
        for a, b in zip(config.sizes[:-1], config.sizes[1:]):
            self.params.append([(rng.standard_normal((a, b)) / np.sqrt(a)).astype(X.dtype), np.zeros(b, X.dtype)])
        self.state = [[np.zeros_like(p) for p in layer] for layer in self.params]
        self.state2 = [[np.zeros_like(p) for p in layer] for layer in self.params]
        self.config, self.X, self.rng, self.step = config, X, rng, 0
        self.Y = np.eye(config.sizes[-1], dtype=X.dtype)[y]

    def _forward(self, x):
        acts, last = [x], len(self.params) - 1
        for l, (w, b) in enumerate(self.params):
            z = acts[-1] @ w + b
            if l < last:
                a = 1 / (1 + np.exp(-z)) if self.config.hidden == "sigmoid" else np.maximum(z, 0)
            elif self.config.output == "sigmoid":
                a = 1 / (1 + np.exp(-z))
            else:
                e = np.exp(z - z.max(axis=1, keepdims=True))
                a = e / e.sum(axis=1, keepdims=True)
            acts.append(a)
        return acts

    def _update(self, l, i, g):
        c, t, p = self.config, self.t, self.params[l][i]
        if c.optimizer == "sgd":
            p -= t(c.lr) * g
        elif c.optimizer == "momentum":
            buf = self.state[l][i]
            buf *= t(0.9)
            buf += g
            p -= t(c.lr) * buf
        else:
            m, v, k = self.state[l][i], self.state2[l][i], self.step
            m *= t(0.9)
            m += t(0.1) * g
            v *= t(0.999)
            v += t(0.001) * (g * g)
            p -= t(c.lr / (1 - 0.9**k)) * (m / (np.sqrt(v) / t(np.sqrt(1 - 0.999**k)) + t(1e-8)))

    def _epoch(self, order):
        order = self.rng.permutation(self.X.shape[0]) if order is None else order
        bs, t = self.config.batch, self.t
        for start in range(0, len(order), bs):
            idx = order[start:start + bs]
            acts = self._forward(self.X[idx])
            delta = (acts[-1] - self.Y[idx]) / t(len(idx))
            self.step += 1
            for l in range(len(self.params) - 1, -1, -1):
                w, _ = self.params[l]
                gw, gb = acts[l].T @ delta, delta.sum(axis=0)
                if l:
                    a = acts[l]
                    delta = (delta @ w.T) * (a * (1 - a) if self.config.hidden == "sigmoid" else (a > 0))
                self._update(l, 0, gw)
                self._update(l, 1, gb)

    def accuracy(self, X, y):
        return float(np.mean(np.argmax(self._forward(X)[-1], axis=1) == y))


class TorchTrainer(Trainer):
    """The idiomatic PyTorch loop: nn.Sequential, the loss on logits, torch.optim, default init."""

    def __init__(self, config, X, y, seed=0, weights=None):
        import torch
        from torch import nn

        torch.manual_seed(seed)
        self.torch = torch
        dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[X.dtype]
        mods = []
        for i, (a, b) in enumerate(zip(config.sizes[:-1], config.sizes[1:])):
            mods.append(nn.Linear(a, b))
            if i < len(config.sizes) - 2:
                mods.append(nn.Sigmoid() if config.hidden == "sigmoid" else nn.ReLU())
        self.model = nn.Sequential(*mods).to(dtype)
        if weights is not None:
            with torch.no_grad():
                for linear, (W, b) in zip(self.model[::2], weights):
                    linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                    linear.bias.copy_(torch.from_numpy(b))
        if config.optimizer == "adam":
            self.opt = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        else:
            self.opt = torch.optim.SGD(self.model.parameters(), lr=config.lr,
                                       momentum=0.9 if config.optimizer == "momentum" else 0.0)
        self.X = torch.from_numpy(X)
        if config.output == "sigmoid":
            # Binary cross-entropy summed over the outputs, averaged over the batch (fastnn's cross_entropy).
            self.Y = torch.from_numpy(np.eye(config.sizes[-1], dtype=X.dtype)[y])
            self.loss = lambda z, t: nn.functional.binary_cross_entropy_with_logits(z, t, reduction="sum") / z.shape[0]
        else:
            self.Y = torch.from_numpy(y)
            self.loss = nn.functional.cross_entropy
        self.batch = config.batch
        self.gen = torch.Generator().manual_seed(seed)

    def _epoch(self, order):
        torch, model, opt, bs = self.torch, self.model, self.opt, self.batch
        perm = torch.randperm(self.X.shape[0], generator=self.gen) if order is None else torch.from_numpy(order)
        for start in range(0, self.X.shape[0], bs):
            idx = perm[start:start + bs]
            opt.zero_grad()
            loss = self.loss(model(self.X[idx]), self.Y[idx])
            loss.backward()
            opt.step()

    def weights(self):
        return [p.detach().numpy().T.copy() if p.ndim == 2 else p.detach().numpy().copy()
                for p in self.model.parameters()]

    def accuracy(self, X, y):
        with self.torch.inference_mode():
            out = self.model(self.torch.from_numpy(X)).numpy()
        return float(np.mean(np.argmax(out, axis=1) == y))


class SklearnTrainer(Trainer):
    """MLPClassifier, one epoch per ``fit`` call (warm_start, max_iter=1), no L2 penalty, no early stop."""

    def __init__(self, config, X, y, seed=0):
        from sklearn.neural_network import MLPClassifier

        solver = "adam" if config.optimizer == "adam" else "sgd"
        self.model = MLPClassifier(
            hidden_layer_sizes=config.sizes[1:-1], activation="logistic" if config.hidden == "sigmoid" else "relu",
            solver=solver, alpha=0.0, batch_size=config.batch, learning_rate_init=config.lr,
            momentum=0.9 if config.optimizer == "momentum" else 0.0, nesterovs_momentum=False,
            max_iter=1, shuffle=True, random_state=seed, warm_start=True, tol=0.0, n_iter_no_change=10**9,
        )
        # A one-hot (multilabel) target gives sigmoid outputs with binary cross-entropy; labels give softmax.
        self.X = X
        self.T = np.eye(config.sizes[-1], dtype=np.int64)[y] if config.output == "sigmoid" else y

    def _epoch(self, order):
        if order is not None:
            raise ValueError("MLPClassifier draws its own order")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning after every one-epoch fit
            self.model.fit(self.X, self.T)

    def accuracy(self, X, y):
        p = self.model.predict_proba(X)
        return float(np.mean(np.argmax(p, axis=1) == y))


def _jax():
    """jax and jax.numpy, with 64-bit floats enabled (for the float64 configurations)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax, jax.numpy


def _jax_logits(params, x, act):
    """The network's output before its last activation."""
    for W, b in params[:-1]:
        x = act(x @ W + b)
    W, b = params[-1]
    return x @ W + b


class JaxTrainer(Trainer):
    """The way a JAX user writes a fast trainer: one epoch is one ``jax.jit``-compiled function whose body
    is one ``jax.lax.scan`` over the epoch's pre-batched index arrays; each scanned step gathers its rows,
    takes the loss and its gradient with ``jax.value_and_grad`` and applies the optimizer; the last,
    smaller batch (when the batch size does not divide the rows) is one more step in the same function.
    Parameters and optimizer state are donated to the call (updated in place). The order of each epoch
    is drawn on the host (NumPy) and passed in. The function is compiled ahead of time in ``__init__``
    (trace, lower, compile: ``compile_seconds``).

    The start is torch's (``initial_weights``), the rules are torch.optim's (SGD, momentum 0.9, Adam),
    the losses those of the torch trainer: binary cross-entropy on the logits summed over the outputs and
    averaged over the batch, or softmax cross-entropy averaged over the batch.
    """

    # Rows per unrolled iteration of the scan: a step of 10 rows is short next to the loop's per-iteration
    # cost (unrolling 10 steps made (a) ~20% faster here; unrolling batches of 128+ rows gained nothing).
    UNROLL_ROWS = 100

    def __init__(self, config, X, y, seed=0, weights=None):
        jax, jnp = _jax()
        dtype = X.dtype
        start = initial_weights(config, dtype, seed) if weights is None else weights
        self.params = [(jnp.asarray(W, dtype), jnp.asarray(b, dtype)) for W, b in start]
        self.state = self._initial_state(config, self.params, jnp)
        self.X = jnp.asarray(X)
        target = np.eye(config.sizes[-1], dtype=dtype)[y] if config.output == "sigmoid" else y.astype(np.int32)
        self.T = jnp.asarray(target)
        self.act = jax.nn.sigmoid if config.hidden == "sigmoid" else jax.nn.relu
        self.rng = np.random.default_rng(seed)
        t0 = time.perf_counter()
        epoch = jax.jit(self._epoch_function(config, X.shape[0], jax, jnp), donate_argnums=(0, 1))
        order = np.arange(X.shape[0], dtype=np.int32)
        self._run = epoch.lower(self.params, self.state, self.X, self.T, order).compile()
        self.compile_seconds = time.perf_counter() - t0
        self._predict = jax.jit(lambda params, x: _jax_logits(params, x, self.act))
        self.loss = None

    @staticmethod
    def _initial_state(config, params, jnp):
        def zeros():
            return [(jnp.zeros_like(W), jnp.zeros_like(b)) for W, b in params]

        if config.optimizer == "sgd":
            return ()
        if config.optimizer == "momentum":
            return zeros()
        return zeros(), zeros(), jnp.zeros((), params[0][0].dtype)  # Adam: m, v, step count

    def _epoch_function(self, config, n, jax, jnp):
        """(params, state, X, T, order) -> (params, state, the epoch's mean training loss)."""
        act, lr, batch = self.act, config.lr, config.batch
        tree = jax.tree_util.tree_map

        def loss_fn(params, x, t):
            z = _jax_logits(params, x, act)
            if config.output == "sigmoid":
                return jnp.sum(jax.nn.softplus(z) - t * z) / x.shape[0]
            return jnp.mean(jax.nn.logsumexp(z, axis=1) - jnp.take_along_axis(z, t[:, None], axis=1)[:, 0])

        def update(params, grads, state):  # torch.optim's rules
            if config.optimizer == "sgd":
                return tree(lambda p, g: p - lr * g, params, grads), state
            if config.optimizer == "momentum":
                state = tree(lambda m, g: 0.9 * m + g, state, grads)
                return tree(lambda p, m: p - lr * m, params, state), state
            m, v, k = state
            k = k + 1
            m = tree(lambda m, g: 0.9 * m + 0.1 * g, m, grads)
            v = tree(lambda v, g: 0.999 * v + 0.001 * g * g, v, grads)
            step, root = lr / (1 - 0.9**k), jnp.sqrt(1 - 0.999**k)
            return tree(lambda p, m, v: p - step * m / (jnp.sqrt(v) / root + 1e-8), params, m, v), (m, v, k)

        def epoch(params, state, X, T, order):
            def step(carry, idx):
                params, state = carry
                loss, grads = jax.value_and_grad(loss_fn)(params, X[idx], T[idx])
                return update(params, grads, state), loss

            full = n // batch
            (params, state), losses = jax.lax.scan(step, (params, state), order[:full * batch].reshape(full, batch),
                                                   unroll=max(1, self.UNROLL_ROWS // batch))
            total = jnp.sum(losses) * batch
            if n % batch:
                (params, state), loss = step((params, state), order[full * batch:])
                total = total + loss * (n % batch)
            return params, state, total / n

        return epoch

    def _epoch(self, order):
        order = self.rng.permutation(self.X.shape[0]) if order is None else order
        self.params, self.state, self.loss = self._run(self.params, self.state, self.X, self.T,
                                                       order.astype(np.int32))
        self.loss.block_until_ready()

    def weights(self):
        return [np.asarray(a) for layer in self.params for a in layer]

    def accuracy(self, X, y):
        return float(np.mean(np.argmax(np.asarray(self._predict(self.params, X)), axis=1) == y))


def make_trainer(impl, config, X, y, seed=0):
    if impl in FASTNN:
        return FastnnTrainer(impl, config, X, y, seed)
    trainers = {"numpy-loop": NumpyLoopTrainer, "torch": TorchTrainer, "sklearn": SklearnTrainer, "jax": JaxTrainer}
    return trainers[impl](config, X, y, seed)


def warm_up(impl, config, dtype, rows=200):
    """Compile and touch everything once on a few rows (JIT compile is not part of an epoch's time)."""
    rng = np.random.default_rng(2)
    X = rng.random((rows, config.sizes[0])).astype(dtype)
    y = rng.integers(0, config.sizes[-1], rows).astype(np.int64)
    trainer = make_trainer(impl, config, X, y)
    trainer.epoch()
    trainer.accuracy(X, y)


# -- threads and the GEMM rate --------------------------------------------------------------------------


def set_threads(n, with_torch=True):
    """n threads in fastnn's fused epoch and every loaded BLAS (fastnn.set_num_threads) and, unless
    ``with_torch`` is false, n intra-op threads in torch (importing it when installed)."""
    from fastnn.threads import set_num_threads

    set_num_threads(n)
    if not with_torch or available("torch"):
        return
    import torch

    torch.set_num_threads(n)


def matmul_gflops(dtype="float32", size=2048, repeats=10):
    """Best GFLOP/s of ``a @ b`` with NumPy on (size, size) matrices: 2 size^3 flops per product."""
    rng = np.random.default_rng(0)
    a = rng.random((size, size)).astype(dtype)
    b = rng.random((size, size)).astype(dtype)
    out = np.empty_like(a)
    np.matmul(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def time_epochs(trainer, repeats):
    """Run ``repeats`` epochs; return the lists of wall and epoch seconds."""
    walls, epochs = [], []
    for _ in range(repeats):
        gc.collect()
        wall, ep = trainer.epoch()
        walls.append(wall)
        epochs.append(ep)
    return walls, epochs
