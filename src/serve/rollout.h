/* A/B experiments: the plan (arms, split, rollout steps, gates), the per-step samples a decision
 * is made from, and the decision itself. Free of threads and HTTP, so that the server (router.c)
 * and `akidb-embed ab decide` reach the same decision from the same samples.
 *
 * The rule (the plan's, every threshold configurable): at the end of a step, once it has been held
 * min_hold_s and holds min_samples requests over both arms (min_canary_samples of them the
 * canary's, min_agreement_samples shadow comparisons when shadowing is on), the canary
 *   - rolls back when its error rate exceeds control's by more than error_rate_increase_max
 *     (absolute), when its mean agreement (cosine of its vector and control's for the same input)
 *     is below agreement_mean_min, or, judged at a step where the canary carries at least
 *     latency_equal_load_percent of the traffic (default 50) or at the last step before
 *     promotion, when its engine throughput (tokens per engine second) is below
 *     throughput_ratio_min x control's or its P95 latency improvement (control - canary) / control
 *     is below latency_improvement_min; at the steps below that, only a canary slower than
 *     control (improvement below min(0, latency_improvement_min)) rolls back. Why: the arms are
 *     separate queues and batches on shared cores, and a canary with 5 % of the requests waits in
 *     shorter queues (and runs smaller batches) than control with 95 %. An A/A run on the 2-core
 *     CPU (the same FP32 model as both arms, 200 req/s) measured a 42 % P95 "improvement" at 5 %
 *     (p = 2.6e-239) and -4 % at 50 %: only at equal load is the comparison fair;
 *   - holds (keeps collecting) when the improvement is large enough but the Mann-Whitney U test
 *     does not show the canary faster at significance `alpha` (only asked when
 *     latency_improvement_min > 0: a gate that allows "not slower" needs no proof of "faster");
 *     past max_hold_s (when set) a step that has not concluded rolls back;
 *   - otherwise goes to the next step, or is promoted after the last step below 100 %.
 * Mann-Whitney U: scipy.stats.mannwhitneyu(canary, control, alternative="less",
 * method="asymptotic", use_continuity=True): average ranks for ties, the tie-corrected normal
 * approximation with continuity correction. The effect size is the probability that a canary
 * request is faster than a control request (ties count half): 1 - U / (n_canary n_control). */
#ifndef AKE_SERVE_ROLLOUT_H
#define AKE_SERVE_ROLLOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json_types.h>

#include "base/status.h"
#include "serve/jsonw.h"

#define AKE_AB_MAX_ARMS 8
#define AKE_AB_MAX_STEPS 16
#define AKE_AB_NAME_MAX 64
#define AKE_AB_MODEL_MAX 128
#define AKE_AB_VERSION_MAX 32

typedef struct {
    char version[AKE_AB_VERSION_MAX];
    bool control;      /* role "control" (exactly one arm); else "canary" */
    double weight;     /* share of new requests, relative to the other arms' */
} ake_ab_arm_plan;

typedef struct {
    double latency_improvement_min; /* 0.6: canary P95 at least 60 % below control's */
    double error_rate_increase_max; /* 0.05: canary error rate - control's, absolute */
    double agreement_mean_min;      /* 0.99: mean cosine canary vs control (shadowed inputs) */
    double throughput_ratio_min;    /* 0 (off): canary engine tokens/s over control's (at equal load) */
    double alpha;                   /* 0.01: significance of the Mann-Whitney test */
    double latency_equal_load_percent; /* 50: the improvement is judged from this canary share on */
} ake_ab_gates;

typedef struct {
    int32_t n_steps;
    double steps[AKE_AB_MAX_STEPS];  /* canary percent per step, increasing, in (0, 100] */
    double min_hold_s, max_hold_s;   /* 60; 0 = no limit */
    int64_t min_samples;             /* 10000 requests in the step over both arms */
    int64_t min_canary_samples;      /* 500 */
    int64_t min_agreement_samples;   /* 100 (when shadow_fraction > 0) */
    ake_ab_gates gates;
} ake_ab_rollout;

typedef struct {
    char name[AKE_AB_NAME_MAX];
    char model[AKE_AB_MODEL_MAX];
    int32_t n_arms;
    ake_ab_arm_plan arms[AKE_AB_MAX_ARMS];
    bool sticky_user;          /* "sticky": "user" (default): the OpenAI `user` field or X-User picks the arm */
    double shadow_fraction;    /* share of control requests also sent to the canary */
    bool keep_canary;          /* a rolled-back canary stays loaded (name@version), else it is unloaded */
    bool has_rollout;
    ake_ab_rollout rollout;
} ake_ab_plan;

/* Reads an experiment (README "A/B experiments"); unknown fields, wrong types and values out of
 * range are AKE_EINVAL with the field named in err. Defaults as listed above. With a rollout there
 * are exactly two arms (control and canary) and the arms' weights follow the steps. */
ake_status ake_ab_plan_parse(const json_object *root, ake_ab_plan *out, char *err, size_t errlen);
/* The plan as JSON, every field written (it reads back equal with ake_ab_plan_parse). */
void ake_ab_plan_write(const ake_ab_plan *p, ake_buf *out);
/* Index of the control arm (there is exactly one after a successful parse), and of the first canary. */
int32_t ake_ab_control(const ake_ab_plan *p);
int32_t ake_ab_canary(const ake_ab_plan *p);

/* One arm's samples of a step. Arrays are borrowed. */
typedef struct {
    char version[AKE_AB_VERSION_MAX]; /* the arm's version ("" when unknown) */
    const double *latency_ms;  /* [n_latency] request latencies (arrival to response) */
    int64_t n_latency;
    int64_t requests, errors;  /* errors: answers other than 200 */
    const double *agreement;   /* [n_agreement] cosines to control (the canary's only) */
    int64_t n_agreement;
    double engine_tokens_per_s;/* tokens over engine seconds in the step; 0 when unknown */
} ake_ab_samples;

typedef struct {
    int32_t step;       /* index into rollout.steps */
    double held_s;      /* seconds since the step began */
    ake_ab_samples control, canary;
} ake_ab_snapshot;

typedef enum { AKE_AB_WAIT = 0, AKE_AB_HOLD, AKE_AB_NEXT_STEP, AKE_AB_PROMOTE, AKE_AB_ROLLBACK } ake_ab_outcome;
const char *ake_ab_outcome_name(ake_ab_outcome o); /* "wait", "hold", "next_step", "promote", "rollback" */

typedef struct {
    ake_ab_outcome outcome;
    char reason[400];
    int32_t step;
    double step_percent, held_s;
    int64_t n_control, n_canary;
    double p50_control_ms, p50_canary_ms, p95_control_ms, p95_canary_ms;
    double latency_improvement;     /* P95: (control - canary) / control */
    double p50_improvement;
    double mann_whitney_u;          /* U of the canary sample (scipy's statistic for x = canary) */
    double p_value;                 /* one-sided: the canary is faster */
    double effect_size;             /* P(canary latency < control latency), ties half */
    double error_rate_control, error_rate_canary, error_rate_increase;
    int64_t n_agreement;
    double agreement_mean, agreement_min;
    double throughput_ratio;        /* canary over control engine tokens/s; 0 when unknown */
} ake_ab_decision;

/* The decision for snapshot s under plan p (which has a rollout). Pure. */
void ake_ab_decide(const ake_ab_plan *p, const ake_ab_snapshot *s, ake_ab_decision *d);
/* The decision as one JSON object (the decision log's entry, without its time). */
void ake_ab_decision_write(const ake_ab_decision *d, ake_buf *out);

/* Mann-Whitney U of x against y as above: returns U of x; *p_less the one-sided p-value that x
 * is stochastically smaller (1 when every value is tied). nx, ny >= 1. */
double ake_ab_mann_whitney(const double *x, int64_t nx, const double *y, int64_t ny, double *p_less);
/* The q-quantile (0..1) with linear interpolation between order statistics (numpy's default);
 * sorts v in place. 0 when n == 0. */
double ake_ab_quantile(double *v, int64_t n, double q);

/* Snapshot files (GET /admin/experiments/NAME/snapshot writes one, `ab decide` reads it):
 * {"experiment", "step", "step_percent", "held_s", "arms": [{"version", "role", "requests", "errors",
 *  "engine_tokens_per_s", "latency_ms": [...], "agreement": [...]}, ...]}
 * write: the arms of s in the order control, canary. */
void ake_ab_snapshot_write(const ake_ab_plan *p, const ake_ab_snapshot *s, ake_buf *out);
/* parse: the arrays are allocated (free with ake_ab_snapshot_release). AKE_EINVAL naming the field. */
ake_status ake_ab_snapshot_parse(const json_object *root, ake_ab_snapshot *out, char *err, size_t errlen);
void ake_ab_snapshot_release(ake_ab_snapshot *s);

#endif
