"""The Cython backend's hand-written AVX-512 products (kernels/cython/small_gemm.h), callable from Numba.

Row-major blocks as in kernels/numba/fused.py: a block is a 1-D view of its array starting at the block's
first element (only its data pointer is passed: the memory from there on must be the array's), ld* the row
length of that array; element (i, j) is at i * ld + j. float32 or float64 throughout (a, b, c one dtype).

    small(trans_a, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)   c (m, n) = alpha op(a) b + beta c
    small_rows(trans_a, m, n, k, alpha, rows, b, ldb, beta, c, ldc) the same, a read through row pointers
    set_row_pointers(rows, x, order, start, nb)  rows[i] = address of x[order[start + i], 0]
    row_address(x, i)                            address of x[i, 0] (an intp)
    csr_forward(rows, data, indices, indptr, w, ldw, y, ldy, n)     small_sparse.h's CSR kernels; return
    csr_backward(rows, data, indices, indptr, dy, lddy, dw, lddw, n)  whether they ran
    has_avx512()                                 whether the products may be used
    cpu_has_avx512()                             whether they compute anything here (FASTNN_PORTABLE aside)

beta is 0 (c overwritten, even if it held NaN) or 1. **Callers check ``has_avx512()`` first** and use BLAS
otherwise: it is False when the CPU lacks AVX-512F, under FASTNN_PORTABLE=1 (read when the extension loads: the
portable path, BLAS, runs on any CPU), or when the extension kernels/cython/small_gemm_export.pyx is not
built (``AVAILABLE`` is then False). Without AVX-512F or the extension the products do nothing at all (c
untouched) rather than crash; under FASTNN_PORTABLE=1 they still compute, for their own tests.

How the calls are made (why this caches): the extension defines non-static C functions (``fastnn_small_f``
...) and exports their addresses; at import this module registers them with ``llvmlite.binding.add_symbol``,
and the intrinsics below declare and call them by name, as kernels/numba/fused.py calls ``numba_xxgemm``.
The compiled code holds no address, so ``cache=True`` works; a cached function is linked against whatever
the names are registered to in the loading process. When the extension is absent, the same names are
registered to tiny Numba ``cfunc`` stubs (has_avx512 -> 0, products -> nothing), so code that was compiled
and cached while the extension existed still links and runs (has_avx512() is False) instead of failing on
a missing symbol, and code cached without it uses the real functions once the extension is built.

Caching note: Numba's cache does not notice when this module changes (numba #8926, kernels/numba/_math.py):
cached kernels that call these functions keep the old code. Use a fresh ``NUMBA_CACHE_DIR`` after editing
it. Rebuilding the extension needs nothing while its C signatures stay the same (the calls go by name; the
names are registered at import of this module, which every caller imports before its code is loaded).
"""
from llvmlite import binding as _llvm
from llvmlite import ir
from numba import cfunc, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_PRODUCTS = ("fastnn_small_f", "fastnn_small_d", "fastnn_small_rows_nn_f", "fastnn_small_rows_tn_f",
             "fastnn_small_rows_nn_d", "fastnn_small_rows_tn_d") + tuple(
    f"fastnn_csr_{kernel}_{t}{i}" for kernel in ("forward", "backward") for t in "fd" for i in "il")

try:
    from ..cython import small_gemm_export as _export
except ImportError:  # not built
    _export = None
AVAILABLE = _export is not None

if AVAILABLE:
    _ADDRESSES = dict(_export.ADDRESSES)
else:
    # Never-called stand-ins, so that every name resolves (see the docstring). Extra arguments to a
    # function of none are harmless in the C calling conventions (the caller pops them).
    @cfunc(types.int32(), cache=True)
    def _no_avx512():
        return 0

    @cfunc(types.void(), cache=True)
    def _nothing():
        pass

    _ADDRESSES = dict({name: _nothing.address for name in _PRODUCTS}, fastnn_has_avx512=_no_avx512.address)
for _name, _address in _ADDRESSES.items():
    _llvm.add_symbol(_name, _address)

_VOIDP = ir.IntType(8).as_pointer()


def _call(context, builder, signature, args, name, kinds):
    """Declare ``name`` and call it with args converted by ``kinds``: "i" an intp, "s" a scalar of the
    dtype of c (the last but one argument), "p" an array's data pointer (as void*)."""
    tys = signature.args
    dtype = tys[-2].dtype if "s" in kinds else None
    intp = context.get_value_type(types.intp)
    scalar = context.get_value_type(dtype) if dtype is not None else None
    fnty = ir.FunctionType(ir.VoidType(), [{"i": intp, "s": scalar, "p": _VOIDP}[kind] for kind in kinds])
    fn = cgutils.get_or_insert_function(builder.module, fnty, name)
    values = []
    for kind, ty, value in zip(kinds, tys, args):
        if kind == "p":
            values.append(builder.bitcast(context.make_array(ty)(context, builder, value).data, _VOIDP))
        else:
            values.append(context.cast(builder, value, ty, types.intp if kind == "i" else dtype))
    builder.call(fn, values)
    return context.get_dummy_value()


def _typed(tys, kinds):
    """The kinds check: "p" arrays all float32 or all float64 (but rows, "r": a pointer-sized integer array),
    "i" integers, "s" real numbers. Returns the signature, or None (a typing error)."""
    dtypes = {ty.dtype for ty, kind in zip(tys, kinds) if kind == "p" and isinstance(ty, types.Array)}
    if len(dtypes) != 1 or dtypes.pop() not in (types.float32, types.float64):
        return None
    ok = {"i": lambda t: isinstance(t, types.Integer),
          "s": lambda t: isinstance(t, (types.Integer, types.Float)),
          "p": lambda t: isinstance(t, types.Array),
          "r": lambda t: (isinstance(t, types.Array) and isinstance(t.dtype, types.Integer)
                          and t.dtype.bitwidth == types.intp.bitwidth)}  # addresses fit
    return types.void(*tys) if all(ok[kind](ty) for ty, kind in zip(tys, kinds)) else None


def _suffix(dtype):
    return "f" if dtype == types.float32 else "d"


_SMALL_KINDS = "iiispiipispi"  # m, n, k, alpha, a, rs, cs, b, ldb, beta, c, ldc


@intrinsic
def _small(typingctx, m, n, k, alpha, a, rs, cs, b, ldb, beta, c, ldc):
    """fastnn_small_f/d: c = alpha op(a) b + beta c with op(a)(i, p) = a[i * rs + p * cs]."""
    sig = _typed((m, n, k, alpha, a, rs, cs, b, ldb, beta, c, ldc), _SMALL_KINDS)
    if sig is None:
        return None

    def codegen(context, builder, signature, args):
        name = "fastnn_small_" + _suffix(signature.args[-2].dtype)
        return _call(context, builder, signature, args, name, _SMALL_KINDS)
    return sig, codegen


_ROWS_KINDS = "iiisppispi"  # m, n, k, alpha, rows, b, ldb, beta, c, ldc


def _make_rows(variant):
    @intrinsic
    def rows_product(typingctx, m, n, k, alpha, rows, b, ldb, beta, c, ldc):
        sig = _typed((m, n, k, alpha, rows, b, ldb, beta, c, ldc), _ROWS_KINDS.replace("p", "r", 1))
        if sig is None:
            return None

        def codegen(context, builder, signature, args):
            name = f"fastnn_small_rows_{variant}_" + _suffix(signature.args[-2].dtype)
            return _call(context, builder, signature, args, name, _ROWS_KINDS)
        return sig, codegen
    rows_product.__doc__ = f"fastnn_small_rows_{variant}_f/d (rows: the row addresses of a)."
    return rows_product


_rows_nn = _make_rows("nn")
_rows_tn = _make_rows("tn")


_CSR_KINDS = "ipppppipii"  # n_rows, rows, data, indices, indptr, src, ld_src, dst, ld_dst, n


def _make_csr(kernel):
    @intrinsic
    def csr_kernel(typingctx, n_rows, rows, data, indices, indptr, src, ld_src, dst, ld_dst, n):
        arrays = (rows, data, indices, indptr, src, dst)
        if not all(isinstance(a, types.Array) for a in arrays):
            return None
        sig = types.boolean(n_rows, rows, data, indices, indptr, src, ld_src, dst, ld_dst, n)
        supported = (rows.dtype == types.int64 and data.dtype in (types.float32, types.float64)
                     and src.dtype == data.dtype and dst.dtype == data.dtype
                     and indices.dtype == indptr.dtype and indices.dtype in (types.int32, types.int64))

        def codegen(context, builder, signature, args):
            if supported:
                name = f"fastnn_csr_{kernel}_{_suffix(data.dtype)}{'i' if indices.dtype == types.int32 else 'l'}"
                _call(context, builder, signature, args, name, _CSR_KINDS)
            return context.get_constant(types.boolean, supported)
        return sig, codegen
    csr_kernel.__doc__ = (f"fastnn_csr_{kernel}_<f|d><i|l> on the first n_rows of rows (int64), data, src and dst of "
                          "one float dtype, indices and indptr of one int32 or int64 dtype: True. Other types call "
                          "nothing: False.")
    return csr_kernel


_csr_forward = _make_csr("forward")
_csr_backward = _make_csr("backward")


@intrinsic
def _has_avx512(typingctx):
    """fastnn_has_avx512() != 0."""
    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []),
                                            "fastnn_has_avx512")
        return builder.icmp_signed("!=", builder.call(fn, []), ir.Constant(ir.IntType(32), 0))
    return types.boolean(), codegen


@intrinsic
def _row_address(typingctx, x, i):
    """The address of x[i, 0] (x a 2-D array, no wraparound) as an intp."""
    if not (isinstance(x, types.Array) and x.ndim == 2 and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        index = context.cast(builder, args[1], signature.args[1], types.intp)
        zero = context.get_constant(types.intp, 0)
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary, [index, zero], wraparound=False)
        return builder.ptrtoint(ptr, context.get_value_type(types.intp))
    return types.intp(x, i), codegen


@njit(cache=True, error_model="numpy")
def has_avx512():
    """Whether the CPU has AVX-512F, the extension is registered and FASTNN_PORTABLE=1 is not set: callers
    use the products."""
    return _has_avx512()


def cpu_has_avx512():
    """Whether the products compute anything in this process (AVX-512F and the extension; not a Numba
    function: FASTNN_PORTABLE=1 does not change it)."""
    return AVAILABLE and _export.cpu_has_avx512()


@njit(cache=True, error_model="numpy")
def small(trans_a, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Row-major c (m, n) = alpha op(a) b + beta c on blocks (kernels/cython/fused.pyx's _gemm, tb False):
    a is (m, k), or (k, m) read transposed when trans_a, with row length lda; b (k, n), c (m, n)."""
    if m > 0 and n > 0:
        if trans_a:
            _small(m, n, k, alpha, a, 1, lda, b, ldb, beta, c, ldc)
        else:
            _small(m, n, k, alpha, a, lda, 1, b, ldb, beta, c, ldc)


@njit(cache=True, error_model="numpy")
def small_rows(trans_a, m, n, k, alpha, rows, b, ldb, beta, c, ldc):
    """``small`` with a given by the addresses of its rows (kernels/cython/fused.pyx's _rows_product).

    rows: 1-D int64/uint64, m addresses (a is m x k) or, when trans_a, k addresses (a is k x m, op(a) its
    transpose); the arrays they point into must stay alive (rows holds no reference to them).
    """
    if m > 0 and n > 0:
        if trans_a:
            _rows_tn(m, n, k, alpha, rows, b, ldb, beta, c, ldc)
        else:
            _rows_nn(m, n, k, alpha, rows, b, ldb, beta, c, ldc)


@njit(cache=True, error_model="numpy")
def csr_forward(rows, data, indices, indptr, w, ldw, y, ldy, n):
    """small_sparse.h's y[r, :n] += x[rows[r]] @ w[:, :n] (w, y 1-D views from their blocks' first elements,
    row lengths ldw, ldy). Returns whether it ran: has_avx512() and types it takes; else the caller's loops work."""
    return _has_avx512() and _csr_forward(rows.shape[0], rows, data, indices, indptr, w, ldw, y, ldy, n)


@njit(cache=True, error_model="numpy")
def csr_backward(rows, data, indices, indptr, dy, lddy, dw, lddw, n):
    """small_sparse.h's dw[j, :n] += x[rows[r], j] * dy[r, :n] for every stored x[rows[r], j]; as csr_forward."""
    return _has_avx512() and _csr_backward(rows.shape[0], rows, data, indices, indptr, dy, lddy, dw, lddw, n)


@njit(cache=True, error_model="numpy")
def row_address(x, i):
    """The address of x[i, 0] for a 2-D array x (an intp; i is not wrapped or checked)."""
    return _row_address(x, i)


@njit(cache=True, error_model="numpy")
def set_row_pointers(rows, x, order, start, nb):
    """rows[i] = address of x[order[start + i], 0] for i < nb: a shuffled batch's rows, read in place."""
    for i in range(nb):
        rows[i] = _row_address(x, order[start + i])
