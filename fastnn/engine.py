"""How ``Sequential.fit`` runs an epoch: one interface, two engines.

- the compiled epoch (:class:`fastnn.fused.FusedRunner`): the whole epoch in one kernel call, for every
  model, loss, optimizer and option fastnn has;
- :class:`StepEpochs`: batch by batch through the layers' own kernels, in Python, for what cannot be
  compiled: layers or losses a user wrote in Python, an ``augment`` that is a Python callable, and
  callbacks that must run Python after every batch (``on_train_batch_end``).

Both take the same arguments and return the same numbers (:func:`choose` picks one; fit warns once,
naming the reason, when it has to fall back to the step-by-step engine). What both need is here once:
the epoch's random numbers (:func:`epoch_draws`: one Generator draws, per batch, the augmentation
parameters and then each Dropout layer's mask seed, so both engines and all three backends see the same
batches and masks), and :class:`Progress`, the channel through which progress callbacks hear of applied
batches and Ctrl-C becomes a request to stop after the batch under way.
"""
import math
import signal
import threading

import numpy as np

from . import fused as _fused
from . import losses as _losses
from . import optim as _optim
from ._kernels import constants as _c
from .layers import Dropout

__all__ = ["StepEpochs", "Progress", "epoch_draws", "choose"]


def compiled_augment(augment):
    """``augment`` when it is a :class:`fastnn.augment.Augment` (which the compiled epoch runs), else None;
    fastnn.augment is imported only when an augment is given."""
    if augment is None:
        return None
    from .augment import Augment

    return augment if type(augment) is Augment else None


def _batch_sizes(n, batch_size):
    return [min(batch_size, n - start) for start in range(0, n, batch_size)]


def epoch_draws(rng, n, batch_size, augment, n_dropout):
    """The epoch's random numbers, drawn from ``rng`` in the order the batches use them: per batch, the
    augmentation parameters of its rows (``Augment.draw``) and then one mask seed per Dropout layer with
    p > 0 (0 .. 2**63 - 1, in layer order). Returns ``(table, seeds)``: float64 (n, 3) rows (dx, dy,
    angle) in batch order, or None without an :class:`fastnn.augment.Augment`; int64 (batches,
    n_dropout)."""
    if augment is None and n_dropout == 0:  # nothing to draw (a draw of no numbers leaves rng as it was)
        return None, np.empty((-(-n // batch_size), 0), dtype=np.int64)
    sizes = _batch_sizes(n, batch_size)
    if augment is None:
        return None, rng.integers(0, 2**63, size=(len(sizes), n_dropout))
    table = np.empty((n, 3))
    seeds = np.empty((len(sizes), n_dropout), dtype=np.int64)
    start = 0
    for b, nb in enumerate(sizes):
        table[start:start + nb] = np.column_stack(augment.draw(nb, rng))
        seeds[b] = rng.integers(0, 2**63, size=n_dropout)
        start += nb
    return table, seeds


class Progress:
    """Progress and interruption of one ``fit``: ``update(batches_done)`` calls the callbacks that follow
    progress (``on_progress(epoch, batches_done, logs)``) when the count has moved; ``interrupted`` turns
    True on Ctrl-C while :meth:`catch_interrupt` is active (fit's main thread), and the engines then stop
    after the batch under way."""

    def __init__(self, callbacks, n_batches):
        self.callbacks = [cb for cb in callbacks if _overrides(cb, "on_progress")]
        self.n_batches = n_batches
        self.epoch, self.done, self.interrupted = 0, 0, False
        self.control = None  # the compiled epoch's control array while one runs: Ctrl-C sets its STOP

    def start_epoch(self, epoch):
        self.epoch, self.done = epoch, 0

    def update(self, done):
        if done != self.done:
            self.done = done
            for cb in self.callbacks:
                cb.on_progress(self.epoch, done, {"batches": self.n_batches})

    def catch_interrupt(self):
        """A context manager: SIGINT sets ``interrupted`` (a second one raises KeyboardInterrupt at once);
        outside the main thread, where no signal arrives, it does nothing."""
        return _InterruptCatcher(self)


class _InterruptCatcher:
    def __init__(self, progress):
        self.progress, self.previous = progress, None

    def _handler(self, signum, frame):
        if self.progress.interrupted:
            raise KeyboardInterrupt
        self.progress.interrupted = True
        if self.progress.control is not None:
            self.progress.control[_c.STOP] = 1

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def _overrides(callback, name):
    from .training import Callback

    method = getattr(type(callback), name, None)
    return method is not None and method is not getattr(Callback, name, None)


class StepEpochs:
    """The step-by-step engine: every batch forward through the layers, the loss, backward, penalties,
    clipping and the optimizer's step, each a kernel call of the current backend."""

    engine = "step"

    def __init__(self, model, loss, optimizer, l1, l2, clip_norm, augment, batch_callbacks):
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.l1, self.l2, self.clip_norm, self.augment = l1, l2, clip_norm, augment
        self.batch_callbacks = batch_callbacks
        self.fused = loss.fused_with is not None and type(model.layers[-1]).__name__ == loss.fused_with
        self.weights = [(layer, i) for layer in model.layers for i in layer.regularized]

    def _objective(self, k, a, tb, wb, l1, l2):
        value = self.loss.value(a, tb, wb)
        reg = [layer.params[i] for layer, i in self.weights]
        if l2:
            value += l2 / 2 * sum(k.sum_squares(p.reshape(-1)) for p in reg)
        if l1:
            value += l1 * sum(k.sum_abs(p.reshape(-1)) for p in reg)
        return value

    def objective_and_grads(self, k, xb, tb, wb, seeds, l1, l2):
        """``(objective, outputs)`` of one batch (the loss plus the penalties, with coefficients l1 and l2),
        after a forward pass in training mode and, when the objective is finite, a backward pass that
        leaves its gradient in the layers' ``grads``."""
        model, loss = self.model, self.loss
        a = model._forward(xb, True, seeds)
        value = self._objective(k, a, tb, wb, l1, l2)
        if math.isfinite(value):
            model._backward(loss.delta(a, tb, wb) if self.fused else loss.grad(a, tb, wb), self.fused)
            for layer, i in self.weights:
                if l2:
                    k.add_l2_grad(layer.grads[i].reshape(-1), layer.params[i].reshape(-1), l2)
                if l1:
                    k.add_l1_grad(layer.grads[i].reshape(-1), layer.params[i].reshape(-1), l1)
        return value, a

    def _batch_input(self, X, idx, start, nb, table, rng):
        xb = X[idx]
        if table is not None:
            from .augment import apply

            return apply(xb, self.augment, table[start:start + nb])
        if self.augment is not None:  # a Python callable: it draws from the Generator itself
            return self.model._augmented(self.augment, xb, rng)
        return xb

    def run_epoch(self, X, targets, labels, order, batch_size, draws, rng, weights=None, progress=None):
        """One epoch; returns ``(objective_sum, n_correct, n_updates, status, last)`` as the compiled
        epoch does. ``draws``: :func:`epoch_draws`'s (table, seeds), or None when ``augment`` is a Python
        callable (then each batch draws from ``rng`` as it goes: the augmentation, then the seeds)."""
        from .backend import kernels

        model, optimizer = self.model, self.optimizer
        n = X.shape[0]
        l1, l2 = _losses.penalty_coefficients(self.l1, self.l2, n)
        k = kernels()
        params = model.params()
        n_drop = sum(1 for layer in model.layers if isinstance(layer, Dropout) and layer.p > 0)
        table, seeds = draws if draws is not None else (None, None)
        total, correct, updates, status, value = 0.0, 0, 0, _c.STATUS_DONE, 0.0
        for b, start in enumerate(range(0, n, batch_size)):
            if progress is not None and progress.interrupted:
                status = _c.STATUS_STOPPED
                break
            hi = min(start + batch_size, n)
            idx = order[start:hi] if order is not None else slice(start, hi)
            xb, tb = self._batch_input(X, idx, start, hi - start, table, rng), targets[idx]
            wb = None if weights is None else weights[idx]
            batch_seeds = seeds[b] if seeds is not None else rng.integers(0, 2**63, size=n_drop)
            value, a = self.objective_and_grads(k, xb, tb, wb, batch_seeds, l1, l2)
            if not math.isfinite(value):
                status = _c.STATUS_LOSS
                break
            grads = model.grads()
            if self.clip_norm is not None:
                norm = _optim.clip_grad_norm(grads, self.clip_norm)
                if not math.isfinite(norm):
                    value, status = norm, _c.STATUS_NORM
                    break
            optimizer.step(params, grads)
            updates += 1
            total += value * ((hi - start) if wb is None else float(np.sum(wb, dtype=np.float64)))
            if labels is not None:
                correct += _losses.count_correct(a, labels[idx])
            for cb in self.batch_callbacks:
                cb.on_train_batch_end(b, {"size": hi - start, "loss": value})
            if progress is not None:
                progress.update(updates)
        return total, correct, updates, status, value


def choose(model, loss, optimizer, l1, l2, clip_norm, augment, callbacks, use_fused):
    """``(engine, reason)``: the compiled epoch when it can train this fit, else :class:`StepEpochs` and
    the reason (None when the caller asked for the step-by-step engine with ``use_fused=False``)."""
    batch_callbacks = [cb for cb in callbacks if _overrides(cb, "on_train_batch_end") or _overrides(cb, "on_batch_end")]
    reason = None
    if use_fused and batch_callbacks:
        reason = f"the callback {type(batch_callbacks[0]).__name__} runs Python after every batch (on_train_batch_end)"
    elif use_fused:
        runner, reason = _fused.plan(model, loss, optimizer, l1, l2, clip_norm=clip_norm, augment=augment)
        if runner is not None:
            return runner, None
    return StepEpochs(model, loss, optimizer, l1, l2, clip_norm, augment, batch_callbacks), reason
