/* One precision of the hand-written products (included twice by small_gemm.h, with FNN_T = float and
   double and the matching AVX-512 operations defined). */
__attribute__((target("avx512f")))
static void FNN_NAME(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, FNN_T alpha, const FNN_T *A, Py_ssize_t rs,
                     Py_ssize_t cs, const FNN_T *B, Py_ssize_t ldb, FNN_T beta, FNN_T *C, Py_ssize_t ldc) {
    const FNN_V va = FNN_SET1(alpha);
    for (Py_ssize_t j0 = 0; j0 < n; j0 += 2 * FNN_W) {  /* two registers of columns at a time */
        Py_ssize_t n1 = n - j0 < FNN_W ? n - j0 : FNN_W;
        Py_ssize_t n2 = n - j0 - n1 < FNN_W ? n - j0 - n1 : FNN_W;
        const FNN_MASK m1 = (FNN_MASK)((1u << n1) - 1u), m2 = (FNN_MASK)((1u << n2) - 1u);
        Py_ssize_t blocks = (m + 5) / 6, i0 = 0;
        for (Py_ssize_t blk = 0; blk < blocks; blk++) {
            Py_ssize_t r = (m - i0) / (blocks - blk);  /* near-equal blocks of <= 6 rows: 10 = 5 + 5 */
            const FNN_T *a = A + i0 * rs, *b = B + j0;
            FNN_V c0 = FNN_ZERO(), c1 = FNN_ZERO(), c2 = FNN_ZERO(), c3 = FNN_ZERO(), c4 = FNN_ZERO();
            FNN_V c5 = FNN_ZERO(), d0 = FNN_ZERO(), d1 = FNN_ZERO(), d2 = FNN_ZERO(), d3 = FNN_ZERO();
            FNN_V d4 = FNN_ZERO(), d5 = FNN_ZERO();
#define FNN_ONE(q) c##q = FNN_FMA(FNN_SET1(ap[q * rs]), bv, c##q);
#define FNN_TWO(q) { FNN_V s = FNN_SET1(ap[q * rs]); c##q = FNN_FMA(s, bv, c##q); d##q = FNN_FMA(s, bw, d##q); }
#define FNN_LOOP1(ROWS) for (Py_ssize_t p = 0; p < k; p++) { \
                const FNN_T *ap = a + p * cs; FNN_V bv = FNN_LOAD(m1, b + p * ldb); ROWS } break;
#define FNN_LOOP2(ROWS) for (Py_ssize_t p = 0; p < k; p++) { \
                const FNN_T *ap = a + p * cs; FNN_V bv = FNN_LOAD(m1, b + p * ldb); \
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
