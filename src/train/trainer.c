/* The trainer: FP32 master weights, on the CPU (student_cpu.h, FP32 arithmetic) or a CUDA GPU
 * (trainer_cuda.h, BF16 GEMMs). The teacher's targets come from the inference engine: its
 * pooled embedding from an engine over the whole teacher, and, for the hidden-state loss, the
 * output of teacher layer L from an engine over the teacher cut after layer L
 * (ake_engine_embed_tokens returns a model's last hidden state, and the engine reads only the
 * first cfg.layers layers). */
#include "train/trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/student_cpu.h"
#ifdef AKE_HAVE_CUDA
#include "train/trainer_cuda.h"
#endif

struct ake_trainer {
    ake_student_layout layout;
    ake_trainer_opts opts;
    const ake_model *teacher;
    ake_engine *teacher_engine;                     /* owned: the whole teacher */
    ake_model cut[AKE_STUDENT_MAX_LAYERS];          /* shallow copies of the teacher, cut after teacher_layer[j] */
    ake_engine *cut_engine[AKE_STUDENT_MAX_LAYERS]; /* owned, hidden loss only */
    float *params, *grads, *m, *v;                  /* owned [numel] each */
    float *word;                                    /* owned [vocab, hidden] frozen */
    float *target;                                  /* owned [max_batch, hidden] */
    float *hidden_target[AKE_STUDENT_MAX_LAYERS];   /* owned [max_tokens, hidden] each, hidden loss only */
    ake_tr_acts_f32 acts;     /* CPU */
#ifdef AKE_HAVE_CUDA
    ake_train_cuda *cuda;     /* GPU: holds the state; params, m, v above are its host copies */
#endif
    int64_t steps_done;
};

void ake_trainer_free(ake_trainer *tr) {
    if (!tr) return;
    ake_engine_free(tr->teacher_engine);
    for (int32_t j = 0; j < AKE_STUDENT_MAX_LAYERS; j++) {
        ake_engine_free(tr->cut_engine[j]);
        free(tr->hidden_target[j]);
    }
    free(tr->params);
    free(tr->grads);
    free(tr->m);
    free(tr->v);
    free(tr->word);
    free(tr->target);
    ake_tr_acts_free_f32(&tr->acts);
#ifdef AKE_HAVE_CUDA
    ake_train_cuda_free(tr->cuda);
#endif
    free(tr);
}

ake_status ake_trainer_create(const ake_model *teacher, const int32_t *layers, int32_t n, const ake_trainer_opts *o,
                              ake_trainer **out, char *err, size_t errlen) {
    *out = NULL;
    const char *device = o->device ? o->device : "cpu";
    const bool gpu = strncmp(device, "cuda", 4) == 0;
    if (!gpu && strcmp(device, "cpu") != 0)
        return ake_errf(err, errlen, AKE_EINVAL, "device '%s': cpu, cuda or cuda:N", device);
#ifndef AKE_HAVE_CUDA
    if (gpu) return ake_errf(err, errlen, AKE_EUNSUPPORTED, "device %s: this build has no CUDA backend", device);
#endif
    if (o->max_tokens < 1 || o->max_batch < 1 || o->max_batch > o->max_tokens)
        return ake_errf(err, errlen, AKE_EINVAL, "batch limits %d tokens, %d sequences are not valid", o->max_tokens,
                        o->max_batch);
    const ake_loss_weights *w = &o->loss;
    if (!(w->hidden >= 0) || !isfinite(w->hidden))
        return ake_errf(err, errlen, AKE_EINVAL, "hidden-loss weight must be >= 0, not %g", w->hidden);
    if (!(w->contrastive >= 0) || !isfinite(w->contrastive))
        return ake_errf(err, errlen, AKE_EINVAL, "contrastive weight must be >= 0, not %g", w->contrastive);
    if (w->contrastive > 0 && !(w->temperature > 0 && isfinite(w->temperature)))
        return ake_errf(err, errlen, AKE_EINVAL, "the contrastive term's temperature must be > 0, not %g",
                        w->temperature);
    ake_status rc = ake_optim_check(&o->optim, err, errlen);
    if (rc != AKE_OK) return rc;
    ake_trainer *tr = calloc(1, sizeof *tr);
    if (!tr) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory");
    tr->opts = *o;
    tr->opts.device = NULL;
    tr->teacher = teacher;
    rc = ake_student_layout_init(&tr->layout, &teacher->cfg, layers, n, err, errlen);
    if (rc != AKE_OK) goto fail;
    const ake_student_layout *L = &tr->layout;
    const size_t numel = (size_t)L->numel, C = (size_t)L->cfg.hidden;
    tr->params = malloc(numel * sizeof(float));
    tr->grads = malloc(numel * sizeof(float));
    tr->m = calloc(numel, sizeof(float));
    tr->v = calloc(numel, sizeof(float));
    tr->word = malloc((size_t)L->cfg.vocab_size * C * sizeof(float));
    tr->target = malloc((size_t)o->max_batch * C * sizeof(float));
    if (!tr->params || !tr->grads || !tr->m || !tr->v || !tr->word || !tr->target) {
        rc = ake_errf(err, errlen, AKE_ENOMEM, "out of memory for a student of %zu parameters", numel);
        goto fail;
    }
    rc = ake_student_init_params(L, teacher, tr->params, tr->word, err, errlen);
    if (rc != AKE_OK) goto fail;
    if (gpu) {
#ifdef AKE_HAVE_CUDA
        int32_t max_len = o->max_len > 0 ? o->max_len : o->max_tokens;
        if (max_len > L->cfg.max_position) max_len = L->cfg.max_position;
        rc = ake_train_cuda_create(L, device, o->compute_f32 ? AKE_DT_F32 : AKE_DT_BF16, o->max_tokens, o->max_batch,
                                   max_len, tr->params, tr->word, &tr->cuda, err, errlen);
#endif
    } else {
        rc = ake_tr_acts_create_f32(&tr->acts, L, o->max_tokens, o->max_batch, err, errlen);
    }
    if (rc != AKE_OK) goto fail;
    const char *tdev = o->teacher_device ? o->teacher_device : device;
    ake_engine_opts eo = {.device = tdev, .max_tokens = o->max_tokens, .max_batch = o->max_batch,
                          .threads = o->threads,
                          .precision = strcmp(tdev, "cpu") == 0 ? AKE_PREC_FP32 : AKE_PREC_DEFAULT};
    rc = ake_engine_create(teacher, &eo, &tr->teacher_engine, err, errlen);
    if (rc != AKE_OK) goto fail;
    if (o->loss.hidden > 0)
        for (int32_t j = 0; j < n; j++) {
            tr->cut[j] = *teacher;
            tr->cut[j].cfg.layers = layers[j] + 1;
            tr->hidden_target[j] = malloc((size_t)o->max_tokens * C * sizeof(float));
            if (!tr->hidden_target[j]) {
                rc = ake_errf(err, errlen, AKE_ENOMEM, "out of memory for hidden-state targets");
                goto fail;
            }
            rc = ake_engine_create(&tr->cut[j], &eo, &tr->cut_engine[j], err, errlen);
            if (rc != AKE_OK) goto fail;
        }
    *out = tr;
    return AKE_OK;
fail:
    ake_trainer_free(tr);
    return rc;
}

ake_status ake_trainer_step(ake_trainer *tr, const int32_t *ids, const int32_t *cu, int32_t n, ake_step_stats *st,
                            char *err, size_t errlen) {
    const ake_student_layout *L = &tr->layout;
    ake_status rc = ake_engine_embed(tr->teacher_engine, ids, cu, n, tr->target, err, errlen);
    if (rc != AKE_OK) return rc;
    const bool hidden = tr->opts.loss.hidden > 0;
    for (int32_t j = 0; hidden && j < L->cfg.layers; j++) {
        rc = ake_engine_embed_tokens(tr->cut_engine[j], ids, cu, n, tr->hidden_target[j], err, errlen);
        if (rc != AKE_OK) return rc;
    }
    const float *const *ht = (const float *const *)tr->hidden_target;
    const ake_optim_config *o = &tr->opts.optim;
    const double lr = ake_lr_at(o, tr->steps_done);
    double loss, norm;
#ifdef AKE_HAVE_CUDA
    if (tr->cuda) {
        rc = ake_train_cuda_grads(tr->cuda, ids, cu, n, tr->target, ht, &tr->opts.loss, (float)o->max_grad_norm,
                                  &loss, &norm, NULL, err, errlen);
        if (rc != AKE_OK) return rc;
        if (!isfinite(loss) || !isfinite(norm))
            return ake_errf(err, errlen, AKE_EFORMAT,
                            "step %lld: the loss (%g) or the gradient norm (%g) is not finite",
                            (long long)tr->steps_done, loss, norm);
        ake_train_cuda_update(tr->cuda, o, lr, tr->steps_done + 1);
        tr->steps_done++;
        if (st) *st = (ake_step_stats){loss, norm, lr, cu[n]};
        return AKE_OK;
    }
#endif
    ake_tr_forward_f32(&tr->acts, L, tr->params, tr->word, ids, cu, n);
    loss = ake_tr_loss_f32(&tr->acts, L, cu, n, tr->target, ht, &tr->opts.loss);
    memset(tr->grads, 0, (size_t)L->numel * sizeof(float));
    ake_tr_backward_f32(&tr->acts, L, tr->params, cu, n, tr->target, ht, &tr->opts.loss, tr->grads);
    norm = ake_l2_norm_f32(tr->grads, L->numel);
    if (!isfinite(loss) || !isfinite(norm))
        return ake_errf(err, errlen, AKE_EFORMAT, "step %lld: the loss (%g) or the gradient norm (%g) is not finite",
                        (long long)tr->steps_done, loss, norm);
    const float clip = ake_clip_factor(o, norm);
    for (int32_t k = 0; k < L->n_params; k++) {
        const ake_student_param *p = &L->param[k];
        const int64_t off = p->offset, cnt = p->rows * p->cols;
        ake_adamw_update_f32(tr->params + off, tr->grads + off, tr->m + off, tr->v + off, cnt, o, lr, clip,
                             tr->steps_done + 1, p->decay);
    }
    tr->steps_done++;
    if (st) *st = (ake_step_stats){loss, norm, lr, cu[n]};
    return AKE_OK;
}

ake_status ake_trainer_embed(ake_trainer *tr, const int32_t *ids, const int32_t *cu, int32_t n, float *out,
                             char *err, size_t errlen) {
    const ake_student_layout *L = &tr->layout;
    if (n < 0 || n > tr->opts.max_batch || cu[n] > tr->opts.max_tokens)
        return ake_errf(err, errlen, AKE_EINVAL, "batch of %d sequences, %d tokens over the trainer's limits", n,
                        n >= 0 ? cu[n] : 0);
#ifdef AKE_HAVE_CUDA
    if (tr->cuda) return ake_train_cuda_embed(tr->cuda, ids, cu, n, out, err, errlen);
#endif
    ake_tr_forward_f32(&tr->acts, L, tr->params, tr->word, ids, cu, n);
    memcpy(out, tr->acts.out, (size_t)n * L->cfg.hidden * sizeof(float));
    return AKE_OK;
}

ake_status ake_trainer_teacher_embed(ake_trainer *tr, const int32_t *ids, const int32_t *cu, int32_t n, float *out,
                                     char *err, size_t errlen) {
    return ake_engine_embed(tr->teacher_engine, ids, cu, n, out, err, errlen);
}

const ake_student_layout *ake_trainer_layout(const ake_trainer *tr) { return &tr->layout; }
int64_t ake_trainer_steps_done(const ake_trainer *tr) { return tr->steps_done; }

void ake_trainer_state_view(ake_trainer *tr, ake_trainer_state *s) {
#ifdef AKE_HAVE_CUDA
    if (tr->cuda) ake_train_cuda_download(tr->cuda, tr->params, tr->m, tr->v);
#endif
    *s = (ake_trainer_state){tr->params, tr->m, tr->v, tr->word, tr->steps_done};
}

void ake_trainer_state_commit(ake_trainer *tr, int64_t steps_done) {
#ifdef AKE_HAVE_CUDA
    if (tr->cuda) ake_train_cuda_upload(tr->cuda, tr->params, tr->m, tr->v);
#endif
    tr->steps_done = steps_done;
}
