"""The fused epoch on several threads: fit's choice of threads, equality with one thread, aborts, BLAS limits."""
import importlib
import threading
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import Sequential, fused, optim
from fastnn._kernels import workers
from fastnn._kernels.reference import fused as F
from fastnn.layers import Dense, ReLU, Sigmoid, Softmax


def _model(dtype, out):
    hidden, last = (Sigmoid(), Sigmoid()) if out == "sigmoid" else (ReLU(), Softmax())
    # widths above 16, so that two and three threads each own units (shares are multiples of 16)
    return Sequential([Dense(20, 40), hidden, Dense(40, 24), ReLU(), Dense(24, 4), last], dtype=dtype, seed=5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "out, loss, make_opt, l2",
    [
        ("sigmoid", "cross_entropy", lambda: optim.SGD(0.5), 0.0),
        ("softmax", "log_likelihood", lambda: optim.Adam(1e-2), 0.0),
        ("softmax", "log_likelihood", lambda: optim.SGD(0.1, momentum=0.9), 0.1),
    ],
    ids=["sgd", "adam", "momentum-l2"],
)
def test_fit_on_two_threads_equals_one(compiled_name, monkeypatch, dtype, out, loss, make_opt, l2):
    monkeypatch.setattr(fused, "PARALLEL_MIN", 1)  # split even these small batches and epochs
    monkeypatch.setattr(fused, "EPOCH_PARALLEL_MIN", 0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((97, 20))
    y = rng.integers(0, 4, size=97)
    runs = []
    for n in (1, 2, 3):
        model = _model(dtype, out)
        model.backend = compiled_name
        with fastnn.use_num_threads(n):
            history = model.fit(X, y, loss=loss, optimizer=make_opt(), epochs=3, batch_size=8, seed=1, l2=l2,
                                verbose=0)
            with fastnn.use_backend(compiled_name):
                assert model.fused_runner.n_threads(8, len(X)) == n
        runs.append((model.get_weights(), history.loss, history.accuracy))
    rtol = 1e-5 if dtype == "float32" else 1e-12
    for weights, losses, accuracy in runs[1:]:
        for a, b in zip(weights, runs[0][0]):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(losses, runs[0][1], rtol=rtol)
        np.testing.assert_allclose(accuracy, runs[0][2], atol=1 / 97)


@pytest.fixture(params=["numba", "cython"])
def compiled_name(request):
    return request.param


def test_thread_count_follows_the_work_and_the_setting(monkeypatch):
    small = Sequential([Dense(5, 3), Sigmoid()], seed=0)
    large = Sequential([Dense(784, 100), Sigmoid(), Dense(100, 10), Sigmoid()], seed=0)
    monkeypatch.setattr(fastnn.threads, "fused_threads", lambda: 2)
    monkeypatch.setattr(fused, "PARALLEL_MIN", 60_000)
    assert fused.EPOCH_PARALLEL_MIN == 20_000_000
    runners = [fused.plan(m, fastnn.losses.get("cross_entropy"), optim.SGD(0.1))[0] for m in (small, large)]
    with fastnn.use_backend("cython"):
        assert runners[0].n_threads(10, 10**8) == 1  # 150 multiply-adds per batch: not worth a barrier
        assert runners[1].n_threads(10, 300) == 2  # 793,000 a batch, 23.8 M an epoch
        assert runners[1].n_threads(1, 300) == 1  # 79,300 a batch: one thread's worth
        assert runners[1].n_threads(10, 251) == 1  # 19.93 M an epoch: not worth waking a second thread
        assert runners[1].n_threads(10, 252) == 2  # 20.01 M
        assert runners[1].n_threads(200, 200) == 1  # partial_fit on a chunk of one batch
    with fastnn.use_backend("numpy"):
        assert runners[1].n_threads(10, 300) == 1  # the reference runs on one thread


def test_small_epochs_run_on_one_thread(compiled_name, monkeypatch):
    """fit on little data (an epoch under EPOCH_PARALLEL_MIN multiply-adds) runs its epochs on one thread,
    with the same results as on two."""
    calls = []
    original = fused._call_polling

    def record(kernel, args, control, progress):
        calls.append(args[13])  # train_epoch's n_threads
        return original(kernel, args, control, progress)

    monkeypatch.setattr(fused, "_call_polling", record)
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((120, 64)), rng.integers(0, 4, size=120)
    runs = []
    for epoch_min in (20_000_000, 0):
        monkeypatch.setattr(fused, "EPOCH_PARALLEL_MIN", epoch_min)
        calls.clear()
        model = Sequential([Dense(64, 100), ReLU(), Dense(100, 4), Softmax()], dtype="float64",
                           backend=compiled_name, seed=0)
        with fastnn.use_num_threads(2):
            model.fit(X, y, loss="log_likelihood", optimizer=optim.Adam(1e-2), epochs=2, batch_size=40, seed=1,
                      verbose=0)
        assert calls == ([1, 1] if epoch_min else [2, 2])  # 120 x 6,800 = 816,000 an epoch
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)  # (Adam: m / sqrt(v) scales a last-bit difference)


def test_fused_threads_follow_set_num_threads():
    before = fastnn.threads._requested
    try:
        with fastnn.use_num_threads(1):
            assert fastnn.threads.fused_threads() == 1
            with fastnn.use_num_threads(3):
                assert fastnn.threads.fused_threads() == 3
            assert fastnn.threads.fused_threads() == 1
        fastnn.set_num_threads(2)
        assert fastnn.threads.fused_threads() == 2
    finally:
        fastnn.threads._requested = before
        fastnn.set_num_threads(fastnn.threads.fused_threads())
    fastnn.threads._requested = before


def test_single_threaded_blas_limits_and_restores():
    fastnn.threads.get_num_threads()  # loads SciPy's BLAS
    with fastnn.use_num_threads(2):
        with fastnn.threads.single_threaded_blas() as limited:
            assert limited
            assert fastnn.get_num_threads() == 1
        assert fastnn.get_num_threads() == 2


def _worker(compiled):
    """The backend's per-thread worker (internal: train_epoch runs it through kernels/workers.py)."""
    return importlib.import_module(f"fastnn._kernels.{compiled.name}.fused").train_epoch_worker


def _worker_args(dtype=np.float32, n_threads=2):
    """The worker's arguments after (tid, n_threads, control), as kernels/workers.py's run_epoch makes them."""
    sizes = np.array([6, 5, 3], np.int64)
    acts = np.array([F.SIGMOID, F.SIGMOID], np.int64)
    _, n_params = F.param_layout(sizes)
    x = np.ones((4, 6), dtype)
    y = np.zeros((4, 3), dtype)
    params = np.full(n_params, 0.1, dtype)
    hyper = np.zeros(F.N_HYPER)
    hyper[F.LR] = 0.5
    layout = F.epoch_layout(sizes, 2, acts)
    shared = np.empty(F.shared_size(sizes, 2), dtype)
    return (np.zeros(3 * n_threads), shared, layout, F.epoch_ranges(sizes, layout, n_threads),
            F.thread_shares(sizes, n_threads), x, y, np.arange(4, dtype=np.int64), params,
            np.zeros((0, n_params), dtype), sizes, acts, F.BCE, F.SGD, hyper, 2, 0, 0, np.zeros(2),
            np.zeros((2, 2), np.int64), np.zeros((2, 2)), np.zeros(1, dtype), np.zeros(2), np.ones(2, np.int64),
            np.empty(0, dtype), np.empty((0, 3)), 0, np.empty(0, dtype), np.empty(0, np.int64), np.empty(0, np.int64))


def test_aborted_epoch_leaves_at_the_first_barrier(compiled):
    """A thread whose partner failed is released by control[ABORT] instead of waiting for it forever."""
    worker = _worker(compiled)
    control = workers.new_control()
    control[F.ABORT] = 1
    args = _worker_args()
    params_before = args[8].copy()
    done = []
    thread = threading.Thread(target=lambda: done.append(worker(0, 2, control, *args)), daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the worker waited for a thread that had failed"
    assert done[0][2] == 0  # no batch applied
    np.testing.assert_array_equal(args[8], params_before)


def test_run_reraises_a_worker_error_after_releasing_the_others(compiled):
    good = _worker(compiled)
    args = _worker_args()

    def worker(tid, n_threads, control, *rest):
        if tid == 1:
            raise RuntimeError("thread 1 failed")
        return good(tid, n_threads, control, *rest)

    with pytest.raises(RuntimeError, match="thread 1 failed"):
        workers.run(worker, 2, workers.new_control(), args)


def test_worker_refuses_a_small_workspace(compiled):
    args = list(_worker_args(n_threads=1))
    args[1] = args[1][:-1]
    with pytest.raises(ValueError, match="shared workspace"):
        _worker(compiled)(0, 1, workers.new_control(), *args)


def test_core_parts_deal_the_cores_out(monkeypatch):
    monkeypatch.setattr(workers.os, "sched_getaffinity", lambda pid: {5, 0, 2, 1, 4, 3})
    assert workers.core_parts(2) == ([{0, 2, 4}, {1, 3, 5}], None)
    assert workers.core_parts(4) == ([{0, 4}, {1, 5}, {2}, {3}], None)
    assert workers.core_parts(7) == (None, "7 threads on 6 cores")  # no part for some
    monkeypatch.delattr(workers.os, "sched_getaffinity")
    parts, why = workers.core_parts(2)
    assert parts is None and "sched_getaffinity" in why  # a platform without CPU affinity


def _warnings_of(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # (the once is workers' own, not the warnings module's)
        call()
    return [str(w.message) for w in caught]


def test_unpinned_threads_are_said_once_per_reason(monkeypatch):
    monkeypatch.setattr(workers, "_said", set())
    monkeypatch.setattr(workers.os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(workers.os, "sched_setaffinity", lambda pid, mask: None)
    run = lambda n: workers.run(lambda tid, n_threads, control: tid, n, workers.new_control(), ())  # noqa: E731
    assert _warnings_of(lambda: run(2)) == []  # two threads, two cores: each on its own
    first = _warnings_of(lambda: run(3))
    assert len(first) == 1 and "not each on cores of its own: 3 threads on 2 cores" in first[0]
    assert _warnings_of(lambda: run(3)) == []  # said once
    assert len(_warnings_of(lambda: run(4))) == 1  # another reason
    monkeypatch.delattr(workers.os, "sched_getaffinity")
    assert "sched_getaffinity" in _warnings_of(lambda: run(2))[0]


def test_run_keeps_each_thread_on_its_own_cores():
    """Each thread of an epoch runs on its own part of the caller's cores; the caller's mask is restored."""
    import os

    before = os.sched_getaffinity(0)
    seen = {}

    def worker(tid, n_threads, control):
        seen[tid] = os.sched_getaffinity(0)
        if tid == 1:
            raise RuntimeError("thread 1 failed")  # the masks are restored on the way out too
        return tid

    with pytest.raises(RuntimeError, match="thread 1 failed"):
        workers.run(worker, 2, workers.new_control(), ())
    expected = workers.core_parts(2)[0] or [before, before]
    assert seen == {0: expected[0], 1: expected[1]}
    assert len(before) < 2 or seen[0].isdisjoint(seen[1])
    assert os.sched_getaffinity(0) == before


def test_run_goes_on_where_the_cores_cannot_be_set(monkeypatch):
    """A mask the OS refuses (the allowed cores changed after they were read) leaves the threads unpinned."""
    def refuse(pid, mask):
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(workers, "_said", set())
    monkeypatch.setattr(workers.os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(workers.os, "sched_setaffinity", refuse)
    results = []
    said = _warnings_of(lambda: results.append(workers.run(lambda tid, n_threads, control: tid + 10, 2,
                                                             workers.new_control(), ())))
    assert results == [10]
    assert len(said) == 1 and "the OS refused a thread's cores" in said[0]  # once, for both threads


# -- the threads kept between epochs ------------------------------------------------------------------------


def _threads_of_run(n_threads, fail=None):
    """{tid: the thread that ran it} over one workers.run; tid ``fail`` raises."""
    seen = {}

    def worker(tid, n, control):
        seen[tid] = threading.get_ident()
        if tid == fail:
            raise RuntimeError(f"thread {tid} failed")
        return tid

    workers.run(worker, n_threads, workers.new_control(), ())
    return seen


def test_an_epochs_threads_are_kept_for_the_next():
    first = _threads_of_run(2)
    with pytest.raises(RuntimeError, match="thread 1 failed"):
        _threads_of_run(2, fail=1)
    again = _threads_of_run(2)
    assert first[0] == again[0] == threading.get_ident()  # thread 0 is the caller's
    assert again[1] == first[1] != first[0]  # the same helper, after an epoch in which it raised
    names = {t.ident: t.name for t in threading.enumerate()}
    assert names[again[1]] == "fastnn-helper"


def _train(seed, n_epochs=3):
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((64, 20)).astype(np.float32), rng.integers(0, 4, size=64)
    model = _model("float32", "softmax")
    model.fit(X, y, loss="log_likelihood", optimizer=optim.Adam(1e-2), epochs=n_epochs, batch_size=16, verbose=0,
              seed=seed)
    return [w.copy() for w in model.get_weights()]


def test_models_trained_at_once_in_two_threads_equal_one_after_the_other(compiled_name, monkeypatch):
    """Two epochs running at once each get their own kept threads (none waits for the other's)."""
    monkeypatch.setattr(fused, "PARALLEL_MIN", 1)
    monkeypatch.setattr(fused, "EPOCH_PARALLEL_MIN", 0)
    with fastnn.backend.use_backend(compiled_name):
        alone = [_train(seed) for seed in (1, 2)]
    together = {}

    def train(seed):
        with fastnn.backend.use_backend(compiled_name):
            together[seed] = _train(seed)

    threads = [threading.Thread(target=train, args=(seed,)) for seed in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    for seed, weights in zip((1, 2), alone):
        for got, want in zip(together[seed], weights):
            np.testing.assert_array_equal(got, want)


def test_a_forked_child_starts_threads_of_its_own():
    """The kept threads are not in a child forked after they started: it makes its own instead of waiting for
    them forever."""
    import multiprocessing

    _threads_of_run(2)  # the parent keeps a helper
    child = multiprocessing.get_context("fork").Process(target=_threads_of_run, args=(2,))
    child.start()
    child.join(timeout=60)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive and child.exitcode == 0


def test_a_kept_thread_whose_call_raises_is_not_reused():
    """``start``'s calls catch what they raise; one that does not ends its thread, which is then not handed the
    next call (that would wait forever)."""
    def fails():
        raise RuntimeError("escaped")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pytest.PytestUnhandledThreadExceptionWarning)
        handle = workers.start(fails)
        assert handle.wait(timeout=30)
    done = []
    assert workers.start(lambda: done.append(1)).wait(timeout=30)
    assert done == [1]


def test_epoch_tables_are_kept_per_options_and_made_again_when_one_changes(monkeypatch):
    from fastnn._kernels import constants as c
    monkeypatch.setattr(workers, "_TABLES", {})
    base = dict(sizes=np.array([36, 40, 24, 4]), batch_size=8, acts=np.array([c.RELU, c.LEAKY_RELU, c.SOFTMAX]),
                drop=np.zeros(3), norm=np.zeros((3, 2)), slopes=np.zeros(3), pieces=np.ones(3, np.int64),
                loss=c.NLL, opt=c.ADAM, augmenting=False, n_threads=2)

    def made(o):  # what the reference makes for these options, with no table kept
        layout = F.epoch_layout(o["sizes"], o["batch_size"], o["acts"], o["drop"], o["norm"], o["pieces"],
                                o["augmenting"])
        return layout, F.epoch_ranges(o["sizes"], layout, o["n_threads"]), F.thread_shares(o["sizes"], o["n_threads"])

    first = workers._epoch_tables(**base)
    assert all(a is b for a, b in zip(workers._epoch_tables(**dict(base)), first))  # kept, not made again
    changes = {"sizes": np.array([36, 56, 24, 4]), "batch_size": 9, "acts": np.array([c.PRELU, c.RELU, c.SOFTMAX]),
               "drop": np.array([0.5, 0.0, 0.0]), "norm": np.array([[0.9, 1e-5], [0, 0], [0, 0]]),
               "pieces": np.array([2, 1, 1]), "augmenting": True, "n_threads": 3}
    for name, value in changes.items():
        options = {**base, name: value}
        expected = made(options)
        assert any(not np.array_equal(a, b) for a, b in zip(expected, first)), name  # the change matters
        for got, want in zip(workers._epoch_tables(**options), expected):
            np.testing.assert_array_equal(got, want, err_msg=name)
    # options the tables do not depend on are still checked: a kept table is no pass for them
    for name, value, message in (("slopes", np.array([0.0, -1.0, 0.0]), "slope below 0"),
                                 ("loss", c.N_LOSSES, "unknown loss"), ("opt", c.N_OPTS, "unknown loss")):
        with pytest.raises(ValueError, match=message):
            workers._epoch_tables(**{**base, name: value})
