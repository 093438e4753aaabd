/* The last t <= FNN_W / 4 columns of the hand-written products (included twice by small_gemm.h, float and
   double). The main loops would spend a whole register of FMAs on each row for them (a 52-column share of
   a 100-unit layer: 4 registers' work for 3.25); here each FMA does FNN_W useful multiply-adds, along k when
   op(A)'s rows are contiguous (tail_dot: dot products, B's columns copied into rows first) or along m when
   its columns are (tail_axpy). Same contract as the products: C = alpha op(A) B + beta C, beta 0 or 1. */
#define FNN_TAIL_KC 512  /* k per copy of B's columns (tail_dot) */
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
        for (Py_ssize_t i = 0; i < m; i += 2) {
            const Py_ssize_t i1 = i + 1 < m ? i + 1 : i;
            const FNN_T *a0 = (R ? R[i] : A + i * rs) + k0, *a1 = (R ? R[i1] : A + i1 * rs) + k0;
            FNN_V s00 = FNN_ZERO(), s01 = FNN_ZERO(), s02 = FNN_ZERO(), s03 = FNN_ZERO();
            FNN_V s10 = FNN_ZERO(), s11 = FNN_ZERO(), s12 = FNN_ZERO(), s13 = FNN_ZERO();
            for (Py_ssize_t p = 0; p < kk; p += FNN_W) {
                const FNN_MASK mp = kk - p >= FNN_W ? (FNN_MASK)~0u : (FNN_MASK)((1u << (kk - p)) - 1u);
                const FNN_V x0 = FNN_LOAD(mp, a0 + p), x1 = FNN_LOAD(mp, a1 + p);
                const FNN_V b0 = FNN_LOADU(bt + p), b1 = FNN_LOADU(bt + FNN_TAIL_KC + p);
                const FNN_V b2 = FNN_LOADU(bt + 2 * FNN_TAIL_KC + p), b3 = FNN_LOADU(bt + 3 * FNN_TAIL_KC + p);
                s00 = FNN_FMA(x0, b0, s00); s01 = FNN_FMA(x0, b1, s01);
                s02 = FNN_FMA(x0, b2, s02); s03 = FNN_FMA(x0, b3, s03);
                s10 = FNN_FMA(x1, b0, s10); s11 = FNN_FMA(x1, b1, s11);
                s12 = FNN_FMA(x1, b2, s12); s13 = FNN_FMA(x1, b3, s13);
            }
            const FNN_T d0[4] = {FNN_REDUCE(s00), FNN_REDUCE(s01), FNN_REDUCE(s02), FNN_REDUCE(s03)};
            const FNN_T d1[4] = {FNN_REDUCE(s10), FNN_REDUCE(s11), FNN_REDUCE(s12), FNN_REDUCE(s13)};
            for (Py_ssize_t j = 0; j < t; j++) {
                FNN_T *c0 = C + i * ldc + j, *c1 = C + i1 * ldc + j;
                *c0 = add ? *c0 + alpha * d0[j] : alpha * d0[j];
                if (i1 != i) *c1 = add ? *c1 + alpha * d1[j] : alpha * d1[j];
            }
        }
    }
}

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
        for (Py_ssize_t p = 0; p < k; p++) {
            const FNN_T *col = (R ? R[p] : A + p * cs) + i0, *b = B + p * ldb;
            const FNN_V x0 = FNN_LOAD(ma, col), x1 = FNN_LOAD(mb, col + FNN_W);
            const FNN_V b0 = FNN_SET1(b[0]), b1 = FNN_SET1(b[o1]), b2 = FNN_SET1(b[o2]), b3 = FNN_SET1(b[o3]);
            s00 = FNN_FMA(x0, b0, s00); s01 = FNN_FMA(x0, b1, s01);
            s02 = FNN_FMA(x0, b2, s02); s03 = FNN_FMA(x0, b3, s03);
            s10 = FNN_FMA(x1, b0, s10); s11 = FNN_FMA(x1, b1, s11);
            s12 = FNN_FMA(x1, b2, s12); s13 = FNN_FMA(x1, b3, s13);
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
