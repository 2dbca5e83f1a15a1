/* Backend vtable behind engine.h. Each backend fills one ake_engine_ops. */
#ifndef AKE_ENGINE_ENGINE_IMPL_H
#define AKE_ENGINE_ENGINE_IMPL_H

#include "engine/engine.h"

typedef struct {
    const char *name;
    void (*free)(ake_engine *e);
    ake_status (*embed)(ake_engine *e, const int32_t *ids, const int32_t *cu_seqlens, int32_t n, float *out,
                        char *err, size_t errlen);
} ake_engine_ops;

/* Common head of every backend's engine struct (backends embed it first). */
struct ake_engine {
    const ake_engine_ops *ops;
    const ake_model *model;   /* borrowed */
    ake_engine_opts opts;     /* limits as resolved at creation */
};

ake_status ake_cpu_engine_create(const ake_model *model, const ake_engine_opts *opts, ake_engine **out, char *err,
                                 size_t errlen);

#endif
