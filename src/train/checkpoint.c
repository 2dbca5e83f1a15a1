#include "train/checkpoint.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "base/fs.h"

static const char MAGIC[8] = {'A', 'K', 'E', 'C', 'K', 'P', 'T', '1'};
#define MAX_CHECKPOINT_BYTES ((size_t)64 << 30)

/* sha256 over parts[0..n) into md. */
static bool digest(const ake_file_part *parts, int n, uint8_t md[32]) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    for (int i = 0; ok && i < n; i++) ok = EVP_DigestUpdate(ctx, parts[i].data, parts[i].len);
    unsigned len = 0;
    ok = ok && EVP_DigestFinal_ex(ctx, md, &len) && len == 32;
    EVP_MD_CTX_free(ctx);
    return ok;
}

ake_status ake_checkpoint_write(const char *path, const char *json, const float *params, const float *m,
                                const float *v, int64_t numel, char *err, size_t errlen) {
    const uint64_t json_len = strlen(json), n = (uint64_t)numel;
    const size_t bytes = (size_t)numel * sizeof(float);
    uint8_t md[32];
    ake_file_part parts[8] = {{MAGIC, 8}, {&json_len, 8}, {json, json_len}, {&n, 8},
                              {params, bytes}, {m, bytes}, {v, bytes}, {md, 32}};
    if (!digest(parts, 7, md)) return ake_errf(err, errlen, AKE_EIO, "%s: sha256 failed", path);
    return ake_write_file_atomic_parts(path, parts, 8, err, errlen);
}

void ake_checkpoint_release(ake_checkpoint *c) {
    free(c->json);
    free(c->params);
    free(c->m);
    free(c->v);
    memset(c, 0, sizeof *c);
}

ake_status ake_checkpoint_read(const char *path, ake_checkpoint *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    char *buf = NULL;
    size_t len = 0;
    ake_status rc = ake_read_file(path, MAX_CHECKPOINT_BYTES, &buf, &len, err, errlen);
    if (rc != AKE_OK) return rc;
    uint64_t json_len = 0, n = 0;
    bool ok = len >= 8 + 8 + 8 + 32 && memcmp(buf, MAGIC, 8) == 0;
    if (ok) memcpy(&json_len, buf + 8, 8);
    ok = ok && json_len <= len - 56;
    if (ok) memcpy(&n, buf + 16 + json_len, 8);
    ok = ok && n <= (len - 56 - json_len) / 12 && 56 + json_len + 12 * n == len;
    if (!ok) {
        free(buf);
        return ake_errf(err, errlen, AKE_EFORMAT, "%s is not an akidb-embed checkpoint (or is truncated)", path);
    }
    uint8_t md[32];
    const ake_file_part all = {buf, len - 32};
    if (!digest(&all, 1, md) || memcmp(md, buf + len - 32, 32) != 0) {
        free(buf);
        return ake_errf(err, errlen, AKE_EFORMAT, "%s: checksum mismatch (a damaged or altered file)", path);
    }
    const size_t bytes = (size_t)n * sizeof(float);
    out->json = malloc(json_len + 1);
    out->params = malloc(bytes ? bytes : 1);
    out->m = malloc(bytes ? bytes : 1);
    out->v = malloc(bytes ? bytes : 1);
    if (!out->json || !out->params || !out->m || !out->v) {
        free(buf);
        ake_checkpoint_release(out);
        return ake_errf(err, errlen, AKE_ENOMEM, "out of memory reading %s", path);
    }
    memcpy(out->json, buf + 16, json_len);
    out->json[json_len] = 0;
    const char *arrays = buf + 24 + json_len;
    memcpy(out->params, arrays, bytes);
    memcpy(out->m, arrays + bytes, bytes);
    memcpy(out->v, arrays + 2 * bytes, bytes);
    out->numel = (int64_t)n;
    free(buf);
    return AKE_OK;
}
