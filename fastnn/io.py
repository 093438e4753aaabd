"""Saving and loading models: one ``.npz`` file of plain arrays plus a JSON header, never pickle.

File layout (format version 1): a NumPy ``.npz`` archive holding

- ``__header__``: uint8 array, the UTF-8 bytes of a JSON object::

      {"format": "fastnn-model", "format_version": 1, "fastnn_version": "0.1.0",
       "dtype": "float32", "backend": null, "loss": "cross_entropy",
       "layers": [{"type": "Dense", "config": {"n_in": 784, "n_out": 30, "init": "normalized"},
                   "arrays": ["layers.0.W", "layers.0.b"]}, ...],
       "optimizer": {"type": "Adam", "config": {...}, "iterations": 1200,
                     "state": [{"exp_avg": "optimizer.0.exp_avg", ...}, ...]} or null,
       "dtypes": {"layers.0.W": "float32", ...},
       "training": {"epoch": 4, "n_samples": 8000, "batch_size": 10, "shuffle": true,
                    "rng": {"bit_generator": "PCG64", "state": {...}, ...},
                    "callbacks": [{"type": "StepLR", "state": {"base_lr": 0.1, "last_epoch": 4}}]}}

  ``training`` is present only for a model that has completed an epoch of ``fit`` (checkpoints always
  have it): the epochs done, the ``numpy.random.Generator`` state and the learning-rate schedules'
  progress ``fit(..., resume=True)`` goes on from. Readers ignore keys they do not know.

- one array per layer parameter/buffer and per optimizer state array, named as in the header; every
  array is float32 or float64 as ``dtypes`` says, and the layer arrays have the model's dtype.

``save`` writes atomically: a temporary file in the target directory, flushed and fsynced, then
``os.replace`` over the target and an fsync of the directory, so a crash leaves either the old file or
the new one (a killed save may leave a hidden ``.<name>.<random>.tmp`` file next to it, never a partial
``<name>``). ``load`` reads with ``allow_pickle=False``, builds layers and optimizers only from fixed
tables of fastnn's own classes (never from names or code in the file) and raises
:class:`ModelFileError` (a ``ValueError``) naming what is wrong with a file that is not a valid fastnn
model: truncated, corrupted, hand-edited into something inconsistent, or of a newer format version.
"""
import contextlib
import json
import os
import struct
import tempfile
import zipfile
import zlib

import numpy as np

from . import losses as _losses
from . import optim as _optim
from .layers import layer_from_config

__all__ = ["save", "load", "to_arrays", "from_arrays", "atomic_write", "check_output_path", "ModelFileError",
           "FORMAT_VERSION"]

FORMAT = "fastnn-model"
FORMAT_VERSION = 1
_HEADER = "__header__"


class ModelFileError(ValueError):
    """A file that is not a fastnn model this version can read; the message says why."""


def _header_and_arrays(model, optimizer):
    import fastnn

    arrays, layers = {}, []
    for i, layer in enumerate(model.layers):
        names = []
        for name, array in layer.state_arrays():
            key = f"layers.{i}.{name}"
            arrays[key] = array
            names.append(key)
        layers.append({"type": type(layer).__name__, "config": layer.get_config(), "arrays": names})
    opt = None
    if optimizer is not None:
        state = optimizer.state_dict()
        slots = []
        for i, s in enumerate(state["state"]):
            slot = {}
            for name, array in s.items():
                key = f"optimizer.{i}.{name}"
                arrays[key] = array
                slot[name] = key
            slots.append(slot)
        opt = {"type": state["type"], "config": state["config"], "iterations": state["iterations"], "state": slots}
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fastnn_version": fastnn.__version__,
        "dtype": model.dtype.name,
        "backend": model.backend,
        "loss": model.loss.name if model.loss is not None else None,
        "layers": layers,
        "optimizer": opt,
        "dtypes": {key: a.dtype.name for key, a in arrays.items()},
    }
    if getattr(model, "training_state", None) is not None:
        header["training"] = model.training_state
    return header, arrays


class _Arrays(dict):
    """Arrays by name with the ``files`` attribute of an ``np.load`` archive, for :func:`from_arrays`."""

    @property
    def files(self):
        return list(self)


def to_arrays(model, optimizer=None):
    """``(header, arrays)``: what :func:`save` writes, in memory (a JSON-able dict and {name: ndarray}).

    For containers that serialize a model themselves (fastnn's scikit-learn estimators pickle these).
    ``optimizer`` defaults to ``model.optimizer``. The arrays are copies.
    """
    header, arrays = _header_and_arrays(model, model.optimizer if optimizer is None else optimizer)
    return header, {key: np.array(a) for key, a in arrays.items()}


def from_arrays(header, arrays, backend=None, name="<in-memory model>"):
    """The model :func:`to_arrays` described, checked as :func:`load` checks a file (``ModelFileError``
    naming ``name``)."""
    from .network import Sequential

    return _build(header, _Arrays(arrays), name, backend, Sequential)


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save(model, path, optimizer=None):
    """Write ``model`` (architecture, weights, loss name) and an optimizer's state to ``path``.

    Parameters
    ----------
    model : fastnn.Sequential
    path : str or os.PathLike
        The file to write, used exactly as given (no suffix is added); replaced atomically if it exists.
    optimizer : fastnn.optim.Optimizer, optional
        Whose state to store; default ``model.optimizer`` (the optimizer of the last ``fit``), if any.
    """
    if optimizer is None:
        optimizer = model.optimizer
    header, arrays = _header_and_arrays(model, optimizer)
    payload = {_HEADER: np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)}
    payload.update(arrays)
    with atomic_write(path) as f:
        np.savez(f, **payload)  # a file object: savez adds no ".npz" suffix


def check_output_path(path, name):
    """``path`` (str or os.PathLike) as a str, for a file about to be written: its directory must exist and
    it must not be a directory. ``name`` is the argument named in the error (TypeError or ValueError)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path (str or os.PathLike), got {type(path).__name__}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(f"{name}={path!r}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"{name}={path!r} is a directory, expected a file name")
    return path


@contextlib.contextmanager
def atomic_write(path, mode="wb", **open_args):
    """Write ``path`` all at once or not at all: a context manager yielding a file open for writing.

    The file is a temporary one in the same directory; when the block ends without an exception it is
    flushed, fsynced and renamed over ``path`` (``os.replace``), then the directory is fsynced. On an
    exception it is removed and ``path`` keeps its old content (a process killed meanwhile may leave a
    hidden ``.<name>.<random>.tmp`` file, never a partial ``<name>``). ``mode`` is ``"wb"`` or ``"w"``
    (text, UTF-8 unless ``open_args`` say otherwise); ``open_args`` go to :func:`open`.
    """
    path = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(path)
    if "b" not in mode:
        open_args.setdefault("encoding", "utf-8")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, mode, **open_args) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # some file systems cannot fsync a directory; the data itself is already synced
    finally:
        os.close(dir_fd)


# What zipfile and NumPy raise for a damaged member: CRC mismatch, cut short, a corrupted local header
# (an unknown compression method is NotImplementedError, the "encrypted" flag RuntimeError).
_ARCHIVE_ERRORS = (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, RuntimeError, struct.error, zlib.error)


def _member(archive, key, path):
    """Read one array of the archive (never unpickling); ModelFileError if it cannot be read."""
    try:
        return archive[key]
    except ValueError as exc:  # object arrays refused by allow_pickle=False, bad .npy headers
        raise ModelFileError(f"{path}: cannot read array {key!r} ({exc})") from None
    except _ARCHIVE_ERRORS as exc:
        raise ModelFileError(f"{path}: corrupt archive member {key!r} ({type(exc).__name__}: {exc})") from None


def _read_header(archive, path):
    if _HEADER not in archive.files:
        raise ModelFileError(f"{path}: an .npz archive without a fastnn header; not a fastnn model file")
    raw = _member(archive, _HEADER, path)
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError("header is not a byte array")
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{path}: unreadable fastnn header ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else None
        raise ModelFileError(f"{path}: not a fastnn model file (format {found!r})")
    version = header.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        import fastnn

        raise ModelFileError(
            f"{path}: written by fastnn {header.get('fastnn_version', '?')} in model format version {version}; "
            f"this fastnn ({fastnn.__version__}) reads format version {FORMAT_VERSION} and older. Upgrade fastnn."
        )
    return header


def _array(archive, key, path, dtypes=None):
    if not isinstance(key, str) or key not in archive.files:
        raise ModelFileError(f"{path}: the header names array {key!r}, which the file does not contain")
    array = _member(archive, key, path)
    if array.dtype not in (np.float32, np.float64):
        raise ModelFileError(f"{path}: array {key!r} has dtype {array.dtype}, expected float32 or float64")
    if dtypes is not None and dtypes.get(key) != array.dtype.name:
        raise ModelFileError(
            f"{path}: array {key!r} has dtype {array.dtype.name}, the header says {dtypes.get(key)!r}"
        )
    if not np.isfinite(array).all():
        raise ModelFileError(f"{path}: array {key!r} contains NaN or infinite values")
    return array


def _shapes(name, config):
    """The shapes of the arrays a layer of type ``name`` built from ``config`` holds, or None when the
    layer itself checks them. Compared with the file's arrays BEFORE the layer is built, so a hand-edited
    size cannot make load allocate more than the file holds."""
    def size(key):
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelFileError(f"layer {name}: {key} must be a positive integer, got {value!r}")
        return value

    if name == "Dense":
        return [(size("n_in"), size("n_out")), (size("n_out"),)]
    if name == "Maxout":
        width = size("n_out") * (size("pieces") if "pieces" in config else 2)
        return [(size("n_in"), width), (width,)]
    if name == "PReLU":
        return [(size("n"),)]
    if name == "BatchNorm":
        return [(size("n"),)] * 4
    return None


def load(path, backend=None):
    """Read a model written by :func:`save`.

    Returns a ``fastnn.Sequential`` with its weights, ``loss`` (when saved), ``optimizer`` (when saved,
    with its state, so ``model.fit(..., optimizer=None)`` resumes) and ``training_state`` (when saved,
    e.g. by a checkpoint: ``model.fit(..., resume=True)`` goes on exactly where it stopped). ``backend``
    sets the loaded model's backend (default None: the global backend); the saved one is in the header
    for reference.

    Nothing in the file is executed or unpickled. Raises ``FileNotFoundError`` for a missing file and
    :class:`ModelFileError` (a ``ValueError``) for anything else wrong with it.
    """
    from .backend import _check_name
    from .network import Sequential

    if backend is not None:
        _check_name(backend)
    path = os.fspath(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except (ValueError,) + _ARCHIVE_ERRORS as exc:
        raise ModelFileError(
            f"{path}: not a fastnn model file: not a readable .npz archive (truncated, damaged or another format: {exc})"
        ) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ModelFileError(f"{path}: a single .npy array, not a fastnn model file (.npz archive)")
    with archive:
        try:
            header = _read_header(archive, path)
            return _build(header, archive, path, backend, Sequential)
        except ModelFileError:
            raise
        except _ARCHIVE_ERRORS as exc:
            raise ModelFileError(f"{path}: corrupt archive ({type(exc).__name__}: {exc})") from None
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
            raise ModelFileError(f"{path}: malformed fastnn header ({type(exc).__name__}: {exc})") from None


def _build(header, archive, path, backend, Sequential):
    dtype = header["dtype"]
    if dtype not in ("float32", "float64"):
        raise ModelFileError(f"{path}: model dtype {dtype!r} is not float32 or float64")
    dtypes = header.get("dtypes")
    if dtypes is not None and not isinstance(dtypes, dict):
        raise ModelFileError(f"{path}: 'dtypes' must be an object mapping array names to dtypes")
    if not isinstance(header["layers"], list) or not all(isinstance(spec, dict) for spec in header["layers"]):
        raise ModelFileError(f"{path}: malformed fastnn header: 'layers' must be a list of objects")
    layers = []
    arrays = []
    for i, spec in enumerate(header["layers"]):
        if not isinstance(spec.get("config"), dict) or not isinstance(spec.get("arrays"), list):
            raise ModelFileError(f"{path}: malformed fastnn header: layer {i} needs a 'config' object and an 'arrays' list")
        own = [_array(archive, key, path, dtypes) for key in spec["arrays"]]
        for key, array in zip(spec["arrays"], own):
            if array.dtype.name != dtype:
                raise ModelFileError(f"{path}: array {key!r} is {array.dtype.name} in a {dtype} model")
        try:
            expected = _shapes(spec["type"], spec["config"])
        except ModelFileError as exc:
            raise ModelFileError(f"{path}: layer {i}: {exc}") from None
        found = [a.shape for a in own]
        if expected is not None and found != expected:
            raise ModelFileError(
                f"{path}: weights do not fit the architecture: layer {i} ({spec['type']} {spec['config']}) needs "
                f"arrays of shapes {expected}, the file has {found}"
            )
        try:
            layer = layer_from_config(spec["type"], spec["config"])
        except (ValueError, TypeError) as exc:
            raise ModelFileError(f"{path}: layer {i}: {exc}") from None
        layers.append(layer)
        arrays.extend(own)
    try:
        model = Sequential(layers, dtype=dtype, backend=backend)
        model.set_weights(arrays)
    except ValueError as exc:
        raise ModelFileError(f"{path}: weights do not fit the architecture ({exc})") from None
    if header.get("loss") is not None:
        try:
            model.loss = _losses.get(header["loss"])
        except ValueError as exc:
            raise ModelFileError(f"{path}: {exc}") from None
    spec = header.get("optimizer")
    if spec is not None:
        model.optimizer = _load_optimizer(spec, archive, path, model, dtypes)
    if header.get("training") is not None:
        model.training_state = _training_state(header["training"], path)
    return model


def _training_state(state, path):
    """The header's ``training`` section, checked (its Generator state must restore)."""
    from .training import generator_from_state

    if not isinstance(state, dict):
        raise ModelFileError(f"{path}: 'training' must be an object")
    epoch = state.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ModelFileError(f"{path}: training epoch must be an integer >= 0, got {epoch!r}")
    for key, kinds in (("n_samples", int), ("batch_size", int), ("shuffle", bool)):
        value = state.get(key)
        if value is not None and (not isinstance(value, kinds) or (kinds is int and (isinstance(value, bool) or value < 1))):
            raise ModelFileError(f"{path}: training {key} is {value!r}")
    try:
        generator_from_state(state.get("rng"))
    except ValueError as exc:
        raise ModelFileError(f"{path}: training rng: {exc}") from None
    callbacks = state.get("callbacks", [])
    if not isinstance(callbacks, list) or not all(
        isinstance(c, dict) and isinstance(c.get("type"), str) and isinstance(c.get("state"), dict) for c in callbacks
    ):
        raise ModelFileError(f"{path}: training callbacks must be a list of {{'type': str, 'state': object}}")
    return state


def _load_optimizer(spec, archive, path, model, dtypes=None):
    classes = {cls.__name__: cls for cls in _optim.OPTIMIZERS.values()}
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise ModelFileError(f"{path}: 'optimizer' must be an object with a 'type'")
    if spec["type"] not in classes:
        raise ModelFileError(f"{path}: unknown optimizer {spec['type']!r}; known: {', '.join(classes)}")
    cls = classes[spec["type"]]
    if not isinstance(spec.get("config"), dict):
        raise ModelFileError(f"{path}: optimizer config must be an object, got {spec.get('config')!r}")
    try:
        optimizer = cls(**spec["config"])
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: bad {spec['type']} configuration {spec['config']!r} ({exc})") from None
    iterations = spec.get("iterations")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ModelFileError(f"{path}: optimizer iterations must be an integer >= 0, got {iterations!r}")
    if not isinstance(spec.get("state"), list) or not all(isinstance(slot, dict) for slot in spec["state"]):
        raise ModelFileError(f"{path}: optimizer state must be a list of objects")
    params = model.params()
    states = [{name: _array(archive, key, path, dtypes) for name, key in slot.items()} for slot in spec["state"]]
    if states and len(states) != len(params):
        raise ModelFileError(f"{path}: optimizer state for {len(states)} parameters, the model has {len(params)}")
    for i, (s, p) in enumerate(zip(states, params)):
        for name, array in s.items():
            if array.size != p.size:
                raise ModelFileError(
                    f"{path}: optimizer state {name!r} of parameter {i} has {array.size} values, the parameter {p.size}"
                )
    try:
        optimizer.load_state_dict(
            {"type": spec["type"], "config": spec["config"], "iterations": iterations, "state": states}
        )
    except ValueError as exc:
        raise ModelFileError(f"{path}: bad optimizer state ({exc})") from None
    return optimizer
