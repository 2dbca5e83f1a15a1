/* Reader of tests/golden/distill/steps.json (written by make_distill_golden.py): PyTorch
 * training a tiny student for 50 steps, per run (mse, hidden, contrastive) its optimizer and
 * loss settings and the loss and gradient norm of every step, and the batches all runs share.
 * Header-only, included by the CPU test (tests/unit/test_distill.c) and the GPU test
 * (tests/gpu/test_train_gpu.c), which differ in what they check, not in how they read.
 * Paths are relative to the repository root (where make runs the tests). */
#ifndef AKE_TESTS_GOLDEN_STEPS_H
#define AKE_TESTS_GOLDEN_STEPS_H

#include <math.h>
#include <stdio.h>

#include <json-c/json.h>

#include "train/trainer.h"

#define GOLDEN_DIR "tests/golden/distill"
enum { GOLDEN_MAX_TOKENS = 1024, GOLDEN_MAX_BATCH = 64 };

typedef struct {
    json_object *root, *batches, *loss, *grad_norm; /* loss, grad_norm: [steps] doubles */
    int32_t layers[8], nlayers;                     /* the teacher layers the student keeps */
    int steps;
} golden_run;

static inline double golden_num_(json_object *o, const char *key, bool *ok) {
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v)) {
        *ok = false;
        return NAN;
    }
    return json_object_get_double(v);
}

/* Opens run `name` and fills the trainer options it was made with (optimizer, schedule, loss
 * weights; o's device fields are left as the caller set them, max_tokens/max_batch to the
 * golden batches' bounds). Returns false with err set when the file or a field is missing. */
static inline bool golden_open(const char *name, golden_run *g, ake_trainer_opts *o, char *err, size_t errlen) {
    *g = (golden_run){0};
    json_object *runs, *r, *settings, *layers, *v;
    g->root = json_object_from_file(GOLDEN_DIR "/steps.json");
    if (!g->root || !json_object_object_get_ex(g->root, "runs", &runs) ||
        !json_object_object_get_ex(runs, name, &r) || !json_object_object_get_ex(r, "settings", &settings) ||
        !json_object_object_get_ex(r, "loss", &g->loss) || !json_object_object_get_ex(r, "grad_norm", &g->grad_norm) ||
        !json_object_object_get_ex(g->root, "batches", &g->batches) ||
        !json_object_object_get_ex(g->root, "layers", &layers) || !json_object_object_get_ex(settings, "schedule", &v)) {
        snprintf(err, errlen, "%s/steps.json: run %s or one of its fields is missing", GOLDEN_DIR, name);
        return false;
    }
    g->steps = (int)json_object_array_length(g->loss);
    g->nlayers = (int32_t)json_object_array_length(layers);
    if (g->nlayers < 1 || g->nlayers > 8 || (int)json_object_array_length(g->batches) < g->steps) {
        snprintf(err, errlen, "%s/steps.json: %d layers, %d batches for %d steps", GOLDEN_DIR, g->nlayers,
                 (int)json_object_array_length(g->batches), g->steps);
        return false;
    }
    for (int32_t j = 0; j < g->nlayers; j++) g->layers[j] = json_object_get_int(json_object_array_get_idx(layers, j));
    bool ok = true;
    o->max_tokens = GOLDEN_MAX_TOKENS;
    o->max_batch = GOLDEN_MAX_BATCH;
    o->optim = (ake_optim_config){.lr = golden_num_(settings, "lr", &ok),
                                  .warmup_steps = (int64_t)golden_num_(settings, "warmup_steps", &ok),
                                  .total_steps = (int64_t)golden_num_(settings, "total_steps", &ok),
                                  .weight_decay = golden_num_(settings, "weight_decay", &ok),
                                  .beta1 = golden_num_(settings, "beta1", &ok),
                                  .beta2 = golden_num_(settings, "beta2", &ok),
                                  .eps = golden_num_(settings, "eps", &ok),
                                  .max_grad_norm = golden_num_(settings, "max_grad_norm", &ok)};
    if (ake_lr_schedule_parse(json_object_get_string(v), &o->optim.schedule) != 0) ok = false;
    o->loss = (ake_loss_weights){.hidden = golden_num_(settings, "hidden_loss_weight", &ok)};
    if (json_object_object_get_ex(settings, "contrastive_weight", &v)) {
        o->loss.contrastive = json_object_get_double(v);
        o->loss.temperature = golden_num_(settings, "temperature", &ok);
    }
    if (!ok) snprintf(err, errlen, "%s/steps.json: run %s: a setting is missing or unknown", GOLDEN_DIR, name);
    return ok;
}

/* Batch s as packed token ids and cu_seqlens (ids: GOLDEN_MAX_TOKENS, cu: GOLDEN_MAX_BATCH + 1);
 * returns its sentence count, or -1 when it does not fit those bounds. */
static inline int32_t golden_batch(const golden_run *g, int s, int32_t *ids, int32_t *cu) {
    json_object *b = json_object_array_get_idx(g->batches, s);
    const int32_t n = (int32_t)json_object_array_length(b);
    if (n > GOLDEN_MAX_BATCH) return -1;
    cu[0] = 0;
    for (int32_t i = 0; i < n; i++) {
        json_object *seq = json_object_array_get_idx(b, i);
        const int32_t len = (int32_t)json_object_array_length(seq);
        if (cu[i] + len > GOLDEN_MAX_TOKENS) return -1;
        for (int32_t t = 0; t < len; t++) ids[cu[i] + t] = json_object_get_int(json_object_array_get_idx(seq, t));
        cu[i + 1] = cu[i] + len;
    }
    return n;
}

static inline double golden_loss(const golden_run *g, int s) {
    return json_object_get_double(json_object_array_get_idx(g->loss, s));
}

static inline double golden_grad_norm(const golden_run *g, int s) {
    return json_object_get_double(json_object_array_get_idx(g->grad_norm, s));
}

static inline void golden_close(golden_run *g) {
    json_object_put(g->root);
    *g = (golden_run){0};
}

#endif
