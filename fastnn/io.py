"""Saving and loading models: one ``.npz`` file of plain arrays plus a JSON header, never pickle.

File layout (format version 1): a NumPy ``.npz`` archive holding

- ``__header__``: uint8 array, the UTF-8 bytes of a JSON object::

      {"format": "fastnn-model", "format_version": 1, "fastnn_version": "0.1.0",
       "dtype": "float32", "backend": null, "loss": "cross_entropy",
       "layers": [{"type": "Dense", "config": {"n_in": 784, "n_out": 30, "init": "normalized"},
                   "arrays": ["layers.0.W", "layers.0.b"]}, ...],
       "optimizer": {"type": "Adam", "config": {...}, "iterations": 1200,
                     "state": [{"exp_avg": "optimizer.0.exp_avg", ...}, ...]} or null,
       "dtypes": {"layers.0.W": "float32", ...}}

- one array per layer parameter/buffer and per optimizer state array, named as in the header.

``save`` writes atomically: a temporary file in the target directory, flushed and fsynced, then
``os.replace`` over the target and an fsync of the directory, so a crash leaves either the old file or
the new one. ``load`` reads with ``allow_pickle=False`` and raises :class:`ModelFileError` (a
``ValueError``) naming what is wrong with a file that is not a valid fastnn model.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

from . import losses as _losses
from . import optim as _optim
from .layers import layer_from_config

__all__ = ["save", "load", "ModelFileError", "FORMAT_VERSION"]

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
    return header, arrays


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
    path = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)  # a file object: savez adds no ".npz" suffix
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


def _read_header(archive, path):
    if _HEADER not in archive.files:
        raise ModelFileError(f"{path}: an .npz archive without a fastnn header; not a fastnn model file")
    try:
        raw = archive[_HEADER]
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError("header is not a byte array")
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
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


def _array(archive, key, path):
    if not isinstance(key, str) or key not in archive.files:
        raise ModelFileError(f"{path}: the header names array {key!r}, which the file does not contain")
    try:
        array = archive[key]
    except ValueError as exc:  # object arrays refused by allow_pickle=False, corrupt members
        raise ModelFileError(f"{path}: cannot read array {key!r} ({exc})") from None
    if array.dtype.kind != "f":
        raise ModelFileError(f"{path}: array {key!r} has dtype {array.dtype}, expected float32 or float64")
    return array


def load(path, backend=None):
    """Read a model written by :func:`save`.

    Returns a ``fastnn.Sequential`` with its weights, ``loss`` (when saved) and ``optimizer`` (when
    saved, with its state, so ``model.fit(..., optimizer=None)`` resumes). ``backend`` sets the loaded
    model's backend (default None: the global backend); the saved one is in the header for reference.

    Raises ``FileNotFoundError`` for a missing file and :class:`ModelFileError` for anything else wrong.
    """
    from .network import Sequential

    path = os.fspath(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"{path}: not a fastnn model file (not a readable .npz archive: {exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ModelFileError(f"{path}: a single .npy array, not a fastnn model file (.npz archive)")
    with archive:
        try:
            header = _read_header(archive, path)
            return _build(header, archive, path, backend, Sequential)
        except zipfile.BadZipFile as exc:
            raise ModelFileError(f"{path}: corrupt archive ({exc})") from None
        except (KeyError, TypeError) as exc:
            raise ModelFileError(f"{path}: malformed fastnn header ({type(exc).__name__}: {exc})") from None


def _build(header, archive, path, backend, Sequential):
    layers = []
    arrays = []
    for i, spec in enumerate(header["layers"]):
        try:
            layer = layer_from_config(spec["type"], spec["config"])
        except ValueError as exc:
            raise ModelFileError(f"{path}: layer {i}: {exc}") from None
        layers.append(layer)
        arrays.extend(_array(archive, key, path) for key in spec["arrays"])
    dtype = header["dtype"]
    if dtype not in ("float32", "float64"):
        raise ModelFileError(f"{path}: model dtype {dtype!r} is not float32 or float64")
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
        model.optimizer = _load_optimizer(spec, archive, path, model)
    return model


def _load_optimizer(spec, archive, path, model):
    classes = {cls.__name__: cls for cls in _optim.OPTIMIZERS.values()}
    if spec["type"] not in classes:
        raise ModelFileError(f"{path}: unknown optimizer {spec['type']!r}; known: {', '.join(classes)}")
    cls = classes[spec["type"]]
    try:
        optimizer = cls(**spec["config"])
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: bad {spec['type']} configuration {spec['config']!r} ({exc})") from None
    params = model.params()
    states = [{name: _array(archive, key, path) for name, key in slot.items()} for slot in spec["state"]]
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
            {"type": spec["type"], "config": spec["config"], "iterations": spec["iterations"], "state": states}
        )
    except ValueError as exc:
        raise ModelFileError(f"{path}: bad optimizer state ({exc})") from None
    return optimizer
