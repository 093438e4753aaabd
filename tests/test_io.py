"""Model files: save -> load -> predict identical, optimizer state restored, atomic writes, clear errors."""
import json
import os
import stat
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn import Sequential, optim
from fastnn.io import FORMAT_VERSION, ModelFileError
from fastnn.layers import BatchNorm, Dense, Dropout, LeakyReLU, Maxout, PReLU, ReLU, Sigmoid, Softmax, Tanh


@pytest.fixture
def gen():
    return np.random.default_rng(31)


@pytest.fixture
def data(gen):
    X = gen.normal(size=(64, 6))
    y = gen.integers(0, 3, size=64)
    return X, y


def rich_model(dtype="float32"):
    return Sequential(
        [Dense(6, 10, init="he"), BatchNorm(10), PReLU(10), Dropout(0.2), Maxout(10, 8, pieces=2),
         LeakyReLU(0.05), Dense(8, 8, init="xavier"), Tanh(), Dense(8, 3), Softmax()],
        dtype=dtype,
        seed=4,
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_predict_identical(tmp_path, data, dtype):
    X, y = data
    model = rich_model(dtype)
    model.fit(X, y, loss="log_likelihood", optimizer=optim.Adam(0.01), epochs=2, batch_size=16, seed=0, verbose=0)
    path = tmp_path / "model.npz"
    fastnn.save(model, path)
    loaded = fastnn.load(path)
    assert loaded.dtype == model.dtype and [type(a) for a in loaded.layers] == [type(a) for a in model.layers]
    assert [a.get_config() for a in loaded.layers] == [a.get_config() for a in model.layers]
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    for a, b in zip(loaded.get_weights(), model.get_weights()):  # includes BatchNorm running statistics
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert loaded.loss.name == "log_likelihood"
    assert loaded.evaluate(X, y) == model.evaluate(X, y)


@pytest.mark.parametrize("opt", [lambda: optim.SGD(0.1, momentum=0.9), lambda: optim.Adam(0.01),
                                 lambda: optim.Adadelta(), lambda: optim.Adagrad(0.05), lambda: optim.RMSprop(0.01),
                                 lambda: optim.AdamW(0.01)])
def test_optimizer_state_is_restored_and_training_resumes_exactly(tmp_path, data, opt):
    X, y = data
    straight = Sequential([Dense(6, 5), Sigmoid(), Dense(5, 3), Softmax()], "float64", seed=1)
    straight.fit(X, y, loss="log_likelihood", optimizer=opt(), epochs=2, batch_size=16, shuffle=False, verbose=0)

    first = Sequential([Dense(6, 5), Sigmoid(), Dense(5, 3), Softmax()], "float64", seed=1)
    first.fit(X, y, loss="log_likelihood", optimizer=opt(), epochs=1, batch_size=16, shuffle=False, verbose=0)
    fastnn.save(first, tmp_path / "ckpt.npz")
    resumed = fastnn.load(tmp_path / "ckpt.npz")
    assert type(resumed.optimizer) is type(first.optimizer)
    assert resumed.optimizer.iterations == first.optimizer.iterations == 4
    assert resumed.optimizer.get_config() == first.optimizer.get_config()
    for s, t in zip(resumed.optimizer.state, first.optimizer.state):
        for name in t:
            np.testing.assert_array_equal(s[name], t[name])
    resumed.fit(X, y, epochs=1, batch_size=16, shuffle=False, verbose=0)  # loss and optimizer from the file
    for a, b in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_explicit_optimizer_argument_and_model_without_optimizer(tmp_path):
    model = Sequential([Dense(2, 2)], seed=0)
    fastnn.save(model, tmp_path / "plain.npz")
    loaded = fastnn.load(tmp_path / "plain.npz")
    assert loaded.optimizer is None and loaded.loss is None
    opt = optim.SGD(0.3)
    fastnn.save(model, tmp_path / "with.npz", optimizer=opt)
    assert fastnn.load(tmp_path / "with.npz").optimizer.lr == 0.3


def test_file_layout_is_plain_arrays_and_a_json_header(tmp_path):
    model = Sequential([Dense(3, 2), Sigmoid()], seed=0)
    path = tmp_path / "m.bin"  # used exactly as given: no ".npz" appended
    fastnn.save(model, path)
    assert os.listdir(tmp_path) == ["m.bin"]  # and no temporary file left behind
    with np.load(path, allow_pickle=False) as f:
        header = json.loads(f["__header__"].tobytes().decode())
        assert sorted(f.files) == ["__header__", "layers.0.W", "layers.0.b"]
        np.testing.assert_array_equal(f["layers.0.W"], model.get_weights()[0])
    assert header["format"] == "fastnn-model" and header["format_version"] == FORMAT_VERSION
    assert header["fastnn_version"] == fastnn.__version__ and header["dtype"] == "float32"
    assert header["layers"][0] == {"type": "Dense", "config": {"n_in": 3, "n_out": 2, "init": "normalized"},
                                   "arrays": ["layers.0.W", "layers.0.b"]}
    assert header["dtypes"] == {"layers.0.W": "float32", "layers.0.b": "float32"}
    mode = stat.S_IMODE(os.stat(path).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # not mkstemp's 0600


def test_save_replaces_atomically_and_cleans_up_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    a = Sequential([Dense(3, 2)], seed=0)
    b = Sequential([Dense(3, 2)], seed=1)
    fastnn.save(a, path)
    fastnn.save(b, path)
    np.testing.assert_array_equal(fastnn.load(path).get_weights()[0], b.get_weights()[0])

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        fastnn.save(a, path)
    assert os.listdir(tmp_path) == ["m.npz"]  # the temporary file is gone, the old model intact
    monkeypatch.undo()
    np.testing.assert_array_equal(fastnn.load(path).get_weights()[0], b.get_weights()[0])


def _write(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _header(**changes):
    header = {
        "format": "fastnn-model", "format_version": 1, "fastnn_version": "0.1.0", "dtype": "float32",
        "backend": None, "loss": None, "optimizer": None,
        "layers": [{"type": "Dense", "config": {"n_in": 2, "n_out": 1, "init": "normalized"},
                    "arrays": ["layers.0.W", "layers.0.b"]}],
    }
    header.update(changes)
    return np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)


GOOD = {"layers.0.W": np.zeros((2, 1), np.float32), "layers.0.b": np.zeros(1, np.float32)}


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"__header__": _header(format_version=2), **GOOD}, r"format version 2; this fastnn .* reads format version 1"),
        ({"__header__": _header(format_version="1"), **GOOD}, "invalid format_version"),
        ({"__header__": _header(format="keras"), **GOOD}, "not a fastnn model file"),
        ({**GOOD}, "without a fastnn header"),
        ({"__header__": np.frombuffer(b"{not json", np.uint8), **GOOD}, "unreadable fastnn header"),
        ({"__header__": _header(layers=[{"type": "Conv2D", "config": {}, "arrays": []}])}, "unknown layer type"),
        ({"__header__": _header(), "layers.0.W": GOOD["layers.0.W"]}, "does not contain"),
        ({"__header__": _header(), "layers.0.W": np.zeros((3, 1), np.float32), "layers.0.b": GOOD["layers.0.b"]},
         "weights do not fit"),
        ({"__header__": _header(), "layers.0.W": np.array([["a"], ["b"]]), "layers.0.b": GOOD["layers.0.b"]},
         "dtype <U1"),
        ({"__header__": _header(), "layers.0.W": np.array([[None], [1]], dtype=object),
          "layers.0.b": GOOD["layers.0.b"]}, "cannot read array"),
        ({"__header__": _header(optimizer={"type": "LBFGS", "config": {}, "iterations": 0, "state": []}), **GOOD},
         "unknown optimizer"),
        ({"__header__": _header(dtype="float16"), **GOOD}, "float16"),
        ({"__header__": _header(layers=[{"type": "Dense"}]), **GOOD}, "malformed fastnn header"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    _write(path, **arrays)
    with pytest.raises(ModelFileError, match=match):
        fastnn.load(path)


def test_not_an_archive_and_missing_file(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match="not a fastnn model file"):
        fastnn.load(text)
    single = tmp_path / "one.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ModelFileError, match="single .npy array"):
        fastnn.load(single)
    truncated = tmp_path / "cut.npz"
    fastnn.save(Sequential([Dense(2, 2)]), truncated)
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(ModelFileError):
        fastnn.load(truncated)
    with pytest.raises(FileNotFoundError):
        fastnn.load(tmp_path / "nope.npz")
    assert issubclass(ModelFileError, ValueError)


def test_load_can_choose_the_backend(tmp_path):
    fastnn.save(Sequential([Dense(2, 2), ReLU()], backend="numpy"), tmp_path / "m.npz")
    assert fastnn.load(tmp_path / "m.npz").backend is None
    assert fastnn.load(tmp_path / "m.npz", backend="numpy").backend == "numpy"


def test_no_pickle_anywhere(tmp_path, data):
    X, y = data
    model = rich_model()
    model.fit(X, y, loss="log_likelihood", optimizer=optim.SGD(0.1, momentum=0.9), epochs=1, verbose=0)
    fastnn.save(model, tmp_path / "m.npz")
    with zipfile.ZipFile(tmp_path / "m.npz") as z:
        for name in z.namelist():
            header = z.read(name)[:128]
            assert b"'descr': '|O'" not in header and b"'descr': 'O'" not in header
