#include "base/dtype.h"

#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    size_t size;
} dtype_info[AKE_DT_COUNT] = {
    [AKE_DT_F32] = {"F32", 4},         [AKE_DT_F16] = {"F16", 2},         [AKE_DT_BF16] = {"BF16", 2},
    [AKE_DT_I8] = {"I8", 1},           [AKE_DT_U8] = {"U8", 1},           [AKE_DT_F8_E4M3] = {"F8_E4M3", 1},
    [AKE_DT_F8_E5M2] = {"F8_E5M2", 1}, [AKE_DT_I16] = {"I16", 2},         [AKE_DT_I32] = {"I32", 4},
    [AKE_DT_I64] = {"I64", 8},         [AKE_DT_F64] = {"F64", 8},         [AKE_DT_BOOL] = {"BOOL", 1},
};

const char *ake_dtype_name(ake_dtype dt) {
    if ((int)dt < 0 || dt >= AKE_DT_COUNT) return "?";
    return dtype_info[dt].name;
}

size_t ake_dtype_size(ake_dtype dt) {
    if ((int)dt < 0 || dt >= AKE_DT_COUNT) return 0;
    return dtype_info[dt].size;
}

int ake_dtype_parse(const char *s, ake_dtype *out) {
    if (!s) return -1;
    for (int i = 0; i < AKE_DT_COUNT; i++) {
        if (strcasecmp(s, dtype_info[i].name) == 0) {
            if (out) *out = (ake_dtype)i;
            return 0;
        }
    }
    return -1;
}


void ake_quantize_rows(const float *x, int64_t rows, int64_t cols, ake_dtype qdt, float qmax, void *codes,
                       float *scales) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float amax = 0.0f;
        for (int64_t c = 0; c < cols; c++) amax = fmaxf(amax, fabsf(xr[c]));
        const float s = amax > 0.0f ? amax / qmax : 1.0f;
        scales[r] = s;
        if (qdt == AKE_DT_I8) {
            int8_t *q = (int8_t *)codes + r * cols;
            for (int64_t c = 0; c < cols; c++) q[c] = ake_f32_to_i8(xr[c] / s);
        } else {
            uint8_t *q = (uint8_t *)codes + r * cols;
            for (int64_t c = 0; c < cols; c++) q[c] = ake_f32_to_e4m3(xr[c] / s);
        }
    }
}

void ake_dequantize_rows(const void *codes, ake_dtype qdt, const float *scales, int64_t rows, int64_t cols,
                         float *out) {
    for (int64_t r = 0; r < rows; r++) {
        float *o = out + r * cols;
        if (qdt == AKE_DT_I8) {
            const int8_t *q = (const int8_t *)codes + r * cols;
            for (int64_t c = 0; c < cols; c++) o[c] = (float)q[c] * scales[r];
        } else {
            const uint8_t *q = (const uint8_t *)codes + r * cols;
            for (int64_t c = 0; c < cols; c++) o[c] = ake_e4m3_to_f32(q[c]) * scales[r];
        }
    }
}

int32_t ake_hadamard_block(int64_t n, int32_t cap) {
    int32_t b = 1;
    while (n % (2 * (int64_t)b) == 0 && 2 * b <= cap) b *= 2;
    return b;
}

/* The first three butterfly passes (h = 1, 2, 4) of a block, 8 values at a time in one
 * vector: pass h adds to each value its partner h away, x' = x * sign + partner with sign -1
 * on the upper half of each 2h group (x * -1 + p is exactly p - x, so the result is bitwise
 * the plain butterflies'). As plain loops their inner runs are 1 to 4 long and do not
 * vectorize (measured: the transform took 18% of an int8 MiniLM forward on a Zen 3 as plain
 * loops, 8% as 24 scalar operations per 8 values). */
typedef float hv8 __attribute__((vector_size(32)));
typedef int32_t hi8 __attribute__((vector_size(32)));

/* x with its lanes permuted (GCC and clang spell the builtin differently) */
#if defined(__clang__)
#define HV8_PERMUTE(x, a, b, c, d, e, f, g, h) __builtin_shufflevector(x, x, a, b, c, d, e, f, g, h)
#else
#define HV8_PERMUTE(x, a, b, c, d, e, f, g, h) __builtin_shuffle(x, (hi8){a, b, c, d, e, f, g, h})
#endif

static void hadamard8(float *v, int32_t b) {
    const hv8 s1 = {1, -1, 1, -1, 1, -1, 1, -1}, s2 = {1, 1, -1, -1, 1, 1, -1, -1}, s4 = {1, 1, 1, 1, -1, -1, -1, -1};
    for (int32_t i = 0; i < b; i += 8) {
        hv8 x;
        memcpy(&x, v + i, sizeof x);
        x = x * s1 + HV8_PERMUTE(x, 1, 0, 3, 2, 5, 4, 7, 6);
        x = x * s2 + HV8_PERMUTE(x, 2, 3, 0, 1, 6, 7, 4, 5);
        x = x * s4 + HV8_PERMUTE(x, 4, 5, 6, 7, 0, 1, 2, 3);
        memcpy(v + i, &x, sizeof x);
    }
}

void ake_hadamard_rows(float *x, int64_t rows, int64_t n, int32_t b) {
    const float norm = 1.0f / sqrtf((float)b);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t base = 0; base < n; base += b) {
            float *v = x + r * n + base;
            int32_t h = 1;
            if (b >= 8) {
                hadamard8(v, b);
                h = 8;
            }
            for (; h < b; h *= 2) /* fast Walsh-Hadamard transform: the remaining butterfly passes */
                for (int32_t i = 0; i < b; i += 2 * h)
#pragma omp simd
                    for (int32_t j = i; j < i + h; j++) {
                        const float a = v[j], c = v[j + h];
                        v[j] = a + c;
                        v[j + h] = a - c;
                    }
#pragma omp simd
            for (int32_t j = 0; j < b; j++) v[j] *= norm;
        }
}
