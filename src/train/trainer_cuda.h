/* The student's forward, backward and AdamW update on a CUDA GPU (src/train/cuda/), the
 * counterpart of student_cpu.h + optim.h for trainer.c. FP32 master weights, moments and
 * gradients; the GEMMs compute in `dt` (BF16: fp32 accumulation, no loss scaling needed;
 * F32: full fp32, for checking against the CPU); LayerNorm, softmax, GELU, the loss and every
 * reduction in fp32. Deterministic: the same inputs give the same bits on the same GPU.
 * Built only with the CUDA backend (AKE_HAVE_CUDA). */
#ifndef AKE_TRAIN_TRAINER_CUDA_H
#define AKE_TRAIN_TRAINER_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"
#include "base/status.h"
#include "train/optim.h"
#include "train/student.h"

typedef struct ake_train_cuda ake_train_cuda;

/* On device `device` ("cuda" / "cuda:N"), for batches up to max_tokens / max_batch and
 * sequences up to max_len tokens, starting from params [L->numel] and the frozen word table
 * [vocab, hidden] (copied). L must outlive it. AKE_EUNSUPPORTED (no such GPU, max_len too long
 * for the attention kernels' shared memory), AKE_ENOMEM. */
ake_status ake_train_cuda_create(const ake_student_layout *L, const char *device, ake_dtype dt, int32_t max_tokens,
                                 int32_t max_batch, int32_t max_len, const float *params, const float *word,
                                 ake_train_cuda **out, char *err, size_t errlen);
void ake_train_cuda_free(ake_train_cuda *tc);

/* Forward, loss (student_cpu.h's, with weights w) and backward of a batch into the device's
 * gradient array (zeroed first), and the gradient norm; no update. target [n, hidden] and
 * hidden_target (per student layer, [T, hidden], or NULL when w->hidden is 0) are host arrays.
 * grads (may be NULL): the gradients copied to the host [L->numel]. */
ake_status ake_train_cuda_grads(ake_train_cuda *tc, const int32_t *ids, const int32_t *cu, int32_t n,
                                const float *target, const float *const *hidden_target, const ake_loss_weights *w,
                                float max_grad_norm, double *loss, double *grad_norm, float *grads, char *err,
                                size_t errlen);

/* After ake_train_cuda_grads: one AdamW update (t the 1-based update count, lr its rate), the
 * gradients scaled by the clip factor that call computed. */
void ake_train_cuda_update(ake_train_cuda *tc, const ake_optim_config *o, double lr, int64_t t);

/* The student's embeddings [n, hidden] of a batch (forward only) into host out. */
ake_status ake_train_cuda_embed(ake_train_cuda *tc, const int32_t *ids, const int32_t *cu, int32_t n, float *out,
                                char *err, size_t errlen);

/* Copies the state between the device and host arrays [L->numel] (any may be NULL). */
void ake_train_cuda_download(ake_train_cuda *tc, float *params, float *m, float *v);
void ake_train_cuda_upload(ake_train_cuda *tc, const float *params, const float *m, const float *v);

#endif
