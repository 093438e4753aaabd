"""The hand-written AVX-512 products and CSR kernels called from Numba (kernels/numba/_small_gemm.py) against
NumPy.

Every product c (m, n) = alpha op(a) b + beta c, strided (NN, TN) and through row pointers (NN, TN), in
float32 and float64, ragged sizes (m 1..7, 10 and 12 (one block of rows), and larger, on both sides of the
24 rows from which B is packed, in blocks of 6 to 8 rows in the three-register passes (25, 30, 64); n 1..100
across the 16/32/48-column passes (80: 48 + 32, 100: 48 + 48 + a tail) and their masks, with and without a
narrow last register for
small_gemm_tail.h; k 1..50 and past a packed panel's rows and the tail products' 512, in two and three),
blocks inside larger arrays (ld > row width, not at the array's start), alpha = -0.5, beta 0 (over a c of
NaN) and 1. Tolerance (kernel_helpers.py): |c - ref| <= rtol * (|alpha| |op(a)| |b| + |beta c|), rtol 1e-5
(float32) / 1e-12 (float64), or 2 k eps when larger: k terms round to at most ~k eps of that magnitude. The padding of c
must be untouched. The CSR kernels (small_sparse.h): every row length 1..300 across their masks and passes,
int32 and int64 indices, rows repeated and shuffled, blocks inside larger arrays, against the same bound.
The products are tested whenever the CPU has AVX-512F, FASTNN_PORTABLE=1 or not (it only
stops callers from using them); a missing extension fails (CI builds it), a CPU without AVX-512F skips
(allow-listed in tests/allowed_skips.txt: the callers' BLAS path is what runs there, and is tested).

The cache tests run this file as a script (``--worker``) in fresh processes sharing one NUMBA_CACHE_DIR,
as tests/test_numba_cache.py does: a cached function that calls the products must load from the cache
(no recompilation), and still load and run, falling back to np.dot, where the extension is missing.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import scipy.sparse
from numba import njit

EXPORT = "fastnn._kernels.cython.small_gemm_export"
if __name__ == "__main__" and "--block" in sys.argv:
    sys.modules[EXPORT] = None  # as if it were not built (must precede the import of _small_gemm)

from fastnn._kernels.numba import _small_gemm as S  # noqa: E402

RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}  # as kernel_helpers.RTOL
MS = list(range(1, 8)) + [10, 12, 13, 23, 24, 25, 30, 64]
NS = [1, 3, 8, 15, 16, 17, 31, 32, 33, 40, 48, 52, 80, 100]
KS = [1, 2, 7, 16, 33, 50, 128, 129, 300, 600]
PAD = 3  # rows and columns around each block inside its array (ld = width + 2 PAD)


@pytest.fixture(scope="module")
def avx512():
    if not S.AVAILABLE:
        pytest.fail(f"{EXPORT} is not built (make build; CI builds it)", pytrace=False)
    if not S.cpu_has_avx512():
        pytest.skip("this CPU has no AVX-512F")


def _block(rng, rows, cols, dtype):
    """A random (rows, cols) block at (PAD, PAD) of a larger array: (its 1-D view, its ld, the block)."""
    buf = rng.standard_normal((rows + PAD, cols + 2 * PAD)).astype(dtype)
    ld = buf.shape[1]
    return buf.reshape(-1)[PAD * ld + PAD:], ld, buf[PAD:, PAD:PAD + cols]


def _check(c_buf, c0_buf, m, n, alpha, opa, b, beta, dtype):
    """The (m, n) block at (PAD, PAD) of c_buf against NumPy in float64; the rest of c_buf unchanged."""
    block = (slice(PAD, PAD + m), slice(PAD, PAD + n))
    a64, b64, c0 = opa.astype(np.float64), b.astype(np.float64), c0_buf[block].astype(np.float64)
    expected = alpha * (a64 @ b64) + (beta * c0 if beta else 0.0)
    scale = abs(alpha) * (np.abs(a64) @ np.abs(b64)) + (abs(beta * c0) if beta else 0.0)
    got = c_buf[block].astype(np.float64)
    rtol = max(RTOL[np.dtype(dtype)], 2 * b.shape[0] * np.finfo(dtype).eps)
    assert np.all(np.abs(got - expected) <= rtol * scale + np.finfo(dtype).tiny), (
        f"m={m} n={n} k={b.shape[0]} beta={beta}: max error {np.max(np.abs(got - expected))}")
    rest = np.ones(c_buf.shape, bool)
    rest[block] = False
    assert np.array_equal(c_buf[rest], c0_buf[rest], equal_nan=True), "wrote outside the block"


def _c(rng, m, n, beta, dtype):
    """c's array ((m + PAD) x (n + 2 PAD)): NaN everywhere when beta = 0 (must be overwritten), else random."""
    shape = (m + PAD, n + 2 * PAD)
    buf = np.full(shape, np.nan, dtype) if beta == 0 else rng.standard_normal(shape).astype(dtype)
    return buf, buf.copy(), buf.reshape(-1)[PAD * shape[1] + PAD:], shape[1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("trans_a", [False, True], ids=["NN", "TN"])
def test_small_matches_numpy(avx512, trans_a, beta, dtype):
    rng = np.random.default_rng(1)
    alpha = -0.5
    for m in MS:
        for n in NS:
            for k in KS:
                a, lda, ablock = _block(rng, *((k, m) if trans_a else (m, k)), dtype)
                b, ldb, bblock = _block(rng, k, n, dtype)
                c_buf, c0_buf, c, ldc = _c(rng, m, n, beta, dtype)
                S.small(trans_a, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
                _check(c_buf, c0_buf, m, n, alpha, ablock.T if trans_a else ablock, bblock, beta, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("trans_a", [False, True], ids=["NN", "TN"])
def test_small_rows_matches_numpy(avx512, trans_a, beta, dtype):
    """a is a shuffled selection of the rows of x (m rows for NN, k rows for TN), read in place."""
    rng = np.random.default_rng(2)
    alpha = -0.5
    for m in MS:
        for n in NS:
            for k in KS:
                count, width = (k, m) if trans_a else (m, k)
                x = rng.standard_normal((count + 20, width + PAD)).astype(dtype)  # rows longer than needed
                order = rng.permutation(x.shape[0]).astype(np.int64)
                start = 5
                rows = np.zeros(count, np.uint64 if m % 2 else np.int64)  # both accepted
                S.set_row_pointers(rows, x, order, start, count)
                assert S.row_address(x, order[start]) == x[order[start]:].ctypes.data
                ablock = x[order[start:start + count], :width]
                b, ldb, bblock = _block(rng, k, n, dtype)
                c_buf, c0_buf, c, ldc = _c(rng, m, n, beta, dtype)
                S.small_rows(trans_a, m, n, k, alpha, rows, b, ldb, beta, c, ldc)
                _check(c_buf, c0_buf, m, n, alpha, ablock.T if trans_a else ablock, bblock, beta, dtype)


def test_empty_products_write_nothing(avx512):
    c = np.full(4, np.nan)
    S.small(False, 0, 2, 2, 1.0, np.ones(4), 2, np.ones(4), 2, 0.0, c, 2)
    S.small_rows(False, 2, 0, 2, 1.0, np.zeros(2, np.int64), np.ones(4), 2, 0.0, c, 2)
    assert np.isnan(c).all()


def test_mixed_dtypes_and_bad_rows_are_typing_errors():
    from numba.core.errors import TypingError

    f32, f64 = np.ones(1, np.float32), np.ones(1)
    with pytest.raises(TypingError):
        S.small(False, 1, 1, 1, 1.0, f32, 1, f64, 1, 0.0, f64, 1)
    with pytest.raises(TypingError):
        S.small_rows(False, 1, 1, 1, 1.0, np.zeros(1, np.int32), f64, 1, 0.0, f64, 1)


# -- small_sparse.h's CSR kernels -------------------------------------------------------------------------

SPARSE_NS = [1, 15, 16, 17, 50, 64, 100, 127, 128, 129, 200, 300]  # masks, and passes of 8 registers (float)


def _sparse_x(rng, n, n_in, dtype, index):
    """A CSR x (data, indices, indptr) with empty rows, duplicate and unsorted indices, zeros stored."""
    counts = rng.integers(0, 2 * n_in // 3 + 2, n)
    counts[::5] = 0
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(index)
    indices = rng.integers(0, n_in, indptr[-1]).astype(index)
    data = rng.standard_normal(indptr[-1]).astype(dtype)
    data[::7] = 0
    return data, indices, indptr, scipy.sparse.csr_matrix((data, indices, indptr), shape=(n, n_in)).toarray()


@njit
def _csr_forward(rows, data, indices, indptr, src, ld_src, dst, ld_dst, n):  # the intrinsics, FASTNN_PORTABLE or not
    return S._csr_forward(rows.shape[0], rows, data, indices, indptr, src, ld_src, dst, ld_dst, n)


@njit
def _csr_backward(rows, data, indices, indptr, src, ld_src, dst, ld_dst, n):
    return S._csr_backward(rows.shape[0], rows, data, indices, indptr, src, ld_src, dst, ld_dst, n)


@pytest.mark.parametrize("index", [np.int32, np.int64], ids=["i32", "i64"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kernel", ["forward", "backward"])
def test_csr_kernels_match_numpy(avx512, kernel, dtype, index):
    """A shuffled selection of x's rows (repeats included) times w's block (forward), or its transpose times
    dy's block into dw's (backward), added to what the destination block held; nothing else written."""
    rng = np.random.default_rng(4)
    call = _csr_forward if kernel == "forward" else _csr_backward
    for n_in in (1, 9, 70):
        data, indices, indptr, dense = _sparse_x(rng, 40, n_in, dtype, index)
        for n in SPARSE_NS:
            rows = rng.integers(0, 40, 23).astype(np.int64)
            xb = dense[rows].astype(np.float64)
            src_rows, dst_rows = (n_in, len(rows)) if kernel == "forward" else (len(rows), n_in)
            src, ld_src, src_block = _block(rng, src_rows, n, dtype)
            dst_buf = rng.standard_normal((dst_rows + PAD, n + 2 * PAD)).astype(dtype)
            before = dst_buf.copy()
            dst = dst_buf.reshape(-1)[PAD * dst_buf.shape[1] + PAD:]
            assert call(rows, data, indices, indptr, src, ld_src, dst, dst_buf.shape[1], n)
            a = xb if kernel == "forward" else xb.T
            _check(dst_buf, before, dst_rows, n, 1.0, a, src_block, 1.0, dtype)


def test_csr_kernels_take_only_matching_types():
    """Index arrays of two dtypes, or float arrays of two, are not called (False, nothing written): the
    callers' loops take them (tests/test_sparse.py)."""
    rows, f64 = np.zeros(1, np.int64), np.ones(4)
    i32, i64 = np.array([0, 1], np.int32), np.array([0, 1], np.int64)
    y = np.full(4, 7.0)
    assert not _csr_forward(rows, f64[:1], i32[:1], i64, f64, 2, y, 2, 2)
    assert not _csr_backward(rows, f64[:1], i32[:1], i32, np.ones(4, np.float32), 2, y, 2, 2)
    assert (y == 7.0).all()
    assert S.csr_forward(rows, f64[:1], i32[:1], i32, f64, 2, y, 2, 2) == S.has_avx512()


# -- caching and the missing extension (subprocesses) ----------------------------------------------------


@njit(cache=True, error_model="numpy")
def _layer(x, order, start, nb, w):
    """A batch's forward and weight-gradient products, through every entry point of _small_gemm.

    x (N, n_in), w (n_in, n), same float dtype; returns (out, out2, grad): out = out2 = xb @ w, grad =
    xb^T out, with xb = x[order[start:start + nb]]; np.dot on xb when has_avx512() is False.
    """
    n_in, n = w.shape
    xb = np.empty((nb, n_in), x.dtype)
    for i in range(nb):
        xb[i] = x[order[start + i]]
    out, out2, grad = np.empty((nb, n), x.dtype), np.empty((nb, n), x.dtype), np.empty((n_in, n), x.dtype)
    if S.has_avx512():
        rows = np.empty(nb, np.int64)
        S.set_row_pointers(rows, x, order, start, nb)
        S.small_rows(False, nb, n, n_in, 1.0, rows, w.ravel(), n, 0.0, out.ravel(), n)
        S.small(False, nb, n, n_in, 1.0, xb.ravel(), n_in, w.ravel(), n, 0.0, out2.ravel(), n)
        S.small_rows(True, n_in, n, nb, 1.0, rows, out.ravel(), n, 0.0, grad.ravel(), n)
    else:
        out[:] = np.dot(xb, w)
        out2[:] = out
        grad[:] = np.dot(xb.T, out)
    return out, out2, grad


def _worker(block):
    """Run _layer in float32 and float64; report availability, errors and cache statistics as JSON."""
    rng = np.random.default_rng(3)
    errors = []
    for dtype in (np.float32, np.float64):
        x, w = rng.standard_normal((30, 17)).astype(dtype), rng.standard_normal((17, 21)).astype(dtype)
        order = rng.permutation(30).astype(np.int64)
        out, out2, grad = _layer(x, order, 4, 10, w)
        xb = x[order[4:14]].astype(np.float64)
        ref = xb @ w.astype(np.float64)
        errors.append(max(float(np.max(np.abs(out - ref) / (np.abs(xb) @ np.abs(w.astype(np.float64))))),
                          float(np.max(np.abs(out2 - ref) / (np.abs(xb) @ np.abs(w.astype(np.float64))))),
                          float(np.max(np.abs(grad - xb.T @ out.astype(np.float64))
                                       / (np.abs(xb.T) @ np.abs(out.astype(np.float64)))))))
    dispatchers = {"_layer": _layer, "small": S.small, "small_rows": S.small_rows, "has_avx512": S.has_avx512,
                   "set_row_pointers": S.set_row_pointers}
    print(json.dumps({
        "blocked": block, "available": S.AVAILABLE, "has_avx512": bool(S.has_avx512()), "errors": errors,
        "hits": {name: sum(d.stats.cache_hits.values()) for name, d in dispatchers.items()},
        "misses": {name: sum(d.stats.cache_misses.values()) for name, d in dispatchers.items()}}))


def _run(cache_dir, block=False):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    args = [sys.executable, os.path.abspath(__file__), "--worker"] + (["--block"] if block else [])
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (f"exit code {proc.returncode} (-11: segfault)\n"
                                  f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_function_using_them_loads_from_the_cache():
    """Cold process compiles, warm one loads _layer from the cache; a third one without the extension
    loads the same cached code (its symbols resolve to the stand-ins) and takes the np.dot path."""
    with tempfile.TemporaryDirectory(prefix="fastnn-small-gemm-cache-") as cache_dir:
        cold = _run(cache_dir)
        assert cold["misses"]["_layer"] == 2, cold  # float32 and float64: the cache directory was fresh
        warm = _run(cache_dir)
        assert not any(warm["misses"].values()), f"recompiled in the warm process: {warm}"
        assert warm["hits"]["_layer"] == 2, warm
        blocked = _run(cache_dir, block=True)
        assert not blocked["available"] and not blocked["has_avx512"], blocked
        assert blocked["hits"]["_layer"] == 2 and not blocked["misses"]["_layer"], blocked
        for report in (cold, warm, blocked):
            assert max(report["errors"]) < 1e-5, report  # relative to the magnitude (float32 bound)


def test_missing_extension_registers_stand_ins():
    """Without the extension (import blocked), AVAILABLE and has_avx512() are False and the products are
    no-ops: compiled from scratch here, they link and run without touching c."""
    code = (f"import sys; sys.modules[{EXPORT!r}] = None\n"
            "import numpy as np\nfrom fastnn._kernels.numba import _small_gemm as S\n"
            "c = np.full(6, 7.0); a = np.ones(6); r = np.zeros(2, np.int64)\n"
            "S.small(False, 2, 3, 1, 1.0, a, 1, a, 3, 0.0, c, 3)\n"
            "S.small_rows(True, 2, 3, 1, 1.0, r, a, 3, 0.0, c, 3)\n"
            "assert not S.AVAILABLE and not S.has_avx512() and (c == 7.0).all()\n")
    with tempfile.TemporaryDirectory(prefix="fastnn-small-gemm-cache-") as cache_dir:
        proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, NUMBA_CACHE_DIR=cache_dir),
                              capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    _worker("--block" in sys.argv)
