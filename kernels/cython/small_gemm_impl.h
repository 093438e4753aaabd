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
    /* With enough rows to share it, each panel of B (up to FNN_KC rows of two registers' columns) is first
       copied into `panel`: contiguous, aligned and zero past n, it stays in L1 while every block of rows
       reads it. Strided rows of B cost 1.5-2x (split loads, cache-set conflicts). */
    FNN_T panel[FNN_KC * 2 * FNN_W] __attribute__((aligned(64)));
    const int packed = m >= FNN_PACK_ROWS;
    const Py_ssize_t chunks = packed ? (k + FNN_KC - 1) / FNN_KC : 1;
    const FNN_V va = FNN_SET1(alpha);
    for (Py_ssize_t j0 = 0; j0 < n; j0 += 2 * FNN_W) {  /* two registers of columns at a time */
        Py_ssize_t n1 = n - j0 < FNN_W ? n - j0 : FNN_W;
        Py_ssize_t n2 = n - j0 - n1 < FNN_W ? n - j0 - n1 : FNN_W;
        const FNN_MASK m1 = (FNN_MASK)((1u << n1) - 1u), m2 = (FNN_MASK)((1u << n2) - 1u);
        const int full = packed || n2 == FNN_W || (n2 == 0 && n1 == FNN_W);
        Py_ssize_t k0 = 0;
        for (Py_ssize_t chunk = 0; chunk < chunks; chunk++) {
            const Py_ssize_t kk = (k - k0) / (chunks - chunk);  /* near-equal chunks: 784 = 4 x 196 */
            const FNN_T *b = B + k0 * ldb + j0;
            Py_ssize_t bs = ldb;  /* the row stride of what the loops read */
            if (packed) {
                const Py_ssize_t w = n2 > 0 ? 2 * FNN_W : FNN_W;
                for (Py_ssize_t p = 0; p < kk; p++) {
                    FNN_STOREA(panel + p * w, FNN_LOAD(m1, b + p * ldb));
                    if (n2 > 0) FNN_STOREA(panel + p * w + FNN_W, FNN_LOAD(m2, b + p * ldb + FNN_W));
                }
                b = panel;
                bs = w;
            }
            const FNN_T *const bk = b - k0 * bs;  /* so that row p (k0 <= p < k0 + kk) is bk + p * bs */
            Py_ssize_t blocks = (m + 5) / 6, i0 = 0;
            for (Py_ssize_t blk = 0; blk < blocks; blk++) {
                Py_ssize_t r = (m - i0) / (blocks - blk);  /* near-equal blocks of <= 6 rows: 10 = 5 + 5 */
#if FNN_MODE == 0
                const FNN_T *a = A + i0 * rs;
#elif FNN_MODE == 1  /* row pointers of this block (repeating its last row past r: those are not stored) */
                const FNN_T *r0 = R[i0], *r1 = R[i0 + (r > 1)], *r2 = R[i0 + (r > 2) * 2];
                const FNN_T *r3 = R[i0 + (r > 3) * 3], *r4 = R[i0 + (r > 4) * 4], *r5 = R[i0 + (r > 5) * 5];
#endif
                FNN_V c0 = FNN_ZERO(), c1 = FNN_ZERO(), c2 = FNN_ZERO(), c3 = FNN_ZERO(), c4 = FNN_ZERO();
                FNN_V c5 = FNN_ZERO(), d0 = FNN_ZERO(), d1 = FNN_ZERO(), d2 = FNN_ZERO(), d3 = FNN_ZERO();
                FNN_V d4 = FNN_ZERO(), d5 = FNN_ZERO();
#define FNN_ONE(q) c##q = FNN_FMA(FNN_SET1(FNN_A(q)), bv, c##q);
#define FNN_TWO(q) { FNN_V s = FNN_SET1(FNN_A(q)); c##q = FNN_FMA(s, bv, c##q); d##q = FNN_FMA(s, bw, d##q); }
/* Full registers of B load unmasked: masked loads in the loop made GCC reload the masks every step. */
#define FNN_LOOP1(ROWS) if (full) { for (Py_ssize_t p = k0; p < k0 + kk; p++) { \
                    FNN_PREP FNN_V bv = FNN_LOADU(bk + p * bs); ROWS } } \
                else { for (Py_ssize_t p = k0; p < k0 + kk; p++) { \
                    FNN_PREP FNN_V bv = FNN_LOAD(m1, bk + p * bs); ROWS } } break;
#define FNN_LOOP2(ROWS) if (full) { for (Py_ssize_t p = k0; p < k0 + kk; p++) { \
                    FNN_PREP FNN_V bv = FNN_LOADU(bk + p * bs); FNN_V bw = FNN_LOADU(bk + p * bs + FNN_W); ROWS } } \
                else { for (Py_ssize_t p = k0; p < k0 + kk; p++) { \
                    FNN_PREP FNN_V bv = FNN_LOAD(m1, bk + p * bs); FNN_V bw = FNN_LOAD(m2, bk + p * bs + FNN_W); \
                    ROWS } } break;
/* The 1..6-row loops: r rows each reading one row of op(A); LOOP a register pair or one, ROW its FMAs. */
#define FNN_ROWS(LOOP, ROW) switch (r) { \
                    case 6: LOOP(ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)) \
                    case 5: LOOP(ROW(0) ROW(1) ROW(2) ROW(3) ROW(4)) \
                    case 4: LOOP(ROW(0) ROW(1) ROW(2) ROW(3)) \
                    case 3: LOOP(ROW(0) ROW(1) ROW(2)) \
                    case 2: LOOP(ROW(0) ROW(1)) \
                    default: LOOP(ROW(0)) }
                if (n2 > 0) {
                    FNN_ROWS(FNN_LOOP2, FNN_TWO)
                } else {
                    FNN_ROWS(FNN_LOOP1, FNN_ONE)
                }
#undef FNN_ROWS
#undef FNN_ONE
#undef FNN_TWO
#undef FNN_LOOP1
#undef FNN_LOOP2
                FNN_V cs_[6] = {c0, c1, c2, c3, c4, c5}, ds_[6] = {d0, d1, d2, d3, d4, d5};
                const int add = beta != 0 || k0 > 0;  /* later chunks add to the earlier ones' sums */
                for (Py_ssize_t q = 0; q < r; q++) {
                    FNN_T *cq = C + (i0 + q) * ldc + j0;
                    FNN_V v = FNN_MUL(va, cs_[q]);
                    if (add) v = FNN_ADD(FNN_LOAD(m1, cq), v);
                    FNN_STORE(cq, m1, v);
                    if (n2 > 0) {
                        v = FNN_MUL(va, ds_[q]);
                        if (add) v = FNN_ADD(FNN_LOAD(m2, cq + FNN_W), v);
                        FNN_STORE(cq + FNN_W, m2, v);
                    }
                }
                i0 += r;
            }
            k0 += kk;
        }
    }
}
#undef FNN_PREP
#undef FNN_A
