"""Weight initializers for ``Dense`` and ``Maxout`` layers.

Every initializer draws from a ``numpy.random.Generator`` in float64 (weights first, then biases) and
returns ``(W, b)`` with W of shape (n_in, n_out) and b of shape (n_out,), both float64; the model casts
them to its dtype, so a float32 and a float64 model built from one seed start from the same numbers.

===============  ====================================================  ============
name             weights W                                             biases b
===============  ====================================================  ============
``"large"``      N(0, 1)  (the seeds' old default)                     N(0, 1)
``"normalized"`` N(0, 1/n_in), i.e. std 1/sqrt(n_in) (seeds' default)  N(0, 1)
``"xavier"``     Glorot *uniform*: U(-a, a), a = sqrt(6/(n_in+n_out))  0
``"xavier_normal"`` Glorot normal: N(0, 2/(n_in+n_out))                0
``"he"``         He *normal*: N(0, 2/n_in) (not truncated)             0
``"he_uniform"`` U(-a, a), a = sqrt(6/n_in)                            0
``"zeros"``      0                                                     0
===============  ====================================================  ============

"xavier" is the uniform variant, as Keras's ``glorot_uniform`` and ``torch.nn.init.xavier_uniform_``;
"he" is the normal variant, as ``torch.nn.init.kaiming_normal_`` with fan_in. A callable
``init(n_in, n_out, rng) -> (W, b)`` is accepted wherever a name is.
"""
import numpy as np

__all__ = ["INITIALIZERS", "initialize", "get_rng"]


def _large(n_in, n_out, rng):
    w = rng.standard_normal((n_in, n_out))
    return w, rng.standard_normal(n_out)


def _normalized(n_in, n_out, rng):
    w = rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)
    return w, rng.standard_normal(n_out)


def _xavier(n_in, n_out, rng):
    a = np.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-a, a, (n_in, n_out)), np.zeros(n_out)


def _xavier_normal(n_in, n_out, rng):
    return rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / (n_in + n_out)), np.zeros(n_out)


def _he(n_in, n_out, rng):
    return rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in), np.zeros(n_out)


def _he_uniform(n_in, n_out, rng):
    a = np.sqrt(6.0 / n_in)
    return rng.uniform(-a, a, (n_in, n_out)), np.zeros(n_out)


def _zeros(n_in, n_out, rng):
    return np.zeros((n_in, n_out)), np.zeros(n_out)


INITIALIZERS = {
    "large": _large,
    "normalized": _normalized,
    "xavier": _xavier,
    "xavier_normal": _xavier_normal,
    "he": _he,
    "he_uniform": _he_uniform,
    "zeros": _zeros,
}


def get_rng(rng=None, name="rng"):
    """A ``numpy.random.Generator`` from None (fresh OS entropy), an int seed >= 0, or a Generator (returned
    as is). ``name`` is the argument named in error messages (e.g. ``"seed"``)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValueError(f"{name} must be None, an int >= 0 or a numpy.random.Generator, got {rng}")
        return np.random.default_rng(int(rng))
    raise TypeError(f"{name} must be None, an int seed or a numpy.random.Generator, got {type(rng).__name__}")


def initialize(init, n_in, n_out, rng=None):
    """Draw ``(W, b)`` for a layer with ``n_in`` inputs and ``n_out`` outputs.

    Parameters
    ----------
    init : str or callable
        A name from ``INITIALIZERS`` or ``init(n_in, n_out, rng) -> (W, b)``.
    n_in, n_out : int
        Fan-in and fan-out, both >= 1.
    rng : None, int or numpy.random.Generator
        Source of randomness (see :func:`get_rng`).

    Returns
    -------
    W : ndarray, float64, shape (n_in, n_out), C-contiguous
    b : ndarray, float64, shape (n_out,)
    """
    if callable(init):
        fn = init
    else:
        if not isinstance(init, str) or init.lower() not in INITIALIZERS:
            raise ValueError(f"unknown initializer {init!r}; valid initializers are {', '.join(INITIALIZERS)}")
        fn = INITIALIZERS[init.lower()]
    w, b = fn(int(n_in), int(n_out), get_rng(rng))
    w = np.ascontiguousarray(w, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    if w.shape != (n_in, n_out) or b.shape != (n_out,):
        raise ValueError(
            f"initializer {init!r} returned shapes {w.shape} and {b.shape}; expected {(n_in, n_out)} and {(n_out,)}"
        )
    if not (np.isfinite(w).all() and np.isfinite(b).all()):
        raise ValueError(f"initializer {init!r} returned NaN or infinite values")
    return w, b
