/* The AVX2 u8 x s8 GEMM of the CPU engine (src/engine/cpu/gemm_u8s8.h) against an exact
 * int64 reference: odd shapes (row, channel and k remainders of every block size), the
 * all-MiniLM-L6-v2 shapes, the extreme codes (255 x +-63: the largest int16 pair sums the
 * kernel is specified for), and a caller's OpenMP team of 1 and of 2. Skipped where the CPU
 * has no AVX2. */
#include "test_util.h"

#include <omp.h>

#include "engine/cpu/gemm_u8s8.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

/* extreme: every code at its bound (255, +-63) */
static void check(int32_t M, int32_t n, int32_t k, int extreme) {
    uint8_t *a = malloc((size_t)M * k + 4); /* + the 3 bytes the kernel may read past the last row */
    int8_t *b = malloc((size_t)n * k);
    int32_t *c = malloc((size_t)M * n * sizeof *c + 64);
    assert_non_null(a), assert_non_null(b), assert_non_null(c);
    for (size_t i = 0; i < (size_t)M * k + 4; i++) a[i] = extreme ? 255 : (uint8_t)next();
    for (size_t i = 0; i < (size_t)n * k; i++) b[i] = extreme ? (next() & 1 ? 63 : -63) : (int8_t)((int)(next() % 127) - 63);
    for (size_t i = 0; i < (size_t)M * n + 16; i++) c[i] = 0x5a5a5a5a; /* poison, and the guard past C */
    ake_u8s8_weights w;
    assert_true(ake_u8s8_pack(&w, b, n, k));
    ake_u8s8_gemm(&w, a, M, c);
    size_t bad = 0;
    for (int32_t m = 0; m < M; m++)
        for (int32_t j = 0; j < n; j++) {
            int64_t s = 0;
            for (int32_t kk = 0; kk < k; kk++) s += (int64_t)a[(size_t)m * k + kk] * b[(size_t)j * k + kk];
            bad += c[(size_t)m * n + j] != s;
        }
    for (size_t i = (size_t)M * n; i < (size_t)M * n + 16; i++) bad += c[i] != 0x5a5a5a5a; /* nothing past C */
    if (bad) fail_msg("u8s8 GEMM M=%d n=%d k=%d%s: %zu outputs wrong", M, n, k, extreme ? " (extreme codes)" : "", bad);
    ake_u8s8_free(&w);
    free(a), free(b), free(c);
}

static void test_u8s8_gemm(void **state) {
    (void)state;
    if (!ake_u8s8_available()) skip();
    static const int32_t Ms[] = {1, 3, 4, 5, 63, 64, 65, 130}, ns[] = {1, 15, 16, 17, 40}, ks[] = {1, 3, 4, 7, 64, 129};
    for (int t = 1; t <= 2; t++) {
        omp_set_num_threads(t);
        for (size_t i = 0; i < sizeof Ms / sizeof *Ms; i++)
            for (size_t j = 0; j < sizeof ns / sizeof *ns; j++)
                for (size_t l = 0; l < sizeof ks / sizeof *ks; l++) check(Ms[i], ns[j], ks[l], (int)((i + j + l) % 5 == 0));
    }
    /* all-MiniLM-L6-v2: QKV, out-projection, FFN1, FFN2 (k up to 1536: sums up to 1536 x 255 x 63) */
    check(129, 1152, 384, 0);
    check(37, 384, 384, 1);
    check(70, 1536, 384, 0);
    check(33, 384, 1536, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_u8s8_gemm)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
