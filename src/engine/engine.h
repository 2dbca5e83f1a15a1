/* The one interface every backend (cpu/, cuda/) implements.
 *
 * A batch is packed with no padding: the token ids of n sequences laid end to
 * end, ids[T], and cu_seqlens[n+1] with cu_seqlens[0] = 0 and
 * cu_seqlens[i+1] - cu_seqlens[i] = length of sequence i (>= 1, [CLS]/[SEP]
 * included). The engine returns one pooled (and, when the model says so,
 * L2-normalized) vector per sequence (ake_engine_embed), or the last hidden state of every
 * token (ake_engine_embed_tokens). */
#ifndef AKE_ENGINE_ENGINE_H
#define AKE_ENGINE_ENGINE_H

#include <stdint.h>

#include "base/status.h"
#include "model/model.h"

typedef struct ake_engine ake_engine;

/* Arithmetic precision of the forward pass. DEFAULT is the backend's own: fp32 on
 * the CPU, fp16 on CUDA (weights are converted once at creation; LayerNorm, softmax and
 * accumulations stay in fp32); for a quantized folder, its own 8-bit type where the device
 * computes in it (ake_engine_caps_query), else the backend's float one.
 * INT8 and FP8 (E4M3) are W8A8: the four linear layers of every encoder block multiply
 * 8-bit weights (a scale per output channel) by 8-bit activations (a scale per token,
 * computed at run time, or one static scale per layer input when the model folder carries
 * calibrated `input_scale` tensors); attention, LayerNorm, GELU and pooling stay in the
 * backend's float precision (CPU fp32, CUDA fp16). A float model is quantized at creation
 * (dynamic quantization); a quantized folder (src/model/model.h) brings its own codes. */
typedef enum {
    AKE_PREC_DEFAULT = 0,
    AKE_PREC_FP32,
    AKE_PREC_FP16,
    AKE_PREC_BF16,
    AKE_PREC_INT8,
    AKE_PREC_FP8,
    AKE_PREC_COUNT
} ake_precision;

/* Tuning of the CUDA engine (the CPU engine ignores it). The zero value of every field is the
 * default, so a zeroed ake_engine_opts runs the tuned engine. The CLI maps the environment
 * variables named here onto it (ake_cuda_tuning_from_env); a library caller sets it directly. */
typedef enum { AKE_TRI_DEFAULT = 0, AKE_TRI_ON = 1, AKE_TRI_OFF = -1 } ake_tri;
typedef enum { AKE_CUDA_SYNC_AUTO = 0, AKE_CUDA_SYNC_SPIN, AKE_CUDA_SYNC_YIELD, AKE_CUDA_SYNC_BLOCK } ake_cuda_sync;
typedef struct {
    ake_tri graphs;      /* AKE_CUDA_GRAPHS=0|1: each bucket's forward captured once into a CUDA
                            graph and replayed (default on) */
    ake_tri gelu_tanh;   /* AKE_CUDA_GELU=tanh: cuBLASLt's tanh-approximated GELU epilogue instead
                            of the exact erf one (default off; fp16/bf16 engines; for measuring) */
    ake_tri gemm_tune;   /* AKE_CUDA_GEMM_TUNE=1: time cuBLASLt's candidates per shape instead of
                            its first choice (default off: slower in most cells, dev/cuda/NOTES.md) */
    ake_tri res32;       /* AKE_CUDA_RES32=0|1: fp32 residual stream (default on for bf16 only) */
    int attention;       /* AKE_CUDA_ATTN=1|2: attention kernel version (0: the newest, 2) */
    ake_cuda_sync sync;  /* AKE_CUDA_SYNC=spin|yield|block: how a host thread waits for the GPU
                            (the primary context's flag: only before the context exists) */
} ake_cuda_tuning;

/* The AKE_CUDA_* variables above as a tuning (unset or unrecognized values: the default). */
ake_cuda_tuning ake_cuda_tuning_from_env(void);

typedef struct {
    const char *device;  /* "cpu" (default when NULL), "cuda" / "cuda:N", or "auto":
                            cuda:0 when a CUDA GPU is visible, else the CPU in fp32 */
    int32_t max_tokens;  /* largest T of one call; buffers are sized for it once */
    int32_t max_batch;   /* largest n of one call */
    int32_t threads;     /* CPU threads; <= 0 means all cores */
    ake_precision precision; /* AKE_PREC_DEFAULT (the zero value) = the backend's own */
    ake_cuda_tuning cuda;    /* CUDA engine knobs; zero: the defaults */
} ake_engine_opts;

/* "fp32", "fp16", "bf16", "int8", "fp8" ("default" for AKE_PREC_DEFAULT). Static strings. */
const char *ake_precision_name(ake_precision p);
/* Parses fp32|fp16|bf16|int8|fp8 (also f32, f16, float16, bfloat16, i8, fp8_e4m3).
 * 0 on success, -1 otherwise. */
int ake_precision_parse(const char *s, ake_precision *out);

/* What a device can run, asked before creating an engine (callers never test device
 * names). precisions: bit (1 << p) set for each ake_precision p the backend computes in;
 * default_precision: what AKE_PREC_DEFAULT resolves to there. */
typedef struct {
    unsigned precisions;
    ake_precision default_precision;
    char hardware[128]; /* "cpu (AVX2, oneDNN 2.6)", "NVIDIA H200 (compute capability 9.0)" */
} ake_engine_caps;

/* Fills *out for device "cpu", "cuda" / "cuda:N" (not "auto"). AKE_EINVAL for a malformed
 * device, AKE_EUNSUPPORTED when it is absent (no CUDA in this build, no such GPU), with
 * err saying why. */
ake_status ake_engine_caps_query(const char *device, ake_engine_caps *out, char *err, size_t errlen);

/* Number of CUDA GPUs this build can use now: 0 when built without CUDA or when no
 * driver or GPU is present. Never fails. */
int ake_engine_cuda_devices(void);

/* Creates an engine over `model`, which must outlive it. All working memory is allocated
 * here; ake_engine_embed and ake_engine_embed_tokens allocate nothing. Free with
 * ake_engine_free. */
ake_status ake_engine_create(const ake_model *model, const ake_engine_opts *opts, ake_engine **out, char *err,
                             size_t errlen);
void ake_engine_free(ake_engine *e);

/* ids [T] (T = cu_seqlens[n]), cu_seqlens [n+1] → out [n, hidden] row-major.
 * Rejects (AKE_EINVAL) n or T over the creation limits, a sequence longer than
 * the model's max_position or empty, and token ids outside the vocabulary. AKE_EFORMAT when
 * a vector came out with a NaN or an infinity (weights or scales out of range: an error, never
 * an answer; ake_engine_wait checks the same). One engine serves one thread at a time. */
ake_status ake_engine_embed(ake_engine *e, const int32_t *ids, const int32_t *cu_seqlens, int32_t n, float *out,
                            char *err, size_t errlen);

/* TEI's /embed_all: the encoder's last hidden state of every token, unpooled.
 * ids [T] (T = cu_seqlens[n]), cu_seqlens [n+1] → out [T, hidden] row-major fp32, owned by the
 * caller: row t is token t of the packed batch ([CLS] and [SEP] rows included), so sequence i
 * owns rows cu_seqlens[i] .. cu_seqlens[i+1]-1. Each row is the output of the last encoder
 * layer's LayerNorm, before pooling and with no normalization (HF transformers'
 * last_hidden_state): the very values ake_engine_embed pools, widened to fp32 where the engine
 * keeps them narrower (the CPU's fp32 and int8 engines hold fp32 rows; the CUDA fp16, int8 and
 * fp8 engines fp16 ones, widened exactly; a CUDA bf16 engine copies its fp32 residual stream).
 * So, up to float rounding, ake_engine_embed's vector of sequence i is the pooling (mean, [CLS]
 * row or max, as the model says) of its rows, L2-normalized when the model normalizes.
 * The same checks as ake_engine_embed (AKE_EINVAL for n or T over the creation limits, a
 * sequence empty or over max_position, an id outside the vocabulary; AKE_EFORMAT when a row has
 * a NaN or an infinity), and AKE_EINVAL while submitted calls are outstanding. n = 0 writes
 * nothing. Synchronous, and it allocates nothing: the engine's buffers, sized at creation for
 * max_tokens, hold the batch. The CUDA engine runs it eagerly (no CUDA graph; its graphs serve
 * the pooled calls, which it leaves as they were) and copies the rows straight into `out`. */
ake_status ake_engine_embed_tokens(ake_engine *e, const int32_t *ids, const int32_t *cu_seqlens, int32_t n, float *out,
                                   char *err, size_t errlen);

/* Split form of ake_engine_embed, for callers that overlap the host work of the next
 * batch with the device work of the current one. submit checks the batch as
 * ake_engine_embed does, copies ids and cu_seqlens (the caller may reuse them at once)
 * and starts the work; `out` [n, hidden] is borrowed until the wait() that completes
 * this call. At most AKE_ENGINE_MAX_INFLIGHT calls may be outstanding (AKE_EINVAL
 * beyond); wait() completes the oldest one. Backends without a device (cpu) do the
 * work inside submit. ake_engine_embed must not be called while calls are outstanding. */
#define AKE_ENGINE_MAX_INFLIGHT 2
ake_status ake_engine_submit(ake_engine *e, const int32_t *ids, const int32_t *cu_seqlens, int32_t n, float *out,
                             char *err, size_t errlen);
ake_status ake_engine_wait(ake_engine *e, char *err, size_t errlen);

/* Calibration hook (src/quant/calibrate.c): the fp32 input of every linear layer, seen
 * before it is multiplied. which: 0 = QKV (the attention block's input), 1 = the attention
 * output projection (its input is the attention context), 2 = FFN1, 3 = FFN2 (its input is
 * the GELU output). x [rows, cols] row-major, valid during the call only; rows = the
 * call's tokens. Called from the thread that called ake_engine_embed (or
 * ake_engine_embed_tokens), in layer order. */
typedef enum { AKE_LINEAR_QKV = 0, AKE_LINEAR_OUT, AKE_LINEAR_FFN1, AKE_LINEAR_FFN2, AKE_LINEAR_KINDS } ake_linear_kind;
typedef void (*ake_linear_observer)(void *ctx, int32_t layer, ake_linear_kind which, const float *x, int32_t rows,
                                    int32_t cols);
/* Sets (fn non-NULL) or clears the observer. Engines that compute in fp32 on the CPU take
 * one; others answer AKE_EUNSUPPORTED. Without an observer the forward pays nothing. */
ake_status ake_engine_set_observer(ake_engine *e, ake_linear_observer fn, void *ctx, char *err, size_t errlen);

/* Bytes of weights the engine holds resident (host or device): 8-bit weights count one
 * byte per element, plus their scales. */
size_t ake_engine_weight_bytes(const ake_engine *e);

int32_t ake_engine_dim(const ake_engine *e);
/* The device as resolved at creation: "cpu" or "cuda:N" (never "auto"). */
const char *ake_engine_device(const ake_engine *e);
/* The precision as resolved at creation (never AKE_PREC_DEFAULT). */
ake_precision ake_engine_precision(const ake_engine *e);
/* What runs it, for reports: the GPU's name ("NVIDIA H100 80GB HBM3") or "cpu".
 * Lives as long as the engine. */
const char *ake_engine_hardware(const ake_engine *e);

#endif
