/* One precision and one way of reading A of the hand-written products (included six times by
   small_gemm.h, with FNN_T = float and double, the matching AVX-512 operations, and FNN_MODE):
   0: op(A)(i, p) = A[i * rs + p * cs]; 1: op(A)(i, p) = R[i][p]; 2: op(A)(i, p) = R[p][i], where R
   holds pointers to the rows of A (the shuffled rows of a batch, read where they are). */
#if FNN_MODE == 0
#define FNN_PREP const FNN_T *ap = a + p * cs;
#define FNN_A(q) ap[q * rs]
#elif FNN_MODE == 1
#define FNN_PREP
#define FNN_A(q) r##q[p]
#else
#define FNN_PREP const FNN_T *ap = R[p] + i0;
#define FNN_A(q) ap[q]
#endif
__attribute__((target("avx512f")))
static void FNN_NAME(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, FNN_T alpha,
#if FNN_MODE == 0
                     const FNN_T *A, Py_ssize_t rs, Py_ssize_t cs,
#else
                     const FNN_T *const *R,
#endif
                     const FNN_T *B, Py_ssize_t ldb, FNN_T beta, FNN_T *C, Py_ssize_t ldc) {
    const FNN_V va = FNN_SET1(alpha);
    for (Py_ssize_t j0 = 0; j0 < n; j0 += 2 * FNN_W) {  /* two registers of columns at a time */
        Py_ssize_t n1 = n - j0 < FNN_W ? n - j0 : FNN_W;
        Py_ssize_t n2 = n - j0 - n1 < FNN_W ? n - j0 - n1 : FNN_W;
        const FNN_MASK m1 = (FNN_MASK)((1u << n1) - 1u), m2 = (FNN_MASK)((1u << n2) - 1u);
        Py_ssize_t blocks = (m + 5) / 6, i0 = 0;
        for (Py_ssize_t blk = 0; blk < blocks; blk++) {
            Py_ssize_t r = (m - i0) / (blocks - blk);  /* near-equal blocks of <= 6 rows: 10 = 5 + 5 */
#if FNN_MODE == 0
            const FNN_T *a = A + i0 * rs;
#elif FNN_MODE == 1  /* row pointers of this block (repeating its last row past r: those are not stored) */
            const FNN_T *r0 = R[i0], *r1 = R[i0 + (r > 1)], *r2 = R[i0 + (r > 2) * 2];
            const FNN_T *r3 = R[i0 + (r > 3) * 3], *r4 = R[i0 + (r > 4) * 4], *r5 = R[i0 + (r > 5) * 5];
#endif
            const FNN_T *b = B + j0;
            FNN_V c0 = FNN_ZERO(), c1 = FNN_ZERO(), c2 = FNN_ZERO(), c3 = FNN_ZERO(), c4 = FNN_ZERO();
            FNN_V c5 = FNN_ZERO(), d0 = FNN_ZERO(), d1 = FNN_ZERO(), d2 = FNN_ZERO(), d3 = FNN_ZERO();
            FNN_V d4 = FNN_ZERO(), d5 = FNN_ZERO();
#define FNN_ONE(q) c##q = FNN_FMA(FNN_SET1(FNN_A(q)), bv, c##q);
#define FNN_TWO(q) { FNN_V s = FNN_SET1(FNN_A(q)); c##q = FNN_FMA(s, bv, c##q); d##q = FNN_FMA(s, bw, d##q); }
#define FNN_LOOP1(ROWS) for (Py_ssize_t p = 0; p < k; p++) { \
                FNN_PREP FNN_V bv = FNN_LOAD(m1, b + p * ldb); ROWS } break;
#define FNN_LOOP2(ROWS) for (Py_ssize_t p = 0; p < k; p++) { \
                FNN_PREP FNN_V bv = FNN_LOAD(m1, b + p * ldb); \
                FNN_V bw = FNN_LOAD(m2, b + p * ldb + FNN_W); ROWS } break;
            if (n2 > 0) {
                switch (r) {
                case 6: FNN_LOOP2(FNN_TWO(0) FNN_TWO(1) FNN_TWO(2) FNN_TWO(3) FNN_TWO(4) FNN_TWO(5))
                case 5: FNN_LOOP2(FNN_TWO(0) FNN_TWO(1) FNN_TWO(2) FNN_TWO(3) FNN_TWO(4))
                case 4: FNN_LOOP2(FNN_TWO(0) FNN_TWO(1) FNN_TWO(2) FNN_TWO(3))
                case 3: FNN_LOOP2(FNN_TWO(0) FNN_TWO(1) FNN_TWO(2))
                case 2: FNN_LOOP2(FNN_TWO(0) FNN_TWO(1))
                default: FNN_LOOP2(FNN_TWO(0))
                }
            } else {
                switch (r) {
                case 6: FNN_LOOP1(FNN_ONE(0) FNN_ONE(1) FNN_ONE(2) FNN_ONE(3) FNN_ONE(4) FNN_ONE(5))
                case 5: FNN_LOOP1(FNN_ONE(0) FNN_ONE(1) FNN_ONE(2) FNN_ONE(3) FNN_ONE(4))
                case 4: FNN_LOOP1(FNN_ONE(0) FNN_ONE(1) FNN_ONE(2) FNN_ONE(3))
                case 3: FNN_LOOP1(FNN_ONE(0) FNN_ONE(1) FNN_ONE(2))
                case 2: FNN_LOOP1(FNN_ONE(0) FNN_ONE(1))
                default: FNN_LOOP1(FNN_ONE(0))
                }
            }
#undef FNN_ONE
#undef FNN_TWO
#undef FNN_LOOP1
#undef FNN_LOOP2
            FNN_V cs_[6] = {c0, c1, c2, c3, c4, c5}, ds_[6] = {d0, d1, d2, d3, d4, d5};
            for (Py_ssize_t q = 0; q < r; q++) {
                FNN_T *cq = C + (i0 + q) * ldc + j0;
                FNN_V v = FNN_MUL(va, cs_[q]);
                if (beta != 0) v = FNN_ADD(FNN_LOAD(m1, cq), v);
                FNN_STORE(cq, m1, v);
                if (n2 > 0) {
                    v = FNN_MUL(va, ds_[q]);
                    if (beta != 0) v = FNN_ADD(FNN_LOAD(m2, cq + FNN_W), v);
                    FNN_STORE(cq + FNN_W, m2, v);
                }
            }
            i0 += r;
        }
    }
}
#undef FNN_PREP
#undef FNN_A
