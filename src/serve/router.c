#include "serve/router.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "base/fs.h"
#include "base/json.h"
#include "base/log.h"
#include "serve/api_impl.h"

#define BUCKETS 10000
#define MAX_SAMPLES 200000     /* latency and agreement values kept per arm and step (a reservoir beyond) */
#define MAX_SHADOWS 64         /* shadow jobs in flight */
#define LOG_MAX 200            /* decision log entries kept per experiment */
#define EVAL_INTERVAL_MS 250
#define HOLD_REEVAL_S 2.0      /* a held step is decided again at most this often */

typedef enum { EXP_RUNNING = 0, EXP_PROMOTED, EXP_ROLLED_BACK, EXP_STOPPED } exp_status;
static const char *const status_names[] = {"running", "promoted", "rolled_back", "stopped"};

typedef struct {
    double *v;
    int64_t n, cap, seen; /* seen: values offered this step (a reservoir beyond MAX_SAMPLES) */
} samples;

typedef struct {
    int32_t bucket_end;   /* the arm owns buckets [previous arm's end, bucket_end) */
    /* this step's (exp->mu) */
    samples latency, agreement;
    int64_t requests, errors;
    uint64_t tokens0, engine_us0; /* the version's engine counters when the step began */
    /* totals for /metrics */
    _Atomic uint64_t total_requests, total_errors, total_shadows;
    ake_histogram latency_hist, agreement_hist;
} arm_state;

struct ake_experiment {
    _Atomic int32_t refs;      /* the router's list holds one, each routed request and shadow job one */
    ake_ab_plan plan;          /* its arms' weights are the current ones */
    exp_status status;         /* changed under the router's write lock */
    int32_t step;
    double step_started;       /* wall-clock seconds */
    double created;
    double ended;              /* wall-clock seconds when it stopped running; 0 while it runs */
    _Atomic uint64_t epoch;
    arm_state arms[AKE_AB_MAX_ARMS];
    pthread_mutex_t mu;        /* samples and the log */
    char *log[LOG_MAX];        /* JSON objects, oldest first */
    int32_t n_log;
    ake_ab_outcome last;       /* last decision's outcome in this step */
    double last_eval;          /* when it was made (monotonic) */
    ake_buf last_decision;     /* its JSON */
    struct ake_experiment *next;
};

struct ake_router {
    ake_registry *reg;
    char state_file[4096];
    pthread_rwlock_t rw;       /* readers: routing; writers: the list, statuses and weights */
    pthread_mutex_t ops_mu;    /* one change at a time (admin operations, the evaluator), and the file */
    ake_experiment *list;      /* every experiment, running or finished */
    char deleted[64][AKE_AB_NAME_MAX]; /* names DELETEd: an --experiments file does not start them again */
    int32_t n_deleted;
    _Atomic int32_t running;
    pthread_t evaluator;
    bool eval_running, stop;
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    _Atomic int32_t shadows;   /* in flight */
    pthread_mutex_t shadow_mu;
    pthread_cond_t shadow_cv;
};

static const double agreement_bounds[] = {0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999};

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A per-thread xorshift64*; seeded from the clock and the thread's stack address. */
static uint64_t rand64(void) {
    static _Thread_local uint64_t s;
    if (!s) s = ((uint64_t)(wall_now() * 1e9) ^ (uint64_t)(uintptr_t)&s) | 1;
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545f4914f6cdd1dull;
}

static double rand01(void) { return (double)(rand64() >> 11) * 0x1.0p-53; }

/* The sticky bucket of (experiment, user): FNV-1a 64 finished with splitmix64's mixer, so that
 * similar user names spread over the buckets. Stable across runs and machines. */
static int32_t user_bucket(const char *exp, const char *user) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *s = exp; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    h = (h ^ 0xff) * 0x100000001b3ull; /* separator: ("ab", "c") and ("a", "bc") differ */
    for (const char *s = user; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    h ^= h >> 31;
    return (int32_t)(h % BUCKETS);
}

/* ---------------------------------------------------------------- samples */

static void samples_add(samples *s, double v) {
    s->seen++;
    if (s->n < MAX_SAMPLES) {
        if (s->n == s->cap) {
            int64_t cap = s->cap ? s->cap * 2 : 1024;
            double *nv = realloc(s->v, (size_t)cap * sizeof *nv);
            if (!nv) return; /* out of memory: the sample is lost, nothing else */
            s->v = nv;
            s->cap = cap;
        }
        s->v[s->n++] = v;
        return;
    }
    const uint64_t j = rand64() % (uint64_t)s->seen; /* reservoir: every value offered is kept with equal chance */
    if (j < (uint64_t)MAX_SAMPLES) s->v[j] = v;
}

static void samples_clear(samples *s) { s->n = s->seen = 0; }

static void samples_free(samples *s) {
    free(s->v);
    *s = (samples){0};
}

/* ---------------------------------------------------------------- experiments */

static void set_buckets(ake_experiment *x) {
    double total = 0, cum = 0;
    for (int32_t i = 0; i < x->plan.n_arms; i++) total += x->plan.arms[i].weight;
    for (int32_t i = 0; i < x->plan.n_arms; i++) {
        cum += x->plan.arms[i].weight;
        x->arms[i].bucket_end = total > 0 ? (int32_t)llround(cum / total * BUCKETS) : (i == 0 ? BUCKETS : 0);
    }
    x->arms[x->plan.n_arms - 1].bucket_end = total > 0 ? BUCKETS : x->arms[x->plan.n_arms - 1].bucket_end;
}

static ake_experiment *exp_new(const ake_ab_plan *p) {
    ake_experiment *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->plan = *p;
    pthread_mutex_init(&x->mu, NULL);
    int nb;
    const double *tb = ake_metrics_time_bounds(&nb);
    for (int32_t i = 0; i < AKE_AB_MAX_ARMS; i++) {
        x->arms[i].latency_hist = (ake_histogram){.bounds = tb, .nb = nb};
        x->arms[i].agreement_hist =
            (ake_histogram){.bounds = agreement_bounds, .nb = (int)(sizeof agreement_bounds / sizeof *agreement_bounds)};
    }
    x->created = x->step_started = wall_now();
    atomic_store(&x->refs, 1);
    set_buckets(x);
    return x;
}

static void exp_free(ake_experiment *x) {
    for (int32_t i = 0; i < AKE_AB_MAX_ARMS; i++) {
        samples_free(&x->arms[i].latency);
        samples_free(&x->arms[i].agreement);
    }
    for (int32_t i = 0; i < x->n_log; i++) free(x->log[i]);
    ake_buf_release(&x->last_decision);
    pthread_mutex_destroy(&x->mu);
    free(x);
}

static void exp_unref(ake_experiment *x) {
    if (x && atomic_fetch_sub(&x->refs, 1) == 1) exp_free(x);
}

static ake_experiment *find(ake_router *r, const char *name) {
    for (ake_experiment *x = r->list; x; x = x->next)
        if (!strcmp(x->plan.name, name)) return x;
    return NULL;
}

static ake_experiment *running_for(ake_router *r, const char *model) {
    for (ake_experiment *x = r->list; x; x = x->next)
        if (x->status == EXP_RUNNING && !strcmp(x->plan.model, model)) return x;
    return NULL;
}

/* Appends {"time", "event", ...fields} to the log; fields: the rest of a JSON object without its
 * braces (may be NULL). Under x->mu. */
static void log_add(ake_experiment *x, const char *event, const char *fields) {
    ake_buf b = {0};
    ake_buf_printf(&b, "{\"time\":%.3f,\"event\":\"%s\"%s%s}", wall_now(), event, fields && *fields ? "," : "",
                   fields ? fields : "");
    if (b.oom) {
        ake_buf_release(&b);
        return;
    }
    if (x->n_log == LOG_MAX) {
        free(x->log[0]);
        memmove(x->log, x->log + 1, (LOG_MAX - 1) * sizeof *x->log);
        x->n_log--;
    }
    x->log[x->n_log++] = ake_buf_take(&b, NULL);
}

static void log_reason(ake_experiment *x, const char *event, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void log_reason(ake_experiment *x, const char *event, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ake_buf f = {0};
    ake_buf_puts(&f, "\"reason\":");
    ake_buf_json_string(&f, msg, strlen(msg));
    pthread_mutex_lock(&x->mu);
    log_add(x, event, f.data);
    pthread_mutex_unlock(&x->mu);
    ake_buf_release(&f);
    ake_log(AKE_LOG_INFO, "experiment %s: %s: %s", x->plan.name, event, msg);
}

/* model@version with a reference (ake_registry_acquire's answer: 0 or the status, e filled). */
static int acquire_version(ake_router *r, const char *model, const char *version, ake_model_version **out,
                           ake_api_error *e) {
    char spec[AKE_AB_MODEL_MAX + AKE_AB_VERSION_MAX + 2];
    snprintf(spec, sizeof spec, "%s@%s", model, version);
    return ake_registry_acquire(r->reg, spec, out, e);
}

/* The engine counters of model@version: tokens embedded and microseconds of engine calls. */
static bool engine_counters(ake_router *r, const char *model, const char *version, uint64_t *tokens, uint64_t *us) {
    ake_model_version *v = NULL;
    ake_api_error e = {0};
    if (acquire_version(r, model, version, &v, &e)) return false;
    *tokens = atomic_load(&v->metrics.counter[AKE_C_TOKENS]);
    *us = atomic_load(&v->metrics.hist[AKE_H_INFERENCE].sum_micro);
    ake_registry_release(r->reg, v);
    return true;
}

/* A new step: fresh samples and engine baselines. Under x->mu. */
static void begin_step(ake_router *r, ake_experiment *x) {
    for (int32_t i = 0; i < x->plan.n_arms; i++) {
        arm_state *a = &x->arms[i];
        samples_clear(&a->latency);
        samples_clear(&a->agreement);
        a->requests = a->errors = 0;
        a->tokens0 = a->engine_us0 = 0;
        engine_counters(r, x->plan.model, x->plan.arms[i].version, &a->tokens0, &a->engine_us0);
    }
    x->step_started = wall_now();
    x->last = AKE_AB_WAIT;
    x->last_eval = 0;
    atomic_fetch_add(&x->epoch, 1);
}

/* ---------------------------------------------------------------- the state file */

/* A DELETEd name is remembered (the oldest forgotten past 64), so that the --experiments file of
 * the next start does not bring it back; creating it again forgets it. ops_mu held. */
static void remember_deleted(ake_router *r, const char *name) {
    if (r->n_deleted == (int32_t)(sizeof r->deleted / sizeof *r->deleted)) {
        memmove(r->deleted, r->deleted + 1, sizeof r->deleted - sizeof *r->deleted);
        r->n_deleted--;
    }
    snprintf(r->deleted[r->n_deleted++], AKE_AB_NAME_MAX, "%s", name);
}

static bool was_deleted(const ake_router *r, const char *name) {
    for (int32_t i = 0; i < r->n_deleted; i++)
        if (!strcmp(r->deleted[i], name)) return true;
    return false;
}

static void forget_deleted(ake_router *r, const char *name) {
    for (int32_t i = 0; i < r->n_deleted; i++)
        if (!strcmp(r->deleted[i], name)) {
            memmove(r->deleted + i, r->deleted + i + 1, (size_t)(r->n_deleted - i - 1) * sizeof *r->deleted);
            r->n_deleted--;
            return;
        }
}

static void write_experiment_state(ake_experiment *x, ake_buf *b) {
    ake_buf_puts(b, "{\"plan\":");
    ake_ab_plan_write(&x->plan, b);
    ake_buf_printf(b, ",\"status\":\"%s\",\"step\":%d,\"step_started\":%.3f,\"created\":%.3f,\"ended\":%.3f,"
                      "\"totals\":[", status_names[x->status], x->step, x->step_started, x->created, x->ended);
    for (int32_t i = 0; i < x->plan.n_arms; i++) /* requests, errors, shadowed: /metrics' counters go on */
        ake_buf_printf(b, "%s[%llu,%llu,%llu]", i ? "," : "", (unsigned long long)atomic_load(&x->arms[i].total_requests),
                       (unsigned long long)atomic_load(&x->arms[i].total_errors),
                       (unsigned long long)atomic_load(&x->arms[i].total_shadows));
    ake_buf_puts(b, "],\"log\":[");
    pthread_mutex_lock(&x->mu);
    for (int32_t i = 0; i < x->n_log; i++) {
        if (i) ake_buf_puts(b, ",");
        ake_buf_puts(b, x->log[i]);
    }
    pthread_mutex_unlock(&x->mu);
    ake_buf_puts(b, "]}");
}

/* Writes every experiment to the state file (temp file + rename). ops_mu held. */
static void save_state(ake_router *r) {
    if (!r->state_file[0]) return;
    ake_buf b = {0};
    ake_buf_puts(&b, "{\"experiments\":[");
    pthread_rwlock_rdlock(&r->rw);
    for (ake_experiment *x = r->list; x; x = x->next) {
        write_experiment_state(x, &b);
        if (x->next) ake_buf_puts(&b, ",");
    }
    pthread_rwlock_unlock(&r->rw);
    ake_buf_puts(&b, "],\"deleted\":[");
    for (int32_t i = 0; i < r->n_deleted; i++) {
        if (i) ake_buf_puts(&b, ",");
        ake_buf_json_string(&b, r->deleted[i], strlen(r->deleted[i]));
    }
    ake_buf_puts(&b, "]}\n");
    char err[512];
    if (b.oom) ake_log(AKE_LOG_ERROR, "experiments: out of memory writing %s", r->state_file);
    else if (ake_write_file_atomic(r->state_file, b.data, b.len, err, sizeof err) != AKE_OK)
        ake_log(AKE_LOG_ERROR, "experiments: cannot save the state: %s", err);
    ake_buf_release(&b);
}

/* ---------------------------------------------------------------- starting and ending */

/* Loads and holds the arms of x (not yet in the list), control serving, and adds it running.
 * ops_mu held. */
static int start_experiment(ake_router *r, ake_experiment *x, bool resumed, ake_api_error *e) {
    pthread_rwlock_rdlock(&r->rw);
    const bool taken = find(r, x->plan.name) != NULL, busy = running_for(r, x->plan.model) != NULL;
    pthread_rwlock_unlock(&r->rw);
    if (taken) return ake_api_fail(e, 409, "name", "an experiment named `%s` exists (DELETE it first)", x->plan.name);
    if (busy)
        return ake_api_fail(e, 409, "model", "model `%s` already has a running experiment", x->plan.model);
    const char *versions[AKE_AB_MAX_ARMS];
    for (int32_t i = 0; i < x->plan.n_arms; i++) versions[i] = x->plan.arms[i].version;
    const char *control = x->plan.arms[ake_ab_control(&x->plan)].version;
    int rc = ake_registry_hold(r->reg, x->plan.model, versions, x->plan.n_arms, control, e);
    if (rc) return rc;
    int32_t dim[AKE_AB_MAX_ARMS] = {0};
    for (int32_t i = 0; i < x->plan.n_arms; i++) {
        ake_model_version *v = NULL;
        ake_api_error ignored = {0};
        if (!acquire_version(r, x->plan.model, versions[i], &v, &ignored)) {
            dim[i] = v->facts.dim;
            ake_registry_release(r->reg, v);
        }
        if (!rc && dim[i] != dim[0]) /* their vectors go to the same index: and agreement needs it */
            rc = ake_api_fail(e, 422, "arms", "the arms' vectors differ in size: version %s has %d dimensions, "
                              "version %s %d", versions[0], dim[0], versions[i], dim[i]);
    }
    if (rc) {
        ake_registry_end_hold(r->reg, x->plan.model, control, NULL, false, false);
        return rc;
    }
    pthread_mutex_lock(&x->mu);
    const double started = x->step_started;
    begin_step(r, x);
    if (resumed) x->step_started = started; /* the hold time of a resumed step counts on */
    pthread_mutex_unlock(&x->mu);
    pthread_rwlock_wrlock(&r->rw);
    x->status = EXP_RUNNING;
    x->next = r->list;
    r->list = x;
    atomic_fetch_add(&r->running, 1);
    pthread_rwlock_unlock(&r->rw);
    return 0;
}

/* Moves all traffic to arm `to` at once (weights), then ends the experiment with `status`:
 * promote: the canary serves, control is unloaded; roll back: control serves, the canary is
 * skipped and unloaded (unless keep_canary); stop: control serves, nothing is unloaded. ops_mu
 * held. */
static void end_experiment(ake_router *r, ake_experiment *x, exp_status status, const char *event, const char *fields) {
    const int32_t ctl = ake_ab_control(&x->plan), can = ake_ab_canary(&x->plan);
    const int32_t to = status == EXP_PROMOTED ? can : ctl;
    pthread_rwlock_wrlock(&r->rw); /* from here on, new requests go to `to` */
    for (int32_t i = 0; i < x->plan.n_arms; i++) x->plan.arms[i].weight = i == to ? 100 : 0;
    set_buckets(x);
    atomic_fetch_add(&x->epoch, 1);
    pthread_rwlock_unlock(&r->rw);
    const char *serve = x->plan.arms[to].version;
    if (status == EXP_PROMOTED)
        ake_registry_end_hold(r->reg, x->plan.model, serve, x->plan.arms[ctl].version, false, true);
    else if (status == EXP_ROLLED_BACK)
        for (int32_t i = 0; i < x->plan.n_arms; i++) {
            if (i == ctl) continue;
            ake_registry_end_hold(r->reg, x->plan.model, serve, x->plan.arms[i].version, true, !x->plan.keep_canary);
        }
    else
        ake_registry_end_hold(r->reg, x->plan.model, serve, NULL, false, false);
    pthread_rwlock_wrlock(&r->rw); /* the registry's serving version answers the name again */
    x->status = status;
    x->ended = wall_now();
    atomic_fetch_sub(&r->running, 1);
    pthread_rwlock_unlock(&r->rw);
    pthread_mutex_lock(&x->mu);
    log_add(x, event, fields);
    pthread_mutex_unlock(&x->mu);
    ake_log(AKE_LOG_INFO, "experiment %s: %s; model %s version %s serves", x->plan.name, status_names[status],
            x->plan.model, serve);
}

/* ---------------------------------------------------------------- routing */

int ake_router_acquire(ake_router *r, const char *model, const char *user, ake_model_version **out, ake_route *route,
                       ake_api_error *e) {
    *route = (ake_route){0};
    if (!atomic_load(&r->running) || (model && strchr(model, '@'))) return ake_registry_acquire(r->reg, model, out, e);
    char name[AKE_AB_MODEL_MAX];
    if (model) snprintf(name, sizeof name, "%s", model);
    else ake_registry_default_name(r->reg, name, sizeof name);
    pthread_rwlock_rdlock(&r->rw);
    ake_experiment *x = running_for(r, name);
    if (!x && strchr(name, '/')) x = running_for(r, strrchr(name, '/') + 1); /* "org/name" */
    if (!x) {
        pthread_rwlock_unlock(&r->rw);
        return ake_registry_acquire(r->reg, model, out, e);
    }
    const int32_t bucket = x->plan.sticky_user && user && *user ? user_bucket(x->plan.name, user)
                                                                : (int32_t)(rand64() % BUCKETS);
    int32_t arm = 0;
    while (arm < x->plan.n_arms - 1 && bucket >= x->arms[arm].bucket_end) arm++;
    const int rc = acquire_version(r, x->plan.model, x->plan.arms[arm].version, out, e); /* held: it is loaded */
    if (!rc) {
        atomic_fetch_add(&x->refs, 1); /* x is on the list (which holds one) while we hold the lock */
        *route = (ake_route){.exp = x, .arm = arm, .epoch = atomic_load(&x->epoch)};
        route->shadow = x->plan.arms[arm].control && x->plan.shadow_fraction > 0 && rand01() < x->plan.shadow_fraction;
    }
    pthread_rwlock_unlock(&r->rw);
    return rc;
}

void ake_router_done(ake_router *r, ake_route *route) {
    (void)r;
    exp_unref(route->exp);
    route->exp = NULL;
}

void ake_router_record(ake_router *r, const ake_route *route, bool engine, int status, double seconds) {
    (void)r;
    ake_experiment *x = route->exp;
    if (!x || !engine) return;
    arm_state *a = &x->arms[route->arm];
    const bool error = status != 200; /* a canary that refuses what control takes fails its users too */
    atomic_fetch_add(&a->total_requests, 1);
    if (error) atomic_fetch_add(&a->total_errors, 1);
    if (status == 200) ake_histogram_observe(&a->latency_hist, seconds);
    pthread_mutex_lock(&x->mu);
    if (route->epoch == atomic_load(&x->epoch)) {
        a->requests++;
        a->errors += error;
        if (status == 200) samples_add(&a->latency, seconds * 1e3);
    }
    pthread_mutex_unlock(&x->mu);
}

typedef struct {
    ake_job job;
    ake_router *r;
    ake_experiment *exp;
    int32_t arm;
    uint64_t epoch;
    ake_model_version *mv;
    ake_api_tokens toks;
    ake_seq *seqs;
    float *vecs;    /* [n, dim] the canary's */
    float *control; /* [n, dim] control's */
    int32_t n, dim;
} shadow_job;

static void shadow_free(shadow_job *s) {
    ake_router *r = s->r;
    ake_registry_release(r->reg, s->mv);
    exp_unref(s->exp);
    ake_api_tokens_release(&s->toks);
    free(s->seqs);
    free(s->vecs);
    free(s->control);
    free(s);
    pthread_mutex_lock(&r->shadow_mu);
    atomic_fetch_sub(&r->shadows, 1);
    pthread_cond_broadcast(&r->shadow_cv);
    pthread_mutex_unlock(&r->shadow_mu);
}

static void shadow_done(ake_job *job) {
    shadow_job *s = job->user;
    if (atomic_load(&job->result) == AKE_JOB_OK) {
        ake_experiment *x = s->exp;
        arm_state *a = &x->arms[s->arm];
        double cos[64];
        for (int32_t i = 0; i < s->n; i += 64) {
            const int32_t m = s->n - i < 64 ? s->n - i : 64;
            for (int32_t k = 0; k < m; k++) {
                const float *p = s->control + (size_t)(i + k) * s->dim, *q = s->vecs + (size_t)(i + k) * s->dim;
                double pq = 0, pp = 0, qq = 0;
                for (int32_t j = 0; j < s->dim; j++) {
                    pq += (double)p[j] * q[j];
                    pp += (double)p[j] * p[j];
                    qq += (double)q[j] * q[j];
                }
                cos[k] = pp > 0 && qq > 0 ? pq / sqrt(pp * qq) : 0;
                ake_histogram_observe(&a->agreement_hist, cos[k]);
            }
            pthread_mutex_lock(&x->mu);
            if (s->epoch == atomic_load(&x->epoch))
                for (int32_t k = 0; k < m; k++) samples_add(&a->agreement, cos[k]);
            pthread_mutex_unlock(&x->mu);
        }
        atomic_fetch_add(&a->total_shadows, 1);
    }
    shadow_free(s);
}

void ake_router_shadow(ake_router *r, const ake_route *route, const ake_api_request *req, const float *vecs,
                       int32_t dim) {
    ake_experiment *x = route->exp;
    if (!x || !route->shadow) return;
    if (atomic_fetch_add(&r->shadows, 1) >= MAX_SHADOWS) {
        atomic_fetch_sub(&r->shadows, 1);
        return;
    }
    shadow_job *s = calloc(1, sizeof *s);
    if (!s) {
        atomic_fetch_sub(&r->shadows, 1);
        return;
    }
    s->r = r;
    s->exp = x;
    atomic_fetch_add(&x->refs, 1); /* the caller's route holds one */
    s->arm = ake_ab_canary(&x->plan);
    s->epoch = route->epoch;
    s->n = req->n;
    s->dim = dim;
    ake_api_error e = {0};
    ake_api_request q = *req; /* shallow: the canary's prompt and checks, the same inputs */
    q.prompt = NULL;
    bool ok = acquire_version(r, x->plan.model, x->plan.arms[s->arm].version, &s->mv, &e) == 0 &&
              s->mv->facts.dim == dim &&
              ake_api_bind_model(&q, &s->mv->facts, &e) == 0 &&
              ake_api_encode(s->mv->p.tok, &s->mv->facts, &q, true, &s->toks, &e) == 0;
    if (ok) {
        s->seqs = calloc((size_t)s->n, sizeof *s->seqs);
        s->vecs = malloc((size_t)s->n * (size_t)dim * sizeof *s->vecs);
        s->control = malloc((size_t)s->n * (size_t)dim * sizeof *s->control);
        ok = s->seqs && s->vecs && s->control;
    }
    if (!ok) { /* a canary that cannot take this input (another vocabulary, dimension): no sample */
        shadow_free(s);
        return;
    }
    memcpy(s->control, vecs, (size_t)s->n * (size_t)dim * sizeof *vecs);
    for (int32_t i = 0; i < s->n; i++) {
        s->seqs[i].ids = s->toks.ids + s->toks.off[i];
        s->seqs[i].len = s->toks.off[i + 1] - s->toks.off[i];
    }
    s->job.n = s->n;
    s->job.seqs = s->seqs;
    s->job.out = s->vecs;
    s->job.done = shadow_done;
    s->job.user = s;
    ake_batcher_submit(s->mv->batcher, &s->job);
}

/* ---------------------------------------------------------------- decisions */

/* Copies the step's samples of x (under x->mu) into snap; the caller frees the arrays with
 * ake_ab_snapshot_release. The engine throughput of each arm is read from its version. */
static void take_snapshot(ake_router *r, ake_experiment *x, ake_ab_snapshot *snap) {
    memset(snap, 0, sizeof *snap);
    const int32_t idx[2] = {ake_ab_control(&x->plan), ake_ab_canary(&x->plan)};
    ake_ab_samples *dst[2] = {&snap->control, &snap->canary};
    uint64_t tok[2] = {0, 0}, us[2] = {0, 0};
    bool have[2];
    for (int k = 0; k < 2; k++)
        have[k] = engine_counters(r, x->plan.model, x->plan.arms[idx[k]].version, &tok[k], &us[k]);
    pthread_mutex_lock(&x->mu);
    snap->step = x->step;
    snap->held_s = (x->ended > 0 ? x->ended : wall_now()) - x->step_started;
    for (int k = 0; k < 2; k++) {
        const arm_state *a = &x->arms[idx[k]];
        ake_ab_samples *d = dst[k];
        double *lat = malloc((size_t)(a->latency.n ? a->latency.n : 1) * sizeof *lat);
        double *agr = malloc((size_t)(a->agreement.n ? a->agreement.n : 1) * sizeof *agr);
        if (lat && agr) {
            if (a->latency.n) memcpy(lat, a->latency.v, (size_t)a->latency.n * sizeof *lat);
            if (a->agreement.n) memcpy(agr, a->agreement.v, (size_t)a->agreement.n * sizeof *agr);
            d->n_latency = a->latency.n;
            d->n_agreement = a->agreement.n;
        }
        d->latency_ms = lat;
        d->agreement = agr;
        d->requests = a->requests;
        d->errors = a->errors;
        if (have[k] && us[k] > a->engine_us0 && tok[k] > a->tokens0)
            d->engine_tokens_per_s = (double)(tok[k] - a->tokens0) / ((double)(us[k] - a->engine_us0) * 1e-6);
    }
    pthread_mutex_unlock(&x->mu);
}

/* Applies decision d to x. ops_mu held. */
static void apply(ake_router *r, ake_experiment *x, const ake_ab_decision *d) {
    ake_buf f = {0};
    ake_buf_puts(&f, "\"decision\":");
    ake_ab_decision_write(d, &f);
    switch (d->outcome) {
    case AKE_AB_WAIT: break;
    case AKE_AB_HOLD:
        pthread_mutex_lock(&x->mu);
        if (x->last != AKE_AB_HOLD) log_add(x, "hold", f.data); /* the first hold of the step */
        pthread_mutex_unlock(&x->mu);
        break;
    case AKE_AB_NEXT_STEP: {
        pthread_mutex_lock(&x->mu);
        log_add(x, "next_step", f.data);
        pthread_mutex_unlock(&x->mu);
        const double pct = x->plan.rollout.steps[x->step + 1];
        pthread_rwlock_wrlock(&r->rw);
        x->step++;
        x->plan.arms[ake_ab_control(&x->plan)].weight = 100 - pct;
        x->plan.arms[ake_ab_canary(&x->plan)].weight = pct;
        set_buckets(x);
        pthread_rwlock_unlock(&r->rw);
        pthread_mutex_lock(&x->mu);
        begin_step(r, x);
        pthread_mutex_unlock(&x->mu);
        ake_log(AKE_LOG_INFO, "experiment %s: step %d, canary %g %% (%s)", x->plan.name, x->step, pct, d->reason);
        break;
    }
    case AKE_AB_PROMOTE:
        ake_log(AKE_LOG_INFO, "experiment %s: promote (%s)", x->plan.name, d->reason);
        end_experiment(r, x, EXP_PROMOTED, "promote", f.data);
        break;
    case AKE_AB_ROLLBACK:
        ake_log(AKE_LOG_WARN, "experiment %s: roll back (%s)", x->plan.name, d->reason);
        end_experiment(r, x, EXP_ROLLED_BACK, "rollback", f.data);
        break;
    }
    ake_buf_release(&f);
    if (d->outcome != AKE_AB_WAIT && (d->outcome != AKE_AB_HOLD || x->last != AKE_AB_HOLD)) save_state(r);
}

/* One look at every running experiment with a rollout. */
static void evaluate_all(ake_router *r) {
    pthread_mutex_lock(&r->ops_mu);
    for (ake_experiment *x = r->list; x; x = x->next) {
        if (x->status != EXP_RUNNING || !x->plan.has_rollout) continue;
        const ake_ab_rollout *ro = &x->plan.rollout;
        pthread_mutex_lock(&x->mu);
        const int32_t can = ake_ab_canary(&x->plan), ctl = ake_ab_control(&x->plan);
        const double held = wall_now() - x->step_started, now = ake_now_s();
        const bool ready = held >= ro->min_hold_s &&
                           x->arms[can].requests + x->arms[ctl].requests >= ro->min_samples &&
                           x->arms[can].requests >= ro->min_canary_samples;
        const bool recent = x->last == AKE_AB_HOLD && now - x->last_eval < HOLD_REEVAL_S;
        pthread_mutex_unlock(&x->mu);
        if ((!ready && !(ro->max_hold_s > 0 && held >= ro->max_hold_s)) || recent) continue;
        ake_ab_snapshot snap;
        take_snapshot(r, x, &snap);
        ake_ab_decision d;
        ake_ab_decide(&x->plan, &snap, &d);
        ake_ab_snapshot_release(&snap);
        apply(r, x, &d);
        pthread_mutex_lock(&x->mu);
        x->last = d.outcome;
        x->last_eval = now;
        ake_buf_release(&x->last_decision);
        ake_ab_decision_write(&d, &x->last_decision);
        pthread_mutex_unlock(&x->mu);
    }
    pthread_mutex_unlock(&r->ops_mu);
}

static void *evaluator_main(void *arg) {
    ake_router *r = arg;
    pthread_mutex_lock(&r->stop_mu);
    while (!r->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += EVAL_INTERVAL_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&r->stop_cv, &r->stop_mu, &ts);
        if (r->stop) break;
        pthread_mutex_unlock(&r->stop_mu);
        if (atomic_load(&r->running)) evaluate_all(r);
        pthread_mutex_lock(&r->stop_mu);
    }
    pthread_mutex_unlock(&r->stop_mu);
    return NULL;
}

/* ---------------------------------------------------------------- create, start, free */

ake_status ake_router_create(ake_registry *reg, const char *state_file, ake_router **out, char *err, size_t errlen) {
    ake_router *r = calloc(1, sizeof *r);
    if (!r) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory");
    r->reg = reg;
    if (state_file && strlen(state_file) >= sizeof r->state_file) {
        free(r);
        return ake_errf(err, errlen, AKE_EINVAL, "the experiments state path is too long");
    }
    snprintf(r->state_file, sizeof r->state_file, "%s", state_file ? state_file : "");
    pthread_rwlock_init(&r->rw, NULL);
    pthread_mutex_init(&r->ops_mu, NULL);
    pthread_mutex_init(&r->stop_mu, NULL);
    pthread_cond_init(&r->stop_cv, NULL);
    pthread_mutex_init(&r->shadow_mu, NULL);
    pthread_cond_init(&r->shadow_cv, NULL);
    *out = r;
    return AKE_OK;
}

/* Resumes one experiment of the state file. ops_mu held. */
static void resume(ake_router *r, const json_object *o) {
    json_object *plan = NULL, *v;
    ake_ab_plan p;
    char err[512];
    if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, "plan", &plan) ||
        ake_ab_plan_parse(plan, &p, err, sizeof err) != AKE_OK) {
        ake_log(AKE_LOG_ERROR, "experiments: an entry of %s is not an experiment; left out", r->state_file);
        return;
    }
    /* the plan as written holds the current weights; a rollout's come from its step */
    int32_t step = json_object_object_get_ex(o, "step", &v) ? json_object_get_int(v) : 0;
    if (step < 0 || step >= p.rollout.n_steps) step = 0;
    ake_experiment *x = exp_new(&p);
    if (!x) return;
    x->step = step;
    if (p.has_rollout) {
        x->plan.arms[ake_ab_control(&p)].weight = 100 - p.rollout.steps[step];
        x->plan.arms[ake_ab_canary(&p)].weight = p.rollout.steps[step];
        set_buckets(x);
    }
    if (json_object_object_get_ex(o, "created", &v)) x->created = json_object_get_double(v);
    if (json_object_object_get_ex(o, "step_started", &v)) x->step_started = json_object_get_double(v);
    if (json_object_object_get_ex(o, "ended", &v)) x->ended = json_object_get_double(v);
    if (json_object_object_get_ex(o, "totals", &v) && json_object_is_type(v, json_type_array))
        for (size_t i = 0; i < json_object_array_length(v) && i < (size_t)p.n_arms; i++) {
            json_object *t = json_object_array_get_idx(v, i);
            if (!json_object_is_type(t, json_type_array) || json_object_array_length(t) != 3) continue;
            atomic_store(&x->arms[i].total_requests, (uint64_t)json_object_get_int64(json_object_array_get_idx(t, 0)));
            atomic_store(&x->arms[i].total_errors, (uint64_t)json_object_get_int64(json_object_array_get_idx(t, 1)));
            atomic_store(&x->arms[i].total_shadows, (uint64_t)json_object_get_int64(json_object_array_get_idx(t, 2)));
        }
    if (json_object_object_get_ex(o, "log", &v) && json_object_is_type(v, json_type_array))
        for (size_t i = 0; i < json_object_array_length(v) && x->n_log < LOG_MAX; i++) {
            const char *s = json_object_to_json_string_ext(json_object_array_get_idx(v, i), JSON_C_TO_STRING_PLAIN);
            if (s && (x->log[x->n_log] = strdup(s))) x->n_log++;
        }
    const char *status = json_object_object_get_ex(o, "status", &v) ? json_object_get_string(v) : "";
    exp_status st = EXP_STOPPED;
    for (int i = 0; i < 4; i++)
        if (status && !strcmp(status, status_names[i])) st = (exp_status)i;
    if (st != EXP_RUNNING) { /* its traffic went to one arm when it ended */
        const int32_t to = st == EXP_PROMOTED ? ake_ab_canary(&p) : ake_ab_control(&p);
        for (int32_t i = 0; i < p.n_arms; i++) x->plan.arms[i].weight = i == to ? 100 : 0;
        set_buckets(x);
        x->status = st;
        pthread_rwlock_wrlock(&r->rw);
        x->next = r->list;
        r->list = x;
        pthread_rwlock_unlock(&r->rw);
        return;
    }
    ake_api_error e = {0};
    if (start_experiment(r, x, true, &e)) {
        ake_log(AKE_LOG_ERROR, "experiment %s cannot be resumed: %s; marked stopped", p.name, e.msg);
        x->status = EXP_STOPPED;
        pthread_rwlock_wrlock(&r->rw);
        x->next = r->list;
        r->list = x;
        pthread_rwlock_unlock(&r->rw);
        log_reason(x, "stopped", "not resumed at start: %s", e.msg);
        return;
    }
    log_reason(x, "resumed", "the server restarted; step %d resumes with fresh samples", x->step);
}

ake_status ake_router_start(ake_router *r, const char *experiments_file, char *err, size_t errlen) {
    json_object *state = NULL, *file = NULL;
    ake_status st = AKE_OK;
    pthread_mutex_lock(&r->ops_mu);
    if (r->state_file[0] && (st = ake_json_read_file(r->state_file, 64u << 20, &state, err, errlen)) != AKE_OK) {
        if (st != AKE_ENOTFOUND) goto done;
        st = AKE_OK; /* no state yet */
    }
    json_object *list;
    if (state && json_object_object_get_ex(state, "experiments", &list) && json_object_is_type(list, json_type_array))
        for (size_t i = json_object_array_length(list); i-- > 0;) /* written newest first: keep that order */
            resume(r, json_object_array_get_idx(list, i));
    if (state && json_object_object_get_ex(state, "deleted", &list) && json_object_is_type(list, json_type_array))
        for (size_t i = 0; i < json_object_array_length(list); i++) {
            const char *n = json_object_get_string(json_object_array_get_idx(list, i));
            if (n && strlen(n) < AKE_AB_NAME_MAX) remember_deleted(r, n);
        }
    if (experiments_file && *experiments_file) {
        if ((st = ake_json_read_file(experiments_file, 64u << 20, &file, err, errlen)) != AKE_OK) goto done;
        json_object *arr = file;
        if (json_object_is_type(file, json_type_object) && json_object_object_get_ex(file, "experiments", &list))
            arr = list;
        const size_t n = json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 1;
        for (size_t i = 0; i < n; i++) {
            const json_object *o = json_object_is_type(arr, json_type_array) ? json_object_array_get_idx(arr, i) : arr;
            ake_ab_plan p;
            if ((st = ake_ab_plan_parse(o, &p, err, errlen)) != AKE_OK) {
                char msg[512];
                snprintf(msg, sizeof msg, "%s", err);
                st = ake_errf(err, errlen, st, "%s: experiment %zu: %s", experiments_file, i, msg);
                goto done;
            }
            pthread_rwlock_rdlock(&r->rw);
            const bool known = find(r, p.name) != NULL;
            pthread_rwlock_unlock(&r->rw);
            if (known || was_deleted(r, p.name)) { /* the state file's is newer */
                if (!known) ake_log(AKE_LOG_INFO, "experiment %s of %s was deleted by the admin API; not started again",
                                    p.name, experiments_file);
                continue;
            }
            ake_experiment *x = exp_new(&p);
            ake_api_error e = {0};
            if (!x) {
                st = ake_errf(err, errlen, AKE_ENOMEM, "out of memory");
                goto done;
            }
            if (start_experiment(r, x, false, &e)) {
                exp_free(x);
                st = ake_errf(err, errlen, AKE_EINVAL, "%s: experiment %s: %s", experiments_file, p.name, e.msg);
                goto done;
            }
            log_reason(x, "start", "from %s: canary %s at %g %%", experiments_file,
                       x->plan.arms[ake_ab_canary(&x->plan)].version, x->plan.arms[ake_ab_canary(&x->plan)].weight);
        }
    }
    save_state(r);
    if (pthread_create(&r->evaluator, NULL, evaluator_main, r) == 0) r->eval_running = true;
    else st = ake_errf(err, errlen, AKE_EIO, "cannot start the experiments' evaluator thread");
done:
    pthread_mutex_unlock(&r->ops_mu);
    json_object_put(state);
    json_object_put(file);
    return st;
}

void ake_router_free(ake_router *r) {
    if (!r) return;
    if (r->eval_running) {
        pthread_mutex_lock(&r->stop_mu);
        r->stop = true;
        pthread_cond_broadcast(&r->stop_cv);
        pthread_mutex_unlock(&r->stop_mu);
        pthread_join(r->evaluator, NULL);
    }
    pthread_mutex_lock(&r->shadow_mu);
    while (atomic_load(&r->shadows) > 0) pthread_cond_wait(&r->shadow_cv, &r->shadow_mu);
    pthread_mutex_unlock(&r->shadow_mu);
    for (ake_experiment *x = r->list; x;) { /* no request or shadow holds one any more */
        ake_experiment *next = x->next;
        exp_free(x);
        x = next;
    }
    pthread_rwlock_destroy(&r->rw);
    pthread_mutex_destroy(&r->ops_mu);
    pthread_mutex_destroy(&r->stop_mu);
    pthread_cond_destroy(&r->stop_cv);
    pthread_mutex_destroy(&r->shadow_mu);
    pthread_cond_destroy(&r->shadow_cv);
    free(r);
}

/* ---------------------------------------------------------------- admin */

static int parse_body(const char *body, size_t len, json_object **root, ake_api_error *e) {
    int rc = ake_api_parse_json(body, len, root, e);
    if (!rc && !json_object_is_type(*root, json_type_object)) {
        json_object_put(*root);
        *root = NULL;
        rc = ake_api_fail(e, 422, NULL, "the body must be a JSON object");
    }
    return rc;
}

static void write_summary(ake_experiment *x, bool full, ake_buf *b) {
    ake_buf_puts(b, "{\"name\":");
    ake_buf_json_string(b, x->plan.name, strlen(x->plan.name));
    ake_buf_puts(b, ",\"model\":");
    ake_buf_json_string(b, x->plan.model, strlen(x->plan.model));
    double total = 0, canary = 0;
    for (int32_t i = 0; i < x->plan.n_arms; i++) {
        total += x->plan.arms[i].weight;
        canary += x->plan.arms[i].control ? 0 : x->plan.arms[i].weight;
    }
    ake_buf_printf(b, ",\"status\":\"%s\",\"step\":%d,\"step_percent\":", status_names[x->status], x->step);
    if (x->plan.has_rollout) ake_buf_printf(b, "%g", x->plan.rollout.steps[x->step]);
    else ake_buf_puts(b, "null");
    ake_buf_printf(b, ",\"canary_percent\":%g,\"held_s\":%.3f,\"arms\":[", total > 0 ? canary / total * 100 : 0,
                   (x->ended > 0 ? x->ended : wall_now()) - x->step_started);
    pthread_mutex_lock(&x->mu);
    for (int32_t i = 0; i < x->plan.n_arms; i++) {
        const arm_state *a = &x->arms[i];
        ake_buf_puts(b, i ? ",{\"version\":" : "{\"version\":");
        ake_buf_json_string(b, x->plan.arms[i].version, strlen(x->plan.arms[i].version));
        ake_buf_printf(b, ",\"role\":\"%s\",\"weight\":%g,\"percent\":%g,\"requests_total\":%llu,\"errors_total\":%llu,"
                          "\"shadowed_total\":%llu,\"step_requests\":%lld,\"step_errors\":%lld,\"step_latency_samples\":%lld,"
                          "\"step_agreement_samples\":%lld",
                       x->plan.arms[i].control ? "control" : "canary", x->plan.arms[i].weight,
                       total > 0 ? x->plan.arms[i].weight / total * 100 : 0,
                       (unsigned long long)atomic_load(&a->total_requests),
                       (unsigned long long)atomic_load(&a->total_errors),
                       (unsigned long long)atomic_load(&a->total_shadows), (long long)a->requests, (long long)a->errors,
                       (long long)a->latency.n, (long long)a->agreement.n);
        if (a->agreement.n) {
            double sum = 0;
            for (int64_t k = 0; k < a->agreement.n; k++) sum += a->agreement.v[k];
            ake_buf_printf(b, ",\"step_agreement_mean\":%.6f", sum / (double)a->agreement.n);
        }
        ake_buf_puts(b, "}");
    }
    ake_buf_puts(b, "]");
    if (full) {
        ake_buf_puts(b, ",\"decision\":");
        ake_buf_puts(b, x->last_decision.len ? x->last_decision.data : "null");
        ake_buf_puts(b, ",\"plan\":");
        ake_ab_plan_write(&x->plan, b);
        ake_buf_puts(b, ",\"log\":[");
        for (int32_t i = 0; i < x->n_log; i++) {
            if (i) ake_buf_puts(b, ",");
            ake_buf_puts(b, x->log[i]);
        }
        ake_buf_puts(b, "]");
    }
    pthread_mutex_unlock(&x->mu);
    ake_buf_puts(b, "}");
}

static ake_experiment *lookup(ake_router *r, const char *name, ake_api_error *e) {
    pthread_rwlock_rdlock(&r->rw);
    ake_experiment *x = find(r, name);
    pthread_rwlock_unlock(&r->rw);
    if (!x) ake_api_fail(e, 404, NULL, "no experiment `%.100s`", name);
    return x;
}

int ake_router_create_experiment(ake_router *r, const char *body, size_t len, ake_buf *out, ake_api_error *e) {
    json_object *root = NULL;
    int rc = parse_body(body, len, &root, e);
    if (rc) return rc;
    ake_ab_plan p;
    char err[512];
    ake_status st = ake_ab_plan_parse(root, &p, err, sizeof err);
    json_object_put(root);
    if (st != AKE_OK) return ake_api_fail(e, 422, NULL, "%s", err);
    ake_experiment *x = exp_new(&p);
    if (!x) return ake_api_fail(e, 500, NULL, "out of memory");
    pthread_mutex_lock(&r->ops_mu);
    rc = start_experiment(r, x, false, e);
    if (rc) {
        pthread_mutex_unlock(&r->ops_mu);
        exp_free(x);
        return rc;
    }
    forget_deleted(r, x->plan.name);
    const int32_t can = ake_ab_canary(&x->plan);
    log_reason(x, "start", "canary %s at %g %%%s", x->plan.arms[can].version, x->plan.arms[can].weight,
               x->plan.has_rollout ? ", rollout by the plan's steps and gates" : ", weights fixed");
    save_state(r);
    write_summary(x, true, out);
    pthread_mutex_unlock(&r->ops_mu);
    return 0;
}

int ake_router_patch(ake_router *r, const char *name, const char *body, size_t len, ake_buf *out, ake_api_error *e) {
    json_object *root = NULL;
    int rc = parse_body(body, len, &root, e);
    if (rc) return rc;
    pthread_mutex_lock(&r->ops_mu);
    ake_experiment *x = lookup(r, name, e);
    ake_ab_plan p = x ? x->plan : (ake_ab_plan){0};
    json_object *arms = NULL, *v;
    if (!x) rc = e->status;
    else if (x->status != EXP_RUNNING) rc = ake_api_fail(e, 409, NULL, "experiment `%s` is %s", name, status_names[x->status]);
    else if (x->plan.has_rollout && json_object_object_get_ex(root, "arms", NULL))
        rc = ake_api_fail(e, 409, "arms", "experiment `%s` has a rollout: its steps set the weights (roll it back or "
                          "promote it instead)", name);
    if (!rc) { /* json-c's foreach reads through a NULL object */
        json_object_object_foreach(root, key, val) {
            (void)val;
            if (!rc && strcmp(key, "arms") && strcmp(key, "shadow_fraction"))
                rc = ake_api_fail(e, 422, NULL, "unknown field `%.64s` (PATCH takes `arms` and `shadow_fraction`)", key);
        }
    }
    if (!rc && json_object_object_get_ex(root, "shadow_fraction", &v)) {
        double d;
        if (!ake_json_number(v, &d) || d < 0 || d > 1)
            rc = ake_api_fail(e, 422, "shadow_fraction", "`shadow_fraction` must be a number in [0, 1]");
        else p.shadow_fraction = d;
    }
    if (!rc && json_object_object_get_ex(root, "arms", &arms)) {
        const size_t n = json_object_is_type(arms, json_type_array) ? json_object_array_length(arms) : 0;
        if (!n) rc = ake_api_fail(e, 422, "arms", "`arms` must be an array of {\"version\", \"weight\"}");
        bool seen[AKE_AB_MAX_ARMS] = {false};
        for (size_t i = 0; !rc && i < n; i++) {
            json_object *a = json_object_array_get_idx(arms, i), *ver, *w;
            double d;
            int32_t k = -1;
            if (json_object_is_type(a, json_type_object)) {
                json_object_object_foreach(a, key, val) {
                    (void)val;
                    if (!rc && strcmp(key, "version") && strcmp(key, "weight"))
                        rc = ake_api_fail(e, 422, "arms", "arms[%zu]: unknown field `%.64s` (an arm's PATCH takes "
                                          "`version` and `weight`)", i, key);
                }
                if (json_object_object_get_ex(a, "version", &ver))
                    for (int32_t j = 0; j < p.n_arms; j++)
                        if (!strcmp(json_object_get_string(ver), p.arms[j].version)) k = j;
            }
            if (rc) break;
            if (k < 0) rc = ake_api_fail(e, 422, "arms", "arms[%zu]: `version` must name an arm of the experiment", i);
            else if (seen[k]) rc = ake_api_fail(e, 422, "arms", "arms[%zu]: version %s is listed twice", i, p.arms[k].version);
            else if (!json_object_object_get_ex(a, "weight", &w) || !ake_json_number(w, &d) || d < 0 || d > 1e9)
                rc = ake_api_fail(e, 422, "arms", "arms[%zu]: `weight` must be a number in [0, 1e+09]", i);
            else {
                p.arms[k].weight = d;
                seen[k] = true;
            }
        }
        double total = 0;
        for (int32_t j = 0; j < p.n_arms; j++) total += p.arms[j].weight;
        if (!rc && !(total > 0)) rc = ake_api_fail(e, 422, "arms", "the weights must not all be 0");
    }
    json_object_put(root);
    if (!rc) {
        pthread_rwlock_wrlock(&r->rw); /* new requests only: those routed keep their arm */
        x->plan = p;
        set_buckets(x);
        pthread_rwlock_unlock(&r->rw);
        pthread_mutex_lock(&x->mu);
        begin_step(r, x);
        pthread_mutex_unlock(&x->mu);
        ake_buf f = {0};
        ake_buf_puts(&f, "\"plan\":");
        ake_ab_plan_write(&p, &f);
        pthread_mutex_lock(&x->mu);
        log_add(x, "weights", f.data);
        pthread_mutex_unlock(&x->mu);
        ake_buf_release(&f);
        save_state(r);
        write_summary(x, true, out);
    }
    pthread_mutex_unlock(&r->ops_mu);
    return rc;
}

/* rollback / promote / stop by hand. */
static int finish_by_hand(ake_router *r, const char *name, exp_status status, ake_buf *out, ake_api_error *e) {
    pthread_mutex_lock(&r->ops_mu);
    ake_experiment *x = lookup(r, name, e);
    int rc = x ? 0 : e->status;
    if (x && x->status != EXP_RUNNING)
        rc = ake_api_fail(e, 409, NULL, "experiment `%s` is already %s", name, status_names[x->status]);
    if (!rc) {
        const char *event = status == EXP_PROMOTED ? "promote" : status == EXP_ROLLED_BACK ? "rollback" : "stop";
        end_experiment(r, x, status, event, "\"reason\":\"by the admin API\"");
        save_state(r);
        if (out) write_summary(x, true, out);
    }
    pthread_mutex_unlock(&r->ops_mu);
    return rc;
}

int ake_router_rollback(ake_router *r, const char *name, ake_buf *out, ake_api_error *e) {
    return finish_by_hand(r, name, EXP_ROLLED_BACK, out, e);
}

int ake_router_promote(ake_router *r, const char *name, ake_buf *out, ake_api_error *e) {
    return finish_by_hand(r, name, EXP_PROMOTED, out, e);
}

int ake_router_remove(ake_router *r, const char *name, ake_buf *out, ake_api_error *e) {
    pthread_mutex_lock(&r->ops_mu);
    ake_experiment *x = lookup(r, name, e);
    if (!x) {
        pthread_mutex_unlock(&r->ops_mu);
        return e->status;
    }
    if (x->status == EXP_RUNNING) end_experiment(r, x, EXP_STOPPED, "stop", "\"reason\":\"deleted by the admin API\"");
    pthread_rwlock_wrlock(&r->rw);
    for (ake_experiment **pp = &r->list; *pp; pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            break;
        }
    pthread_rwlock_unlock(&r->rw);
    remember_deleted(r, name);
    exp_unref(x); /* freed once the last request or shadow routed by it is done */
    save_state(r);
    pthread_mutex_unlock(&r->ops_mu);
    ake_buf_puts(out, "{\"name\":");
    ake_buf_json_string(out, name, strlen(name));
    ake_buf_puts(out, ",\"deleted\":true}");
    return 0;
}

int ake_router_get(ake_router *r, const char *name, ake_buf *out, ake_api_error *e) {
    pthread_mutex_lock(&r->ops_mu); /* not while the evaluator changes it */
    ake_experiment *x = lookup(r, name, e);
    if (x) write_summary(x, true, out);
    pthread_mutex_unlock(&r->ops_mu);
    return x ? 0 : e->status;
}

int ake_router_snapshot(ake_router *r, const char *name, ake_buf *out, ake_api_error *e) {
    pthread_mutex_lock(&r->ops_mu);
    ake_experiment *x = lookup(r, name, e);
    int rc = x ? 0 : e->status;
    if (x && !x->plan.has_rollout)
        rc = ake_api_fail(e, 409, NULL, "experiment `%s` has no rollout: there is no decision to snapshot", name);
    if (!rc) {
        ake_ab_snapshot snap;
        take_snapshot(r, x, &snap);
        ake_ab_decision d;
        ake_ab_decide(&x->plan, &snap, &d);
        ake_ab_snapshot_write(&x->plan, &snap, out);
        out->len--; /* reopen the object: add the plan and the server's decision */
        ake_buf_puts(out, ",\"plan\":");
        ake_ab_plan_write(&x->plan, out);
        ake_buf_puts(out, ",\"decision\":");
        ake_ab_decision_write(&d, out);
        ake_buf_puts(out, "}");
        ake_ab_snapshot_release(&snap);
    }
    pthread_mutex_unlock(&r->ops_mu);
    return rc;
}

void ake_router_list(ake_router *r, ake_buf *out) {
    pthread_mutex_lock(&r->ops_mu);
    ake_buf_puts(out, "{\"experiments\":[");
    for (ake_experiment *x = r->list; x; x = x->next) {
        write_summary(x, false, out);
        if (x->next) ake_buf_puts(out, ",");
    }
    ake_buf_puts(out, "]}");
    pthread_mutex_unlock(&r->ops_mu);
}

/* ---------------------------------------------------------------- metrics */

static void arm_labels(ake_buf *o, const ake_experiment *x, int32_t i) {
    ake_buf_puts(o, "experiment=\"");
    ake_metrics_label_value(o, x->plan.name);
    ake_buf_puts(o, "\",model=\"");
    ake_metrics_label_value(o, x->plan.model);
    ake_buf_puts(o, "\",version=\"");
    ake_metrics_label_value(o, x->plan.arms[i].version);
    ake_buf_printf(o, "\",arm=\"%s\"", x->plan.arms[i].control ? "control" : "canary");
}

void ake_router_write_metrics(ake_router *r, ake_buf *o) {
    pthread_rwlock_rdlock(&r->rw);
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"ake_experiment_requests_total", "counter", "Engine requests an experiment's arm answered."},
        {"ake_experiment_errors_total", "counter", "Of those, answers other than 200."},
        {"ake_experiment_shadowed_total", "counter", "Control requests compared on this (canary) arm in the background."},
        {"ake_experiment_weight_percent", "gauge", "Share of new requests the arm gets."},
        {"ake_experiment_running", "gauge", "1 while the experiment runs, else 0 (status label)."},
    };
    for (size_t f = 0; f < sizeof fam / sizeof *fam; f++) {
        ake_buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help, fam[f].name, fam[f].type);
        for (ake_experiment *x = r->list; x; x = x->next) {
            double total = 0;
            for (int32_t i = 0; i < x->plan.n_arms; i++) total += x->plan.arms[i].weight;
            for (int32_t i = 0; i < x->plan.n_arms; i++) {
                const arm_state *a = &x->arms[i];
                if (f == 4 && i != ake_ab_control(&x->plan)) continue;
                if (f == 2 && x->plan.arms[i].control) continue;
                ake_buf_printf(o, "%s{", fam[f].name);
                if (f == 4) {
                    ake_buf_puts(o, "experiment=\"");
                    ake_metrics_label_value(o, x->plan.name);
                    ake_buf_puts(o, "\",model=\"");
                    ake_metrics_label_value(o, x->plan.model);
                    ake_buf_printf(o, "\",status=\"%s\"} %d\n", status_names[x->status], x->status == EXP_RUNNING);
                    continue;
                }
                arm_labels(o, x, i);
                if (f == 0) ake_buf_printf(o, "} %llu\n", (unsigned long long)atomic_load(&a->total_requests));
                else if (f == 1) ake_buf_printf(o, "} %llu\n", (unsigned long long)atomic_load(&a->total_errors));
                else if (f == 2) ake_buf_printf(o, "} %llu\n", (unsigned long long)atomic_load(&a->total_shadows));
                else ake_buf_printf(o, "} %g\n", total > 0 ? x->plan.arms[i].weight / total * 100 : 0);
            }
        }
    }
    ake_buf_puts(o, "# HELP ake_experiment_request_seconds Latency of an arm's answered engine requests.\n"
                    "# TYPE ake_experiment_request_seconds histogram\n");
    for (ake_experiment *x = r->list; x; x = x->next)
        for (int32_t i = 0; i < x->plan.n_arms; i++) {
            ake_buf l = {0};
            arm_labels(&l, x, i);
            ake_histogram_write(o, "ake_experiment_request_seconds", &x->arms[i].latency_hist, l.data);
            ake_buf_release(&l);
        }
    ake_buf_puts(o, "# HELP ake_experiment_agreement Cosine of the canary's vector and control's for the same input "
                    "(shadowed requests).\n# TYPE ake_experiment_agreement histogram\n");
    for (ake_experiment *x = r->list; x; x = x->next)
        for (int32_t i = 0; i < x->plan.n_arms; i++) {
            if (x->plan.arms[i].control) continue;
            ake_buf l = {0};
            arm_labels(&l, x, i);
            ake_histogram_write(o, "ake_experiment_agreement", &x->arms[i].agreement_hist, l.data);
            ake_buf_release(&l);
        }
    pthread_rwlock_unlock(&r->rw);
}
