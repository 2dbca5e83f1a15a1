/* Backend registry and the checks every backend shares at the door. */
#include "engine/engine_impl.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

const char *ake_precision_name(ake_precision p) {
    switch (p) {
    case AKE_PREC_FP32: return "fp32";
    case AKE_PREC_FP16: return "fp16";
    case AKE_PREC_BF16: return "bf16";
    case AKE_PREC_INT8: return "int8";
    case AKE_PREC_FP8: return "fp8";
    default: return "default";
    }
}

int ake_precision_parse(const char *s, ake_precision *out) {
    static const struct { const char *name; ake_precision p; } names[] = {
        {"fp32", AKE_PREC_FP32}, {"f32", AKE_PREC_FP32},  {"float32", AKE_PREC_FP32},  {"fp16", AKE_PREC_FP16},
        {"f16", AKE_PREC_FP16},  {"float16", AKE_PREC_FP16}, {"bf16", AKE_PREC_BF16}, {"bfloat16", AKE_PREC_BF16},
        {"int8", AKE_PREC_INT8}, {"i8", AKE_PREC_INT8},   {"fp8", AKE_PREC_FP8},      {"fp8_e4m3", AKE_PREC_FP8}};
    for (size_t i = 0; s && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].p;
            return 0;
        }
    return -1;
}

int ake_engine_cuda_devices(void) {
#ifdef AKE_HAVE_CUDA
    return ake_cuda_device_count();
#else
    return 0;
#endif
}

/* "cuda" or "cuda:N" with N a small non-negative integer. */
static bool is_cuda_device(const char *device) {
    if (strncmp(device, "cuda", 4) != 0) return false;
    const char *p = device + 4;
    if (*p == 0) return true;
    if (*p++ != ':' || !*p || strlen(p) > 3) return false;
    for (; *p; p++)
        if (*p < '0' || *p > '9') return false;
    return true;
}

ake_status ake_engine_caps_query(const char *device, ake_engine_caps *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (device && strcmp(device, "cpu") == 0) return ake_cpu_engine_caps(out, err, errlen);
    if (!device || !is_cuda_device(device))
        return ake_errf(err, errlen, AKE_EINVAL, "unknown device '%s' (expected cpu, cuda:N or auto)",
                        device ? device : "(null)");
#ifdef AKE_HAVE_CUDA
    return ake_cuda_engine_caps(device[4] == ':' ? atoi(device + 5) : 0, out, err, errlen);
#else
    return ake_errf(err, errlen, AKE_EUNSUPPORTED,
                    "device '%s': this build has no CUDA backend (built with CUDA=0 or without nvcc)", device);
#endif
}

/* "fp32, int8" for the bits of caps->precisions. */
static const char *precision_list(const ake_engine_caps *caps, char *buf, size_t len) {
    size_t o = 0;
    buf[0] = 0;
    for (int p = AKE_PREC_FP32; p < AKE_PREC_COUNT; p++)
        if (caps->precisions & (1u << p))
            o += (size_t)snprintf(buf + o, o < len ? len - o : 0, "%s%s", o ? ", " : "", ake_precision_name(p));
    return buf;
}

ake_status ake_engine_create(const ake_model *model, const ake_engine_opts *opts, ake_engine **out, char *err,
                             size_t errlen) {
    *out = NULL;
    const char *device = opts && opts->device ? opts->device : "cpu";
    if (!model) return ake_errf(err, errlen, AKE_EINVAL, "no model given to the engine");
    if (!opts || opts->max_tokens <= 0 || opts->max_batch <= 0)
        return ake_errf(err, errlen, AKE_EINVAL, "engine limits must be positive (max_tokens, max_batch)");
    ake_engine_opts o = *opts;
    if (o.precision < AKE_PREC_DEFAULT || o.precision >= AKE_PREC_COUNT)
        return ake_errf(err, errlen, AKE_EINVAL, "unknown precision %d", (int)o.precision);
    /* auto: the first GPU when one is visible, else the CPU, which computes in fp32 when
     * asked for a GPU-only precision (callers say so to the user: ake_engine_device tells). */
    bool fallback = false;
    if (strcmp(device, "auto") == 0) {
        fallback = ake_engine_cuda_devices() == 0;
        device = fallback ? "cpu" : "cuda:0";
    }
    ake_engine_caps caps;
    ake_status st = ake_engine_caps_query(device, &caps, err, errlen);
    if (st != AKE_OK) return st;
    /* a quantized folder runs in its own 8-bit type where the device has it */
    const ake_precision own = model->qdtype == AKE_DT_I8 ? AKE_PREC_INT8 : AKE_PREC_FP8;
    if (o.precision == AKE_PREC_DEFAULT && model->qdtype != AKE_DT_F32 && (caps.precisions & (1u << own)))
        o.precision = own;
    if (o.precision == AKE_PREC_DEFAULT) o.precision = caps.default_precision;
    if (!(caps.precisions & (1u << o.precision))) {
        if (!fallback) {
            char list[64];
            return ake_errf(err, errlen, AKE_EUNSUPPORTED, "device '%s' (%s) computes in %s, not %s", device,
                            caps.hardware, precision_list(&caps, list, sizeof list), ake_precision_name(o.precision));
        }
        o.precision = caps.default_precision;
    }
    o.device = device;
    if (strcmp(device, "cpu") == 0) {
        st = ake_cpu_engine_create(model, &o, out, err, errlen);
    } else {
#ifdef AKE_HAVE_CUDA
        st = ake_cuda_engine_create(model, &o, out, err, errlen);
#else
        st = AKE_EUNSUPPORTED; /* unreachable: the capability query refused the device */
#endif
    }
    if (st != AKE_OK) return st;
    ake_engine *e = *out;
    snprintf(e->device, sizeof e->device, "%s", strcmp(device, "cuda") == 0 ? "cuda:0" : device);
    e->opts.device = e->device;
    e->opts.precision = o.precision;
    e->inflight = 0;
    return AKE_OK;
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

/* Index of the first row of out [rows, hidden] that holds a NaN or an infinity, or -1. */
static int32_t nonfinite_row(const ake_engine *e, const float *out, int32_t rows) {
    const int32_t d = e->model->cfg.hidden;
    for (int32_t i = 0; i < rows; i++) {
        const float *v = out + (size_t)i * d;
        bool finite = true;
        for (int32_t c = 0; c < d; c++) finite &= isfinite(v[c]) != 0;
        if (!finite) return i;
    }
    return -1;
}

/* A vector with a NaN or an infinity is an error, not an answer: weights or scales out of
 * range (a folder's scales are checked finite and > 0 at load, but a finite scale can still
 * overflow the arithmetic) must not reach users as JSON nulls. */
static ake_status check_finite(const ake_engine *e, const float *out, int32_t n, char *err, size_t errlen) {
    const int32_t i = nonfinite_row(e, out, n);
    if (i >= 0)
        return ake_errf(err, errlen, AKE_EFORMAT,
                        "%s: the forward pass gave a non-finite value for sequence %d (weights or scales out "
                        "of range)",
                        e->model->name, i);
    return AKE_OK;
}

ake_status ake_engine_embed(ake_engine *e, const int32_t *ids, const int32_t *cu_seqlens, int32_t n, float *out,
                            char *err, size_t errlen) {
    if (e->inflight)
        return ake_errf(err, errlen, AKE_EINVAL, "ake_engine_embed called with %d submitted calls not waited for",
                        e->inflight);
    ake_status st = check_batch(e, ids, cu_seqlens, n, err, errlen);
    if (st != AKE_OK || n == 0) return st;
    st = e->ops->embed(e, ids, cu_seqlens, n, out, err, errlen);
    return st != AKE_OK ? st : check_finite(e, out, n, err, errlen);
}

ake_status ake_engine_embed_tokens(ake_engine *e, const int32_t *ids, const int32_t *cu_seqlens, int32_t n,
                                   float *out, char *err, size_t errlen) {
    if (e->inflight)
        return ake_errf(err, errlen, AKE_EINVAL,
                        "ake_engine_embed_tokens called with %d submitted calls not waited for", e->inflight);
    ake_status st = check_batch(e, ids, cu_seqlens, n, err, errlen);
    if (st != AKE_OK || n == 0) return st;
    st = e->ops->hidden(e, ids, cu_seqlens, n, out, err, errlen);
    if (st != AKE_OK) return st;
    const int32_t t = nonfinite_row(e, out, cu_seqlens[n]);
    if (t < 0) return AKE_OK;
    int32_t s = 0;
    while (cu_seqlens[s + 1] <= t) s++;
    return ake_errf(err, errlen, AKE_EFORMAT,
                    "%s: the forward pass gave a non-finite value for token %d of sequence %d (weights or scales "
                    "out of range)",
                    e->model->name, t - cu_seqlens[s], s);
}

ake_status ake_engine_submit(ake_engine *e, const int32_t *ids, const int32_t *cu_seqlens, int32_t n, float *out,
                             char *err, size_t errlen) {
    if (e->inflight >= AKE_ENGINE_MAX_INFLIGHT)
        return ake_errf(err, errlen, AKE_EINVAL, "%d calls already in flight; wait for one first", e->inflight);
    ake_status st = check_batch(e, ids, cu_seqlens, n, err, errlen);
    if (st != AKE_OK) return st;
    if (e->ops->submit) {
        st = e->ops->submit(e, ids, cu_seqlens, n, out, err, errlen);
    } else {
        st = n ? e->ops->embed(e, ids, cu_seqlens, n, out, err, errlen) : AKE_OK;
    }
    if (st == AKE_OK) {
        e->pending[e->inflight].out = out;
        e->pending[e->inflight].n = n;
        e->inflight++;
    }
    return st;
}

ake_status ake_engine_wait(ake_engine *e, char *err, size_t errlen) {
    if (e->inflight <= 0) return ake_errf(err, errlen, AKE_EINVAL, "no submitted call to wait for");
    e->inflight--;
    float *out = e->pending[0].out;
    const int32_t n = e->pending[0].n;
    memmove(&e->pending[0], &e->pending[1], sizeof e->pending - sizeof e->pending[0]);
    ake_status st = e->ops->wait ? e->ops->wait(e, err, errlen) : AKE_OK;
    return st != AKE_OK ? st : check_finite(e, out, n, err, errlen);
}

ake_status ake_engine_set_observer(ake_engine *e, ake_linear_observer fn, void *ctx, char *err, size_t errlen) {
    if (!e->ops->set_observer)
        return ake_errf(err, errlen, AKE_EUNSUPPORTED, "the %s engine takes no calibration observer (use the cpu)",
                        e->ops->name);
    return e->ops->set_observer(e, fn, ctx, err, errlen);
}

size_t ake_engine_weight_bytes(const ake_engine *e) { return e->weight_bytes; }

int32_t ake_engine_dim(const ake_engine *e) { return e->model->cfg.hidden; }
const char *ake_engine_device(const ake_engine *e) { return e->device; }
ake_precision ake_engine_precision(const ake_engine *e) { return e->opts.precision; }
const char *ake_engine_hardware(const ake_engine *e) { return e->ops->hardware ? e->ops->hardware(e) : "cpu"; }

/* "0" -> off, "1" -> on, anything else (or unset) -> default */
static ake_tri tri_env(const char *name) {
    const char *v = getenv(name);
    return !v ? AKE_TRI_DEFAULT : !strcmp(v, "0") ? AKE_TRI_OFF : !strcmp(v, "1") ? AKE_TRI_ON : AKE_TRI_DEFAULT;
}

ake_cuda_tuning ake_cuda_tuning_from_env(void) {
    ake_cuda_tuning tu = {0}, *t = &tu;
    t->graphs = tri_env("AKE_CUDA_GRAPHS");
    const char *v = getenv("AKE_CUDA_GELU");
    t->gelu_tanh = v && !strcmp(v, "tanh") ? AKE_TRI_ON : AKE_TRI_DEFAULT;
    t->gemm_tune = tri_env("AKE_CUDA_GEMM_TUNE");
    t->res32 = tri_env("AKE_CUDA_RES32");
    v = getenv("AKE_CUDA_ATTN");
    t->attention = v && (!strcmp(v, "1") || !strcmp(v, "2")) ? atoi(v) : 0;
    v = getenv("AKE_CUDA_SYNC");
    t->sync = !v                      ? AKE_CUDA_SYNC_AUTO
              : !strcmp(v, "spin")  ? AKE_CUDA_SYNC_SPIN
              : !strcmp(v, "yield") ? AKE_CUDA_SYNC_YIELD
              : !strcmp(v, "block") ? AKE_CUDA_SYNC_BLOCK
                                    : AKE_CUDA_SYNC_AUTO;
    return tu;
}
