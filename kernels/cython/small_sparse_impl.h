/* One precision and index type of small_sparse.h's kernels (included four times, with FNN_T, FNN_I, the
   matching AVX-512 operations and FNN_SP(name), the name with its suffix). The passes are inlined into a
   switch on their register count nv, so that each copy's loops over registers unroll into registers. */
#define FNN_SP_LOAD(q, k) ((k) < nv - 1 ? FNN_LOADU((q) + (k) * FNN_W) : FNN_LOADM(last, (q) + (k) * FNN_W))
#define FNN_SP_STORE(q, k, v)                                                                                \
    do {                                                                                                      \
        if ((k) < nv - 1) FNN_STOREU((q) + (k) * FNN_W, v);                                                   \
        else FNN_STOREM((q) + (k) * FNN_W, last, v);                                                          \
    } while (0)

__attribute__((target("avx512f"), always_inline)) static inline void FNN_SP(fnn_csr_forward_pass)(
        const int nv, const FNN_MASK last, Py_ssize_t n_rows, const int64_t *rows, const FNN_T *data,
        const FNN_I *indices, const FNN_I *indptr, const FNN_T *w, Py_ssize_t ldw, FNN_T *y, Py_ssize_t ldy) {
    for (Py_ssize_t r = 0; r < n_rows; r++) {
        FNN_V acc[FNN_SP_REGS];
        FNN_T *yr = y + r * ldy;
#pragma GCC unroll 8
        for (int k = 0; k < nv; k++) acc[k] = FNN_SP_LOAD(yr, k);
        for (Py_ssize_t p = indptr[rows[r]], end = indptr[rows[r] + 1]; p < end; p++) {
            const FNN_V v = FNN_SET1(data[p]);
            const FNN_T *wj = w + (Py_ssize_t)indices[p] * ldw;
#pragma GCC unroll 8
            for (int k = 0; k < nv; k++) acc[k] = FNN_FMA(v, FNN_SP_LOAD(wj, k), acc[k]);
        }
#pragma GCC unroll 8
        for (int k = 0; k < nv; k++) FNN_SP_STORE(yr, k, acc[k]);
    }
}

__attribute__((target("avx512f"), always_inline)) static inline void FNN_SP(fnn_csr_backward_pass)(
        const int nv, const FNN_MASK last, Py_ssize_t n_rows, const int64_t *rows, const FNN_T *data,
        const FNN_I *indices, const FNN_I *indptr, const FNN_T *dy, Py_ssize_t lddy, FNN_T *dw,
        Py_ssize_t lddw) {
    for (Py_ssize_t r = 0; r < n_rows; r++) {
        FNN_V d[FNN_SP_REGS];
#pragma GCC unroll 8
        for (int k = 0; k < nv; k++) d[k] = FNN_SP_LOAD(dy + r * lddy, k);
        for (Py_ssize_t p = indptr[rows[r]], end = indptr[rows[r] + 1]; p < end; p++) {
            const FNN_V v = FNN_SET1(data[p]);
            FNN_T *dwj = dw + (Py_ssize_t)indices[p] * lddw;
#pragma GCC unroll 8
            for (int k = 0; k < nv; k++) FNN_SP_STORE(dwj, k, FNN_FMA(v, d[k], FNN_SP_LOAD(dwj, k)));
        }
    }
}

#define FNN_SP_PASSES(PASS, ...)                                                                             \
    for (Py_ssize_t j0 = 0; j0 < n; j0 += FNN_SP_REGS * FNN_W) {                                              \
        const Py_ssize_t left = n - j0 < FNN_SP_REGS * FNN_W ? n - j0 : FNN_SP_REGS * FNN_W;                  \
        const int nv = (int)((left + FNN_W - 1) / FNN_W);                                                     \
        const FNN_MASK last = (FNN_MASK)((1u << (left - (nv - 1) * FNN_W)) - 1u);                             \
        switch (nv) {                                                                                         \
        case 1: PASS(1, last, __VA_ARGS__); break;                                                            \
        case 2: PASS(2, last, __VA_ARGS__); break;                                                            \
        case 3: PASS(3, last, __VA_ARGS__); break;                                                            \
        case 4: PASS(4, last, __VA_ARGS__); break;                                                            \
        case 5: PASS(5, last, __VA_ARGS__); break;                                                            \
        case 6: PASS(6, last, __VA_ARGS__); break;                                                            \
        case 7: PASS(7, last, __VA_ARGS__); break;                                                            \
        default: PASS(8, last, __VA_ARGS__);                                                                  \
        }                                                                                                     \
    }

__attribute__((target("avx512f"))) static void FNN_SP(fnn_csr_forward)(
        Py_ssize_t n_rows, const int64_t *rows, const FNN_T *data, const FNN_I *indices, const FNN_I *indptr,
        const FNN_T *w, Py_ssize_t ldw, FNN_T *y, Py_ssize_t ldy, Py_ssize_t n) {
    FNN_SP_PASSES(FNN_SP(fnn_csr_forward_pass), n_rows, rows, data, indices, indptr, w + j0, ldw, y + j0, ldy)
}

__attribute__((target("avx512f"))) static void FNN_SP(fnn_csr_backward)(
        Py_ssize_t n_rows, const int64_t *rows, const FNN_T *data, const FNN_I *indices, const FNN_I *indptr,
        const FNN_T *dy, Py_ssize_t lddy, FNN_T *dw, Py_ssize_t lddw, Py_ssize_t n) {
    FNN_SP_PASSES(FNN_SP(fnn_csr_backward_pass), n_rows, rows, data, indices, indptr, dy + j0, lddy, dw + j0,
                  lddw)
}

#undef FNN_SP_LOAD
#undef FNN_SP_STORE
#undef FNN_SP_PASSES
