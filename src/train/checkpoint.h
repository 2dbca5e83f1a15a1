/* A training checkpoint: everything a run needs to continue bit-exactly (the flat parameter
 * array, AdamW's two moments, and a JSON document with the step, the settings and the history),
 * in one file written atomically (temp file, fsync, rename: a crash leaves the previous one).
 *
 * Format (little-endian):
 *   char     magic[8]      "AKECKPT1"
 *   uint64   json_len
 *   char     json[json_len]  UTF-8, no NUL: the run's state (distill.c says what it holds)
 *   uint64   numel
 *   float32  params[numel], m[numel], v[numel]
 *   uint8    sha256[32]    of every byte before it: a torn or altered file is refused */
#ifndef AKE_TRAIN_CHECKPOINT_H
#define AKE_TRAIN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef struct {
    char *json;            /* owned, NUL-terminated */
    int64_t numel;
    float *params, *m, *v; /* owned [numel] each */
} ake_checkpoint;

/* AKE_EIO naming the path when it cannot be written. */
ake_status ake_checkpoint_write(const char *path, const char *json, const float *params, const float *m,
                                const float *v, int64_t numel, char *err, size_t errlen);

/* AKE_ENOTFOUND, AKE_EIO, AKE_EFORMAT (not a checkpoint, truncated, checksum mismatch), AKE_ENOMEM.
 * Release with ake_checkpoint_release. */
ake_status ake_checkpoint_read(const char *path, ake_checkpoint *out, char *err, size_t errlen);
void ake_checkpoint_release(ake_checkpoint *c);

#endif
