#include "serve/rollout.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "base/json.h"

/* ---------------------------------------------------------------- the plan */

/* Fails with the first key of obj not in `known` (NULL-terminated). */
static ake_status only_known(const json_object *obj, const char *where, const char *const *known, char *err,
                             size_t errlen) {
    json_object_object_foreach((json_object *)obj, key, val) {
        (void)val;
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++) ok = !strcmp(*k, key);
        if (!ok) return ake_errf(err, errlen, AKE_EINVAL, "%s: unknown field `%.64s`", where, key);
    }
    return AKE_OK;
}

/* An optional number field in [lo, hi]; *out unchanged when absent. */
static ake_status num_field(const json_object *obj, const char *where, const char *key, double lo, double hi,
                            double *out, char *err, size_t errlen) {
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v)) return AKE_OK;
    double d;
    if (!ake_json_number(v, &d) || d < lo || d > hi)
        return ake_errf(err, errlen, AKE_EINVAL, "%s: `%s` must be a number in [%g, %g]", where, key, lo, hi);
    *out = d;
    return AKE_OK;
}

static ake_status int_field(const json_object *obj, const char *where, const char *key, int64_t *out, char *err,
                            size_t errlen) {
    double d = (double)*out;
    ake_status st = num_field(obj, where, key, 0, 1e12, &d, err, errlen);
    if (st == AKE_OK && d != floor(d))
        return ake_errf(err, errlen, AKE_EINVAL, "%s: `%s` must be a whole number", where, key);
    *out = (int64_t)d;
    return st;
}

/* A required (or optional, when out already holds a default) string field of 1..len-1 bytes
 * drawn from letters, digits and "._-". */
static ake_status name_field(const json_object *obj, const char *where, const char *key, bool required, char *out,
                             size_t len, char *err, size_t errlen) {
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v)) {
        if (required) return ake_errf(err, errlen, AKE_EINVAL, "%s: `%s` is required", where, key);
        return AKE_OK;
    }
    const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
    size_t n = s ? (size_t)json_object_get_string_len(v) : 0;
    bool ok = s && n > 0 && n < len && strlen(s) == n && s[0] != '.' && s[0] != '-';
    for (size_t i = 0; ok && i < n; i++)
        ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
             s[i] == '.' || s[i] == '_' || s[i] == '-';
    if (!ok)
        return ake_errf(err, errlen, AKE_EINVAL,
                        "%s: `%s` must be a string of 1..%zu letters, digits, '.', '_' or '-', not starting with '.' or '-'",
                        where, key, len - 1);
    memcpy(out, s, n + 1);
    return AKE_OK;
}

static ake_status parse_rollout(const json_object *ro, ake_ab_rollout *r, char *err, size_t errlen) {
    static const char *const known[] = {"steps", "min_hold_s", "max_hold_s", "min_samples", "min_canary_samples",
                                        "min_agreement_samples", "gates", NULL};
    static const char *const gate_known[] = {"latency_improvement_min", "error_rate_increase_max",
                                             "agreement_mean_min", "throughput_ratio_min", "alpha",
                                             "latency_equal_load_percent", NULL};
    ake_status st;
    if (!json_object_is_type(ro, json_type_object))
        return ake_errf(err, errlen, AKE_EINVAL, "`rollout` must be an object");
    if ((st = only_known(ro, "rollout", known, err, errlen)) != AKE_OK) return st;
    json_object *steps;
    if (json_object_object_get_ex(ro, "steps", &steps)) {
        size_t n = json_object_is_type(steps, json_type_array) ? json_object_array_length(steps) : 0;
        if (n < 1 || n > AKE_AB_MAX_STEPS)
            return ake_errf(err, errlen, AKE_EINVAL, "rollout: `steps` must be an array of 1..%d percentages",
                            AKE_AB_MAX_STEPS);
        r->n_steps = (int32_t)n;
        for (size_t i = 0; i < n; i++) {
            double d;
            if (!ake_json_number(json_object_array_get_idx(steps, i), &d) || !(d > 0 && d <= 100) ||
                (i > 0 && d <= r->steps[i - 1]))
                return ake_errf(err, errlen, AKE_EINVAL,
                                "rollout: `steps` must be increasing percentages in (0, 100] (step %zu)", i);
            r->steps[i] = d;
        }
    }
    if ((st = num_field(ro, "rollout", "min_hold_s", 0, 1e7, &r->min_hold_s, err, errlen)) != AKE_OK ||
        (st = num_field(ro, "rollout", "max_hold_s", 0, 1e7, &r->max_hold_s, err, errlen)) != AKE_OK ||
        (st = int_field(ro, "rollout", "min_samples", &r->min_samples, err, errlen)) != AKE_OK ||
        (st = int_field(ro, "rollout", "min_canary_samples", &r->min_canary_samples, err, errlen)) != AKE_OK ||
        (st = int_field(ro, "rollout", "min_agreement_samples", &r->min_agreement_samples, err, errlen)) != AKE_OK)
        return st;
    if (r->max_hold_s > 0 && r->max_hold_s < r->min_hold_s)
        return ake_errf(err, errlen, AKE_EINVAL, "rollout: `max_hold_s` must be 0 (no limit) or >= `min_hold_s`");
    json_object *g;
    if (json_object_object_get_ex(ro, "gates", &g)) {
        if (!json_object_is_type(g, json_type_object))
            return ake_errf(err, errlen, AKE_EINVAL, "rollout: `gates` must be an object");
        ake_ab_gates *x = &r->gates;
        if ((st = only_known(g, "rollout.gates", gate_known, err, errlen)) != AKE_OK ||
            (st = num_field(g, "rollout.gates", "latency_improvement_min", -100, 1, &x->latency_improvement_min, err,
                            errlen)) != AKE_OK ||
            (st = num_field(g, "rollout.gates", "error_rate_increase_max", 0, 1, &x->error_rate_increase_max, err,
                            errlen)) != AKE_OK ||
            (st = num_field(g, "rollout.gates", "agreement_mean_min", -1, 1, &x->agreement_mean_min, err, errlen)) !=
                AKE_OK ||
            (st = num_field(g, "rollout.gates", "throughput_ratio_min", 0, 1e6, &x->throughput_ratio_min, err,
                            errlen)) != AKE_OK ||
            (st = num_field(g, "rollout.gates", "alpha", 1e-12, 0.5, &x->alpha, err, errlen)) != AKE_OK ||
            (st = num_field(g, "rollout.gates", "latency_equal_load_percent", 0, 100, &x->latency_equal_load_percent,
                            err, errlen)) != AKE_OK)
            return st;
    }
    return AKE_OK;
}

ake_status ake_ab_plan_parse(const json_object *root, ake_ab_plan *p, char *err, size_t errlen) {
    static const char *const known[] = {"name", "model", "arms", "sticky", "shadow_fraction", "keep_canary",
                                        "rollout", NULL};
    static const char *const arm_known[] = {"version", "role", "weight", NULL};
    memset(p, 0, sizeof *p);
    p->sticky_user = true;
    p->rollout = (ake_ab_rollout){.n_steps = 4, .steps = {5, 25, 50, 100}, .min_hold_s = 60, .min_samples = 10000,
                                  .min_canary_samples = 500, .min_agreement_samples = 100,
                                  .gates = {.latency_improvement_min = 0.6, .error_rate_increase_max = 0.05,
                                            .agreement_mean_min = 0.99, .alpha = 0.01,
                                            .latency_equal_load_percent = 50}};
    ake_status st;
    if (!json_object_is_type(root, json_type_object))
        return ake_errf(err, errlen, AKE_EINVAL, "an experiment is a JSON object");
    if ((st = only_known(root, "experiment", known, err, errlen)) != AKE_OK ||
        (st = name_field(root, "experiment", "name", true, p->name, sizeof p->name, err, errlen)) != AKE_OK ||
        (st = name_field(root, "experiment", "model", true, p->model, sizeof p->model, err, errlen)) != AKE_OK ||
        (st = num_field(root, "experiment", "shadow_fraction", 0, 1, &p->shadow_fraction, err, errlen)) != AKE_OK)
        return st;
    json_object *v;
    if (json_object_object_get_ex(root, "sticky", &v)) {
        const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
        if (strcmp(s, "user") && strcmp(s, "none"))
            return ake_errf(err, errlen, AKE_EINVAL, "experiment: `sticky` must be \"user\" or \"none\"");
        p->sticky_user = !strcmp(s, "user");
    }
    if (json_object_object_get_ex(root, "keep_canary", &v)) {
        if (!json_object_is_type(v, json_type_boolean))
            return ake_errf(err, errlen, AKE_EINVAL, "experiment: `keep_canary` must be true or false");
        p->keep_canary = json_object_get_boolean(v);
    }
    json_object *arms;
    size_t n = json_object_object_get_ex(root, "arms", &arms) && json_object_is_type(arms, json_type_array)
                   ? json_object_array_length(arms)
                   : 0;
    if (n < 2 || n > AKE_AB_MAX_ARMS)
        return ake_errf(err, errlen, AKE_EINVAL, "experiment: `arms` must be an array of 2..%d arms", AKE_AB_MAX_ARMS);
    p->n_arms = (int32_t)n;
    int controls = 0;
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *a = json_object_array_get_idx(arms, i);
        char where[32];
        snprintf(where, sizeof where, "arms[%zu]", i);
        ake_ab_arm_plan *ap = &p->arms[i];
        ap->weight = 0;
        if (!json_object_is_type(a, json_type_object))
            return ake_errf(err, errlen, AKE_EINVAL, "%s must be an object", where);
        if ((st = only_known(a, where, arm_known, err, errlen)) != AKE_OK ||
            (st = name_field(a, where, "version", true, ap->version, sizeof ap->version, err, errlen)) != AKE_OK ||
            (st = num_field(a, where, "weight", 0, 1e9, &ap->weight, err, errlen)) != AKE_OK)
            return st;
        json_object *role;
        const char *r = json_object_object_get_ex(a, "role", &role) && json_object_is_type(role, json_type_string)
                            ? json_object_get_string(role)
                            : "";
        if (strcmp(r, "control") && strcmp(r, "canary"))
            return ake_errf(err, errlen, AKE_EINVAL, "%s: `role` must be \"control\" or \"canary\"", where);
        ap->control = !strcmp(r, "control");
        controls += ap->control;
        total += ap->weight;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(p->arms[j].version, ap->version))
                return ake_errf(err, errlen, AKE_EINVAL, "%s: version `%s` is already an arm", where, ap->version);
    }
    if (controls != 1) return ake_errf(err, errlen, AKE_EINVAL, "experiment: exactly one arm has role \"control\"");
    if (json_object_object_get_ex(root, "rollout", &v)) {
        p->has_rollout = true;
        if ((st = parse_rollout(v, &p->rollout, err, errlen)) != AKE_OK) return st;
        if (n != 2) return ake_errf(err, errlen, AKE_EINVAL, "experiment: a rollout has exactly two arms, control and canary");
        const double pct = p->rollout.steps[0];
        p->arms[ake_ab_control(p)].weight = 100 - pct;
        p->arms[ake_ab_canary(p)].weight = pct;
    } else if (!(total > 0)) {
        return ake_errf(err, errlen, AKE_EINVAL, "experiment: without `rollout`, the arms' `weight`s set the split: "
                        "give them (they must not all be 0)");
    }
    return AKE_OK;
}

int32_t ake_ab_control(const ake_ab_plan *p) {
    for (int32_t i = 0; i < p->n_arms; i++)
        if (p->arms[i].control) return i;
    return 0;
}

int32_t ake_ab_canary(const ake_ab_plan *p) {
    for (int32_t i = 0; i < p->n_arms; i++)
        if (!p->arms[i].control) return i;
    return 0;
}

/* The shortest of %.15g and %.17g that reads back as v (0.05 stays 0.05); null when not finite. */
static void put_double(ake_buf *b, double v) {
    if (!isfinite(v)) {
        ake_buf_puts(b, "null");
        return;
    }
    char s[40];
    snprintf(s, sizeof s, "%.15g", v);
    if (strtod(s, NULL) != v) snprintf(s, sizeof s, "%.17g", v);
    ake_buf_puts(b, s);
}

static void put_num(ake_buf *b, const char *key, double v) {
    ake_buf_printf(b, "\"%s\":", key);
    put_double(b, v);
}

void ake_ab_plan_write(const ake_ab_plan *p, ake_buf *b) {
    ake_buf_puts(b, "{\"name\":");
    ake_buf_json_string(b, p->name, strlen(p->name));
    ake_buf_puts(b, ",\"model\":");
    ake_buf_json_string(b, p->model, strlen(p->model));
    ake_buf_puts(b, ",\"arms\":[");
    for (int32_t i = 0; i < p->n_arms; i++) {
        ake_buf_puts(b, i ? ",{\"version\":" : "{\"version\":");
        ake_buf_json_string(b, p->arms[i].version, strlen(p->arms[i].version));
        ake_buf_printf(b, ",\"role\":\"%s\",", p->arms[i].control ? "control" : "canary");
        put_num(b, "weight", p->arms[i].weight);
        ake_buf_puts(b, "}");
    }
    ake_buf_printf(b, "],\"sticky\":\"%s\",", p->sticky_user ? "user" : "none");
    put_num(b, "shadow_fraction", p->shadow_fraction);
    ake_buf_printf(b, ",\"keep_canary\":%s", p->keep_canary ? "true" : "false");
    if (p->has_rollout) {
        const ake_ab_rollout *r = &p->rollout;
        ake_buf_puts(b, ",\"rollout\":{\"steps\":[");
        for (int32_t i = 0; i < r->n_steps; i++) {
            if (i) ake_buf_puts(b, ",");
            put_double(b, r->steps[i]);
        }
        ake_buf_puts(b, "],");
        put_num(b, "min_hold_s", r->min_hold_s);
        ake_buf_puts(b, ",");
        put_num(b, "max_hold_s", r->max_hold_s);
        ake_buf_printf(b, ",\"min_samples\":%lld,\"min_canary_samples\":%lld,\"min_agreement_samples\":%lld,\"gates\":{",
                       (long long)r->min_samples, (long long)r->min_canary_samples,
                       (long long)r->min_agreement_samples);
        const struct {
            const char *k;
            double v;
        } gates[] = {{"latency_improvement_min", r->gates.latency_improvement_min},
                     {"error_rate_increase_max", r->gates.error_rate_increase_max},
                     {"agreement_mean_min", r->gates.agreement_mean_min},
                     {"throughput_ratio_min", r->gates.throughput_ratio_min},
                     {"alpha", r->gates.alpha},
                     {"latency_equal_load_percent", r->gates.latency_equal_load_percent}};
        for (size_t i = 0; i < sizeof gates / sizeof *gates; i++) {
            if (i) ake_buf_puts(b, ",");
            put_num(b, gates[i].k, gates[i].v);
        }
        ake_buf_puts(b, "}}");
    }
    ake_buf_puts(b, "}");
}

/* ---------------------------------------------------------------- statistics */

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double ake_ab_quantile(double *v, int64_t n, double q) {
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    const double pos = q * (double)(n - 1);
    const int64_t lo = (int64_t)floor(pos);
    const int64_t hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (v[hi] - v[lo]) * (pos - (double)lo);
}

typedef struct {
    double v;
    bool from_x;
} tagged;

static int cmp_tagged(const void *a, const void *b) {
    return cmp_double(&((const tagged *)a)->v, &((const tagged *)b)->v);
}

double ake_ab_mann_whitney(const double *x, int64_t nx, const double *y, int64_t ny, double *p_less) {
    const int64_t n = nx + ny;
    tagged *t = malloc((size_t)n * sizeof *t);
    AKE_ASSERT(t);
    for (int64_t i = 0; i < nx; i++) t[i] = (tagged){x[i], true};
    for (int64_t i = 0; i < ny; i++) t[nx + i] = (tagged){y[i], false};
    qsort(t, (size_t)n, sizeof *t, cmp_tagged);
    double r1 = 0, tie_term = 0;
    for (int64_t i = 0; i < n;) { /* a run of equal values shares the average of its ranks */
        int64_t j = i + 1;
        while (j < n && t[j].v == t[i].v) j++;
        const double rank = (double)(i + 1 + j) / 2, k = (double)(j - i);
        for (int64_t m = i; m < j; m++)
            if (t[m].from_x) r1 += rank;
        tie_term += k * k * k - k;
        i = j;
    }
    free(t);
    const double n1 = (double)nx, n2 = (double)ny, nn = (double)n;
    const double u1 = r1 - n1 * (n1 + 1) / 2, u2 = n1 * n2 - u1;
    const double s = sqrt(n1 * n2 / 12 * ((nn + 1) - (nn > 1 ? tie_term / (nn * (nn - 1)) : 0)));
    const double z = s > 0 ? (u2 - n1 * n2 / 2 - 0.5) / s : -INFINITY;
    *p_less = 0.5 * erfc(z / sqrt(2.0));
    if (*p_less > 1) *p_less = 1;
    return u1;
}

/* ---------------------------------------------------------------- the decision */

const char *ake_ab_outcome_name(ake_ab_outcome o) {
    static const char *const names[] = {"wait", "hold", "next_step", "promote", "rollback"};
    return o >= AKE_AB_WAIT && o <= AKE_AB_ROLLBACK ? names[o] : "?";
}

static double rate(int64_t errors, int64_t requests) { return requests ? (double)errors / (double)requests : 0; }

void ake_ab_decide(const ake_ab_plan *p, const ake_ab_snapshot *s, ake_ab_decision *d) {
    const ake_ab_rollout *r = &p->rollout;
    const ake_ab_gates *g = &r->gates;
    memset(d, 0, sizeof *d);
    d->step = s->step;
    d->step_percent = s->step >= 0 && s->step < r->n_steps ? r->steps[s->step] : 0;
    d->held_s = s->held_s;
    d->n_control = s->control.requests;
    d->n_canary = s->canary.requests;
    d->error_rate_control = rate(s->control.errors, s->control.requests);
    d->error_rate_canary = rate(s->canary.errors, s->canary.requests);
    d->error_rate_increase = d->error_rate_canary - d->error_rate_control;
    d->p_value = 1;
    const int64_t nc = s->control.n_latency, nk = s->canary.n_latency;
    if (nc > 0 && nk > 0) {
        double *c = malloc((size_t)nc * sizeof *c), *k = malloc((size_t)nk * sizeof *k);
        AKE_ASSERT(c && k);
        memcpy(c, s->control.latency_ms, (size_t)nc * sizeof *c);
        memcpy(k, s->canary.latency_ms, (size_t)nk * sizeof *k);
        d->p50_control_ms = ake_ab_quantile(c, nc, 0.50);
        d->p95_control_ms = ake_ab_quantile(c, nc, 0.95);
        d->p50_canary_ms = ake_ab_quantile(k, nk, 0.50);
        d->p95_canary_ms = ake_ab_quantile(k, nk, 0.95);
        free(c);
        free(k);
        if (d->p95_control_ms > 0)
            d->latency_improvement = (d->p95_control_ms - d->p95_canary_ms) / d->p95_control_ms;
        if (d->p50_control_ms > 0) d->p50_improvement = (d->p50_control_ms - d->p50_canary_ms) / d->p50_control_ms;
        d->mann_whitney_u = ake_ab_mann_whitney(s->canary.latency_ms, nk, s->control.latency_ms, nc, &d->p_value);
        d->effect_size = 1 - d->mann_whitney_u / ((double)nk * (double)nc);
    }
    d->n_agreement = s->canary.n_agreement;
    if (d->n_agreement > 0) {
        double sum = 0, lo = 2;
        for (int64_t i = 0; i < d->n_agreement; i++) {
            sum += s->canary.agreement[i];
            if (s->canary.agreement[i] < lo) lo = s->canary.agreement[i];
        }
        d->agreement_mean = sum / (double)d->n_agreement;
        if (d->agreement_mean < lo) d->agreement_mean = lo; /* equal values: the sum's rounding */
        d->agreement_min = lo;
    }
    if (s->control.engine_tokens_per_s > 0 && s->canary.engine_tokens_per_s > 0)
        d->throughput_ratio = s->canary.engine_tokens_per_s / s->control.engine_tokens_per_s;

    const bool over_time = r->max_hold_s > 0 && s->held_s >= r->max_hold_s;
    const bool shadowing = p->shadow_fraction > 0;
    const int64_t min_canary = r->min_canary_samples > 1 ? r->min_canary_samples : 1; /* 0 means "any" */
    const int64_t min_agreement = r->min_agreement_samples > 1 ? r->min_agreement_samples : 1;
    /* not enough evidence yet */
    char missing[300] = "";
    size_t o = 0;
#define MISSING(...) o += (size_t)snprintf(missing + o, o < sizeof missing ? sizeof missing - o : 0, __VA_ARGS__)
    if (s->held_s < r->min_hold_s) MISSING("%s%.1f of %.1f s held", o ? ", " : "", s->held_s, r->min_hold_s);
    if (d->n_control + d->n_canary < r->min_samples)
        MISSING("%s%lld of %lld requests", o ? ", " : "", (long long)(d->n_control + d->n_canary),
                (long long)r->min_samples);
    if (d->n_canary < min_canary)
        MISSING("%s%lld of %lld canary requests", o ? ", " : "", (long long)d->n_canary, (long long)min_canary);
    if (d->n_control < 1) MISSING("%sno control request", o ? ", " : "");
    if (shadowing && d->n_agreement < min_agreement)
        MISSING("%s%lld of %lld agreement samples", o ? ", " : "", (long long)d->n_agreement, (long long)min_agreement);
#undef MISSING
    if (o) {
        d->outcome = over_time ? AKE_AB_ROLLBACK : AKE_AB_WAIT;
        snprintf(d->reason, sizeof d->reason, "%s: %s", over_time ? "the step did not conclude within max_hold_s" :
                 "waiting", missing);
        return;
    }
    if (d->error_rate_increase > g->error_rate_increase_max) {
        d->outcome = AKE_AB_ROLLBACK;
        snprintf(d->reason, sizeof d->reason, "error rate up by %.4f (canary %.4f, control %.4f); at most %.4f allowed",
                 d->error_rate_increase, d->error_rate_canary, d->error_rate_control, g->error_rate_increase_max);
        return;
    }
    if (shadowing && d->agreement_mean < g->agreement_mean_min) {
        d->outcome = AKE_AB_ROLLBACK;
        snprintf(d->reason, sizeof d->reason,
                 "mean agreement %.4f over %lld shadowed inputs (min %.4f) is below %.4f: the canary's vectors "
                 "differ from control's", d->agreement_mean, (long long)d->n_agreement, d->agreement_min,
                 g->agreement_mean_min);
        return;
    }
    if (nk < 1 || nc < 1) { /* no answered request in an arm: no latency to compare yet */
        d->outcome = over_time ? AKE_AB_ROLLBACK : AKE_AB_WAIT;
        snprintf(d->reason, sizeof d->reason, "%s: no answered %s request to compare latencies",
                 over_time ? "the step did not conclude within max_hold_s" : "waiting", nk < 1 ? "canary" : "control");
        return;
    }
    const bool last = s->step + 1 >= r->n_steps || r->steps[s->step + 1] >= 100;
    const bool equal_load = d->step_percent >= g->latency_equal_load_percent || last;
    if (equal_load && g->throughput_ratio_min > 0 && d->throughput_ratio > 0 &&
        d->throughput_ratio < g->throughput_ratio_min) {
        d->outcome = AKE_AB_ROLLBACK;
        snprintf(d->reason, sizeof d->reason, "engine throughput %.3fx control's; at least %.3fx required",
                 d->throughput_ratio, g->throughput_ratio_min);
        return;
    }
    const double need = equal_load ? g->latency_improvement_min
                                   : (g->latency_improvement_min < 0 ? g->latency_improvement_min : 0);
    if (d->latency_improvement < need) {
        d->outcome = AKE_AB_ROLLBACK;
        snprintf(d->reason, sizeof d->reason,
                 "P95 latency %.3f ms against control's %.3f ms: improvement %.3f, at least %.3f required%s",
                 d->p95_canary_ms, d->p95_control_ms, d->latency_improvement, need,
                 equal_load ? "" : " (the canary is slower even with the shorter queue of its smaller share)");
        return;
    }
    if (equal_load && g->latency_improvement_min > 0 && d->p_value >= g->alpha) {
        d->outcome = over_time ? AKE_AB_ROLLBACK : AKE_AB_HOLD;
        snprintf(d->reason, sizeof d->reason,
                 "P95 improvement %.3f meets %.3f but the Mann-Whitney test does not show the canary faster "
                 "(p = %.3g, alpha %.3g)%s", d->latency_improvement, g->latency_improvement_min, d->p_value, g->alpha,
                 over_time ? " within max_hold_s" : "; collecting more");
        return;
    }
    d->outcome = last ? AKE_AB_PROMOTE : AKE_AB_NEXT_STEP;
    snprintf(d->reason, sizeof d->reason,
             "gates pass: P95 improvement %.3f (min %.3f%s, p = %.3g), error rate %+.4f (max %.4f)%s%s",
             d->latency_improvement, need, equal_load ? "" : " below equal load", d->p_value, d->error_rate_increase,
             g->error_rate_increase_max, shadowing ? ", agreement mean above the minimum" : "",
             last ? "; last step: promote" : "; next step");
}

void ake_ab_decision_write(const ake_ab_decision *d, ake_buf *b) {
    ake_buf_printf(b, "{\"outcome\":\"%s\",\"reason\":", ake_ab_outcome_name(d->outcome));
    ake_buf_json_string(b, d->reason, strlen(d->reason));
    ake_buf_printf(b, ",\"step\":%d,", d->step);
    const struct {
        const char *k;
        double v;
    } nums[] = {{"step_percent", d->step_percent},
                {"held_s", d->held_s},
                {"p50_control_ms", d->p50_control_ms},
                {"p50_canary_ms", d->p50_canary_ms},
                {"p95_control_ms", d->p95_control_ms},
                {"p95_canary_ms", d->p95_canary_ms},
                {"latency_improvement", d->latency_improvement},
                {"p50_improvement", d->p50_improvement},
                {"mann_whitney_u", d->mann_whitney_u},
                {"p_value", d->p_value},
                {"effect_size", d->effect_size},
                {"error_rate_control", d->error_rate_control},
                {"error_rate_canary", d->error_rate_canary},
                {"error_rate_increase", d->error_rate_increase},
                {"agreement_mean", d->agreement_mean},
                {"agreement_min", d->agreement_min},
                {"throughput_ratio", d->throughput_ratio}};
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
        put_num(b, nums[i].k, nums[i].v);
        ake_buf_puts(b, ",");
    }
    ake_buf_printf(b, "\"n_control\":%lld,\"n_canary\":%lld,\"n_agreement\":%lld}", (long long)d->n_control,
                   (long long)d->n_canary, (long long)d->n_agreement);
}

/* ---------------------------------------------------------------- snapshot files */

static void write_doubles(ake_buf *b, const double *v, int64_t n) {
    ake_buf_puts(b, "[");
    for (int64_t i = 0; i < n; i++) {
        if (i) ake_buf_puts(b, ",");
        put_double(b, v[i]);
    }
    ake_buf_puts(b, "]");
}

static void write_arm(ake_buf *b, const char *version, bool control, const ake_ab_samples *a) {
    ake_buf_puts(b, "{\"version\":");
    ake_buf_json_string(b, version, strlen(version));
    ake_buf_printf(b, ",\"role\":\"%s\",\"requests\":%lld,\"errors\":%lld,", control ? "control" : "canary",
                   (long long)a->requests, (long long)a->errors);
    put_num(b, "engine_tokens_per_s", a->engine_tokens_per_s);
    ake_buf_puts(b, ",\"latency_ms\":");
    write_doubles(b, a->latency_ms, a->n_latency);
    ake_buf_puts(b, ",\"agreement\":");
    write_doubles(b, a->agreement, a->n_agreement);
    ake_buf_puts(b, "}");
}

void ake_ab_snapshot_write(const ake_ab_plan *p, const ake_ab_snapshot *s, ake_buf *b) {
    ake_buf_puts(b, "{\"experiment\":");
    ake_buf_json_string(b, p->name, strlen(p->name));
    ake_buf_printf(b, ",\"step\":%d,", s->step);
    put_num(b, "step_percent", p->has_rollout && s->step < p->rollout.n_steps ? p->rollout.steps[s->step] : 0);
    ake_buf_puts(b, ",");
    put_num(b, "held_s", s->held_s);
    ake_buf_puts(b, ",\"arms\":[");
    write_arm(b, p->arms[ake_ab_control(p)].version, true, &s->control);
    ake_buf_puts(b, ",");
    write_arm(b, p->arms[ake_ab_canary(p)].version, false, &s->canary);
    ake_buf_puts(b, "]}");
}

static ake_status read_doubles(const json_object *arm, const char *key, const char *where, double lo, double hi,
                               double **out, int64_t *n, char *err, size_t errlen) {
    json_object *a;
    *out = NULL;
    *n = 0;
    if (!json_object_object_get_ex(arm, key, &a)) return AKE_OK;
    if (!json_object_is_type(a, json_type_array))
        return ake_errf(err, errlen, AKE_EINVAL, "%s: `%s` must be an array of numbers", where, key);
    const size_t len = json_object_array_length(a);
    if (!(*out = malloc((len ? len : 1) * sizeof **out))) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory");
    for (size_t i = 0; i < len; i++)
        if (!ake_json_number(json_object_array_get_idx(a, i), &(*out)[i]) || !((*out)[i] >= lo && (*out)[i] <= hi))
            return ake_errf(err, errlen, AKE_EINVAL, "%s: `%s`[%zu] must be a number in [%g, %g]", where, key, i, lo,
                            hi);
    *n = (int64_t)len;
    return AKE_OK;
}

ake_status ake_ab_snapshot_parse(const json_object *root, ake_ab_snapshot *s, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    json_object *v, *arms;
    double d = 0;
    ake_status st;
    if (!json_object_is_type(root, json_type_object))
        return ake_errf(err, errlen, AKE_EINVAL, "a snapshot is a JSON object");
    if ((st = num_field(root, "snapshot", "step", 0, AKE_AB_MAX_STEPS - 1, &d, err, errlen)) != AKE_OK) return st;
    s->step = (int32_t)d;
    if ((st = num_field(root, "snapshot", "held_s", 0, 1e12, &s->held_s, err, errlen)) != AKE_OK) return st;
    if (!json_object_object_get_ex(root, "arms", &arms) || !json_object_is_type(arms, json_type_array) ||
        json_object_array_length(arms) != 2)
        return ake_errf(err, errlen, AKE_EINVAL, "snapshot: `arms` must hold two arms, control and canary");
    bool seen[2] = {false, false};
    for (size_t i = 0; i < 2; i++) {
        json_object *a = json_object_array_get_idx(arms, i);
        char where[32];
        snprintf(where, sizeof where, "snapshot arms[%zu]", i);
        if (!json_object_is_type(a, json_type_object) || !json_object_object_get_ex(a, "role", &v) ||
            !json_object_is_type(v, json_type_string))
            return ake_errf(err, errlen, AKE_EINVAL, "%s: an object with `role` is expected", where);
        const bool control = !strcmp(json_object_get_string(v), "control");
        if (seen[control]) return ake_errf(err, errlen, AKE_EINVAL, "%s: a second %s arm", where,
                                           control ? "control" : "canary");
        seen[control] = true;
        ake_ab_samples *x = control ? &s->control : &s->canary;
        double req = 0, errs = 0, tps = 0;
        double *lat, *agr;
        if ((st = num_field(a, where, "requests", 0, 1e15, &req, err, errlen)) != AKE_OK ||
            (st = num_field(a, where, "errors", 0, req, &errs, err, errlen)) != AKE_OK ||
            (st = num_field(a, where, "engine_tokens_per_s", 0, 1e15, &tps, err, errlen)) != AKE_OK)
            return st;
        st = read_doubles(a, "latency_ms", where, 0, 1e12, &lat, &x->n_latency, err, errlen);
        x->latency_ms = lat;
        if (st != AKE_OK) return st;
        st = read_doubles(a, "agreement", where, -1.001, 1.001, &agr, &x->n_agreement, err, errlen);
        x->agreement = agr;
        if (st != AKE_OK) return st;
        if (json_object_object_get_ex(a, "version", &v) && json_object_is_type(v, json_type_string))
            snprintf(x->version, sizeof x->version, "%s", json_object_get_string(v));
        x->requests = (int64_t)req;
        x->errors = (int64_t)errs;
        x->engine_tokens_per_s = tps;
    }
    return AKE_OK;
}

void ake_ab_snapshot_release(ake_ab_snapshot *s) {
    free((void *)s->control.latency_ms);
    free((void *)s->control.agreement);
    free((void *)s->canary.latency_ms);
    free((void *)s->canary.agreement);
    memset(s, 0, sizeof *s);
}
