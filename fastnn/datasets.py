"""Loading MNIST-style data from IDX files: the embedded MNIST test set, full MNIST, Fashion-MNIST.

Nothing is downloaded. The loaders return ``(X_train, y_train), (X_test, y_test)`` as Keras's do, with
``X`` a C-contiguous float array of shape (n, 784) scaled to [0, 1] and ``y`` int64 labels of shape (n,).

The IDX format (http://yann.lecun.com/exdb/mnist/): a 4-byte big-endian magic number ``0x0000TTDD``
(TT the element type, DD the number of dimensions), DD big-endian uint32 sizes, then the elements in
C order. Labels are ``0x00000801`` (ubyte, 1 dimension), images ``0x00000803`` (ubyte, 3 dimensions).
"""
import gzip
import os
import zlib

import numpy as np

__all__ = ["IDXError", "read_idx", "load_idx_directory", "load_mnist", "load_embedded_mnist", "load_fashion_mnist"]

EMBEDDED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
EMBEDDED_TRAIN = 8000  # the first 8,000 of the 10,000 embedded images train, the last 2,000 test

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

# IDX element type code -> (big-endian dtype, name).
_IDX_TYPES = {
    0x08: (">u1", "ubyte"),
    0x09: (">i1", "byte"),
    0x0B: (">i2", "short"),
    0x0C: (">i4", "int"),
    0x0D: (">f4", "float"),
    0x0E: (">f8", "double"),
}


class IDXError(ValueError):
    """An IDX file that cannot be read as asked; the message names the file and what is wrong."""


def _describe_magic(magic):
    type_code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    name = _IDX_TYPES.get(type_code, (None, f"unknown type 0x{type_code:02x}"))[1]
    return f"0x{magic:08x} ({name}, {ndim} dimension{'s' if ndim != 1 else ''})"


def _read_bytes(path):
    """The file's content, gunzipped when it starts with the gzip signature (whatever its name)."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise IDXError(f"{path}: corrupt gzip file ({exc})") from None
    return raw


def read_idx(path, magic=None):
    """Read one IDX file (plain or gzip-compressed) into a NumPy array.

    Parameters
    ----------
    path : str or os.PathLike
    magic : int, optional
        The magic number the file must have, e.g. ``0x00000803`` for ubyte images of 3 dimensions.

    Returns
    -------
    ndarray of the dimensions in the header, in the file's element type (native byte order);
    ``uint8`` for MNIST files.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    IDXError
        (a ``ValueError``) for a bad file: wrong or unknown magic number, a header cut short, or a data
        size that does not match the header. The message gives the path, what was expected and what
        was found.
    """
    path = os.fspath(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise IDXError(f"{path}: not an IDX file: {len(data)} bytes, expected at least a 4-byte magic number")
    found = int.from_bytes(data[:4], "big")
    if magic is not None and found != magic:
        raise IDXError(
            f"{path}: wrong magic number: expected {_describe_magic(magic)}, found {_describe_magic(found)}"
        )
    type_code, ndim = (found >> 8) & 0xFF, found & 0xFF
    if found >> 16 != 0 or type_code not in _IDX_TYPES or ndim == 0:
        raise IDXError(
            f"{path}: not an IDX file: magic number 0x{found:08x}; expected 0x0000TTDD with TT an IDX type "
            f"code ({', '.join(f'0x{t:02x}' for t in _IDX_TYPES)}) and DD >= 1 dimensions"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(
            f"{path}: truncated header: expected {header} bytes for {ndim} dimension sizes, found {len(data)}"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[type_code][0])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found_bytes = len(data) - header
    if found_bytes != expected:
        what = "truncated" if found_bytes < expected else "too long"
        dims = "x".join(str(s) for s in shape)
        raise IDXError(
            f"{path}: {what}: header says {dims} {_IDX_TYPES[type_code][1]} elements = {expected:,} data "
            f"bytes, found {found_bytes:,}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # a writable, native-order copy


def _check_dtype(dtype):
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _find(directory, prefix, kind):
    """The path of ``<prefix>-<kind>-idx?-ubyte`` in ``directory`` (also ``.idx`` spellings and ``.gz``)."""
    ndim = 3 if kind == "images" else 1
    names = [f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte"]
    candidates = [n + ext for n in names for ext in ("", ".gz")]
    for name in candidates:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"{directory}: no {prefix} {kind} file; looked for {', '.join(candidates)}")


def _load_pair(images_path, labels_path, dtype):
    """Images (n, 784) scaled to [0, 1] in ``dtype`` and int64 labels (n,), with their sizes checked."""
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if images.shape[1:] != (28, 28):
        raise IDXError(f"{images_path}: expected 28x28 images, found {images.shape[1]}x{images.shape[2]}")
    if images.shape[0] != labels.shape[0]:
        raise IDXError(
            f"{images_path} has {images.shape[0]:,} images but {labels_path} has {labels.shape[0]:,} labels"
        )
    if labels.size and labels.max() > 9:
        raise IDXError(f"{labels_path}: expected labels 0-9, found {int(labels.max())}")
    X = images.reshape(len(images), 784).astype(dtype)
    X /= dtype.type(255)
    return X, labels.astype(np.int64)


def load_idx_directory(path, dtype="float32"):
    """Load a directory holding the four MNIST-layout IDX files (MNIST, Fashion-MNIST, ...).

    The files are ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
    and ``t10k-labels-idx1-ubyte``, each plain or ``.gz`` (``train-images.idx3-ubyte`` also works).

    Returns
    -------
    ((X_train, y_train), (X_test, y_test)) : X float (n, 784) in [0, 1] of ``dtype``, y int64 (n,).
    """
    dt = _check_dtype(dtype)
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such directory (expected MNIST-layout IDX files in it)")
    train = _load_pair(_find(path, "train", "images"), _find(path, "train", "labels"), dt)
    test = _load_pair(_find(path, "t10k", "images"), _find(path, "t10k", "labels"), dt)
    return train, test


def load_mnist(path=None, dtype="float32"):
    """MNIST handwritten digits.

    With no ``path`` and no ``FASTNN_DATA`` environment variable: the MNIST test set shipped inside the
    package (``fastnn/data/``, CC BY-SA 3.0), split into 8,000 training images (the first 8,000 in file
    order) and 2,000 test images (the last 2,000). With ``path`` (or ``FASTNN_DATA``): the full MNIST
    IDX files from that directory (60,000 train, 10,000 test); see :func:`load_idx_directory`.

    Returns
    -------
    ((X_train, y_train), (X_test, y_test)) : X float (n, 784) in [0, 1] of ``dtype``, y int64 (n,).
    """
    if path is None:
        path = os.environ.get("FASTNN_DATA") or None
    if path is not None:
        return load_idx_directory(path, dtype)
    return load_embedded_mnist(dtype)


def load_embedded_mnist(dtype="float32"):
    """The MNIST test set shipped in ``fastnn/data/``, split 8,000 train (first) / 2,000 test (last).

    What :func:`load_mnist` returns with no path and no ``FASTNN_DATA``; this ignores ``FASTNN_DATA``.
    """
    dt = _check_dtype(dtype)
    X, y = _load_pair(
        os.path.join(EMBEDDED_DIR, "t10k-images-idx3-ubyte.gz"),
        os.path.join(EMBEDDED_DIR, "t10k-labels-idx1-ubyte.gz"),
        dt,
    )
    k = EMBEDDED_TRAIN
    return (X[:k].copy(), y[:k].copy()), (X[k:].copy(), y[k:].copy())


def load_fashion_mnist(path=None, dtype="float32"):
    """Fashion-MNIST (Zalando, MIT licence): 60,000 training and 10,000 test 28x28 clothing images.

    The default directory, ``/usr/share/datasets/fashion-mnist``, is installed by Debian's package
    ``dataset-fashion-mnist``. Classes: 0 T-shirt/top, 1 trouser, 2 pullover, 3 dress, 4 coat,
    5 sandal, 6 shirt, 7 sneaker, 8 bag, 9 ankle boot.

    Returns
    -------
    ((X_train, y_train), (X_test, y_test)) : X float (n, 784) in [0, 1] of ``dtype``, y int64 (n,).
    """
    if path is None:
        if not os.path.isdir(FASHION_MNIST_DIR):
            raise FileNotFoundError(
                f"Fashion-MNIST not found in {FASHION_MNIST_DIR}: install it with "
                "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or pass the directory of its IDX files"
            )
        path = FASHION_MNIST_DIR
    return load_idx_directory(path, dtype)


FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
