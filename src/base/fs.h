/* Small file-system helpers shared by the rooms that read model folders. */
#ifndef AKE_BASE_FS_H
#define AKE_BASE_FS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/status.h"

/* "dir/name" (trailing slashes of dir dropped) in a malloc'd string the caller frees;
 * NULL when out of memory. */
char *ake_path_join(const char *dir, const char *name);

/* True when path names an existing regular file. */
bool ake_file_exists(const char *path);

/* Reads the whole file at path into *buf, NUL-terminated, malloc'd (caller frees), its
 * length in *len. AKE_ENOTFOUND when it does not exist, AKE_ETOOLONG when it has more
 * than max_bytes, AKE_EIO / AKE_ENOMEM otherwise; err names the path. *buf is NULL on
 * failure. */
ake_status ake_read_file(const char *path, size_t max_bytes, char **buf, size_t *len, char *err, size_t errlen);

/* Writes data[0..len) to path atomically: a temp file beside it (path.tmp.PID), fsync, rename over
 * path. A reader sees the old file or the new one, never a part. AKE_EIO naming the path on failure
 * (the temp file is removed). */
ake_status ake_write_file_atomic(const char *path, const char *data, size_t len, char *err, size_t errlen);

/* ake_write_file_atomic of the concatenation of parts[0..n): a file larger than one buffer
 * (a checkpoint: header, then arrays that live apart) written without joining them first. */
typedef struct {
    const void *data;
    size_t len;
} ake_file_part;
ake_status ake_write_file_atomic_parts(const char *path, const ake_file_part *parts, int n, char *err,
                                      size_t errlen);

#endif
