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

#include "base/dtype.h"
#include "base/status.h"


#define AKE_MAX_DIMS 8

typedef struct {
    const char *name;   /* owned by the ake_safetensors */
    ake_dtype dtype;
    int ndim;
    int64_t shape[AKE_MAX_DIMS];
    int64_t numel;
    const void *data;   /* points into the mapping; valid while the file is open. Aligned to
                           the element size when the file's offsets are (ake_safetensors_open
                           guarantees the data buffer itself starts 8-byte aligned; parse()
                           leaves alignment to the caller's buffer) */
    size_t nbytes;
} ake_tensor;

typedef struct ake_safetensors ake_safetensors;

/* Statuses: AKE_ENOTFOUND (no such file), AKE_EIO (cannot open/read/map),
 * AKE_ETOOLONG (header length over 100 MiB), AKE_EUNSUPPORTED (a dtype this
 * reader does not know, e.g. from a newer format revision), AKE_EFORMAT
 * (anything else malformed), AKE_ENOMEM. On failure *out is NULL.
 * A mapped file must not be truncated while open (the kernel would SIGBUS). */

/* Opens and validates `path` (mmapped read-only; copied into an aligned heap
 * buffer instead in the rare case its data buffer would start misaligned).
 * `path` is the label in errors. Free with ake_safetensors_close. */
ake_status ake_safetensors_open(const char *path, ake_safetensors **out, char *err, size_t errlen);
/* Validates a buffer the caller keeps alive for the result's lifetime; `label`
 * names it in errors. Used by tests and the fuzz target. */
ake_status ake_safetensors_parse(const void *buf, size_t len, const char *label, ake_safetensors **out, char *err,
                                 size_t errlen);
/* Frees everything, unmaps the file; NULL is fine. Every ake_tensor dies with it. */
void ake_safetensors_close(ake_safetensors *st);

/* Tensors in header order ("__metadata__" is not a tensor). */
int ake_safetensors_count(const ake_safetensors *st);
const ake_tensor *ake_safetensors_at(const ake_safetensors *st, int i);
/* NULL when absent. */
const ake_tensor *ake_safetensors_find(const ake_safetensors *st, const char *name);
const char *ake_safetensors_label(const ake_safetensors *st);

/* Value of key in the header's "__metadata__" object, or NULL when absent.
 * The string is owned by the ake_safetensors. */
const char *ake_safetensors_metadata(const ake_safetensors *st, const char *key);


/* Writes tensors to `path` in safetensors format (used by `synth` and tests).
 * For each tensor the writer reads name, dtype, ndim, shape, data and nbytes;
 * nbytes must equal product(shape) * ake_dtype_size(dtype) (numel is ignored).
 * The header is padded with spaces to a multiple of 8 bytes, tensors follow in
 * the given order. Names must be unique, valid UTF-8 and not "__metadata__".
 * The file is written to a temporary name beside `path` and renamed into place,
 * so a failed write leaves no partial file. */
ake_status ake_safetensors_write(const char *path, const ake_tensor *tensors, int n, char *err, size_t errlen);

/* Produces the nbytes bytes of tensors[i] into dst (a writer-owned buffer, valid
 * only during the call). Returns AKE_OK, or an error with err filled. */
typedef ake_status (*ake_safetensors_fill_fn)(void *ctx, int i, void *dst, size_t nbytes, char *err, size_t errlen);

/* Like ake_safetensors_write, but tensors[i].data is ignored and the bytes of each
 * tensor come from fill(), one tensor at a time, so a file larger than memory can
 * be written while holding only its largest tensor. */
ake_status ake_safetensors_write_fill(const char *path, const ake_tensor *tensors, int n, ake_safetensors_fill_fn fill,
                                      void *ctx, char *err, size_t errlen);

#endif
