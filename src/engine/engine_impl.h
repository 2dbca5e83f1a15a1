/* Backend vtable behind engine.h. Each backend fills one ake_engine_ops. */
#ifndef AKE_ENGINE_ENGINE_IMPL_H
#define AKE_ENGINE_ENGINE_IMPL_H

#include "engine/engine.h"

typedef struct {
    const char *name;
    void (*free)(ake_engine *e);
    ake_status (*embed)(ake_engine *e, const int32_t *ids, const int32_t *cu_seqlens, int32_t n, float *out,
                        char *err, size_t errlen);
    /* Required: ake_engine_embed_tokens. Batches arrive checked, n >= 1, no call in flight. */
    ake_status (*hidden)(ake_engine *e, const int32_t *ids, const int32_t *cu_seqlens, int32_t n, float *out,
                         char *err, size_t errlen);
    /* Optional (NULL: submit runs embed, wait does nothing). Batches arrive checked. */
    ake_status (*submit)(ake_engine *e, const int32_t *ids, const int32_t *cu_seqlens, int32_t n, float *out,
                         char *err, size_t errlen);
    ake_status (*wait)(ake_engine *e, char *err, size_t errlen);
    const char *(*hardware)(const ake_engine *e); /* optional: NULL means "cpu" */
    /* optional: NULL means observers are not supported */
    ake_status (*set_observer)(ake_engine *e, ake_linear_observer fn, void *ctx, char *err, size_t errlen);
} ake_engine_ops;

/* Common head of every backend's engine struct (backends embed it first). */
struct ake_engine {
    const ake_engine_ops *ops;
    const ake_model *model;   /* borrowed */
    ake_engine_opts opts;     /* limits as resolved at creation (device and precision too) */
    char device[24];          /* "cpu" or "cuda:N", set by ake_engine_create; opts.device points here */
    int32_t inflight;         /* submitted calls not yet waited for (engine.c keeps it) */
    struct {
        float *out;
        int32_t n;
    } pending[AKE_ENGINE_MAX_INFLIGHT]; /* the outputs of those calls, oldest first (engine.c) */
    size_t weight_bytes;      /* resident weight bytes, set by the backend at creation */
};

/* Capability queries behind ake_engine_caps_query (out is zeroed by the caller). */
ake_status ake_cpu_engine_caps(ake_engine_caps *out, char *err, size_t errlen);
ake_status ake_cuda_engine_caps(int device_index, ake_engine_caps *out, char *err, size_t errlen);

ake_status ake_cpu_engine_create(const ake_model *model, const ake_engine_opts *opts, ake_engine **out, char *err,
                                 size_t errlen);

/* src/engine/cuda/ (built when the Makefile finds nvcc; AKE_HAVE_CUDA is then defined).
 * opts->device is "cuda" or "cuda:N"; opts->precision is one its caps list (resolved). */
ake_status ake_cuda_engine_create(const ake_model *model, const ake_engine_opts *opts, ake_engine **out, char *err,
                                  size_t errlen);
int ake_cuda_device_count(void);

#endif
