/* Element types of tensors (the safetensors spellings) and the 8-bit encodings of the
 * quantized engines: INT8 symmetric and FP8 E4M3 (the OCP 8-bit floating point spec,
 * "E4M3FN": 1 sign, 4 exponent bits with bias 7, 3 mantissa bits, no infinities, one NaN
 * pattern per sign, largest finite 448). Scalar C: the CPU engine uses them, and they are
 * the references the CUDA kernels are tested against. */
#ifndef AKE_BASE_DTYPE_H
#define AKE_BASE_DTYPE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    AKE_DT_F32 = 0,
    AKE_DT_F16,
    AKE_DT_BF16,
    AKE_DT_I8,
    AKE_DT_U8,
    AKE_DT_F8_E4M3,
    AKE_DT_F8_E5M2,
    AKE_DT_I16,
    AKE_DT_I32,
    AKE_DT_I64,
    AKE_DT_F64,
    AKE_DT_BOOL,
    AKE_DT_COUNT
} ake_dtype;

/* "F32", "F16", ... as spelled in safetensors headers; "?" for an invalid value. */
const char *ake_dtype_name(ake_dtype dt);
/* Bytes per element; 0 for an invalid value. */
size_t ake_dtype_size(ake_dtype dt);
/* Case-insensitive lookup ("f16" and "F16" both give AKE_DT_F16), for command-line
 * switches. Returns 0 and sets *out, or -1 for an unknown name. */
int ake_dtype_parse(const char *s, ake_dtype *out);

/* Largest magnitudes the 8-bit codes hold: a scale s maps [-qmax*s, qmax*s] onto them. */
#define AKE_I8_QMAX 127.0f   /* symmetric: -128 is never produced */
#define AKE_E4M3_QMAX 448.0f

/* round-half-even(x), clamped to [-127, 127]; NaN gives 0. */
static inline int8_t ake_f32_to_i8(float x) {
    if (!(x == x)) return 0;
    float r = nearbyintf(x); /* the default rounding mode: to nearest, ties to even */
    return (int8_t)(r > 127.0f ? 127 : r < -127.0f ? -127 : r);
}

/* x rounded to nearest (ties to even) E4M3, saturating: |x| > 448 (and ±inf) give ±448,
 * as CUDA's __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3); NaN gives 0x7f. */
static inline uint8_t ake_f32_to_e4m3(float x) {
    uint8_t sign = signbit(x) ? 0x80 : 0;
    float a = fabsf(x);
    if (!(a == a)) return 0x7f;
    if (a >= 448.0f) return sign | 0x7e;
    if (a < 0.015625f) /* below 2^-6: subnormal, m * 2^-9 with m in 0..8 (8 = the smallest normal) */
        return sign | (uint8_t)nearbyintf(a * 512.0f);
    int e;
    float m = frexpf(a, &e);             /* a = m 2^e, m in [0.5, 1) */
    float q = nearbyintf(m * 16.0f);     /* 1.xxx with 3 fraction bits, in units of 2^(e-4): 8..16 */
    if (q == 16.0f) q = 8.0f, e++;
    if (e + 6 > 15 || (e + 6 == 15 && q > 14.0f)) return sign | 0x7e; /* rounded above 448 */
    return sign | (uint8_t)(((e + 6) << 3) | ((int)q - 8));
}

static inline float ake_e4m3_to_f32(uint8_t b) {
    const int e = (b >> 3) & 0xf, m = b & 7;
    float a;
    if (e == 15 && m == 7) a = NAN;
    else if (e == 0) a = (float)m * (1.0f / 512.0f);
    else a = ldexpf(1.0f + (float)m / 8.0f, e - 7);
    return b & 0x80 ? -a : a;
}

/* Row-wise symmetric quantization, the layout of quantized folders (src/model/model.h):
 * codes[r, c] = q(x[r, c] / scales[r]) with scales[r] = absmax(row r) / qmax (1 for an
 * all-zero row, so that every scale is > 0). x [rows, cols] fp32; codes [rows, cols] of
 * qdt (AKE_DT_I8 or AKE_DT_F8_E4M3); scales [rows]. qmax: the largest code used, at most
 * the type's (AKE_I8_QMAX, AKE_E4M3_QMAX); smaller for 7-bit INT8 weights (cpu_engine.c). */
void ake_quantize_rows(const float *x, int64_t rows, int64_t cols, ake_dtype qdt, float qmax, void *codes,
                       float *scales);
/* Rotation of quantized inputs (QuaRot, Ashkboos et al. 2024; SpinQuant): x W^T = (x H)(W H)^T
 * for an orthogonal H. With H the normalized Walsh-Hadamard matrix, x H spreads a token's few
 * large channels over all of them, so one scale per token fits every channel (measured on
 * all-MiniLM-L6-v2: per-token INT8 input SNR 35-39 dB -> 42-44 dB, FFN2 input 35 -> 42 dB).
 * Block-diagonal H with blocks of b (a power of two dividing the row length) keeps it
 * defined for any width; H is symmetric, so applying it twice is the identity. */
#define AKE_HADAMARD_MAX_BLOCK 512
/* The largest power of two that divides n, capped at `cap`; 1 when n is odd (no rotation). */
int32_t ake_hadamard_block(int64_t n, int32_t cap);
/* x[r] <- x[r] H for each of `rows` rows of n floats, H block-diagonal with blocks of b. */
void ake_hadamard_rows(float *x, int64_t rows, int64_t n, int32_t b);

/* out[r, c] = value(codes[r, c]) * scales[r]: the inverse, for engines that compute in float. */
void ake_dequantize_rows(const void *codes, ake_dtype qdt, const float *scales, int64_t rows, int64_t cols,
                         float *out);

#endif
