/* The 8-bit activations of the W8A8 engines (INT8 and FP8 E4M3): the kernels that turn a
 * GEMM's result into the next GEMM's quantized input, each in one pass over its rows.
 *
 * Semantics (shared with the CPU engine's quantize_row; the references are base/dtype.h's
 * encoders and ake_hadamard_rows):
 *   a row x[0..K) is first transformed, x' = (x * col_mul) H: per input channel by col_mul (the
 *   inverse SmoothQuant factors of the GEMM it feeds; none when NULL), then rotated by the
 *   normalized block Walsh-Hadamard matrix H with blocks of `rot` (none when rot <= 1). The
 *   GEMM's weights carry the inverse transforms, so x' W'^T = x W^T.
 *   x' gets one fp32 scale s per row: q[k] = sat(round(x'[k] * (1/s))) with round-half-even
 *   and saturation to +-127 (INT8), or round-to-nearest-even E4M3 saturating to +-448 (FP8,
 *   CUDA's __NV_SATFINITE); x' ~ q * s.
 *   Dynamic symmetric scale (per row, per token): s = absmax(x') / qmax, s = 1 for a row of zeros
 *   (every scale is > 0), as base's ake_quantize_rows.
 *   Dynamic asymmetric (INT8 with a zero-point output): over [mn, mx] = [min(x', 0), max(x', 0)],
 *   s = (mx - mn) / 255 (1 when mx == mn), z = -128 - round(mn / s), q = sat(round(x' / s) + z)
 *   to -128..127, x' ~ s (q - z): every code spent on values the row holds (GELU outputs are
 *   >= -0.17, so symmetric codes would leave half unused; measured on the CPU: 0.02 recall@10).
 *   Static scale: every row gets the same calibrated per-tensor value *static_scale, symmetric.
 * A GEMM over asymmetric codes sums q W: the kernel that reads its int32 result subtracts
 * z[m] * wsum[n] (wsum[n] = sum_k Wq[n, k]) before scaling (ake_cuda_gemm_result).
 * Plain C header, usable from C tests. */
#ifndef AKE_ENGINE_CUDA_QUANT_CUH
#define AKE_ENGINE_CUDA_QUANT_CUH

#include <cuda_runtime_api.h>

#include "model/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A quantized output: (q[m, k] - zero[m]) * scale[m] ~ x'[m, k]. */
typedef struct {
    ake_dtype qdt;              /* AKE_DT_I8 or AKE_DT_F8_E4M3 */
    void *q;                    /* [M, K] of qdt, row-major; 16-byte aligned. NULL: no quantized
                                   output (where a launcher allows it, see each) */
    float *scale;               /* [M] fp32: the scale of each row, written by the kernel (the
                                   static value repeated in static mode) */
    const float *static_scale;  /* device, one fp32: the calibrated per-tensor scale; NULL:
                                   dynamic per-row scales */
    float *zero;                /* [M] fp32 (integral values): the zero point of each row, written
                                   by the kernel; non-NULL only for dynamic INT8 (asymmetric);
                                   NULL: symmetric codes */
    const float *col_mul;       /* [K] fp32, 16-byte aligned: per-channel factor applied first
                                   (1 / SmoothQuant factor); NULL: none */
    int rot;                    /* Hadamard block (a power of two dividing K, <= 512); 0 or 1: none */
} ake_cuda_qout;

/* What a GEMM left for the kernel after it: y[m, n] for m < M, n < N, either final or as
 * INT8 (or fp32) accumulators still to be dequantized. */
typedef struct {
    ake_dtype dt;               /* F16 / BF16: y holds the GEMM's output, bias already added by
                                   its epilogue (the scale fields are unused);
                                   I32: y holds an INT8 GEMM's int32 sums, and
                                   y[m, n] = (acc[m, n] - row_zero[m] col_wsum[n]) row_scale[m]
                                             col_scale[n] + bias[n];
                                   F32 (ake_cuda_dequant_bias only): fp32 sums, the same formula */
    const void *y;              /* [M, N] row-major of dt, 16-byte aligned */
    const float *row_scale;     /* [M]: the activation scale of each row (sx), I32/F32 only */
    const float *col_scale;     /* [N]: the weight scale of each output channel (sw), I32/F32 only */
    const float *bias;          /* [N] fp32, I32/F32 only; NULL: no bias */
    const float *row_zero;      /* [M]: the zero point of each row of asymmetric codes (qout.zero
                                   of the kernel that made the GEMM's input); NULL: symmetric */
    const float *col_wsum;      /* [N], 16-byte aligned: sum over k of the weight codes of row n;
                                   set exactly when row_zero is */
} ake_cuda_gemm_result;

/* q = quantize(x) row by row: the attention output before the out-projection, the
 * embeddings before the first QKV GEMM. x: [M, K] of xdt (F16, BF16 or F32), 16-byte
 * aligned; q.q must not be NULL. K % 8 == 0, K <= 8192. */
void ake_cuda_quantize_rows(cudaStream_t stream, ake_cuda_qout q, ake_dtype xdt, const void *x, int M, int K);

/* x = LN(res + y) * gamma + beta over d features, statistics in fp32 (two passes, as
 * ake_cuda_layernorm), written to out [rows, d] of dt (F16 or BF16: the residual stream)
 * and, when q.q is not NULL, quantized into q [rows, d] for the next GEMM (from the fp32
 * values, before their rounding to dt). One warp per row, the row held in registers.
 * res: [rows, d] of dt or NULL (plain LN); out may alias res (rows are read whole before
 * they are written), never y. y: a GEMM result [rows, d] (F16/BF16 of the same dt, or I32).
 * gamma, beta: [d] fp32. d % 8 == 0, d <= AKE_CUDA_LN_MAX_D (2048); pointers 16-byte aligned. */
void ake_cuda_layernorm_quant(cudaStream_t stream, ake_dtype dt, void *out, const void *res, ake_cuda_gemm_result y,
                              const float *gamma, const float *beta, int rows, int d, float eps, ake_cuda_qout q);

/* h = exact erf GELU(y) (HF "gelu", in fp32) over a GEMM result y [M, N] (F16/BF16 with the
 * bias added, or I32 + scales + bias), written quantized into q [M, N] for the next GEMM; when
 * q.q is NULL, h is written instead to h_out [M, N] of hdt (F16 or BF16: a layer kept in
 * 16 bits). N % 8 == 0, N <= 8192; pointers 16-byte aligned; the output must not alias y. */
void ake_cuda_gelu_quant(cudaStream_t stream, ake_cuda_gemm_result y, int M, int N, ake_cuda_qout q, ake_dtype hdt,
                         void *h_out);

/* Y = acc * row_scale[m] * col_scale[n] + bias[n] in fp32, written as dt (F16 or BF16): the
 * INT8 QKV GEMM's output before the (16-bit) attention. acc: a GEMM result of dt I32 (or
 * F32) [M, N]; Y: [M, N], must not alias acc. N % 8 == 0; pointers 16-byte aligned. */
void ake_cuda_dequant_bias(cudaStream_t stream, ake_dtype dt, void *Y, ake_cuda_gemm_result acc, int M, int N);

#ifdef __cplusplus
}
#endif
#endif
