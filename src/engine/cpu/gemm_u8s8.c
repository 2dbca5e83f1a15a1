/* AVX2 u8 x s8 -> s32 GEMM (see gemm_u8s8.h). One micro-kernel: 4 rows of A against 16
 * output channels, 8 accumulators of 8 int32 each held in registers over the whole k loop;
 * per 4 values of k it loads 64 bytes of packed weights, broadcasts 4 bytes of each row, and
 * issues 8 x (vpmaddubsw, vpmaddwd, vpaddd): 256 multiply-adds per 16 multiplier-pipe
 * instructions. Tasks of 64 rows x 64 channels are spread over the OpenMP team; within one,
 * each 16-channel weight block (k x 16 bytes: 6 KB at k = 384, 24 KB at 1536) stays in L1 while
 * 16 row quadruples pass over it. */
#include "engine/cpu/gemm_u8s8.h"

#include <stdlib.h>
#include <string.h>

#include "base/status.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

enum { NR = 16, MR = 4, MB = 64, JB = 4 }; /* channels per block, rows per micro-kernel, rows and blocks per task */

bool ake_u8s8_available(void) {
#if defined(__AVX2__)
    return __builtin_cpu_supports("avx2");
#else
    return false;
#endif
}

size_t ake_u8s8_bytes(const ake_u8s8_weights *w) {
    return w->packed ? (size_t)((w->n + NR - 1) / NR) * w->k4 * NR * 4 : 0;
}

bool ake_u8s8_pack(ake_u8s8_weights *w, const int8_t *b, int32_t n, int32_t k) {
    w->n = n;
    w->k = k;
    w->k4 = (k + 3) / 4;
    w->packed = NULL;
    const size_t bytes = (size_t)((n + NR - 1) / NR) * w->k4 * NR * 4;
    w->packed = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!w->packed) return false;
    memset(w->packed, 0, bytes);
    for (int32_t c = 0; c < n; c++) {
        int8_t *blk = w->packed + (size_t)(c / NR) * w->k4 * NR * 4 + (size_t)(c % NR) * 4;
        for (int32_t kk = 0; kk < k; kk++) blk[(size_t)(kk / 4) * NR * 4 + kk % 4] = b[(size_t)c * k + kk];
    }
    return true;
}

void ake_u8s8_free(ake_u8s8_weights *w) {
    free(w->packed);
    w->packed = NULL;
}

#if defined(__AVX2__)
/* C[r, 0..cols) (+ r < rows) = a[r] . packed block bp, for the 4 row pointers a (rows past
 * `rows` repeat a valid one and are not stored). */
static void kernel_4x16(const uint8_t *a0, const uint8_t *a1, const uint8_t *a2, const uint8_t *a3, const int8_t *bp,
                        int32_t k4, int32_t *c, int32_t ldc, int rows, int cols) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    for (int32_t i = 0; i < k4; i++) {
        const __m256i b0 = _mm256_load_si256((const __m256i *)(bp + 64 * (size_t)i));
        const __m256i b1 = _mm256_load_si256((const __m256i *)(bp + 64 * (size_t)i + 32));
        int32_t v0, v1, v2, v3;
        memcpy(&v0, a0 + 4 * (size_t)i, 4);
        memcpy(&v1, a1 + 4 * (size_t)i, 4);
        memcpy(&v2, a2 + 4 * (size_t)i, 4);
        memcpy(&v3, a3 + 4 * (size_t)i, 4);
#define AKE_U8S8_ROW(v, x0, x1)                                                                  \
    do {                                                                                         \
        const __m256i av = _mm256_set1_epi32(v);                                                 \
        x0 = _mm256_add_epi32(x0, _mm256_madd_epi16(_mm256_maddubs_epi16(av, b0), ones));        \
        x1 = _mm256_add_epi32(x1, _mm256_madd_epi16(_mm256_maddubs_epi16(av, b1), ones));        \
    } while (0)
        AKE_U8S8_ROW(v0, c00, c01);
        AKE_U8S8_ROW(v1, c10, c11);
        AKE_U8S8_ROW(v2, c20, c21);
        AKE_U8S8_ROW(v3, c30, c31);
#undef AKE_U8S8_ROW
    }
    const __m256i acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
    for (int r = 0; r < rows; r++) {
        if (cols == NR) {
            _mm256_storeu_si256((__m256i *)(c + (size_t)r * ldc), acc[r][0]);
            _mm256_storeu_si256((__m256i *)(c + (size_t)r * ldc + 8), acc[r][1]);
        } else {
            int32_t tmp[NR];
            _mm256_storeu_si256((__m256i *)tmp, acc[r][0]);
            _mm256_storeu_si256((__m256i *)(tmp + 8), acc[r][1]);
            memcpy(c + (size_t)r * ldc, tmp, (size_t)cols * sizeof *tmp);
        }
    }
}
#endif

void ake_u8s8_gemm(const ake_u8s8_weights *w, const uint8_t *A, int32_t M, int32_t *C) {
#if defined(__AVX2__)
    const int32_t n = w->n, k = w->k, k4 = w->k4, nb = (n + NR - 1) / NR;
    const int32_t row_tasks = (M + MB - 1) / MB, col_tasks = (nb + JB - 1) / JB;
    /* tasks: 64 rows x 64 channels, so that a batch of one short text (M = 32) still spreads
     * over the team by channels */
#pragma omp parallel for schedule(static)
    for (int32_t t = 0; t < row_tasks * col_tasks; t++) {
        const int32_t m0 = t / col_tasks * MB, m1 = m0 + MB < M ? m0 + MB : M;
        const int32_t j0 = t % col_tasks * JB, j1 = j0 + JB < nb ? j0 + JB : nb;
        for (int32_t j = j0; j < j1; j++) {
            const int8_t *bp = w->packed + (size_t)j * k4 * NR * 4;
            const int cols = n - j * NR < NR ? n - j * NR : NR;
            for (int32_t m = m0; m < m1; m += MR) {
                const int rows = m1 - m < MR ? m1 - m : MR;
                const uint8_t *a[MR];
                for (int r = 0; r < MR; r++) a[r] = A + (size_t)(m + (r < rows ? r : rows - 1)) * k;
                kernel_4x16(a[0], a[1], a[2], a[3], bp, k4, C + (size_t)m * n + (size_t)j * NR, n, rows, cols);
            }
        }
    }
#else
    (void)w, (void)A, (void)M, (void)C;
    AKE_ASSERT(!"ake_u8s8_gemm: built without AVX2 (ake_u8s8_available() is false)");
#endif
}
