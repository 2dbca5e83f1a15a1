/* safetensors reader over a read-only mmap (or any caller-owned buffer).
 *
 * Layout: u64 little-endian N | N bytes of UTF-8 JSON header | data buffer.
 * The header maps tensor name -> {dtype, shape, data_offsets:[begin,end]}
 * (offsets relative to the data buffer) plus an optional "__metadata__" object
 * of string -> string. Everything is validated as hostile input: N bounds,
 * JSON, known dtypes, shape products vs byte lengths (no overflow), offsets in
 * bounds, tensors non-overlapping and covering the data buffer exactly. */
#ifndef AKE_MODEL_SAFETENSORS_H
#define AKE_MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

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

/* "F32", "F16", ... as spelled in safetensors headers. */
const char *ake_dtype_name(ake_dtype dt);
size_t ake_dtype_size(ake_dtype dt);

#define AKE_MAX_DIMS 8

typedef struct {
    const char *name;   /* owned by the ake_safetensors */
    ake_dtype dtype;
    int ndim;
    int64_t shape[AKE_MAX_DIMS];
    int64_t numel;
    const void *data;   /* points into the mapping; valid while the file is open */
    size_t nbytes;
} ake_tensor;

typedef struct ake_safetensors ake_safetensors;

/* Opens and validates `path` (mmapped read-only). Free with ake_safetensors_close. */
ake_status ake_safetensors_open(const char *path, ake_safetensors **out, char *err, size_t errlen);
/* Validates a buffer the caller keeps alive for the result's lifetime; `label`
 * names it in errors. Used by tests and the fuzz target. */
ake_status ake_safetensors_parse(const void *buf, size_t len, const char *label, ake_safetensors **out, char *err,
                                 size_t errlen);
void ake_safetensors_close(ake_safetensors *st);

int ake_safetensors_count(const ake_safetensors *st);
const ake_tensor *ake_safetensors_at(const ake_safetensors *st, int i);
/* NULL when absent. */
const ake_tensor *ake_safetensors_find(const ake_safetensors *st, const char *name);
const char *ake_safetensors_label(const ake_safetensors *st);

/* Writes tensors to `path` in safetensors format (used by `synth` and tests). */
ake_status ake_safetensors_write(const char *path, const ake_tensor *tensors, int n, char *err, size_t errlen);

#endif
