#include "train/distill.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "base/fs.h"
#include "model/folder.h"
#include "text/tokenizer.h"
#include "train/checkpoint.h"
#include "train/data.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static json_object *jdouble(double v) {
    char s[40];
    snprintf(s, sizeof s, "%.17g", v);
    return json_object_new_double_s(v, s);
}

/* What a resumed run must share with the run that wrote the checkpoint. */
static json_object *settings_json(const ake_distill_opts *o, const ake_model *teacher, const char *corpus_sha,
                                  const char *valid_sha) {
    json_object *s = json_object_new_object(), *layers = json_object_new_array();
    for (int32_t j = 0; j < o->n_layers; j++) json_object_array_add(layers, json_object_new_int(o->layers[j]));
    json_object_object_add(s, "teacher", json_object_new_string(teacher->name));
    json_object_object_add(s, "teacher_layers", json_object_new_int(teacher->cfg.layers));
    json_object_object_add(s, "teacher_hidden", json_object_new_int(teacher->cfg.hidden));
    json_object_object_add(s, "layers", layers);
    json_object_object_add(s, "corpus_sha256", json_object_new_string(corpus_sha));
    json_object_object_add(s, "valid_sha256", valid_sha ? json_object_new_string(valid_sha) : NULL);
    json_object_object_add(s, "valid_size", json_object_new_int(o->valid ? 0 : o->valid_size));
    json_object_object_add(s, "steps", json_object_new_int64(o->optim.total_steps));
    json_object_object_add(s, "batch", json_object_new_int(o->batch));
    json_object_object_add(s, "max_len", json_object_new_int(o->max_len));
    json_object_object_add(s, "lr", jdouble(o->optim.lr));
    json_object_object_add(s, "warmup_steps", json_object_new_int64(o->optim.warmup_steps));
    json_object_object_add(s, "schedule", json_object_new_string(ake_lr_schedule_name(o->optim.schedule)));
    json_object_object_add(s, "weight_decay", jdouble(o->optim.weight_decay));
    json_object_object_add(s, "beta1", jdouble(o->optim.beta1));
    json_object_object_add(s, "beta2", jdouble(o->optim.beta2));
    json_object_object_add(s, "eps", jdouble(o->optim.eps));
    json_object_object_add(s, "max_grad_norm", jdouble(o->optim.max_grad_norm));
    json_object_object_add(s, "hidden_loss", jdouble(o->loss.hidden));
    json_object_object_add(s, "contrastive", jdouble(o->loss.contrastive));
    json_object_object_add(s, "temperature", jdouble(o->loss.contrastive > 0 ? o->loss.temperature : 0));
    json_object_object_add(s, "seed", json_object_new_int64((int64_t)o->seed));
    json_object_object_add(s, "device", json_object_new_string(o->device ? o->device : "cpu"));
    json_object_object_add(s, "teacher_device",
                           json_object_new_string(o->teacher_device ? o->teacher_device : o->device ? o->device : "cpu"));
    const bool gpu = o->device && strncmp(o->device, "cuda", 4) == 0;
    json_object_object_add(s, "precision", json_object_new_string(!gpu || o->compute_f32 ? "fp32" : "bf16"));
    return s;
}

/* The per-step and validation history, kept in the checkpoint so a resumed run's curve is whole. */
typedef struct {
    int64_t steps;
    double *loss, *grad_norm, *lr;  /* [total steps] */
    json_object *valid;             /* owned array of {step, recall, mean_cos, min_cos} */
    double train_seconds;           /* over every process of the run */
    int64_t tokens;
} history;

static void history_free(history *h) {
    free(h->loss);
    free(h->grad_norm);
    free(h->lr);
    json_object_put(h->valid);
}

static json_object *history_json(const history *h) {
    json_object *o = json_object_new_object(), *loss = json_object_new_array(), *gn = json_object_new_array(),
                *lr = json_object_new_array();
    for (int64_t s = 0; s < h->steps; s++) {
        json_object_array_add(loss, jdouble(h->loss[s]));
        json_object_array_add(gn, jdouble(h->grad_norm[s]));
        json_object_array_add(lr, jdouble(h->lr[s]));
    }
    json_object_object_add(o, "loss", loss);
    json_object_object_add(o, "grad_norm", gn);
    json_object_object_add(o, "lr", lr);
    json_object_object_add(o, "valid", json_object_get(h->valid));
    json_object_object_add(o, "train_seconds", jdouble(h->train_seconds));
    json_object_object_add(o, "tokens", json_object_new_int64(h->tokens));
    return o;
}

static bool history_parse(json_object *o, int64_t steps_done, history *h) {
    json_object *loss, *gn, *lr, *valid, *secs, *tokens;
    if (!json_object_object_get_ex(o, "loss", &loss) || !json_object_object_get_ex(o, "grad_norm", &gn) ||
        !json_object_object_get_ex(o, "lr", &lr) || !json_object_object_get_ex(o, "valid", &valid) ||
        !json_object_object_get_ex(o, "train_seconds", &secs) || !json_object_object_get_ex(o, "tokens", &tokens) ||
        !json_object_is_type(valid, json_type_array))
        return false;
    if ((int64_t)json_object_array_length(loss) != steps_done || (int64_t)json_object_array_length(gn) != steps_done ||
        (int64_t)json_object_array_length(lr) != steps_done)
        return false;
    for (int64_t s = 0; s < steps_done; s++) {
        h->loss[s] = json_object_get_double(json_object_array_get_idx(loss, s));
        h->grad_norm[s] = json_object_get_double(json_object_array_get_idx(gn, s));
        h->lr[s] = json_object_get_double(json_object_array_get_idx(lr, s));
    }
    json_object_put(h->valid);
    h->valid = json_object_get(valid);
    h->steps = steps_done;
    h->train_seconds = json_object_get_double(secs);
    h->tokens = json_object_get_int64(tokens);
    return true;
}

/* Embeds sentences [0, c->n) of c with the student (teacher: false) or the teacher, `batch` per call. */
static ake_status embed_all(ake_trainer *tr, const ake_token_corpus *c, int32_t batch, bool teacher, float *out,
                            int32_t *ids, int32_t *cu, char *err, size_t errlen) {
    const int32_t C = ake_trainer_layout(tr)->cfg.hidden;
    for (int64_t first = 0; first < c->n; first += batch) {
        const int32_t n = (int32_t)(c->n - first < batch ? c->n - first : batch);
        cu[0] = 0;
        for (int32_t i = 0; i < n; i++) {
            const int64_t a = c->cu[first + i], len = c->cu[first + i + 1] - a;
            memcpy(ids + cu[i], c->ids + a, (size_t)len * sizeof *ids);
            cu[i + 1] = cu[i] + (int32_t)len;
        }
        ake_status rc = teacher ? ake_trainer_teacher_embed(tr, ids, cu, n, out + first * C, err, errlen)
                                : ake_trainer_embed(tr, ids, cu, n, out + first * C, err, errlen);
        if (rc != AKE_OK) return rc;
    }
    return AKE_OK;
}

static void note(const ake_distill_hooks *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const ake_distill_hooks *h, const char *fmt, ...) {
    if (!h || !h->on_note) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    h->on_note(h->ctx, msg);
}

static ake_status path_join(char *dst, size_t cap, const char *dir, const char *name, char *err, size_t errlen) {
    if (snprintf(dst, cap, "%s/%s", dir, name) >= (int)cap)
        return ake_errf(err, errlen, AKE_ETOOLONG, "path too long: %s/%s", dir, name);
    return AKE_OK;
}

static ake_status write_checkpoint(const char *path, ake_trainer *tr, json_object *settings, const history *hist,
                                   char *err, size_t errlen) {
    ake_trainer_state st;
    ake_trainer_state_view(tr, &st);
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "format", json_object_new_string("akidb-embed distill checkpoint 1"));
    json_object_object_add(doc, "steps_done", json_object_new_int64(st.steps_done));
    json_object_object_add(doc, "settings", json_object_get(settings));
    json_object_object_add(doc, "history", history_json(hist));
    const char *text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN);
    ake_status rc = ake_checkpoint_write(path, text, st.params, st.m, st.v, ake_trainer_layout(tr)->numel, err,
                                         errlen);
    json_object_put(doc);
    return rc;
}

/* Loads the checkpoint at path into tr and hist, after checking that it was made
 * with `settings`. */
static ake_status resume_from(const char *path, ake_trainer *tr, json_object *settings, int64_t total_steps,
                              history *hist, char *err, size_t errlen) {
    ake_checkpoint ck;
    ake_status rc = ake_checkpoint_read(path, &ck, err, errlen);
    if (rc != AKE_OK) return rc;
    json_object *doc = json_tokener_parse(ck.json), *saved, *steps_j, *hist_j;
    rc = AKE_EFORMAT;
    if (!doc || !json_object_object_get_ex(doc, "settings", &saved) ||
        !json_object_object_get_ex(doc, "steps_done", &steps_j) ||
        !json_object_object_get_ex(doc, "history", &hist_j)) {
        ake_errf(err, errlen, rc, "%s: the checkpoint's state document is malformed", path);
        goto done;
    }
    json_object_object_foreach(settings, key, want) {
        json_object *got = NULL;
        const bool has = json_object_object_get_ex(saved, key, &got); /* got is NULL for a JSON null */
        const char *g = has ? json_object_to_json_string_ext(got, JSON_C_TO_STRING_PLAIN) : "(absent)";
        char gbuf[256];
        snprintf(gbuf, sizeof gbuf, "%s", g);
        const char *w = json_object_to_json_string_ext(want, JSON_C_TO_STRING_PLAIN);
        if (strcmp(gbuf, w) != 0) {
            rc = ake_errf(err, errlen, AKE_EINVAL,
                          "%s was made with %s %s, and this run has %s: resume with the run's own settings", path,
                          key, gbuf, w);
            goto done;
        }
    }
    const ake_student_layout *L = ake_trainer_layout(tr);
    const int64_t steps_done = json_object_get_int64(steps_j);
    if (ck.numel != L->numel || steps_done < 0 || steps_done > total_steps ||
        !history_parse(hist_j, steps_done, hist)) {
        ake_errf(err, errlen, rc, "%s does not fit this student (%lld parameters, checkpoint %lld) or its history is "
                                  "malformed", path, (long long)L->numel, (long long)ck.numel);
        goto done;
    }
    ake_trainer_state st;
    ake_trainer_state_view(tr, &st);
    memcpy(st.params, ck.params, (size_t)ck.numel * sizeof(float));
    memcpy(st.m, ck.m, (size_t)ck.numel * sizeof(float));
    memcpy(st.v, ck.v, (size_t)ck.numel * sizeof(float));
    ake_trainer_state_commit(tr, steps_done);
    rc = AKE_OK;
done:
    json_object_put(doc);
    ake_checkpoint_release(&ck);
    return rc;
}

static ake_status write_curve(const char *path, const history *h, char *err, size_t errlen) {
    size_t cap = 256 + (size_t)h->steps * 96 + json_object_array_length(h->valid) * 96, len = 0;
    char *buf = malloc(cap);
    if (!buf) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory writing %s", path);
    len += (size_t)snprintf(buf + len, cap - len, "# step\tloss\tgrad_norm\tlr\trecall@10\tmean_cos\n");
    for (int64_t s = 0; s < h->steps; s++)
        len += (size_t)snprintf(buf + len, cap - len, "%lld\t%.17g\t%.9g\t%.9g\t\t\n", (long long)(s + 1), h->loss[s],
                                h->grad_norm[s], h->lr[s]);
    for (size_t i = 0; i < json_object_array_length(h->valid); i++) {
        json_object *v = json_object_array_get_idx(h->valid, i), *step, *rec, *cos;
        if (!json_object_object_get_ex(v, "step", &step) || !json_object_object_get_ex(v, "recall", &rec) ||
            !json_object_object_get_ex(v, "mean_cos", &cos))
            continue;
        len += (size_t)snprintf(buf + len, cap - len, "%lld\t\t\t\t%.6f\t%.6f\n", (long long)json_object_get_int64(step),
                                json_object_get_double(rec), json_object_get_double(cos));
    }
    ake_status rc = ake_write_file_atomic(path, buf, len, err, errlen);
    free(buf);
    return rc;
}

static ake_status write_report(const char *path, const ake_distill_opts *o, json_object *settings,
                               const history *hist, const ake_distill_result *r, const ake_token_corpus *train,
                               int64_t valid_n, char *err, size_t errlen) {
    json_object *doc = json_object_new_object(), *fin = json_object_new_object();
    json_object_object_add(doc, "made_by", json_object_new_string("akidb-embed distill"));
    json_object_object_add(doc, "teacher", json_object_new_string(o->teacher));
    json_object_object_add(doc, "settings", json_object_get(settings));
    json_object_object_add(doc, "corpus", json_object_new_string(o->corpus));
    json_object_object_add(doc, "corpus_sentences", json_object_new_int64(train->n));
    json_object_object_add(doc, "valid_sentences", json_object_new_int64(valid_n));
    json_object_object_add(doc, "steps_done", json_object_new_int64(r->steps_done));
    json_object_object_add(doc, "train_seconds", jdouble(hist->train_seconds));
    json_object_object_add(doc, "train_tokens", json_object_new_int64(hist->tokens));
    json_object_object_add(doc, "final_loss", hist->steps ? jdouble(hist->loss[hist->steps - 1]) : NULL);
    if (r->have_valid) {
        json_object_object_add(fin, "recall_at_10", jdouble(r->valid.recall));
        json_object_object_add(fin, "mean_cos", jdouble(r->valid.mean_cos));
        json_object_object_add(fin, "min_cos", jdouble(r->valid.min_cos));
        json_object_object_add(fin, "queries", json_object_new_int(r->valid.queries));
    }
    json_object_object_add(doc, "final_validation", fin);
    const char *text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
    ake_status rc = ake_write_file_atomic(path, text, strlen(text), err, errlen);
    json_object_put(doc);
    return rc;
}

ake_status ake_distill_run(const ake_distill_opts *o, const ake_distill_hooks *h, ake_distill_result *r, char *err,
                           size_t errlen) {
    memset(r, 0, sizeof *r);
    ake_model *teacher = NULL;
    ake_tokenizer *tok = NULL;
    ake_trainer *tr = NULL;
    ake_token_corpus all = {0}, valid_file = {0};
    ake_train_batches batches = {0};
    json_object *settings = NULL;
    history hist = {0};
    int32_t *ids = NULL, *cu = NULL;
    float *teacher_valid = NULL, *student_valid = NULL;
    char ckdir[4096], ckpath[4096], path[4096];
    ake_status rc;
    if (o->batch < 1 || o->max_len < 2)
        return ake_errf(err, errlen, AKE_EINVAL, "batch %d and max length %d must be >= 1 and >= 2", o->batch,
                        o->max_len);
    if ((rc = ake_optim_check(&o->optim, err, errlen)) != AKE_OK) return rc;
    if ((rc = ake_model_load(o->teacher, &teacher, err, errlen)) != AKE_OK) goto done;
    if ((rc = ake_tokenizer_load(o->teacher, &tok, err, errlen)) != AKE_OK) goto done;
    const int32_t max_len = o->max_len < teacher->cfg.max_position ? o->max_len : teacher->cfg.max_position;

    /* the checkpoint folder: resume's, or out/checkpoint, which a fresh run must not find */
    if (o->resume) {
        if (snprintf(ckdir, sizeof ckdir, "%s", o->resume) >= (int)sizeof ckdir) {
            rc = ake_errf(err, errlen, AKE_ETOOLONG, "path too long: %s", o->resume);
            goto done;
        }
    } else if ((rc = path_join(ckdir, sizeof ckdir, o->out, "checkpoint", err, errlen)) != AKE_OK) {
        goto done;
    }
    if ((rc = path_join(ckpath, sizeof ckpath, ckdir, "checkpoint.bin", err, errlen)) != AKE_OK) goto done;
    if (!o->resume && ake_file_exists(ckpath)) {
        rc = ake_errf(err, errlen, AKE_EINVAL, "%s exists: continue it with --resume %s, or choose another --out",
                      ckpath, ckdir);
        goto done;
    }
    if (o->resume && !ake_file_exists(ckpath)) {
        rc = ake_errf(err, errlen, AKE_ENOTFOUND, "%s: no checkpoint to resume from", ckpath);
        goto done;
    }
    if ((rc = ake_folder_make_dirs(ckdir, err, errlen)) != AKE_OK) goto done;

    /* data */
    note(h, "tokenizing %s (cached in %s/tokens.bin)", o->corpus, ckdir);
    if ((rc = path_join(path, sizeof path, ckdir, "tokens.bin", err, errlen)) != AKE_OK) goto done;
    if ((rc = ake_token_corpus_load(o->corpus, tok, max_len, path, &all, err, errlen)) != AKE_OK) goto done;
    ake_token_corpus train = all, valid = {0};
    if (o->valid) {
        if ((rc = ake_token_corpus_load(o->valid, tok, max_len, NULL, &valid_file, err, errlen)) != AKE_OK) goto done;
        valid = valid_file;
    } else {
        const int64_t vs = o->valid_size;
        if (vs < AKE_RECALL_K + 1 || vs > all.n / 2) {
            rc = ake_errf(err, errlen, AKE_EINVAL,
                          "%s has %lld sentences: holding back %lld for validation needs at least twice as many and "
                          "%d or more (or give --valid)",
                          o->corpus, (long long)all.n, (long long)vs, AKE_RECALL_K + 1);
            goto done;
        }
        train.n = all.n - vs;
        valid = all;
        valid.n = vs;
        valid.cu = all.cu + train.n;
    }
    if (valid.n < AKE_RECALL_K + 1) {
        rc = ake_errf(err, errlen, AKE_EINVAL, "%s: %lld validation sentences, at least %d are needed for recall@%d",
                      o->valid, (long long)valid.n, AKE_RECALL_K + 1, AKE_RECALL_K);
        goto done;
    }
    note(h, "%lld training sentences (%lld tokens), %lld validation sentences", (long long)train.n,
         (long long)(train.cu[train.n] - train.cu[0]), (long long)valid.n);
    if ((rc = ake_train_batches_init(&batches, &train, o->batch, o->seed, err, errlen)) != AKE_OK) goto done;

    /* trainer, state */
    ake_trainer_opts to = {.device = o->device, .teacher_device = o->teacher_device, .compute_f32 = o->compute_f32, .max_tokens = o->batch * max_len,
                           .max_batch = o->batch, .max_len = max_len, .threads = o->threads, .optim = o->optim,
                           .loss = o->loss};
    if ((rc = ake_trainer_create(teacher, o->layers, o->n_layers, &to, &tr, err, errlen)) != AKE_OK) goto done;
    const ake_student_layout *L = ake_trainer_layout(tr);
    const int32_t C = L->cfg.hidden;
    settings = settings_json(o, teacher, all.sha256_hex, o->valid ? valid_file.sha256_hex : NULL);
    const int64_t S = o->optim.total_steps;
    hist.loss = calloc((size_t)S, sizeof(double));
    hist.grad_norm = calloc((size_t)S, sizeof(double));
    hist.lr = calloc((size_t)S, sizeof(double));
    hist.valid = json_object_new_array();
    ids = malloc((size_t)o->batch * max_len * sizeof *ids);
    cu = malloc(((size_t)o->batch + 1) * sizeof *cu);
    teacher_valid = malloc((size_t)valid.n * C * sizeof(float));
    student_valid = malloc((size_t)valid.n * C * sizeof(float));
    if (!hist.loss || !hist.grad_norm || !hist.lr || !ids || !cu || !teacher_valid || !student_valid) {
        rc = ake_errf(err, errlen, AKE_ENOMEM, "out of memory");
        goto done;
    }
    if (o->resume) {
        if ((rc = resume_from(ckpath, tr, settings, S, &hist, err, errlen)) != AKE_OK) goto done;
        note(h, "resumed from %s at step %lld of %lld", ckpath, (long long)hist.steps, (long long)S);
    }
    if ((rc = embed_all(tr, &valid, o->batch, true, teacher_valid, ids, cu, err, errlen)) != AKE_OK) goto done;

    /* the loop */
    double seconds_here = 0; /* in steps (teacher, student, update), not validation or checkpoints */
    int64_t tokens_here = 0;
    for (int64_t s = ake_trainer_steps_done(tr); s < S; s++) {
        const int32_t n = ake_train_batches_get(&batches, s, ids, cu);
        ake_step_stats st;
        const double ts = now_s();
        if ((rc = ake_trainer_step(tr, ids, cu, n, &st, err, errlen)) != AKE_OK) goto done;
        const double dt = now_s() - ts;
        hist.train_seconds += dt;
        seconds_here += dt;
        hist.loss[s] = st.loss;
        hist.grad_norm[s] = st.grad_norm;
        hist.lr[s] = st.lr;
        hist.steps = s + 1;
        hist.tokens += st.tokens;
        tokens_here += st.tokens;
        r->tokens_per_s = tokens_here / seconds_here;
        if (h && h->on_step) h->on_step(h->ctx, s + 1, S, &st, r->tokens_per_s);
        const bool last = s + 1 == S;
        if (last || (o->valid_every > 0 && (s + 1) % o->valid_every == 0)) {
            if ((rc = embed_all(tr, &valid, o->batch, false, student_valid, ids, cu, err, errlen)) != AKE_OK) goto done;
            if ((rc = ake_accuracy_measure(teacher_valid, student_valid, (int32_t)valid.n, C, 0, (int32_t)valid.n,
                                           &r->valid, err, errlen)) != AKE_OK)
                goto done;
            r->have_valid = true;
            json_object *v = json_object_new_object();
            json_object_object_add(v, "step", json_object_new_int64(s + 1));
            json_object_object_add(v, "recall", jdouble(r->valid.recall));
            json_object_object_add(v, "mean_cos", jdouble(r->valid.mean_cos));
            json_object_object_add(v, "min_cos", jdouble(r->valid.min_cos));
            json_object_array_add(hist.valid, v);
            if (h && h->on_valid) h->on_valid(h->ctx, s + 1, &r->valid);
        }
        const bool stop = (o->stop_after > 0 && s + 1 >= o->stop_after) || (h && h->should_stop && h->should_stop(h->ctx));
        if (last || stop || (o->checkpoint_every > 0 && (s + 1) % o->checkpoint_every == 0)) {
            if ((rc = write_checkpoint(ckpath, tr, settings, &hist, err, errlen)) != AKE_OK) goto done;
            note(h, "checkpoint at step %lld: %s", (long long)(s + 1), ckpath);
        }
        if (stop && !last) {
            r->stopped = true;
            break;
        }
    }
    r->steps_done = ake_trainer_steps_done(tr);
    if (r->stopped) goto done;

    /* the student */
    ake_trainer_state st;
    ake_trainer_state_view(tr, &st);
    if ((rc = ake_student_write_folder(L, st.params, st.word, o->teacher, o->out, AKE_DT_F32, err, errlen)) != AKE_OK)
        goto done;
    if ((rc = path_join(path, sizeof path, o->out, "trained-f16.safetensors", err, errlen)) != AKE_OK ||
        (rc = ake_student_write_trained(L, st.params, path, AKE_DT_F16, err, errlen)) != AKE_OK)
        goto done;
    if ((rc = path_join(path, sizeof path, o->out, "curve.tsv", err, errlen)) != AKE_OK ||
        (rc = write_curve(path, &hist, err, errlen)) != AKE_OK)
        goto done;
    if ((rc = path_join(path, sizeof path, o->out, "distillation.json", err, errlen)) != AKE_OK ||
        (rc = write_report(path, o, settings, &hist, r, &train, valid.n, err, errlen)) != AKE_OK)
        goto done;
done:
    free(ids);
    free(cu);
    free(teacher_valid);
    free(student_valid);
    history_free(&hist);
    json_object_put(settings);
    ake_train_batches_release(&batches);
    ake_trainer_free(tr);
    ake_token_corpus_release(&valid_file);
    ake_token_corpus_release(&all);
    ake_tokenizer_free(tok);
    ake_model_free(teacher);
    return rc;
}
