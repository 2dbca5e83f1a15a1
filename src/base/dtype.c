#include "base/dtype.h"

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


void ake_quantize_rows(const float *x, int64_t rows, int64_t cols, ake_dtype qdt, void *codes, float *scales) {
    const float qmax = qdt == AKE_DT_I8 ? AKE_I8_QMAX : AKE_E4M3_QMAX;
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
