/* One distillation step at a time: the teacher (in the inference engine) gives the targets of a
 * batch, the student (training's own forward and backward: student_cpu.h on the CPU,
 * trainer_cuda.h on a GPU) its loss and gradients, and AdamW (optim.h) the update. The state a checkpoint holds (parameters, AdamW's
 * moments, the update count) is read and written here; the data, the schedule of the run and
 * the files are distill.c's. */
#ifndef AKE_TRAIN_TRAINER_H
#define AKE_TRAIN_TRAINER_H

#include <stdint.h>

#include "base/status.h"
#include "engine/engine.h"
#include "model/model.h"
#include "train/optim.h"
#include "train/student.h"

typedef struct ake_trainer ake_trainer;

typedef struct {
    const char *device;      /* "cpu" (NULL: cpu), "cuda" or "cuda:N" (builds with the CUDA backend) */
    const char *teacher_device; /* where the teacher's engine runs; NULL: device */
    bool compute_f32;        /* GPU: F32 GEMMs instead of BF16 (checks against the CPU); the CPU is F32 */
    int32_t max_tokens;      /* largest batch in tokens */
    int32_t max_batch;       /* largest batch in sequences */
    int32_t max_len;         /* longest sequence (<= 0: min(max_tokens, max_position)) */
    int32_t threads;         /* CPU threads (<= 0: all cores) */
    ake_optim_config optim;
    ake_loss_weights loss;   /* the loss's optional terms (zero: plain MSE on the embedding) */
} ake_trainer_opts;

typedef struct {
    double loss;             /* the batch's loss before the update */
    double grad_norm;        /* global gradient norm before clipping */
    double lr;               /* the rate this update used */
    int64_t tokens;          /* tokens in the batch */
} ake_step_stats;

/* A trainer of a student keeping teacher layers layers[0..n) (student.h), initialized from
 * the teacher, which must outlive it. AKE_EINVAL / AKE_EUNSUPPORTED for bad layers, options
 * or devices, with err saying which; AKE_ENOMEM. Free with ake_trainer_free. */
ake_status ake_trainer_create(const ake_model *teacher, const int32_t *layers, int32_t n, const ake_trainer_opts *o,
                              ake_trainer **out, char *err, size_t errlen);
void ake_trainer_free(ake_trainer *tr);

/* One update on the batch ids [T], cu [n+1] (engine.h's packing; within the creation limits).
 * AKE_EINVAL for a batch the engine refuses; AKE_EFORMAT when the loss or the gradient is not
 * finite (nothing is updated then). */
ake_status ake_trainer_step(ake_trainer *tr, const int32_t *ids, const int32_t *cu, int32_t n, ake_step_stats *st,
                            char *err, size_t errlen);

/* The student's embeddings of a batch, out [n, hidden] (no update): for validation. */
ake_status ake_trainer_embed(ake_trainer *tr, const int32_t *ids, const int32_t *cu, int32_t n, float *out,
                             char *err, size_t errlen);

/* The teacher's embeddings of a batch, out [n, hidden] (the targets a step trains towards). */
ake_status ake_trainer_teacher_embed(ake_trainer *tr, const int32_t *ids, const int32_t *cu, int32_t n, float *out,
                                     char *err, size_t errlen);

const ake_student_layout *ake_trainer_layout(const ake_trainer *tr);
/* Updates done so far. */
int64_t ake_trainer_steps_done(const ake_trainer *tr);

/* The state of training in host memory, borrowed (valid until the next step or free): the flat
 * parameter array, AdamW's moments m and v (each [layout->numel]) and the frozen word table
 * [vocab, hidden]. A GPU trainer copies its state to these arrays first. */
typedef struct {
    float *params, *m, *v;
    const float *word;
    int64_t steps_done;
} ake_trainer_state;
void ake_trainer_state_view(ake_trainer *tr, ake_trainer_state *s);
/* After the caller wrote params, m and v of a view (a checkpoint being resumed): makes them the
 * trainer's state (a GPU trainer uploads them) at update count steps_done. */
void ake_trainer_state_commit(ake_trainer *tr, int64_t steps_done);

#endif
