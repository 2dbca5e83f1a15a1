/* ops.h's operations in float and in double, from one source (ops_cpu.inc). */
#include "train/ops.h"

#include <math.h>

#include <dnnl.h>

#include "base/status.h"

/* Row-major C[M,N] = op(A)[M,K] op(B)[K,N] + beta C (alpha 1), lda/ldb the row strides as stored. */
static void gemm_f32(char ta, char tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                     const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    const dnnl_status_t st = dnnl_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
    AKE_ASSERT(st == dnnl_success);
}

/* The double reference: plain loops, for the gradient checks' tiny shapes. */
static void gemm_f64(char ta, char tb, int64_t M, int64_t N, int64_t K, const double *A, int64_t lda,
                     const double *B, int64_t ldb, double beta, double *C, int64_t ldc) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++)
                s += (ta == 'N' ? A[i * lda + k] : A[k * lda + i]) * (tb == 'N' ? B[k * ldb + j] : B[j * ldb + k]);
            C[i * ldc + j] = (beta == 0 ? 0 : beta * C[i * ldc + j]) + s;
        }
}

#define R float
#define S(name) name##_f32
#define GEMM gemm_f32
#include "train/ops_cpu.inc"
#undef R
#undef S
#undef GEMM

#define R double
#define S(name) name##_f64
#define GEMM gemm_f64
#include "train/ops_cpu.inc"
#undef R
#undef S
#undef GEMM
