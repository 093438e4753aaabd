"""Model files: a save killed mid-write loses nothing; load never unpickles nor runs code from the file;
every damaged, hand-edited or newer file gives a clear ``ModelFileError`` (a ``ValueError``).

(The round trip, the header layout and the optimizer state are in test_io.py.)
"""
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn import Sequential, optim
from fastnn.io import FORMAT_VERSION, ModelFileError
from fastnn.layers import BatchNorm, Dense, Dropout, PReLU, Sigmoid, Softmax


def small_model(seed=0):
    model = Sequential([Dense(6, 5), PReLU(5), BatchNorm(5), Dropout(0.1), Dense(5, 3), Softmax()], seed=seed)
    g = np.random.default_rng(seed)
    model.fit(g.normal(size=(20, 6)), g.integers(0, 3, 20), loss="log_likelihood", optimizer=optim.Adam(0.01),
              epochs=1, batch_size=8, seed=seed, verbose=0)
    return model


def assert_same_model(a, b):
    assert [type(x) for x in a.layers] == [type(x) for x in b.layers]
    for u, v in zip(a.get_weights(), b.get_weights()):
        assert u.dtype == v.dtype
        np.testing.assert_array_equal(u, v)


# -- a save killed mid-write --------------------------------------------------------------------------------

# The child replaces the file object fastnn.save writes through with a slow one (4 kB per write) that,
# once `after` bytes are on disk, creates the marker file and blocks. The parent waits for the marker and
# SIGKILLs the child there: deterministically in the middle of writing the big array of the new file.
CHILD = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import fastnn
    from fastnn import Sequential
    from fastnn.layers import Dense, Sigmoid

    path, marker, after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    real_fdopen = os.fdopen

    class SlowFile:
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, data):
            data = memoryview(data).cast("B")
            for start in range(0, len(data), 4096):  # a slow disk: 4 kB at a time
                self.written += self.f.write(data[start:start + 4096])
                if self.written >= after:
                    self.f.flush()
                    os.fsync(self.f.fileno())
                    open(marker, "w").close()
                    time.sleep(600)  # killed here
            return len(data)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

        def __getattr__(self, name):
            return getattr(self.f, name)

    os.fdopen = lambda *args, **kwargs: SlowFile(real_fdopen(*args, **kwargs))
    big = Sequential([Dense(1000, 1000), Sigmoid(), Dense(1000, 10)], seed=1)  # ~4 MB of float32
    fastnn.save(big, path)
    print("the save finished: the test did not kill it in time", flush=True)
""")


def run_and_kill(tmp_path, target, after=1 << 20):
    marker = tmp_path / "writing"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(target), str(marker), str(after)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the child never started writing"
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    temporary = [p for p in tmp_path.iterdir() if p.name.startswith("." + target.name + ".") and p.name.endswith(".tmp")]
    assert len(temporary) == 1  # the half-written new file, under a temporary name
    size = temporary[0].stat().st_size
    assert 0 < size < 3_000_000  # killed well before its ~4 MB were written
    with pytest.raises(ModelFileError):  # and it is not a model
        fastnn.load(temporary[0])
    return size


def test_a_save_killed_mid_write_leaves_the_previous_file_intact(tmp_path):
    target = tmp_path / "model.npz"
    previous = small_model()
    fastnn.save(previous, target)
    before = target.read_bytes()
    assert run_and_kill(tmp_path, target) >= 1 << 20  # inside the big weight matrix
    assert target.read_bytes() == before
    loaded = fastnn.load(target)
    assert_same_model(loaded, previous)
    np.testing.assert_array_equal(loaded.predict(np.ones((2, 6))), previous.predict(np.ones((2, 6))))


def test_a_first_save_killed_mid_write_leaves_no_file(tmp_path):
    target = tmp_path / "model.npz"
    run_and_kill(tmp_path, target, after=1000)
    assert not target.exists()


# -- nothing in a file is unpickled or run ------------------------------------------------------------------


class Payload:
    """Unpickling this creates the file ``path``: proof that code from the file ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def write_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def header_bytes(header):
    return np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)


def good_header(model):
    """The header fastnn.save writes for ``model``, as a dict, and its arrays."""
    from fastnn.io import _header_and_arrays

    return _header_and_arrays(model, model.optimizer)


@pytest.mark.parametrize("where", ["weights", "optimizer state", "header", "single npy"])
def test_load_never_unpickles(tmp_path, where):
    marker = tmp_path / "pwned"
    evil = np.array([Payload(str(marker))], dtype=object)
    model = small_model()
    header, arrays = good_header(model)
    path = tmp_path / "evil.npz"
    if where == "weights":
        arrays["layers.0.W"] = evil
    elif where == "optimizer state":
        arrays["optimizer.0.exp_avg"] = evil
    if where == "single npy":
        with open(path, "wb") as f:  # a file object: np.save would append ".npy" to a name
            np.save(f, evil, allow_pickle=True)
    elif where == "header":
        write_npz(path, __header__=evil, **arrays)
    else:
        write_npz(path, __header__=header_bytes(header), **arrays)
    pickle.loads(pickle.dumps(Payload(str(tmp_path / "control"))))
    assert (tmp_path / "control").exists()  # the payload does work when unpickled
    with pytest.raises(ModelFileError) as info:
        fastnn.load(path)
    assert not marker.exists()
    assert "pickle" in str(info.value).lower() or "not a fastnn model" in str(info.value) or "header" in str(info.value)
    with open(path, "wb") as f:  # a bare pickle, not an archive
        pickle.dump(Payload(str(marker)), f)
    with pytest.raises(ModelFileError, match="not a fastnn model file"):
        fastnn.load(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda h: h["layers"][0].update(type="__import__('os').system"), "unknown layer type"),
        (lambda h: h["layers"][0].update(type="Sequential"), "unknown layer type 'Sequential'"),
        (lambda h: h["layers"][0]["config"].update(init="os.system"), "unknown initializer 'os.system'"),
        (lambda h: h["layers"][0]["config"].update(rng="/etc/passwd"), "bad configuration for layer Dense"),
        (lambda h: h["optimizer"].update(type="eval"), "unknown optimizer 'eval'"),
        (lambda h: h.update(loss="exec"), "unknown loss 'exec'"),
        (lambda h: h["training"]["rng"].update(bit_generator="os.system"), "bit generator 'os.system'"),
    ],
)
def test_names_in_the_header_are_looked_up_in_fixed_tables_never_imported(tmp_path, edit, match):
    model = small_model()
    model.training_state = {"epoch": 1, "n_samples": 20, "batch_size": 8, "shuffle": True,
                            "rng": fastnn.training.generator_state(np.random.default_rng(0))}
    header, arrays = good_header(model)
    edit(header)
    write_npz(tmp_path / "m.npz", __header__=header_bytes(header), **arrays)
    with pytest.raises(ModelFileError, match=match):
        fastnn.load(tmp_path / "m.npz")


# -- damaged files ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "m.npz"
    model = small_model()
    fastnn.save(model, path)
    return path.read_bytes(), model


def test_every_truncation_is_a_clear_error(tmp_path, saved_bytes):
    raw, _ = saved_bytes
    path = tmp_path / "cut.npz"
    for n in range(0, len(raw), 29):
        path.write_bytes(raw[:n])
        with pytest.raises(ModelFileError, match=str(path)):
            fastnn.load(path)


def test_corrupted_bytes_give_a_clear_error_or_the_same_model(tmp_path, saved_bytes):
    # zip stores a CRC-32 of every array: a flipped byte in the data is detected, never loaded as weights.
    raw, model = saved_bytes
    path = tmp_path / "flipped.npz"
    errors = 0
    for pos in range(0, len(raw), 13):
        damaged = bytearray(raw)
        damaged[pos] ^= 0x5A
        path.write_bytes(bytes(damaged))
        try:
            loaded = fastnn.load(path)
        except ModelFileError:
            errors += 1
            continue
        assert_same_model(loaded, model)  # a byte the loader does not use (a timestamp, padding ...)
    assert errors > 0.8 * (len(raw) // 13)


def test_files_that_are_not_models(tmp_path):
    cases = {
        "empty.npz": b"",
        "text.npz": b"hello, world\n",
        "zip-without-arrays.npz": None,
        "npy.npz": None,
    }
    with zipfile.ZipFile(tmp_path / "zip-without-arrays.npz", "w") as z:
        z.writestr("readme.txt", "not an array")
    with open(tmp_path / "npy.npz", "wb") as f:
        np.save(f, np.zeros(3))
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
        with pytest.raises(ModelFileError, match=name):
            fastnn.load(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        fastnn.load(tmp_path / "missing.npz")
    with pytest.raises(IsADirectoryError):
        fastnn.load(tmp_path)


# -- hand-edited and versioned files -------------------------------------------------------------------------


def dense_file(tmp_path, edit=None, arrays=None):
    model = Sequential([Dense(2, 3), Sigmoid(), Dense(3, 1)], seed=0)
    model.fit(np.ones((4, 2)), np.zeros((4, 1)), loss="quadratic", optimizer=optim.SGD(0.1, momentum=0.9),
              verbose=0)
    header, own = good_header(model)
    if edit is not None:
        edit(header, own)
    path = tmp_path / "edited.npz"
    write_npz(path, __header__=header_bytes(header), **(arrays or own))
    return path


def set_(key, value):
    def edit(header, arrays):
        header[key] = value
    return edit


def layer(i, **changes):
    def edit(header, arrays):
        header["layers"][i]["config"].update(changes)
    return edit


def array(key, value):
    def edit(header, arrays):
        arrays[key] = value
    return edit


def optimizer(**changes):
    def edit(header, arrays):
        header["optimizer"].update(changes)
    return edit


def training(**changes):
    def edit(header, arrays):
        header["training"] = {"epoch": 1, "n_samples": 4, "batch_size": 4, "shuffle": True,
                              "rng": fastnn.training.generator_state(np.random.default_rng(0))}
        header["training"].update(changes)
    return edit


@pytest.mark.parametrize(
    "edit, match",
    [
        (set_("format_version", FORMAT_VERSION + 1),
         rf"in model format version {FORMAT_VERSION + 1}; this fastnn \(.*\) reads format version {FORMAT_VERSION} "
         r"and older. Upgrade fastnn"),
        (set_("format_version", 99), "format version 99"),
        (set_("format_version", 0), "invalid format_version 0"),
        (set_("format_version", "1"), "invalid format_version '1'"),
        (set_("format_version", 1.0), "invalid format_version 1.0"),
        (set_("format_version", True), "invalid format_version True"),
        (set_("format", "keras-h5"), r"not a fastnn model file \(format 'keras-h5'\)"),
        (set_("dtype", "float16"), "model dtype 'float16' is not float32 or float64"),
        (set_("dtype", "float64"), "array 'layers.0.W' is float32 in a float64 model"),
        (set_("layers", {"0": "Dense"}), "'layers' must be a list of objects"),
        (set_("layers", []), "weights do not fit the architecture|needs at least one layer"),
        (layer(0, n_out=4), r"weights do not fit the architecture: layer 0 .* needs arrays of shapes \[\(2, 4\), \(4,\)\]"),
        (layer(0, n_in=10**9, n_out=10**9), "weights do not fit the architecture"),  # no 8-exabyte allocation
        (layer(0, n_in=-2), "n_in must be a positive integer, got -2"),
        (layer(0, n_in="2"), "n_in must be a positive integer, got '2'"),
        (layer(0, bias=True), "bad configuration for layer Dense"),
        (array("layers.0.W", np.zeros((2, 3), np.float64)), "array 'layers.0.W' has dtype float64, the header says 'float32'"),
        (array("layers.0.W", np.full((2, 3), np.nan, np.float32)), "array 'layers.0.W' contains NaN or infinite values"),
        (array("layers.2.b", np.array([np.inf], np.float32)), "array 'layers.2.b' contains NaN or infinite values"),
        (array("layers.0.W", np.zeros((2, 3), np.int32)), "has dtype int32, expected float32 or float64"),
        (set_("loss", "hinge"), "unknown loss 'hinge'"),
        (optimizer(config={"lr": -1.0, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0}),
         "bad SGD configuration"),
        (optimizer(config={"lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0, "evil": 1}),
         "bad SGD configuration"),
        (optimizer(iterations=-3), "optimizer iterations must be an integer >= 0, got -3"),
        (optimizer(iterations="many"), "optimizer iterations must be an integer >= 0, got 'many'"),
        (optimizer(state={"0": 1}), "optimizer state must be a list of objects"),
        (optimizer(state=[{"momentum_buffer": "optimizer.0.momentum_buffer"}]), "optimizer state for 1 parameters, the model has 4"),
        (array("optimizer.0.momentum_buffer", np.full((2, 3), np.inf, np.float32)), "contains NaN or infinite values"),
        (array("optimizer.0.momentum_buffer", np.zeros(5, np.float32)), "has 5 values, the parameter 6"),
        (training(epoch=-1), "training epoch must be an integer >= 0, got -1"),
        (training(batch_size=0), "training batch_size is 0"),
        (training(rng={"bit_generator": "PCG64", "state": {"state": "x"}}), "training rng: invalid PCG64 state"),
        (training(rng=None), "training rng: not a random generator state"),
        (training(callbacks=[{"type": "StepLR"}]), "training callbacks must be a list of"),
    ],
)
def test_hand_edited_files_give_clear_errors(tmp_path, edit, match):
    path = dense_file(tmp_path, edit)
    with pytest.raises(ModelFileError, match=match) as info:
        fastnn.load(path)
    assert str(path) in str(info.value)


def test_header_that_is_not_json_or_nested_too_deep(tmp_path):
    path = dense_file(tmp_path)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files if k != "__header__"}
    for raw, match in [(b"{not json", "unreadable fastnn header"), (b"[" * 100000, "unreadable fastnn header"),
                       (b"\xff\xfe", "unreadable fastnn header"), (b"[1, 2]", "not a fastnn model file")]:
        write_npz(path, __header__=np.frombuffer(raw, np.uint8), **arrays)
        with pytest.raises(ModelFileError, match=match):
            fastnn.load(path)
    write_npz(path, __header__=np.zeros((2, 2), np.uint8), **arrays)
    with pytest.raises(ModelFileError, match="header is not a byte array"):
        fastnn.load(path)


def test_an_unedited_file_loads(tmp_path):
    path = dense_file(tmp_path, training())
    model = fastnn.load(path)
    assert model.training_state["epoch"] == 1 and isinstance(model.optimizer, optim.SGD)
