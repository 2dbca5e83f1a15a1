/* A distillation run (`akidb-embed distill`): a teacher model folder and a text corpus in, a
 * student model folder out.
 *
 * The output folder, when the run completes:
 *   config.json, modules.json, 1_Pooling/, sentence_bert_config.json, the tokenizer files,
 *   model.safetensors        an ordinary model folder (F32) that embed, serve and quantize load
 *   trained-f16.safetensors  only what training changed (everything but the frozen word table),
 *                            in F16: the file that ships (ake_student_assemble puts it back
 *                            together with a teacher's word table)
 *   distillation.json        teacher, layers, corpus sha256, settings, steps, time, tokens/s and
 *                            the final validation numbers
 *   curve.tsv                per step: loss, gradient norm, learning rate; validation rows
 *   checkpoint/checkpoint.bin  the state (checkpoint.h), written every checkpoint_every steps, at
 *                            the end, and when the caller asks to stop (SIGINT, SIGTERM)
 *   checkpoint/tokens.bin    the tokenized corpus (data.h), reused by a resumed run
 * A resumed run (resume = that checkpoint folder) must be given the same settings (teacher,
 * layers, corpus, steps, batch, lengths, optimizer, seed: compared, and a difference is an
 * error naming it) and continues bit-exactly on the same device and thread count: the same
 * losses and the same weights as a run that never stopped. */
#ifndef AKE_TRAIN_DISTILL_H
#define AKE_TRAIN_DISTILL_H

#include <stdbool.h>
#include <stdint.h>

#include "base/status.h"
#include "quant/accuracy.h"
#include "train/optim.h"
#include "train/student.h"
#include "train/trainer.h"

typedef struct {
    const char *teacher;   /* teacher model folder (float) */
    const char *corpus;    /* training sentences, one per line */
    const char *valid;     /* validation sentences, or NULL: the corpus's last valid_size lines are held back */
    const char *out;       /* output folder */
    const char *resume;    /* checkpoint folder to continue from, or NULL */
    const char *device;    /* "cpu", "cuda", "cuda:N" */
    const char *teacher_device; /* where the teacher's engine runs; NULL: device */
    bool compute_f32;      /* GPU: F32 GEMMs instead of BF16 */
    int32_t layers[AKE_STUDENT_MAX_LAYERS]; /* teacher layers the student keeps */
    int32_t n_layers;
    int32_t batch;         /* sentences per step */
    int32_t max_len;       /* tokens per sentence at most ([CLS], [SEP] included) */
    int32_t threads;       /* CPU threads (<= 0: all cores) */
    ake_optim_config optim; /* total_steps is the run's length */
    ake_loss_weights loss; /* --hidden-loss, --contrastive, --temperature */
    uint64_t seed;         /* batch order */
    int64_t valid_every;   /* validate every this many steps (and at the end); <= 0: at the end only */
    int64_t checkpoint_every; /* <= 0: at the end (and on stop) only */
    int32_t valid_size;    /* held-back sentences when valid is NULL */
    int64_t stop_after;    /* > 0: stop (as if asked to) once this many steps are done; for tests */
} ake_distill_opts;

typedef struct {
    void *ctx;
    /* after each step: the step just done (1-based count), the run's length, its stats, and the
     * training throughput in tokens per second over the steps of this process (the time of the
     * steps alone: teacher, student, update; not validation or checkpoints) */
    void (*on_step)(void *ctx, int64_t done, int64_t total, const ake_step_stats *st, double tokens_per_s);
    /* after each validation pass */
    void (*on_valid)(void *ctx, int64_t done, const ake_accuracy *a);
    /* a line of news (tokenizing, checkpoint written, resumed at step N) */
    void (*on_note)(void *ctx, const char *msg);
    /* polled after each step; true: checkpoint and return with stopped set */
    bool (*should_stop)(void *ctx);
} ake_distill_hooks;

typedef struct {
    int64_t steps_done;
    bool stopped;          /* stopped before the end (should_stop or stop_after); the checkpoint holds it */
    bool have_valid;
    ake_accuracy valid;    /* the last validation */
    double tokens_per_s;   /* training throughput over this process's steps (their time alone) */
} ake_distill_result;

/* Runs (or continues) a distillation as described above. Errors name the file, setting or step
 * at fault; a checkpoint already written stays. */
ake_status ake_distill_run(const ake_distill_opts *o, const ake_distill_hooks *h, ake_distill_result *r, char *err,
                           size_t errlen);

#endif
