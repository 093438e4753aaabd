/* The last t <= FNN_W / 4 columns of the hand-written products (included twice by small_gemm.h, float and
   double). The main loops would spend a whole register of FMAs on each row for them (a 52-column share of
   a 100-unit layer: 4 registers' work for 3.25); here each FMA does FNN_W useful multiply-adds, along k when
   op(A)'s rows are contiguous (tail_dot: dot products, B's columns copied into rows first) or along m when
   its columns are (tail_axpy). Same contract as the products: C = alpha op(A) B + beta C, beta 0 or 1. */
#define FNN_TAIL_KC 512  /* k per copy of B's columns (tail_dot) */
/* Loads of op(A) in the tails' loops, LOADER(mask, pointer): FNN_LOAD, or FNN_WHOLE for full registers
   (a masked load costs an FMA port's cycle too). */
#define FNN_WHOLE(mask, ptr) FNN_LOADU(ptr)
#define FNN_TAIL_ROW(r, LOADER) { \
    const FNN_V x = LOADER(last, a[r] + p); \
    s[4 * r] = FNN_FMA(x, b0, s[4 * r]); s[4 * r + 1] = FNN_FMA(x, b1, s[4 * r + 1]); \
    s[4 * r + 2] = FNN_FMA(x, b2, s[4 * r + 2]); s[4 * r + 3] = FNN_FMA(x, b3, s[4 * r + 3]); }
#define FNN_TAIL_ROWS(LOADER) \
    FNN_TAIL_ROW(0, LOADER) FNN_TAIL_ROW(1, LOADER) FNN_TAIL_ROW(2, LOADER) FNN_TAIL_ROW(3, LOADER)
__attribute__((target("avx512f")))
static void FNN_TAIL_DOT(Py_ssize_t m, Py_ssize_t t, Py_ssize_t k, FNN_T alpha, const FNN_T *const *R,
                         const FNN_T *A, Py_ssize_t rs, const FNN_T *B, Py_ssize_t ldb, FNN_T beta, FNN_T *C,
                         Py_ssize_t ldc) {
    /* row i of op(A): R[i], or A + i * rs */
    FNN_T bt[4 * FNN_TAIL_KC] __attribute__((aligned(64)));
    for (Py_ssize_t k0 = 0; k0 < k; k0 += FNN_TAIL_KC) {
        const Py_ssize_t kk = k - k0 < FNN_TAIL_KC ? k - k0 : FNN_TAIL_KC;
        const Py_ssize_t padded = (kk + FNN_W - 1) / FNN_W * FNN_W;
        for (Py_ssize_t j = 0; j < 4; j++) {  /* columns past t repeat the last one (finite; never stored) */
            const FNN_T *bj = B + k0 * ldb + (j < t ? j : t - 1);
            for (Py_ssize_t p = 0; p < kk; p++) bt[j * FNN_TAIL_KC + p] = bj[p * ldb];
            for (Py_ssize_t p = kk; p < padded; p++) bt[j * FNN_TAIL_KC + p] = 0;
        }
        const int add = beta != 0 || k0 > 0;
        const Py_ssize_t full = kk / FNN_W * FNN_W;
        const FNN_MASK last = (FNN_MASK)((1u << (kk - full)) - 1u);
        for (Py_ssize_t i = 0; i < m; i += 4) {  /* rows past m repeat the last one (never stored) */
            const FNN_T *a[4];
            for (Py_ssize_t r = 0; r < 4; r++) {
                const Py_ssize_t row = i + r < m ? i + r : m - 1;
                a[r] = (R ? R[row] : A + row * rs) + k0;
            }
            FNN_V s[16];
            for (Py_ssize_t q = 0; q < 16; q++) s[q] = FNN_ZERO();
            for (Py_ssize_t p = 0; p < padded; p += FNN_W) {
                FNN_V b0 = FNN_LOADU(bt + p), b1 = FNN_LOADU(bt + FNN_TAIL_KC + p);
                FNN_V b2 = FNN_LOADU(bt + 2 * FNN_TAIL_KC + p), b3 = FNN_LOADU(bt + 3 * FNN_TAIL_KC + p);
                /* in registers: GCC would otherwise fold each load into every FMA that reads it, and the
                   loop would wait on loads (20 for 16 FMAs) instead of FMAs */
                __asm__("" : "+v"(b0), "+v"(b1), "+v"(b2), "+v"(b3));
                if (p < full) {
                    FNN_TAIL_ROWS(FNN_WHOLE)
                } else {
                    FNN_TAIL_ROWS(FNN_LOAD)
                }
            }
            for (Py_ssize_t r = 0; r < 4 && i + r < m; r++) {
                FNN_T *c = C + (i + r) * ldc;
                for (Py_ssize_t j = 0; j < t; j++) {
                    const FNN_T d = FNN_REDUCE(s[4 * r + j]);
                    c[j] = add ? c[j] + alpha * d : alpha * d;
                }
            }
        }
    }
}

#define FNN_AXPY_STEP(LOADER) { \
    const FNN_T *col = (R ? R[p] : A + p * cs) + i0, *b = B + p * ldb; \
    const FNN_V x0 = LOADER(ma, col), x1 = LOADER(mb, col + FNN_W); \
    const FNN_V b0 = FNN_SET1(b[0]), b1 = FNN_SET1(b[o1]), b2 = FNN_SET1(b[o2]), b3 = FNN_SET1(b[o3]); \
    s00 = FNN_FMA(x0, b0, s00); s01 = FNN_FMA(x0, b1, s01); s02 = FNN_FMA(x0, b2, s02); \
    s03 = FNN_FMA(x0, b3, s03); s10 = FNN_FMA(x1, b0, s10); s11 = FNN_FMA(x1, b1, s11); \
    s12 = FNN_FMA(x1, b2, s12); s13 = FNN_FMA(x1, b3, s13); }
__attribute__((target("avx512f")))
static void FNN_TAIL_AXPY(Py_ssize_t m, Py_ssize_t t, Py_ssize_t k, FNN_T alpha, const FNN_T *const *R,
                          const FNN_T *A, Py_ssize_t cs, const FNN_T *B, Py_ssize_t ldb, FNN_T beta, FNN_T *C,
                          Py_ssize_t ldc) {
    /* column p of op(A): R[p], or A + p * cs */
    FNN_T out[4 * 2 * FNN_W] __attribute__((aligned(64)));
    const Py_ssize_t o1 = t > 1 ? 1 : t - 1, o2 = t > 2 ? 2 : t - 1, o3 = t - 1;  /* past t: the last one */
    for (Py_ssize_t i0 = 0; i0 < m; i0 += 2 * FNN_W) {
        const Py_ssize_t r = m - i0 < 2 * FNN_W ? m - i0 : 2 * FNN_W;
        const Py_ssize_t r1 = r < FNN_W ? r : FNN_W, r2 = r - r1;
        const FNN_MASK ma = (FNN_MASK)((1u << r1) - 1u), mb = (FNN_MASK)((1u << r2) - 1u);
        FNN_V s00 = FNN_ZERO(), s01 = FNN_ZERO(), s02 = FNN_ZERO(), s03 = FNN_ZERO();
        FNN_V s10 = FNN_ZERO(), s11 = FNN_ZERO(), s12 = FNN_ZERO(), s13 = FNN_ZERO();
        if (r == 2 * FNN_W) {
            for (Py_ssize_t p = 0; p < k; p++) FNN_AXPY_STEP(FNN_WHOLE)
        } else {
            for (Py_ssize_t p = 0; p < k; p++) FNN_AXPY_STEP(FNN_LOAD)
        }
        FNN_STOREA(out, s00); FNN_STOREA(out + 2 * FNN_W, s01);
        FNN_STOREA(out + 4 * FNN_W, s02); FNN_STOREA(out + 6 * FNN_W, s03);
        FNN_STOREA(out + FNN_W, s10); FNN_STOREA(out + 3 * FNN_W, s11);
        FNN_STOREA(out + 5 * FNN_W, s12); FNN_STOREA(out + 7 * FNN_W, s13);
        for (Py_ssize_t q = 0; q < r; q++) {
            FNN_T *c = C + (i0 + q) * ldc;
            for (Py_ssize_t j = 0; j < t; j++)
                c[j] = beta != 0 ? c[j] + alpha * out[j * 2 * FNN_W + q] : alpha * out[j * 2 * FNN_W + q];
        }
    }
}
#undef FNN_TAIL_KC
#undef FNN_WHOLE
#undef FNN_TAIL_ROW
#undef FNN_TAIL_ROWS
#undef FNN_AXPY_STEP
