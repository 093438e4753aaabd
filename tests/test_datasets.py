"""The IDX reader and the MNIST / Fashion-MNIST loaders."""
import gzip
import hashlib
import os

import numpy as np
import pytest

from fastnn import datasets
from fastnn.datasets import IDXError, load_fashion_mnist, load_idx_directory, load_mnist, read_idx


def idx_bytes(array, type_code=0x08):
    """The IDX encoding of ``array`` (header + big-endian data)."""
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[type_code]
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()


def write(path, data, compress=False):
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def make_mnist_dir(directory, n_train=6, n_test=4, compress=True, seed=0):
    """Four small MNIST-layout files; returns the arrays written."""
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        ext = ".gz" if compress else ""
        write(directory / f"{prefix}-images-idx3-ubyte{ext}", idx_bytes(images), compress)
        write(directory / f"{prefix}-labels-idx1-ubyte{ext}", idx_bytes(labels), compress)
        out[prefix] = (images, labels)
    return out


# --- read_idx -------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trips_images_and_labels(tmp_path, compress):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(3, 5, 7), dtype=np.uint8)
    labels = np.array([9, 0, 4], dtype=np.uint8)
    pi = write(tmp_path / "im", idx_bytes(images), compress)
    pl = write(tmp_path / "lb", idx_bytes(labels), compress)
    got = read_idx(pi, magic=0x00000803)
    assert got.dtype == np.uint8 and got.shape == (3, 5, 7)
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(read_idx(pl, magic=0x00000801), labels)
    got[0, 0, 0] = 1  # a writable copy, not a view of an immutable buffer


@pytest.mark.parametrize("type_code", [0x09, 0x0B, 0x0C, 0x0D, 0x0E])
def test_read_idx_other_element_types_in_native_order(tmp_path, type_code):
    values = np.array([[-3, 1, 1000], [7, -128, 2]]) if type_code != 0x09 else np.array([[-3, 1, 100]])
    got = read_idx(write(tmp_path / "x", idx_bytes(values, type_code)))
    np.testing.assert_array_equal(got, values)
    assert got.dtype.isnative


def test_read_idx_wrong_magic_names_path_expected_and_found(tmp_path):
    p = write(tmp_path / "labels-as-images", idx_bytes(np.arange(5, dtype=np.uint8)))
    with pytest.raises(IDXError) as err:
        read_idx(p, magic=0x00000803)
    msg = str(err.value)
    assert str(p) in msg
    assert "expected 0x00000803 (ubyte, 3 dimensions)" in msg
    assert "found 0x00000801 (ubyte, 1 dimension)" in msg


def test_read_idx_rejects_non_idx_content(tmp_path):
    p = write(tmp_path / "page.html", b"<html>not found</html>")
    with pytest.raises(IDXError, match=r"page\.html: not an IDX file: magic number 0x3c68746d"):
        read_idx(p)
    with pytest.raises(IDXError, match="2 bytes, expected at least a 4-byte magic number"):
        read_idx(write(tmp_path / "tiny", b"\x00\x00"))


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_truncated_data(tmp_path, compress):
    data = idx_bytes(np.zeros((4, 28, 28), dtype=np.uint8))
    p = write(tmp_path / "cut", data[:-100], compress)
    with pytest.raises(IDXError) as err:
        read_idx(p, magic=0x00000803)
    msg = str(err.value)
    assert str(p) in msg
    assert "truncated: header says 4x28x28 ubyte elements = 3,136 data bytes, found 3,036" in msg


def test_read_idx_truncated_header_and_extra_bytes(tmp_path):
    data = idx_bytes(np.zeros((2, 3, 3), dtype=np.uint8))
    with pytest.raises(IDXError, match="truncated header: expected 16 bytes for 3 dimension sizes, found 10"):
        read_idx(write(tmp_path / "h", data[:10]))
    with pytest.raises(IDXError, match="too long: header says 2x3x3 ubyte elements = 18 data bytes, found 19"):
        read_idx(write(tmp_path / "long", data + b"\x00"))


def test_read_idx_corrupt_gzip(tmp_path):
    good = gzip.compress(idx_bytes(np.zeros((2, 2), dtype=np.uint8)))
    p = write(tmp_path / "bad.gz", good[: len(good) // 2])
    with pytest.raises(IDXError, match=r"bad\.gz: corrupt gzip file"):
        read_idx(p)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


# --- directories of MNIST-layout files ------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_load_idx_directory_scales_and_types(tmp_path, compress):
    written = make_mnist_dir(tmp_path, compress=compress)
    (Xtr, ytr), (Xte, yte) = load_idx_directory(tmp_path, dtype="float64")
    assert Xtr.shape == (6, 784) and Xte.shape == (4, 784)
    assert Xtr.dtype == np.float64 and ytr.dtype == np.int64
    assert Xtr.flags.c_contiguous
    np.testing.assert_array_equal(Xtr, written["train"][0].reshape(6, 784) / 255.0)
    np.testing.assert_array_equal(yte, written["t10k"][1])


def test_load_mnist_path_and_env_var(tmp_path, monkeypatch):
    written = make_mnist_dir(tmp_path, n_train=5, n_test=3, compress=False)
    (Xtr, ytr), (Xte, _) = load_mnist(tmp_path)
    assert Xtr.shape == (5, 784) and Xte.shape == (3, 784) and Xtr.dtype == np.float32
    np.testing.assert_array_equal(ytr, written["train"][1])
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path))
    (Xtr2, _), _ = load_mnist()
    np.testing.assert_array_equal(Xtr2, Xtr)


def test_load_directory_size_mismatch_and_wrong_image_size(tmp_path):
    make_mnist_dir(tmp_path, compress=False)
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(np.zeros(3, dtype=np.uint8)))
    with pytest.raises(IDXError, match="has 4 images but .*t10k-labels-idx1-ubyte has 3 labels"):
        load_idx_directory(tmp_path)
    write(tmp_path / "train-images-idx3-ubyte", idx_bytes(np.zeros((6, 32, 32), dtype=np.uint8)))
    with pytest.raises(IDXError, match="expected 28x28 images, found 32x32"):
        load_idx_directory(tmp_path)


def test_load_directory_missing_files_say_what_was_looked_for(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        load_mnist(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="no train images file; looked for train-images-idx3-ubyte"):
        load_mnist(tmp_path)


def test_dotted_file_names_are_found(tmp_path):
    make_mnist_dir(tmp_path, compress=False)
    for p in tmp_path.iterdir():  # the spelling some mirrors use: train-images.idx3-ubyte
        p.rename(tmp_path / p.name.replace("-idx", ".idx"))
    (Xtr, _), _ = load_idx_directory(tmp_path)
    assert Xtr.shape == (6, 784)


def test_bad_dtype():
    with pytest.raises(ValueError, match="dtype must be float32 or float64, got int32"):
        load_mnist(dtype="int32")


# --- the embedded MNIST test set ------------------------------------------------------------------


def test_embedded_files_are_the_documented_mnist_test_set():
    expected = {
        "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
    }
    for name, md5 in expected.items():
        with gzip.open(os.path.join(datasets.EMBEDDED_DIR, name)) as f:
            assert hashlib.md5(f.read()).hexdigest() == md5


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_load_mnist_embedded_split(monkeypatch, dtype):
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    (Xtr, ytr), (Xte, yte) = load_mnist(dtype=dtype)
    assert Xtr.shape == (8000, 784) and Xte.shape == (2000, 784)
    assert ytr.shape == (8000,) and yte.shape == (2000,)
    assert Xtr.dtype == np.dtype(dtype) and ytr.dtype == np.int64
    assert Xtr.min() == 0.0 and Xtr.max() == 1.0
    assert set(np.unique(ytr)) == set(range(10)) and set(np.unique(yte)) == set(range(10))
    # First 8,000 / last 2,000 in file order: the MNIST test set's first labels are 7 2 1 0 4 and its
    # last are 5 6.
    np.testing.assert_array_equal(ytr[:5], [7, 2, 1, 0, 4])
    np.testing.assert_array_equal(yte[-2:], [5, 6])
    raw = read_idx(os.path.join(datasets.EMBEDDED_DIR, "t10k-labels-idx1-ubyte.gz"), 0x00000801)
    np.testing.assert_array_equal(np.concatenate([ytr, yte]), raw)
    # About 19% of an MNIST image's pixels are non-zero.
    assert 0.15 < np.mean(Xtr > 0) < 0.25


# --- Fashion-MNIST --------------------------------------------------------------------------------

FASHION = datasets.FASHION_MNIST_DIR


# `make fashion-mnist` installs it when it runs as root (as CI does): there a missing directory fails the
# test; elsewhere the skip is allow-listed (tests/allowed_skips.txt).
@pytest.mark.skipif(
    not os.path.isdir(FASHION) and os.geteuid() != 0,
    reason=f"{FASHION} absent and not root: `sudo make fashion-mnist` installs it",
)
def test_load_fashion_mnist_from_debian_package():
    (Xtr, ytr), (Xte, yte) = load_fashion_mnist()
    assert Xtr.shape == (60000, 784) and Xte.shape == (10000, 784)
    assert Xtr.dtype == np.float32 and ytr.dtype == np.int64
    assert 0.0 == Xtr.min() and Xtr.max() == 1.0
    np.testing.assert_array_equal(np.bincount(ytr), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(yte), [1000] * 10)


def test_fashion_mnist_missing_names_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist()


def test_fashion_mnist_with_explicit_path(tmp_path):
    make_mnist_dir(tmp_path)
    (Xtr, _), (Xte, _) = load_fashion_mnist(tmp_path, dtype="float64")
    assert Xtr.shape == (6, 784) and Xte.dtype == np.float64
