#include "serve/batcher.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "engine/engine.h"

double ake_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

ake_status ake_batch_policy_parse(const char *s, ake_batch_policy *p, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    const char *c = s;
    while (*c) {
        char *end;
        errno = 0;
        long long depth = strtoll(c, &end, 10);
        if (end == c || *end != ':' || errno || depth < 0)
            return ake_errf(err, errlen, AKE_EINVAL, "batch policy '%s': expected DEPTH:SIZE pairs near '%s'", s, c);
        c = end + 1;
        long size = strtol(c, &end, 10);
        if (end == c || errno || size < 1 || size > 1 << 20 || (*end && *end != ','))
            return ake_errf(err, errlen, AKE_EINVAL, "batch policy '%s': bad size near '%s'", s, c);
        if (p->n == AKE_POLICY_MAX)
            return ake_errf(err, errlen, AKE_EINVAL, "batch policy '%s': more than %d steps", s, AKE_POLICY_MAX);
        if ((p->n == 0 && depth != 0) || (p->n > 0 && depth <= p->min_depth[p->n - 1]))
            return ake_errf(err, errlen, AKE_EINVAL, "batch policy '%s': depths must start at 0 and increase", s);
        p->min_depth[p->n] = depth;
        p->target[p->n] = (int32_t)size;
        p->n++;
        c = *end ? end + 1 : end;
    }
    if (p->n == 0) return ake_errf(err, errlen, AKE_EINVAL, "batch policy is empty");
    return AKE_OK;
}

int32_t ake_batch_policy_target(const ake_batch_policy *p, int64_t depth) {
    int32_t t = p->n ? p->target[0] : 1;
    for (int32_t i = 1; i < p->n && depth >= p->min_depth[i]; i++) t = p->target[i];
    return t;
}

typedef struct {
    ake_seq *head, *tail;
    int64_t n;
} seq_queue;

typedef struct {
    struct ake_batcher *b;
    int32_t idx;
    char *device;          /* owned */
    ake_engine *engine;    /* owned; used only by this replica's thread once it runs */
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;     /* signalled on submit and on stop */
    seq_queue q[2];        /* [0] small jobs, [1] bulk jobs; FIFOs under mu */
    bool last_bulk;        /* the last batch came from q[1]: alternate while both hold work */
    _Atomic int64_t depth; /* sequences queued in both (written under mu) */
    _Atomic int64_t load;  /* tokens queued + tokens of the running batch */
    bool async;            /* the engine works on a device: submit returns before the vectors */
    /* batch buffers, sized once; two batches may be in the engine at a time (on a GPU the
     * next one is packed and submitted while the device computes the previous one) */
    ake_seq **batch[AKE_ENGINE_MAX_INFLIGHT]; /* [max_batch_size] each */
    float *out[AKE_ENGINE_MAX_INFLIGHT];      /* [max_batch_size, dim] each */
    int32_t bn[AKE_ENGINE_MAX_INFLIGHT], bT[AKE_ENGINE_MAX_INFLIGHT]; /* sequences, tokens */
    double bt0[AKE_ENGINE_MAX_INFLIGHT];      /* submit time */
    int32_t pending, oldest;                  /* batches in the engine; the oldest one's slot */
    int32_t *ids;          /* [max_batch_tokens] packed (the engine copies it at submit) */
    int32_t *cu;           /* [max_batch_size + 1] */
    float *rows;           /* [max_batch_tokens, dim] token states; allocated at the first batch of them */
} replica;

struct ake_batcher {
    ake_batcher_opts o;
    ake_metrics *metrics;  /* borrowed */
    int32_t dim;
    int32_t n_rep;
    double tokens_per_s;   /* measured at creation */
    replica *rep;          /* owned [n_rep] */
    _Atomic bool stopping;
};

/* Marks one sequence finished; the last one of a job calls done. */
static void finish_seq(ake_seq *s) {
    ake_job *job = s->job;
    if (atomic_fetch_sub(&job->pending, 1) == 1) job->done(job);
}

/* Sets the job's result unless an earlier failure set it already. */
static void fail_job(ake_job *job, ake_job_result r) {
    int expect = AKE_JOB_OK;
    atomic_compare_exchange_strong(&job->result, &expect, (int)r);
}

static int cmp_len_desc(const void *a, const void *b) {
    const ake_seq *x = *(ake_seq *const *)a, *y = *(ake_seq *const *)b;
    if (x->len != y->len) return x->len < y->len ? 1 : -1;
    return (x < y) ? -1 : (x > y); /* stable enough: any total order gives the same vectors */
}

static bool queued(const replica *r) { return r->q[0].head || r->q[1].head; }

/* The queue the next batch comes from (mu held, something queued): small jobs, except that
 * bulk work gets every other batch while both queues hold work. */
static int next_queue(const replica *r) {
    if (!r->q[1].head) return 0;
    if (!r->q[0].head) return 1;
    return !r->last_bulk;
}

/* Target size for a batch from queue c: the policy on that queue's depth. */
static int32_t batch_target(const replica *r, int c) {
    int32_t t = ake_batch_policy_target(&r->b->o.policy, r->q[c].n);
    return t < r->b->o.max_batch_size ? t : r->b->o.max_batch_size;
}

/* Waits (mu held) until a batch should leave; false when stopping with an empty queue. */
static bool wait_for_batch(replica *r, int32_t *target, int *cls) {
    ake_batcher *b = r->b;
    if (!queued(r) && b->o.idle_spin_us > 0) {
        /* Poll a while before sleeping: a sleeping thread's wake-up costs tens of
         * microseconds (more under a sandboxed kernel), which a lone request pays in full. */
        pthread_mutex_unlock(&r->mu);
        const double until = ake_now_s() + b->o.idle_spin_us * 1e-6;
        while (atomic_load(&r->depth) == 0 && !atomic_load(&b->stopping) && ake_now_s() < until) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
        pthread_mutex_lock(&r->mu);
    }
    while (!queued(r) && !atomic_load(&b->stopping)) pthread_cond_wait(&r->cv, &r->mu);
    if (!queued(r)) return false;
    for (;;) {
        const int c = next_queue(r);
        *cls = c;
        *target = batch_target(r, c);
        if (r->q[c].n >= *target || atomic_load(&b->stopping)) return true;
        double deadline = r->q[c].head->job->t_submit + b->o.max_wait_ms * 1e-3;
        if (ake_now_s() >= deadline) return true;
        /* pthread_cond_timedwait takes CLOCK_REALTIME; convert the remaining wait. */
        double wait = deadline - ake_now_s();
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long long ns = (long long)ts.tv_nsec + (long long)(wait * 1e9);
        ts.tv_sec += (time_t)(ns / 1000000000LL);
        ts.tv_nsec = (long)(ns % 1000000000LL);
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
}

/* The metrics of one engine call: n sequences, T tokens, `seconds` in the engine. */
static void observe_batch(ake_batcher *b, int32_t n, int32_t T, double seconds) {
    if (!b->metrics) return;
    ake_metrics_observe(b->metrics, AKE_H_INFERENCE, seconds);
    ake_metrics_observe(b->metrics, AKE_H_BATCH_SIZE, n);
    ake_metrics_observe(b->metrics, AKE_H_BATCH_TOKENS, T);
    ake_metrics_count(b->metrics, AKE_C_BATCHES, 1);
    ake_metrics_count(b->metrics, AKE_C_SEQUENCES, (uint64_t)n);
    ake_metrics_count(b->metrics, AKE_C_TOKENS, (uint64_t)T);
}

/* Completes the oldest batch in the engine: waits for its vectors, copies each into its
 * job and finishes its sequences (the last one of a job resumes the client). */
static void complete_oldest(replica *r) {
    ake_batcher *b = r->b;
    const int32_t d = b->dim, k = r->oldest, n = r->bn[k], T = r->bT[k];
    char err[256];
    ake_status st = ake_engine_wait(r->engine, err, sizeof err);
    double t1 = ake_now_s();
    r->oldest = (k + 1) % AKE_ENGINE_MAX_INFLIGHT;
    r->pending--;
    if (st != AKE_OK) ake_log(AKE_LOG_ERROR, "replica %d (%s): engine call failed: %s", r->idx, r->device, err);
    observe_batch(b, n, T, t1 - r->bt0[k]);
    atomic_fetch_sub(&r->load, T);
    for (int32_t i = 0; i < n; i++) {
        ake_seq *s = r->batch[k][i];
        if (st == AKE_OK) {
            memcpy(s->job->out + (size_t)s->index * d, r->out[k] + (size_t)i * d, (size_t)d * sizeof(float));
        } else {
            int expect = AKE_JOB_OK;
            if (atomic_compare_exchange_strong(&s->job->result, &expect, AKE_JOB_FAILED))
                snprintf(s->job->err, sizeof s->job->err, "%.199s", err);
        }
        finish_seq(s);
    }
}

/* Runs a batch of token-state sequences (ids and cu packed) to the end: the engine's
 * embed_tokens is synchronous and needs the engine idle, so the batches in flight complete
 * first. Copies each sequence's rows into its job and finishes the sequences. */
static void run_token_states(replica *r, ake_seq **batch, int32_t n, int32_t T) {
    ake_batcher *b = r->b;
    while (r->pending > 0) complete_oldest(r);
    char err[256];
    ake_status st = AKE_OK;
    if (!r->rows && !(r->rows = malloc((size_t)b->o.max_batch_tokens * b->dim * sizeof *r->rows)))
        st = ake_errf(err, sizeof err, AKE_ENOMEM, "out of memory for the token states of a batch");
    const double t0 = ake_now_s();
    if (st == AKE_OK) st = ake_engine_embed_tokens(r->engine, r->ids, r->cu, n, r->rows, err, sizeof err);
    if (st != AKE_OK) ake_log(AKE_LOG_ERROR, "replica %d (%s): engine call failed: %s", r->idx, r->device, err);
    observe_batch(b, n, T, ake_now_s() - t0);
    atomic_fetch_sub(&r->load, T);
    const size_t d = (size_t)b->dim;
    for (int32_t i = 0; i < n; i++) {
        ake_seq *s = batch[i];
        if (st == AKE_OK) {
            memcpy(s->job->out + (size_t)s->row * d, r->rows + (size_t)r->cu[i] * d, (size_t)s->len * d * sizeof(float));
        } else {
            int expect = AKE_JOB_OK;
            if (atomic_compare_exchange_strong(&s->job->result, &expect, AKE_JOB_FAILED))
                snprintf(s->job->err, sizeof s->job->err, "%.199s", err);
        }
        finish_seq(s);
    }
}

/* One replica's thread. With nothing in the engine it waits for a batch by the policy;
 * with a batch in a device engine it takes what is queued at once (the device is busy, so
 * company gathers anyway), packs and submits it, and only then waits for the older one.
 * A CPU engine works inside submit, so there each batch is completed right away. */
static void *replica_main(void *arg) {
    replica *r = arg;
    ake_batcher *b = r->b;
    char err[256];
    pthread_mutex_lock(&r->mu);
    for (;;) {
        int32_t target = 0;
        int c = 0;
        if (r->pending == 0) {
            if (!wait_for_batch(r, &target, &c)) break;
        } else if (queued(r) && r->pending < AKE_ENGINE_MAX_INFLIGHT) {
            c = next_queue(r);
            target = batch_target(r, c);
        }
        seq_queue *q = &r->q[c];
        const int32_t max_tokens = c ? b->o.max_batch_tokens / 2 : b->o.max_batch_tokens;
        if (target > 0) r->last_bulk = c == 1;
        /* Take sequences of queue c in arrival order; drop those of failed or timed-out jobs. */
        const int32_t k = (r->oldest + r->pending) % AKE_ENGINE_MAX_INFLIGHT;
        ake_seq **batch = r->batch[k];
        const double now = ake_now_s();
        const double timeout = b->o.request_timeout_ms > 0 ? b->o.request_timeout_ms * 1e-3 : 1e300;
        ake_seq *dropped = NULL;
        int32_t n = 0, T = 0, dropped_tokens = 0;
        int64_t taken = 0;
        bool token_states = false; /* the batch's kind: a batch is all pooled or all token states */
        while (q->head && n < target) {
            ake_seq *s = q->head;
            ake_job *job = s->job;
            bool drop = atomic_load(&job->result) != AKE_JOB_OK;
            if (!drop && !atomic_load(&job->started) && now - job->t_submit > timeout) {
                fail_job(job, AKE_JOB_TIMEOUT);
                drop = true;
            }
            if (!drop && n > 0 && T + s->len > max_tokens) break; /* a lone long one goes alone */
            if (!drop && n > 0 && job->token_states != token_states) break;
            if (!drop && n == 0) token_states = job->token_states;
            q->head = s->next;
            if (!q->head) q->tail = NULL;
            q->n--;
            taken++;
            if (drop) {
                s->next = dropped;
                dropped = s;
                dropped_tokens += s->len;
            } else {
                atomic_store(&job->started, true);
                batch[n++] = s;
                T += s->len;
            }
        }
        atomic_fetch_sub(&r->depth, taken);
        pthread_mutex_unlock(&r->mu);

        atomic_fetch_sub(&r->load, dropped_tokens);
        while (dropped) {
            ake_seq *next = dropped->next;
            finish_seq(dropped);
            dropped = next;
        }
        /* Drop the sequences of clients that went away (one check per job and batch). */
        int32_t kept = 0;
        ake_job *last = NULL;
        bool last_alive = true;
        for (int32_t i = 0; i < n; i++) {
            ake_seq *s = batch[i];
            if (s->job != last) {
                last = s->job;
                last_alive = !last->alive || last->alive(last);
                if (!last_alive) fail_job(last, AKE_JOB_CANCELLED);
            }
            if (last_alive && atomic_load(&s->job->result) == AKE_JOB_OK) {
                batch[kept++] = s;
            } else {
                atomic_fetch_sub(&r->load, s->len);
                T -= s->len;
                finish_seq(s);
            }
        }
        n = kept;
        if (n > 0 && token_states) {
            r->cu[0] = 0;
            for (int32_t i = 0; i < n; i++) {
                memcpy(r->ids + r->cu[i], batch[i]->ids, (size_t)batch[i]->len * sizeof *r->ids);
                r->cu[i + 1] = r->cu[i] + batch[i]->len;
                if (b->metrics) ake_metrics_observe(b->metrics, AKE_H_QUEUE, now - batch[i]->job->t_submit);
            }
            run_token_states(r, batch, n, T);
            n = 0;
        }
        if (n > 0) {
            qsort(batch, (size_t)n, sizeof *batch, cmp_len_desc);
            r->cu[0] = 0;
            for (int32_t i = 0; i < n; i++) {
                ake_seq *s = batch[i];
                memcpy(r->ids + r->cu[i], s->ids, (size_t)s->len * sizeof *r->ids);
                r->cu[i + 1] = r->cu[i] + s->len;
                if (b->metrics) ake_metrics_observe(b->metrics, AKE_H_QUEUE, now - s->job->t_submit);
            }
            r->bn[k] = n;
            r->bT[k] = T;
            r->bt0[k] = ake_now_s();
            ake_status st = ake_engine_submit(r->engine, r->ids, r->cu, n, r->out[k], err, sizeof err);
            if (st != AKE_OK) {
                ake_log(AKE_LOG_ERROR, "replica %d (%s): engine call failed: %s", r->idx, r->device, err);
                atomic_fetch_sub(&r->load, T);
                for (int32_t i = 0; i < n; i++) {
                    ake_seq *s = batch[i];
                    int expect = AKE_JOB_OK;
                    if (atomic_compare_exchange_strong(&s->job->result, &expect, AKE_JOB_FAILED))
                        snprintf(s->job->err, sizeof s->job->err, "%.199s", err);
                    finish_seq(s);
                }
            } else {
                r->pending++;
            }
        }
        /* Complete the oldest batch unless a device engine can take the next one first. */
        if (r->pending > 0 && (!r->async || r->pending == AKE_ENGINE_MAX_INFLIGHT || atomic_load(&r->depth) == 0))
            complete_oldest(r);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    AKE_ASSERT(r->pending == 0);
    return NULL;
}

void ake_batcher_submit(ake_batcher *b, ake_job *job) {
    atomic_store(&job->pending, job->n);
    atomic_store(&job->result, AKE_JOB_OK);
    atomic_store(&job->started, false);
    job->err[0] = 0;
    job->t_submit = ake_now_s();
    if (job->n == 0) {
        job->done(job);
        return;
    }
    int64_t job_tokens = 0;
    for (int32_t i = 0; i < job->n; i++) {
        job->seqs[i].job = job;
        job->seqs[i].index = i;
        job->seqs[i].next = NULL;
        job_tokens += job->seqs[i].len;
    }
    job->bulk = job_tokens > b->o.max_batch_tokens / 2;
    /* Least loaded replica per sequence; one replica takes the whole job under one lock. */
    for (int32_t i = 0; i < job->n;) {
        replica *r = &b->rep[0];
        for (int32_t k = 1; k < b->n_rep; k++)
            if (atomic_load(&b->rep[k].load) < atomic_load(&r->load)) r = &b->rep[k];
        int32_t j = b->n_rep == 1 ? job->n : i + 1;
        int64_t tokens = 0;
        for (int32_t k = i; k < j; k++) tokens += job->seqs[k].len;
        atomic_fetch_add(&r->load, tokens);
        pthread_mutex_lock(&r->mu);
        seq_queue *q = &r->q[job->bulk];
        for (int32_t k = i; k < j; k++) {
            ake_seq *s = &job->seqs[k];
            if (q->tail) q->tail->next = s;
            else q->head = s;
            q->tail = s;
        }
        q->n += j - i;
        atomic_fetch_add(&r->depth, j - i);
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
        i = j;
    }
}

int64_t ake_batcher_depth(const ake_batcher *b) {
    int64_t d = 0;
    for (int32_t i = 0; i < b->n_rep; i++) d += atomic_load(&b->rep[i].depth);
    return d;
}

int32_t ake_batcher_replicas(const ake_batcher *b) { return b->n_rep; }

double ake_batcher_tokens_per_s(const ake_batcher *b) { return b->tokens_per_s; }

/* Tokens per second of r's engine on a probe batch (see ake_batcher_tokens_per_s); the ids
 * are [CLS]-like zeros, which cost what any ids cost. */
static ake_status probe_speed(replica *r, const ake_model *model, double *tokens_per_s, char *err, size_t errlen) {
    const ake_batcher_opts *o = &r->b->o;
    int32_t len = model->cfg.max_position < 128 ? model->cfg.max_position : 128;
    if (len > o->max_batch_tokens) len = o->max_batch_tokens;
    int32_t n = o->max_batch_tokens / len;
    if (n > 8) n = 8;
    if (n > o->max_batch_size) n = o->max_batch_size;
    memset(r->ids, 0, (size_t)n * len * sizeof *r->ids);
    for (int32_t i = 0; i <= n; i++) r->cu[i] = i * len;
    double t = 0.0;
    for (int rep = 0; rep < 2; rep++) {
        const double t0 = ake_now_s();
        ake_status st = ake_engine_embed(r->engine, r->ids, r->cu, n, r->out[0], err, errlen);
        if (st != AKE_OK) return st;
        t = ake_now_s() - t0;
    }
    *tokens_per_s = (double)n * len / (t > 1e-9 ? t : 1e-9);
    return AKE_OK;
}

const char *ake_batcher_device(const ake_batcher *b, int32_t i) {
    return i >= 0 && i < b->n_rep ? ake_engine_device(b->rep[i].engine) : NULL;
}

ake_precision ake_batcher_precision(const ake_batcher *b, int32_t i) {
    return i >= 0 && i < b->n_rep ? ake_engine_precision(b->rep[i].engine) : AKE_PREC_DEFAULT;
}

size_t ake_batcher_weight_bytes(const ake_batcher *b, int32_t i) {
    return i >= 0 && i < b->n_rep ? ake_engine_weight_bytes(b->rep[i].engine) : 0;
}

void ake_batcher_free(ake_batcher *b) {
    if (!b) return;
    atomic_store(&b->stopping, true);
    for (int32_t i = 0; i < b->n_rep; i++) {
        replica *r = &b->rep[i];
        if (!r->started) continue;
        pthread_mutex_lock(&r->mu);
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
    }
    for (int32_t i = 0; i < b->n_rep; i++) {
        replica *r = &b->rep[i];
        AKE_ASSERT(!queued(r)); /* the thread drains its queues before it exits */
        ake_engine_free(r->engine);
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
        free(r->device);
        for (int32_t k = 0; k < AKE_ENGINE_MAX_INFLIGHT; k++) {
            free(r->batch[k]);
            free(r->out[k]);
        }
        free(r->ids);
        free(r->cu);
        free(r->rows);
    }
    free(b->rep);
    free(b);
}

ake_status ake_batcher_create(const ake_model *model, const ake_batcher_opts *opts, ake_metrics *metrics,
                              ake_batcher **out, char *err, size_t errlen) {
    *out = NULL;
    const char *devices = opts->devices && *opts->devices ? opts->devices : "cpu";
    if (opts->max_batch_size < 1 || opts->max_batch_tokens < 1 || opts->max_wait_ms < 0 || opts->policy.n < 1 ||
        opts->idle_spin_us < 0)
        return ake_errf(err, errlen, AKE_EINVAL, "batcher limits must be positive");
    int32_t n_rep = 1;
    for (const char *c = devices; *c; c++) n_rep += *c == ',';
    ake_batcher *b = calloc(1, sizeof *b);
    if (!b || !(b->rep = calloc((size_t)n_rep, sizeof *b->rep))) {
        free(b);
        return ake_errf(err, errlen, AKE_ENOMEM, "out of memory creating the batcher");
    }
    b->o = *opts;
    b->o.devices = NULL; /* not kept: each replica has its own copy */
    b->metrics = metrics;
    b->dim = model->cfg.hidden;
    b->n_rep = n_rep;
    ake_status st = AKE_OK;
    for (int32_t i = 0; i < n_rep; i++) {
        b->rep[i].b = b;
        b->rep[i].idx = i;
        pthread_mutex_init(&b->rep[i].mu, NULL);
        pthread_cond_init(&b->rep[i].cv, NULL);
    }
    const char *c = devices;
    for (int32_t i = 0; i < n_rep; i++) {
        replica *r = &b->rep[i];
        size_t len = strcspn(c, ",");
        r->device = strndup(c, len);
        c += len + (c[len] == ',');
        bool ok = true;
        for (int32_t k = 0; k < AKE_ENGINE_MAX_INFLIGHT; k++) {
            r->batch[k] = malloc((size_t)opts->max_batch_size * sizeof *r->batch[k]);
            r->out[k] = malloc((size_t)opts->max_batch_size * b->dim * sizeof *r->out[k]);
            ok = ok && r->batch[k] && r->out[k];
        }
        r->ids = malloc((size_t)opts->max_batch_tokens * sizeof *r->ids);
        r->cu = malloc(((size_t)opts->max_batch_size + 1) * sizeof *r->cu);
        if (!r->device || !ok || !r->ids || !r->cu) {
            st = ake_errf(err, errlen, AKE_ENOMEM, "out of memory creating replica %d", i);
            goto fail;
        }
        if (!*r->device) {
            st = ake_errf(err, errlen, AKE_EINVAL, "device list '%s' has an empty entry", devices);
            goto fail;
        }
        ake_engine_opts eo = {.device = r->device, .max_tokens = opts->max_batch_tokens,
                              .max_batch = opts->max_batch_size, .threads = opts->threads,
                              .precision = opts->precision, .cuda = opts->cuda};
        st = ake_engine_create(model, &eo, &r->engine, err, errlen);
        if (st != AKE_OK) goto fail;
        /* Warm-up: one call through the whole forward pass before the first request. */
        int32_t warm = model->cfg.max_position < 8 ? model->cfg.max_position : 8;
        if (warm > opts->max_batch_tokens) warm = opts->max_batch_tokens;
        memset(r->ids, 0, (size_t)warm * sizeof *r->ids);
        r->cu[0] = 0;
        r->cu[1] = warm;
        st = ake_engine_embed(r->engine, r->ids, r->cu, 1, r->out[0], err, errlen);
        if (st != AKE_OK) goto fail;
        double speed;
        if ((st = probe_speed(r, model, &speed, err, errlen)) != AKE_OK) goto fail;
        b->tokens_per_s += speed;
        /* AKE_BATCHER_OVERLAP=0: complete each batch before the next (to measure the overlap) */
        const char *ov = getenv("AKE_BATCHER_OVERLAP");
        r->async = strncmp(ake_engine_device(r->engine), "cpu", 3) != 0 && !(ov && !strcmp(ov, "0"));
    }
    for (int32_t i = 0; i < n_rep; i++) {
        replica *r = &b->rep[i];
        if (pthread_create(&r->thread, NULL, replica_main, r) != 0) {
            st = ake_errf(err, errlen, AKE_ENOMEM, "cannot start the thread of replica %d", i);
            goto fail;
        }
        r->started = true;
    }
    *out = b;
    return AKE_OK;
fail:
    ake_batcher_free(b);
    return st;
}
