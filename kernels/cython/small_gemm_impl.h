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
    /* From FNN_PACK_ROWS rows of C on (fewer would not repay the copies), a narrow last register's columns
       go to the tail products, and each panel of B (its columns of this pass, FNN_KC * 2 / nr rows of them:
       16 KiB) is first copied into `panel`: contiguous, aligned and zero past n, it stays in L1 while every
       block of rows reads it (strided rows of B cost split loads and cache-set conflicts). */
    FNN_T panel[FNN_KC * 2 * FNN_W] __attribute__((aligned(64)));
    const int packed = m >= FNN_PACK_ROWS;
    const FNN_V va = FNN_SET1(alpha);
    const Py_ssize_t t = n % FNN_W;  /* a narrow last register's columns go to the tail products */
    if (packed && t > 0 && t <= FNN_W / 4 && n > t) {
#if FNN_MODE == 0
        if (cs == 1 || rs == 1) {
            if (cs == 1) FNN_TAIL_DOT(m, t, k, alpha, NULL, A, rs, B + n - t, ldb, beta, C + n - t, ldc);
            else FNN_TAIL_AXPY(m, t, k, alpha, NULL, A, cs, B + n - t, ldb, beta, C + n - t, ldc);
            n -= t;
        }
#elif FNN_MODE == 1
        FNN_TAIL_DOT(m, t, k, alpha, R, NULL, 0, B + n - t, ldb, beta, C + n - t, ldc);
        n -= t;
#else
        FNN_TAIL_AXPY(m, t, k, alpha, R, NULL, 0, B + n - t, ldb, beta, C + n - t, ldc);
        n -= t;
#endif
    }
    Py_ssize_t nr;
    for (Py_ssize_t j0 = 0; j0 < n; j0 += nr * FNN_W) {
        /* Registers of columns in this pass, and rows per block: 2 x 6 (12 sums), or 1 x 6 for the last few,
           or (packed) 3 x 8 for the last 33-48 columns (float; 17-24 double) and while 5 registers' or more
           are left (64 stays 32 + 32: 48 + 16 would end in a one-register pass). */
        const Py_ssize_t left = n - j0;
        nr = packed && ((left > 2 * FNN_W && left <= 3 * FNN_W) || left >= 5 * FNN_W) ? 3 : left > FNN_W ? 2 : 1;
        /* rows per block: 8 (three registers), else 6, or all of a batch of 7-12 rows (B is read once) */
        const Py_ssize_t mr = nr == 3 ? 8 : !packed && m <= 12 ? 12 : 6;
        const Py_ssize_t n1 = left < FNN_W ? left : FNN_W;
        const Py_ssize_t n2 = nr > 1 ? (left - n1 < FNN_W ? left - n1 : FNN_W) : 0;
        const Py_ssize_t n3 = nr > 2 ? (left - n1 - n2 < FNN_W ? left - n1 - n2 : FNN_W) : 0;
        const FNN_MASK m1 = (FNN_MASK)((1u << n1) - 1u), m2 = (FNN_MASK)((1u << n2) - 1u);
        const FNN_MASK m3 = (FNN_MASK)((1u << n3) - 1u);
        const int full = packed || left >= nr * FNN_W;
        const Py_ssize_t kc = FNN_KC * 2 / nr;
        const Py_ssize_t chunks = packed ? (k + kc - 1) / kc : 1;
        const Py_ssize_t w = nr * FNN_W;  /* the packed panel's row length */
        Py_ssize_t k0 = 0;
        for (Py_ssize_t chunk = 0; chunk < chunks; chunk++) {
            const Py_ssize_t kk = (k - k0) / (chunks - chunk);  /* near-equal chunks: 784 = 4 x 196 */
            const FNN_T *b = B + k0 * ldb + j0;
            Py_ssize_t bs = ldb;  /* the row stride of what the loops read */
            if (packed) {
                for (Py_ssize_t p = 0; p < kk; p++) {
                    FNN_STOREA(panel + p * w, FNN_LOAD(m1, b + p * ldb));
                    if (nr > 1) FNN_STOREA(panel + p * w + FNN_W, FNN_LOAD(m2, b + p * ldb + FNN_W));
                    if (nr > 2) FNN_STOREA(panel + p * w + 2 * FNN_W, FNN_LOAD(m3, b + p * ldb + 2 * FNN_W));
                }
                b = panel;
                bs = w;
            }
            const FNN_T *const bk = b - k0 * bs;  /* so that row p (k0 <= p < k0 + kk) is bk + p * bs */
            Py_ssize_t blocks = (m + mr - 1) / mr, i0 = 0;
            for (Py_ssize_t blk = 0; blk < blocks; blk++) {
                Py_ssize_t r = (m - i0) / (blocks - blk);  /* near-equal blocks of <= mr rows: 10 = 5 + 5 */
#if FNN_MODE == 0
                const FNN_T *a = A + i0 * rs;
#elif FNN_MODE == 1  /* row pointers of this block (repeating its last row past r: those are not stored) */
                const FNN_T *r0 = R[i0], *r1 = R[i0 + (r > 1)], *r2 = R[i0 + (r > 2) * 2];
                const FNN_T *r3 = R[i0 + (r > 3) * 3], *r4 = R[i0 + (r > 4) * 4], *r5 = R[i0 + (r > 5) * 5];
                const FNN_T *r6 = R[i0 + (r > 6) * 6], *r7 = R[i0 + (r > 7) * 7], *r8 = R[i0 + (r > 8) * 8];
                const FNN_T *r9 = R[i0 + (r > 9) * 9], *r10 = R[i0 + (r > 10) * 10], *r11 = R[i0 + (r > 11) * 11];
#endif
                FNN_V c0 = FNN_ZERO(), c1 = FNN_ZERO(), c2 = FNN_ZERO(), c3 = FNN_ZERO(), c4 = FNN_ZERO();
                FNN_V c5 = FNN_ZERO(), d0 = FNN_ZERO(), d1 = FNN_ZERO(), d2 = FNN_ZERO(), d3 = FNN_ZERO();
                FNN_V d4 = FNN_ZERO(), d5 = FNN_ZERO(), e0 = FNN_ZERO(), e1 = FNN_ZERO(), e2 = FNN_ZERO();
                FNN_V e3 = FNN_ZERO(), c6 = FNN_ZERO(), c7 = FNN_ZERO(), c8 = FNN_ZERO(), c9 = FNN_ZERO();
                FNN_V c10 = FNN_ZERO(), c11 = FNN_ZERO(), d6 = FNN_ZERO(), d7 = FNN_ZERO(), d8 = FNN_ZERO();
                FNN_V d9 = FNN_ZERO(), d10 = FNN_ZERO(), d11 = FNN_ZERO(), e4 = FNN_ZERO(), e5 = FNN_ZERO();
                FNN_V e6 = FNN_ZERO(), e7 = FNN_ZERO();
#define FNN_ONE(q) c##q = FNN_FMA(FNN_SET1(FNN_A(q)), bv, c##q);
#define FNN_TWO(q) { FNN_V s = FNN_SET1(FNN_A(q)); c##q = FNN_FMA(s, bv, c##q); d##q = FNN_FMA(s, bw, d##q); }
#define FNN_THREE(q) { FNN_V s = FNN_SET1(FNN_A(q)); c##q = FNN_FMA(s, bv, c##q); d##q = FNN_FMA(s, bw, d##q); \
                       e##q = FNN_FMA(s, bx, e##q); }
/* Full registers of B load unmasked: masked loads in the loop made GCC reload the masks every step. */
#define FNN_LOOP(LOADS, ROWS) for (Py_ssize_t p = k0; p < k0 + kk; p++) { FNN_PREP LOADS ROWS }
#define FNN_LOOP1(ROWS) if (full) { FNN_LOOP(FNN_V bv = FNN_LOADU(bk + p * bs);, ROWS) } \
                else { FNN_LOOP(FNN_V bv = FNN_LOAD(m1, bk + p * bs);, ROWS) }
#define FNN_LOOP2(ROWS) if (full) { FNN_LOOP(FNN_V bv = FNN_LOADU(bk + p * bs); \
                                             FNN_V bw = FNN_LOADU(bk + p * bs + FNN_W);, ROWS) } \
                else { FNN_LOOP(FNN_V bv = FNN_LOAD(m1, bk + p * bs); FNN_V bw = FNN_LOAD(m2, bk + p * bs + FNN_W);, \
                                ROWS) }
#define FNN_LOOP3(ROWS) if (full) { FNN_LOOP(FNN_V bv = FNN_LOADU(bk + p * bs); \
                                             FNN_V bw = FNN_LOADU(bk + p * bs + FNN_W); \
                                             FNN_V bx = FNN_LOADU(bk + p * bs + 2 * FNN_W);, ROWS) } \
                else { FNN_LOOP(FNN_V bv = FNN_LOAD(m1, bk + p * bs); FNN_V bw = FNN_LOAD(m2, bk + p * bs + FNN_W); \
                                FNN_V bx = FNN_LOAD(m3, bk + p * bs + 2 * FNN_W);, ROWS) }
/* Row q of the block into C, after its loop (straight-line, so the sums stay in registers). */
#define FNN_PUT1(q, ACC, OFF, MASK) { FNN_T *cq = C + (i0 + q) * ldc + j0 + OFF; FNN_V v = FNN_MUL(va, ACC); \
                    if (add) { v = FNN_ADD(FNN_LOAD(MASK, cq), v); } FNN_STORE(cq, MASK, v); }
#define FNN_PUTONE(q) FNN_PUT1(q, c##q, 0, m1)
#define FNN_PUTTWO(q) FNN_PUT1(q, c##q, 0, m1) FNN_PUT1(q, d##q, FNN_W, m2)
#define FNN_PUTTHREE(q) FNN_PUT1(q, c##q, 0, m1) FNN_PUT1(q, d##q, FNN_W, m2) FNN_PUT1(q, e##q, 2 * FNN_W, m3)
/* Blocks of 1..12 rows (1..8 for three registers), each switch falling to the smaller one: LOOP the
   registers' loads, ROW a row's FMAs, PUT its store. */
#define FNN_ROWS6(LOOP, ROW, PUT) switch (r) { \
                    case 6: LOOP(ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)) PUT(0) PUT(1) PUT(2) PUT(3) PUT(4) PUT(5) break; \
                    case 5: LOOP(ROW(0) ROW(1) ROW(2) ROW(3) ROW(4)) PUT(0) PUT(1) PUT(2) PUT(3) PUT(4) break; \
                    case 4: LOOP(ROW(0) ROW(1) ROW(2) ROW(3)) PUT(0) PUT(1) PUT(2) PUT(3) break; \
                    case 3: LOOP(ROW(0) ROW(1) ROW(2)) PUT(0) PUT(1) PUT(2) break; \
                    case 2: LOOP(ROW(0) ROW(1)) PUT(0) PUT(1) break; \
                    default: LOOP(ROW(0)) PUT(0) }
#define FNN_ROWS8(LOOP, ROW, PUT) switch (r) { \
                    case 8: LOOP(ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6) ROW(7)) PUT(0) PUT(1) PUT(2) PUT(3) PUT(4) PUT(5) PUT(6) PUT(7) break; \
                    case 7: LOOP(ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6)) PUT(0) PUT(1) PUT(2) PUT(3) PUT(4) PUT(5) PUT(6) break; \
                    default: FNN_ROWS6(LOOP, ROW, PUT) }
#define FNN_ROWS(LOOP, ROW, PUT) switch (r) { \
                    case 12: LOOP(ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6) ROW(7) ROW(8) ROW(9) ROW(10) ROW(11)) PUT(0) PUT(1) PUT(2) PUT(3) PUT(4) PUT(5) PUT(6) PUT(7) PUT(8) PUT(9) PUT(10) PUT(11) break; \
                    case 11: LOOP(ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6) ROW(7) ROW(8) ROW(9) ROW(10)) PUT(0) PUT(1) PUT(2) PUT(3) PUT(4) PUT(5) PUT(6) PUT(7) PUT(8) PUT(9) PUT(10) break; \
                    case 10: LOOP(ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6) ROW(7) ROW(8) ROW(9)) PUT(0) PUT(1) PUT(2) PUT(3) PUT(4) PUT(5) PUT(6) PUT(7) PUT(8) PUT(9) break; \
                    case 9: LOOP(ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6) ROW(7) ROW(8)) PUT(0) PUT(1) PUT(2) PUT(3) PUT(4) PUT(5) PUT(6) PUT(7) PUT(8) break; \
                    default: FNN_ROWS8(LOOP, ROW, PUT) }
                const int add = beta != 0 || k0 > 0;  /* later chunks add to the earlier ones' sums */
                if (nr == 3) {
                    FNN_ROWS8(FNN_LOOP3, FNN_THREE, FNN_PUTTHREE)
                } else if (nr == 2) {
                    FNN_ROWS(FNN_LOOP2, FNN_TWO, FNN_PUTTWO)
                } else {
                    FNN_ROWS(FNN_LOOP1, FNN_ONE, FNN_PUTONE)
                }
#undef FNN_ROWS
#undef FNN_ROWS8
#undef FNN_ROWS6
#undef FNN_ONE
#undef FNN_TWO
#undef FNN_THREE
#undef FNN_LOOP
#undef FNN_LOOP1
#undef FNN_LOOP2
#undef FNN_LOOP3
#undef FNN_PUT1
#undef FNN_PUTONE
#undef FNN_PUTTWO
#undef FNN_PUTTHREE
                i0 += r;
            }
            k0 += kk;
        }
    }
}
#undef FNN_PREP
#undef FNN_A
