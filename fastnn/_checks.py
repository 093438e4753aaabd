"""Input validation shared by fastnn's Python layer, run BEFORE any kernel.

Kernels assume checked inputs (C-contiguous, one float dtype, finite, labels in range) and some backends
cannot say what went wrong (a compiled kernel fails with "Buffer dtype mismatch" or reads out of
bounds). These helpers turn every such case into a ``ValueError`` or ``TypeError`` that names the argument,
what was expected and what was found. Messages follow scikit-learn's wording where users know it
("Input contains NaN.", "Expected 2D array, got 1D array instead", "Found input variables with
inconsistent numbers of samples: [3, 4]").

Dtype rule (used by every helper that converts): float32 and float64 arrays keep their dtype; any other
numeric input (bool, integers, float16, Python lists/scalars) becomes float64. When several float arrays
meet in one call, :func:`result_dtype` gives the common one (float64 if any NumPy float64 array is among
them, as NumPy promotes). Outputs are always C-contiguous (Fortran-ordered, strided or reversed inputs
are copied).
"""
import numbers
import sys

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

__all__ = [
    "FLOAT_DTYPES",
    "result_dtype",
    "check_array",
    "check_labels",
    "check_consistent_length",
    "check_same_shape",
    "check_choice",
    "check_scalar",
    "check_axis",
    "check_in_range",
    "is_sparse",
    "check_sparse",
]

_NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, float; complex/object/str/bytes/datetime are refused
_WORDS = {0: "0D", 1: "1D", 2: "2D", 3: "3D"}


def _ndim_word(ndim):
    return _WORDS.get(ndim, f"{ndim}D")


def _index(arr, flat):
    """The index of flat position ``flat`` of ``arr`` as a tuple (or int for 1-D), for messages."""
    idx = np.unravel_index(int(flat), arr.shape)
    idx = tuple(int(i) for i in idx)
    return idx[0] if len(idx) == 1 else idx


def _as_numeric(x, name, into=None):
    """np.asarray(x), refusing what cannot be a numeric array; returns the array (no dtype change).

    ``into`` is the dtype the caller converts to (named in the message), default the module's rule."""
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"argument {name!r} could not be converted to a numeric array: {exc}") from None
    if arr.dtype.kind == "c":
        raise TypeError(
            f"argument {name!r} must be a real-valued array (float32 or float64); got complex dtype {arr.dtype}"
        )
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(
            f"argument {name!r} must be a numeric array ("
            + (f"any real dtype, converted to {np.dtype(into).name}" if into is not None else
               "float32 or float64; bool, integer and float16 are converted to float64")
            + f"); got dtype {arr.dtype}"
        )
    return arr


def result_dtype(*values):
    """The float dtype a call computes in, from its array arguments.

    Only NumPy arrays/scalars of dtype float32 or float64 take part (lists, Python scalars, integer,
    bool and float16 arrays do not, as NumPy's "weak" scalars): the result is float32 when every
    participant is float32, float64 when any is float64 or when none takes part.
    """
    votes = [
        np.dtype(v.dtype) for v in values if isinstance(v, (np.ndarray, np.generic)) and v.dtype in FLOAT_DTYPES
    ]
    if not votes:
        return np.dtype(np.float64)
    return np.dtype(np.result_type(*votes))


def check_array(
    x,
    name="x",
    ndim=None,
    allow_neg_inf=False,
    *,
    dtype=None,
    min_ndim=None,
    allow_inf=False,
    allow_empty=False,
):
    """Validate and convert an array argument; return a new or the same C-contiguous float array.

    Parameters
    ----------
    x : array_like
        The argument. Numeric only: bool, integer, float16 become float64 (see the module's dtype rule);
        object, string, bytes, datetime and complex arrays raise ``TypeError``.
    name : str
        The argument's name, used in every message.
    ndim : int or tuple of int, optional
        The allowed number(s) of dimensions, e.g. 2 or (1, 2).
    allow_neg_inf : bool
        Allow ``-inf`` entries (the softmax family: probability 0). NaN and ``+inf`` are still refused.
    dtype : numpy dtype, optional
        Convert to this float dtype instead of applying the dtype rule (values that overflow it become
        inf and are then refused unless allowed).
    min_ndim : int, optional
        The least number of dimensions (e.g. 1 for "at least 1-D").
    allow_inf : bool
        Allow both infinities (NaN is never allowed).
    allow_empty : bool
        Allow arrays with no elements.

    Returns
    -------
    ndarray
        C-contiguous, dtype float32 or float64, same shape as ``x``.

    Raises
    ------
    TypeError
        Non-numeric or complex dtype.
    ValueError
        Wrong number of dimensions, empty array, NaN or a refused infinity.
    """
    arr = _as_numeric(x, name, dtype)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(_ndim_word(d) for d in allowed)
            hint = ""
            if 2 in allowed and arr.ndim == 1:
                hint = (
                    f" Reshape your data either using {name}.reshape(-1, 1) if it has a single feature or "
                    f"{name}.reshape(1, -1) if it contains a single sample."
                )
            raise ValueError(
                f"Expected {want} array, got {_ndim_word(arr.ndim)} array instead "
                f"(argument {name!r}, shape {arr.shape}).{hint}"
            )
    if min_ndim is not None and arr.ndim < min_ndim:
        raise ValueError(
            f"Expected at least {_ndim_word(min_ndim)} array, got {_ndim_word(arr.ndim)} array instead "
            f"(argument {name!r}, shape {arr.shape})."
        )
    if arr.size == 0 and not allow_empty:
        if arr.ndim >= 1 and arr.shape[0] == 0:
            what = f"0 sample(s) (shape={arr.shape})"
        else:
            what = f"0 feature(s) (shape={arr.shape})"
        raise ValueError(f"Found array with {what} while a minimum of 1 is required (argument {name!r}).")
    if dtype is None:
        dtype = arr.dtype if arr.dtype in FLOAT_DTYPES else np.dtype(np.float64)
    # np.asarray(order="C") keeps 0-d arrays 0-d (np.ascontiguousarray would make them 1-D).
    with np.errstate(over="ignore"):  # values too large for float32 become inf, reported just below
        arr = np.asarray(arr, dtype=dtype, order="C")
    check_finite(arr, name, allow_neg_inf=allow_neg_inf, allow_inf=allow_inf)
    return arr


def check_finite(arr, name, allow_neg_inf=False, allow_inf=False):
    # Fast path (scikit-learn's _assert_all_finite): a finite sum proves every element finite, in one
    # pass with O(1) memory, where np.isfinite(arr).all() writes a bool array the size of arr. The sum
    # stays in arr's dtype (a float64 accumulator is ~2.5x slower on float32); a NaN, an inf or an
    # overflow of large finite values makes it non-finite, and the exact check below decides.
    with np.errstate(over="ignore", invalid="ignore"):
        if arr.size == 0 or np.isfinite(arr.sum()):
            return
    if np.isfinite(arr).all():  # the sum overflowed: large but finite values
        return
    nan = np.isnan(arr)
    if nan.any():
        where = _index(arr, np.argmax(nan))
        raise ValueError(f"Input contains NaN. Argument {name!r} must not contain NaN; found NaN at index {where}.")
    if allow_inf:
        return
    pos = np.isposinf(arr)
    if pos.any():
        where = _index(arr, np.argmax(pos))
        allowed = " (-inf is allowed)" if allow_neg_inf else ""
        raise ValueError(
            f"Input contains infinity or a value too large for dtype('{arr.dtype}'). Argument {name!r} must "
            f"be finite{allowed}; found +inf at index {where}."
        )
    if not allow_neg_inf:
        where = _index(arr, np.argmax(np.isneginf(arr)))
        raise ValueError(
            f"Input contains infinity or a value too large for dtype('{arr.dtype}'). Argument {name!r} must "
            f"be finite; found -inf at index {where}."
        )


def is_sparse(x):
    """Whether x is a scipy.sparse matrix or array (without importing scipy.sparse when nothing could be)."""
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(x)


def check_sparse(x, name="X", dtype=np.float64, finite=True):
    """A scipy.sparse matrix or array as a CSR matrix of ``dtype`` that the sparse kernels can index.

    Any sparse format is converted to CSR (CSR input of the right dtype is used as is, no copy); index
    arrays become one integer type, int32 or int64. Refused with ``ValueError``/``TypeError`` naming the
    argument: other than 2 dimensions, no rows or columns, a non-numeric or complex dtype, stored values
    that are NaN or infinite (when ``finite``), indices outside [0, n_columns) or a decreasing indptr.
    The work is O(nnz): the matrix is never made dense.
    """
    import scipy.sparse

    if x.ndim != 2:
        raise ValueError(f"Expected 2D array, got {_ndim_word(x.ndim)} sparse array instead (argument {name!r}, "
                         f"shape {x.shape}).")
    if x.shape[0] == 0 or x.shape[1] == 0:
        what = "sample" if x.shape[0] == 0 else "feature"
        raise ValueError(f"Found array with 0 {what}(s) (shape={x.shape}) while a minimum of 1 is required "
                         f"(argument {name!r}).")
    if x.dtype.kind == "c":
        raise TypeError(f"argument {name!r} must be a real-valued array; got complex dtype {x.dtype}")
    if x.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(f"argument {name!r} must be a numeric sparse matrix (any real dtype, converted to "
                        f"{np.dtype(dtype).name}); got dtype {x.dtype}")
    x = scipy.sparse.csr_matrix(x)  # a no-copy view of CSR input; other formats are converted
    if x.dtype != dtype:
        with np.errstate(over="ignore"):  # too large for float32: inf, reported below
            x = x.astype(dtype)
    try:
        x.check_format(full_check=True)
    except ValueError as exc:
        raise ValueError(f"argument {name!r} is not a valid sparse matrix: {exc}") from None
    if x.indptr[-1] != x.data.shape[0]:
        x = x.copy()
        x.prune()  # values stored past indptr[-1] belong to no row (scipy ignores them too)
    if x.indices.dtype != x.indptr.dtype or x.indices.dtype not in (np.int32, np.int64):
        x.indices, x.indptr = x.indices.astype(np.int64), x.indptr.astype(np.int64)
    if finite and not np.isfinite(x.data).all():
        p = int(np.argmax(~np.isfinite(x.data)))
        where = (int(np.searchsorted(x.indptr, p, side="right")) - 1, int(x.indices[p]))
        if np.isnan(x.data[p]):
            raise ValueError(f"Input contains NaN. Argument {name!r} (sparse) must not contain NaN; found NaN "
                             f"at index {where}.")
        raise ValueError(f"Input contains infinity or a value too large for dtype('{x.dtype}'). Argument "
                         f"{name!r} (sparse) must be finite; found {x.data[p]} at index {where}.")
    return x


def check_in_range(arr, name, low, high, what="values"):
    """Raise ValueError unless every element of ``arr`` lies in [low, high] (e.g. probabilities)."""
    bad = (arr < low) | (arr > high)
    if bad.any():
        flat = int(np.argmax(bad))
        value = arr.reshape(-1)[flat]
        raise ValueError(
            f"Argument {name!r} must contain {what} in [{low:g}, {high:g}]; found {value.item()!r} at index "
            f"{_index(arr, flat)}."
        )
    return arr


def check_labels(y, n_classes, name="labels", n_samples=None):
    """Validate class labels; return them as a C-contiguous int64 array of shape (n,).

    Parameters
    ----------
    y : array_like, shape (n,)
        Integer class indices in ``[0, n_classes)``. Bool and integer dtypes are accepted, and float
        arrays whose values are all whole numbers; strings/objects raise ``TypeError``.
    n_classes : int
        The number of classes (columns of the network output).
    name : str
        Argument name for messages.
    n_samples : int, optional
        The expected length (rows of the output); a mismatch raises the "inconsistent numbers of
        samples" error.
    """
    try:
        arr = np.asarray(y)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"argument {name!r} could not be converted to an array of labels: {exc}") from None
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(f"argument {name!r} must hold integer class indices (int64); got dtype {arr.dtype}")
    if arr.ndim != 1:
        hint = f" Use {name}.ravel() for a column of labels." if arr.ndim == 2 and arr.shape[1:] == (1,) else ""
        raise ValueError(
            f"Expected 1D array of labels, got {_ndim_word(arr.ndim)} array instead (argument {name!r}, "
            f"shape {arr.shape}).{hint}"
        )
    if arr.size == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={arr.shape}) while a minimum of 1 is required "
                         f"(argument {name!r}).")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.floor(arr))
        if bad.any():
            flat = int(np.argmax(bad))
            raise ValueError(
                f"Argument {name!r} must hold integer class indices; found non-integer value {arr[flat].item()!r} "
                f"at index {flat}."
            )
    if n_samples is not None and arr.shape[0] != n_samples:
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: [{n_samples}, {arr.shape[0]}] "
            f"({name!r} has {arr.shape[0]} labels for {n_samples} rows)."
        )
    neg = arr < 0
    if neg.any():
        flat = int(np.argmax(neg))
        raise ValueError(
            f"Argument {name!r} contains negative values: found {arr[flat].item()!r} at index {flat}; expected class "
            f"indices in [0, {n_classes})."
        )
    high = arr >= n_classes
    if high.any():
        flat = int(np.argmax(high))
        raise ValueError(
            f"Argument {name!r} contains values out of range for {n_classes} classes: found {arr[flat].item()!r} at "
            f"index {flat}; expected class indices in [0, {n_classes})."
        )
    return np.ascontiguousarray(arr, dtype=np.int64)


def check_consistent_length(*arrays, names=None):
    """Raise ValueError unless all arrays (None skipped) have the same first dimension.

    ``names`` (a sequence matching ``arrays``) adds which argument has which length to the message.
    """
    pairs = [(a, n) for a, n in zip(arrays, names or [None] * len(arrays)) if a is not None]
    lengths = [int(np.shape(a)[0]) if np.ndim(a) else 1 for a, _ in pairs]
    if len(set(lengths)) > 1:
        detail = ""
        if names:
            detail = " (" + ", ".join(f"{n}: {length}" for (_, n), length in zip(pairs, lengths)) + ")"
        raise ValueError(f"Found input variables with inconsistent numbers of samples: {lengths}{detail}")


def check_same_shape(a, b, name_a, name_b):
    """Raise ValueError unless ``a`` and ``b`` have the same shape (targets vs outputs, grad vs input)."""
    if np.shape(a) != np.shape(b):
        raise ValueError(
            f"Found input variables with inconsistent shapes: {name_a} {np.shape(a)} and {name_b} "
            f"{np.shape(b)}; expected the same shape."
        )


def check_choice(name, value, choices):
    """Return ``value`` if it is one of ``choices``, else raise ValueError listing the valid ones."""
    try:
        ok = value in choices
    except TypeError:  # unhashable value against a set/dict
        ok = False
    if not ok:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"Unknown {name} {value!r}. Valid {name} values are: {valid}.")
    return value


def check_scalar(value, name, target_type=numbers.Real, min_val=None, max_val=None, include_boundaries="both"):
    """Validate a scalar hyperparameter (scikit-learn's ``check_scalar`` messages); return it.

    ``target_type`` is ``numbers.Real`` (returned as float; NaN/inf refused) or ``numbers.Integral``
    (returned as int; bools refused). ``include_boundaries`` is "both", "left", "right" or "neither".
    """
    integral = target_type is numbers.Integral or target_type is int
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral if integral else numbers.Real):
        kind = "int" if integral else "float"
        raise TypeError(f"{name} must be an instance of {kind}, not {type(value).__name__}.")
    value = int(value) if integral else float(value)
    if not integral and not np.isfinite(value):
        raise ValueError(f"{name} == {value}, must be finite.")
    left = include_boundaries in ("both", "left")
    right = include_boundaries in ("both", "right")
    if min_val is not None and (value < min_val or (value == min_val and not left)):
        raise ValueError(f"{name} == {value}, must be {'>=' if left else '>'} {min_val}.")
    if max_val is not None and (value > max_val or (value == max_val and not right)):
        raise ValueError(f"{name} == {value}, must be {'<=' if right else '<'} {max_val}.")
    return value


def check_axis(axis, ndim, name="axis"):
    """Return ``axis`` normalized to [0, ndim); raise ValueError (TypeError for non-ints) otherwise."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{name} must be an instance of int, not {type(axis).__name__}.")
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name} {axis} is out of bounds for array of dimension {ndim}.")
    return axis % ndim
