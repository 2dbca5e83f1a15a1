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

