/* Dynamic batcher: an array of engine replicas, each with its own queue and the one
 * thread that owns its engine.
 *
 *   submit(job) ─► split into sequences ─► each sequence to the least-loaded replica
 *   replica thread: wait for sequences ─► close a batch (policy below) ─► engine call
 *                   ─► copy each vector into its job ─► last sequence of a job: job->done
 *
 * A batch closes when the next sequence would pass its token cap or the target size,
 * or when the oldest waiting sequence has waited max_wait_ms. The target size comes from
 * the queue depth through an ake_batch_policy (default 0-5 → 1, 6-20 → 8, 21-50 → 16,
 * 51-100 → 32, > 100 → 64, capped by max_batch_size): with a short queue a batch leaves at
 * once with what is there, and only a deeper queue waits (at most max_wait_ms) to fill a
 * bigger batch.
 *
 * Bulk jobs do not hold up small ones. A job of more than max_batch_tokens / 2 tokens is bulk
 * and queues apart from the others; when both queues hold work, batches alternate between
 * them, and a bulk batch holds at most max_batch_tokens / 2 tokens (a longer lone sequence
 * goes alone). So a single text that arrives while 2,048-input requests run waits for at most
 * the rest of one half-size bulk batch (two on a device engine, which keeps two batches in
 * flight), then runs in a batch of small jobs, well inside the engine time of one full batch,
 * while bulk work still gets every other batch. Sequences leave each queue in arrival order; inside a batch they are sorted
 * longest first, which balances the engine's per-sequence attention loop over its
 * threads (the engine packs without padding, so sorting saves no padding work here).
 * The engine is batch-invariant, so a vector does not depend on its batch.
 *
 * Load of a replica = tokens queued + tokens in its running batch; a sequence goes to the
 * replica with the least load (ties to the lowest index). With one device string per
 * replica ("cpu", "cuda:0,cuda:1", ...) the same code serves one engine or several. */
#ifndef AKE_SERVE_BATCHER_H
#define AKE_SERVE_BATCHER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/status.h"
#include "engine/engine.h"
#include "model/model.h"
#include "serve/metrics.h"

/* Depth → target batch size: target[i] applies from min_depth[i] on (min_depth[0] = 0). */
#define AKE_POLICY_MAX 16
typedef struct {
    int32_t n;
    int64_t min_depth[AKE_POLICY_MAX]; /* increasing */
    int32_t target[AKE_POLICY_MAX];    /* >= 1 */
} ake_batch_policy;

#define AKE_DEFAULT_BATCH_POLICY "0:1,6:8,21:16,51:32,101:64"

/* Parses "DEPTH:SIZE,DEPTH:SIZE,..." (first depth 0, depths increasing, sizes >= 1). */
ake_status ake_batch_policy_parse(const char *s, ake_batch_policy *p, char *err, size_t errlen);
int32_t ake_batch_policy_target(const ake_batch_policy *p, int64_t depth);

typedef enum {
    AKE_JOB_OK = 0,
    AKE_JOB_TIMEOUT,   /* the job waited longer than request_timeout_ms before any of its sequences entered a
                          batch (once one has, the job is never timed out: its work has begun) */
    AKE_JOB_CANCELLED, /* job->alive said the client has gone */
    AKE_JOB_FAILED     /* the engine refused the batch; message in job->err */
} ake_job_result;

struct ake_job;

/* One sequence of a job. While queued it belongs to its replica (next links the queue). */
typedef struct ake_seq {
    struct ake_seq *next;
    struct ake_job *job;
    const int32_t *ids; /* [len] token ids, [CLS] ... [SEP], owned by the job's submitter */
    int32_t len;
    int32_t index;      /* row of job->out this sequence fills (a pooled job) */
    int32_t row;        /* first row of job->out this sequence fills (a job of token states: its
                           len rows), set by the submitter */
} ake_seq;

/* A request's worth of sequences. The submitter owns every pointer and the job itself;
 * it must keep them alive until done() has been called, and not touch them meanwhile. */
typedef struct ake_job {
    int32_t n;         /* sequences, >= 0 */
    ake_seq *seqs;     /* [n]: ids, len (and row, for token states) set by the submitter; the rest by submit */
    bool token_states; /* the last hidden state of every token (ake_engine_embed_tokens), not pooled
                          vectors: its sequences run in batches of their own */
    float *out;        /* [n, dim] pooled vectors as the engine returns them; with token_states
                          [sum of len, dim] rows, sequence i's from seqs[i].row on */
    /* Called exactly once, from a batcher thread (or from submit when n == 0), after every
     * sequence has been embedded or dropped. The job may be freed from there on. */
    void (*done)(struct ake_job *job);
    /* Optional: called by a batcher thread before a job's sequences enter a batch; false
     * means the client has gone and the job's remaining sequences are dropped. */
    bool (*alive)(struct ake_job *job);
    void *user;        /* the submitter's */
    /* set by the batcher */
    _Atomic int32_t pending;
    _Atomic int result; /* ake_job_result; the first failure wins */
    _Atomic bool started; /* a sequence of the job has entered a batch */
    bool bulk;          /* more than max_batch_tokens / 2 tokens: queued apart (see the top of this file) */
    double t_submit;    /* ake_now_s() at submit */
    char err[200];      /* why, when result is AKE_JOB_FAILED */
} ake_job;

typedef struct {
    const char *devices;        /* comma-separated, one replica each: "cpu", "cpu,cpu", "cuda:0,cuda:1" */
    int32_t threads;            /* engine threads per replica; <= 0: all cores */
    ake_precision precision;    /* AKE_PREC_DEFAULT: each backend's own */
    ake_cuda_tuning cuda;       /* CUDA engine knobs (engine.h); zero: the defaults */
    int32_t max_batch_tokens;   /* >= the longest sequence a job may hold */
    int32_t max_batch_size;
    int32_t max_wait_ms;
    int32_t idle_spin_us;       /* an idle replica thread polls its queue this long before it sleeps */
    int32_t request_timeout_ms; /* <= 0: none; a job whose first sequence has not entered a batch by then
                                   fails with AKE_JOB_TIMEOUT */
    ake_batch_policy policy;
} ake_batcher_opts;

typedef struct ake_batcher ake_batcher;

/* Creates one engine per device over `model` (which must outlive the batcher), warms
 * each up with one call, measures its speed (ake_batcher_tokens_per_s) and starts the
 * replica threads. Free with ake_batcher_free. */
ake_status ake_batcher_create(const ake_model *model, const ake_batcher_opts *opts, ake_metrics *metrics,
                              ake_batcher **out, char *err, size_t errlen);

/* Queues every sequence of job (each 1..max_batch_tokens tokens, checked by the caller). */
void ake_batcher_submit(ake_batcher *b, ake_job *job);

/* Tokens per second of all replicas together, measured at creation: each engine embeds
 * a probe batch (up to 8 sequences of 128 tokens, within the batch limits) twice, and the
 * second call is timed (the first may build a CUDA graph). A batch of that size is
 * close to the engine's best on a CPU and below it on a GPU, so it errs low. */
double ake_batcher_tokens_per_s(const ake_batcher *b);

/* Sequences waiting, summed over replicas. */
int64_t ake_batcher_depth(const ake_batcher *b);
int32_t ake_batcher_replicas(const ake_batcher *b);
/* Device of replica i as its engine resolved it ("cpu", "cuda:1"); owned by the batcher. */
const char *ake_batcher_device(const ake_batcher *b, int32_t i);
/* Precision of replica i's engine as resolved (never AKE_PREC_DEFAULT). */
ake_precision ake_batcher_precision(const ake_batcher *b, int32_t i);
/* Resident weight bytes of replica i's engine (ake_engine_weight_bytes); 0 for a bad i. */
size_t ake_batcher_weight_bytes(const ake_batcher *b, int32_t i);

/* Embeds everything still queued, then joins the threads and frees the engines. */
void ake_batcher_free(ake_batcher *b);

/* Monotonic clock in seconds. */
double ake_now_s(void);

#endif
