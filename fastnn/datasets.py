"""Loading data: MNIST-style IDX files (the embedded MNIST test set, full MNIST, Fashion-MNIST) and tables
of your own (CSV and ``.npz`` files).

Nothing is downloaded. The image loaders return ``(X_train, y_train), (X_test, y_test)`` as Keras's do, with
``X`` a C-contiguous float array of shape (n, 784) scaled to [0, 1] and ``y`` int64 labels of shape (n,).
:func:`load_csv` and :func:`load_npz` return a :class:`Dataset` (which unpacks as ``X, y``);
:func:`split_train_test` holds out a random test set.

The IDX format (http://yann.lecun.com/exdb/mnist/): a 4-byte big-endian magic number ``0x0000TTDD``
(TT the element type, DD the number of dimensions), DD big-endian uint32 sizes, then the elements in
C order. Labels are ``0x00000801`` (ubyte, 1 dimension), images ``0x00000803`` (ubyte, 3 dimensions).
"""
import csv
import dataclasses
import gzip
import math
import os
import zipfile
import zlib

import numpy as np

__all__ = [
    "IDXError", "read_idx", "load_idx_directory", "load_mnist", "load_embedded_mnist", "load_fashion_mnist",
    "DataFileError", "Dataset", "load_csv", "load_npz", "split_train_test",
]

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


# --- tables of your own: CSV and .npz ---------------------------------------------------------------------

TASKS = ("classification", "regression")
# Cells read as missing values (compared without surrounding spaces, ignoring case), as pandas reads them.
MISSING = ("", "na", "n/a", "nan", "-nan", "null", "none", "?", "#n/a", "<na>")


class DataFileError(ValueError):
    """A data file that cannot be used as asked; the message names the file and, where one is at fault,
    the line (or row) and column."""


@dataclasses.dataclass(eq=False, repr=False)
class Dataset:
    """Features and targets read from a file, with the names that describe them. ``X, y = dataset`` works.

    Attributes
    ----------
    X : ndarray (n, k)
        The features, float32 or float64, C-contiguous and finite.
    y : ndarray (n,)
        int64 class indices (classification) or the target values in X's dtype (regression).
    feature_names : tuple of str
        The names of X's columns: the header's, else ``"column 1"``, ``"column 2"``, ... (file order).
    target_name : str
    classes : ndarray or None
        Classification: the class labels as in the file, sorted (numbers numerically, text alphabetically),
        so ``classes[y[i]]`` is row i's label. None for regression.
    path : str
    """

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple
    target_name: str
    classes: object
    path: str

    def __iter__(self):
        return iter((self.X, self.y))

    def __repr__(self):
        kind = f"{len(self.classes)} classes" if self.classes is not None else "regression"
        return (f"Dataset({self.path!r}: {self.X.shape[0]} rows, {self.X.shape[1]} features, "
                f"target {self.target_name!r}, {kind})")


def _check_task(task):
    if task not in TASKS:
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    return task


def _read_rows(path, delimiter):
    """The non-blank rows of a CSV file (lists of str) and the line each ends on."""
    rows, lines = [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter, skipinitialspace=True)
            for row in reader:
                if row:
                    rows.append(row)
                    lines.append(reader.line_num)
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path}: not a UTF-8 text file ({exc})") from None
    except csv.Error as exc:
        raise DataFileError(f"{path}, line {reader.line_num}: {exc}") from None
    return rows, lines


def _target_column(target, names, header, path):
    if isinstance(target, str):
        if not header:
            raise ValueError(f"target={target!r} names a column, but header=False: give the column's index")
        matches = [j for j, name in enumerate(names) if name == target]
        if len(matches) != 1:
            problem = "no column" if not matches else f"{len(matches)} columns"
            shown = [*map(repr, names[:5]), "...", *map(repr, names[-5:])] if len(names) > 12 else map(repr, names)
            raise DataFileError(f"{path}: {problem} named {target!r}; the {len(names)} columns are {', '.join(shown)}")
        return matches[0]
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)):
        raise TypeError(f"target must be a column name (str) or index (int), got {type(target).__name__}")
    if not -len(names) <= target < len(names):
        raise DataFileError(f"{path}: no column {target} (target index); the file has {len(names)} columns, "
                            f"indices 0 to {len(names) - 1} or -{len(names)} to -1")
    return int(target) % len(names)


def _refuse_missing(cells, where):
    missing = np.isin(np.char.lower(np.char.strip(cells)), MISSING)
    if missing.any():
        i, j = np.argwhere(missing)[0]
        raise DataFileError(f"{where(i, j)}: missing value {str(cells[i, j])!r}; fill in or drop rows with "
                            "missing values first (fastnn does not guess them)")


def _parse_numbers(cells, where, dtype, what):
    """The 2-D array of str ``cells`` as finite numbers of ``dtype``; DataFileError at the first bad cell."""
    try:
        values = cells.astype(np.float64)
    except ValueError:
        for (i, j), cell in np.ndenumerate(cells):
            try:
                float(cell)
            except ValueError:
                raise DataFileError(f"{where(i, j)}: {str(cell)!r} is not a number ({what} must be numeric)") from None
        raise
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(values, dtype=dtype)
    bad = ~np.isfinite(out)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataFileError(f"{where(i, j)}: {str(cells[i, j]).strip()!r} is not a finite {dtype.name} number")
    return out


def _encode_classes(values, where):
    """(int64 class indices, sorted class labels) of the 1-D ``values``: numbers, or text when any label
    is not a number. ``where`` names the column in messages."""
    if values.dtype.kind in "US":
        try:
            numbers = values.astype(np.float64)
            values = numbers if np.isfinite(numbers).all() else np.char.strip(values)
        except ValueError:
            values = np.char.strip(values)
    classes, y = np.unique(values, return_inverse=True)
    if classes.dtype.kind == "f" and np.all(classes == np.round(classes)):
        classes = classes.astype(np.int64)
    if len(classes) < 2:
        raise DataFileError(f"{where}: every one of the {len(values)} rows has the class {classes[0].item()!r}; "
                            "classification needs at least two classes")
    return y.astype(np.int64).reshape(-1), classes


def load_csv(path, target=-1, *, delimiter=",", header=True, task="classification", dtype="float32"):
    """Read a table of numeric features and one target column from a CSV file.

    Parameters
    ----------
    path : str or os.PathLike
    target : str or int
        The target column: its name in the header, or its index (0-based; negative counts from the end;
        default -1, the last column). Every other column is a feature.
    delimiter : str
        The field separator, one character: ``","`` (default), ``";"``, ``"\\t"``... Fields may be
        quoted as in RFC 4180; spaces after a delimiter are ignored.
    header : bool
        Whether the first line names the columns (default True).
    task : "classification" or "regression"
        Classification (default): each distinct target value is a class, numbers or text (``benign``);
        ``y`` holds class indices and ``classes`` the labels. Regression: the target must be numeric and
        ``y`` holds its values.
    dtype : "float32" or "float64"

    Returns
    -------
    Dataset
        ``X`` (n, k) of ``dtype``, ``y`` (n,), ``feature_names``, ``target_name``, ``classes``.

    Raises
    ------
    DataFileError
        (a ``ValueError``) naming the file, line and column of the first problem: a missing value (an
        empty field, ``NA``, ``NaN``, ``null``, ``?``...), a feature that is not a number or not finite, a
        row with another number of fields than the header, an unknown target column, a classification
        target with a single class, or no data rows.
    FileNotFoundError
        If ``path`` does not exist.
    """
    dt = _check_dtype(dtype)
    _check_task(task)
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ValueError(f"delimiter must be a single character, got {delimiter!r}")
    path = os.fspath(path)
    rows, lines = _read_rows(path, delimiter)
    if not rows:
        raise DataFileError(f"{path}: the file is empty; expected {'a header line and ' if header else ''}rows of numbers")
    if header:
        names, rows, lines, model_line = tuple(name.strip() for name in rows[0]), rows[1:], lines[1:], lines[0]
    else:
        names, model_line = tuple(f"column {j + 1}" for j in range(len(rows[0]))), lines[0]
    if not rows:
        raise DataFileError(f"{path}: a header but no data rows")
    for row, line in zip(rows, lines):
        if len(row) != len(names):
            raise DataFileError(f"{path}, line {line}: {len(row)} fields, expected {len(names)} as on line {model_line}"
                                f"{' (the header)' if header else ''}")
    if len(names) < 2:
        raise DataFileError(f"{path}: {len(names)} column; expected feature columns and a target column")
    t = _target_column(target, names, header, path)

    def where(i, j):
        return f"{path}, line {lines[i]}, column {j + 1} ({names[j]!r})"

    cells = np.array(rows, dtype=str)
    _refuse_missing(cells, where)
    features = [j for j in range(len(names)) if j != t]
    X = _parse_numbers(cells[:, features], lambda i, j: where(i, features[j]), dt, "features")
    if task == "classification":
        y, classes = _encode_classes(cells[:, t], f"{path}, column {t + 1} ({names[t]!r}, the target)")
    else:
        y, classes = _parse_numbers(cells[:, [t]], lambda i, j: where(i, t), dt, "a regression target")[:, 0].copy(), None
    return Dataset(X, y, tuple(names[j] for j in features), names[t], classes, path)


def load_npz(path, *, task="classification", dtype="float32"):
    """Read features ``X`` (n, k) and targets ``y`` (n,) from a NumPy ``.npz`` archive (``np.savez(path,
    X=X, y=y)``), never unpickling.

    ``y`` holds class labels (numbers or text) for ``task="classification"``, or numbers (n,) or (n, m)
    for ``"regression"``. Returns a :class:`Dataset` as :func:`load_csv` does (feature names
    ``"column 1"``, ...; target name ``"y"``). Raises :class:`DataFileError` for a file that is not such
    an archive, a missing array, X not 2-D numbers, a NaN (a missing value) or infinite value (naming its
    row and column), lengths that differ, or a single class.
    """
    dt = _check_dtype(dtype)
    _check_task(task)
    path = os.fspath(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataFileError(f"{path}: not a readable .npz archive ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataFileError(f"{path}: a single .npy array; expected an .npz archive holding arrays 'X' and 'y'")
    with archive:
        missing = [key for key in ("X", "y") if key not in archive.files]
        if missing:
            raise DataFileError(f"{path}: no array {missing[0]!r}; the archive holds {', '.join(map(repr, archive.files))}, "
                                "expected 'X' (features) and 'y' (targets)")
        try:
            X, y = archive["X"], archive["y"]
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DataFileError(f"{path}: cannot read its arrays ({exc})") from None
    if X.ndim != 2 or X.dtype.kind not in "biuf" or X.shape[1] == 0:
        raise DataFileError(f"{path}: X must be a 2-D array of numbers (n, k), got {X.dtype} of shape {X.shape}")
    if len(y) != len(X) or y.ndim not in (1, 2) or (task == "classification" and y.ndim != 1):
        raise DataFileError(f"{path}: y must have shape ({len(X)},) to match X {X.shape}"
                            f"{' or (n, m) for regression' if task == 'regression' else ''}, got {y.shape}")

    def where(name, array):
        return lambda i, j: f"{path}: array {name!r}, row {i}" + (f", column {j}" if array.ndim == 2 else "")

    numeric = y.dtype.kind in "biuf"
    if not (numeric or (task == "classification" and y.dtype.kind in "US")):
        raise DataFileError(f"{path}: y must hold numbers{' or text labels' if task == 'classification' else ''}, "
                            f"got dtype {y.dtype}")
    X = _finite_numbers(X, where("X", X), dt)
    if task == "classification":
        if numeric:
            _finite_numbers(y.reshape(-1, 1), where("y", y), np.dtype(np.float64))
        y, classes = _encode_classes(y, f"{path}: array 'y'")
    else:
        y, classes = _finite_numbers(y.reshape(len(y), -1), where("y", y), dt).reshape(y.shape), None
    return Dataset(X, y, tuple(f"column {j + 1}" for j in range(X.shape[1])), "y", classes, path)


def _finite_numbers(array, where, dtype):
    """The numeric 2-D ``array`` in ``dtype``; DataFileError naming the first NaN or infinite element."""
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(array, dtype=dtype)
    bad = ~np.isfinite(out)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        value = out[i, j]
        problem = "missing value (NaN)" if np.isnan(value) else f"{array[i, j]} is not a finite {dtype.name} number"
        raise DataFileError(f"{where(i, j)}: {problem}")
    return out


def split_train_test(X, y, test_size=0.2, seed=0):
    """Hold out a random ``test_size`` fraction of the rows (at least one) as a test set.

    Returns ``((X_train, y_train), (X_test, y_test))`` as the image loaders do; each part keeps the rows'
    original order. The rows are drawn with ``numpy.random.default_rng(seed)``.
    """
    n = len(X)
    if len(y) != n:
        raise ValueError(f"Found input variables with inconsistent numbers of samples: [{n}, {len(y)}]")
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be a fraction in (0, 1), got {test_size!r}")
    n_test = math.ceil(test_size * n)
    if n_test >= n:
        raise ValueError(f"test_size={test_size} of {n} rows leaves no rows to train on")
    order = np.random.default_rng(seed).permutation(n)
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    return (X[train], y[train]), (X[test], y[test])
