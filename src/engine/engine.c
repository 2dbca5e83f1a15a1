/* Backend registry and the checks every backend shares at the door. */
#include "engine/engine_impl.h"

#include <string.h>

ake_status ake_engine_create(const ake_model *model, const ake_engine_opts *opts, ake_engine **out, char *err,
                             size_t errlen) {
    *out = NULL;
    const char *device = opts && opts->device ? opts->device : "cpu";
    if (!model) return ake_errf(err, errlen, AKE_EINVAL, "no model given to the engine");
    if (!opts || opts->max_tokens <= 0 || opts->max_batch <= 0)
        return ake_errf(err, errlen, AKE_EINVAL, "engine limits must be positive (max_tokens, max_batch)");
    if (strcmp(device, "cpu") == 0) return ake_cpu_engine_create(model, opts, out, err, errlen);
    if (strncmp(device, "cuda", 4) == 0)
        return ake_errf(err, errlen, AKE_EUNSUPPORTED, "device '%s': this build has no CUDA backend", device);
    return ake_errf(err, errlen, AKE_EINVAL, "unknown device '%s' (expected cpu or cuda:N)", device);
}

void ake_engine_free(ake_engine *e) {
    if (e) e->ops->free(e);
}

/* Validates a packed batch against the engine's limits and the model, so that
 * backends can trust their inputs. */
static ake_status check_batch(const ake_engine *e, const int32_t *ids, const int32_t *cu_seqlens, int32_t n,
                              char *err, size_t errlen) {
    const ake_model_config *cfg = &e->model->cfg;
    if (n < 0 || n > e->opts.max_batch)
        return ake_errf(err, errlen, AKE_EINVAL, "batch of %d sequences is outside 0..%d", n, e->opts.max_batch);
    if (!cu_seqlens || cu_seqlens[0] != 0) return ake_errf(err, errlen, AKE_EINVAL, "cu_seqlens[0] must be 0");
    for (int32_t i = 0; i < n; i++) {
        int32_t len = cu_seqlens[i + 1] - cu_seqlens[i];
        if (len < 1 || len > cfg->max_position)
            return ake_errf(err, errlen, AKE_EINVAL, "sequence %d has %d tokens; the model takes 1..%d", i, len,
                            cfg->max_position);
        if (cu_seqlens[i + 1] > e->opts.max_tokens)
            return ake_errf(err, errlen, AKE_EINVAL, "batch has more than %d tokens", e->opts.max_tokens);
    }
    int32_t total = cu_seqlens[n];
    for (int32_t t = 0; t < total; t++)
        if (ids[t] < 0 || ids[t] >= cfg->vocab_size)
            return ake_errf(err, errlen, AKE_EINVAL, "token id %d at position %d is outside the vocabulary (0..%d)",
                            ids[t], t, cfg->vocab_size - 1);
    return AKE_OK;
}

ake_status ake_engine_embed(ake_engine *e, const int32_t *ids, const int32_t *cu_seqlens, int32_t n, float *out,
                            char *err, size_t errlen) {
    ake_status st = check_batch(e, ids, cu_seqlens, n, err, errlen);
    if (st != AKE_OK || n == 0) return st;
    return e->ops->embed(e, ids, cu_seqlens, n, out, err, errlen);
}

int32_t ake_engine_dim(const ake_engine *e) { return e->model->cfg.hidden; }
const char *ake_engine_device(const ake_engine *e) { return e->ops->name; }
