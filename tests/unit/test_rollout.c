/* A/B rollout decisions (serve/rollout.h): the Mann-Whitney U test and quantiles against values
 * computed with scipy 1.14.1 / numpy 2.1.3 (in the comments), each outcome of the decision rule on
 * samples whose answer is known, plan validation, and the snapshot file read back. */
#include "test_util.h"

#include <math.h>

#include <json-c/json.h>

#include "base/json.h"
#include "serve/rollout.h"

static json_object *parse(const char *s) {
    json_object *o = NULL;
    size_t off;
    const char *why;
    assert_int_equal(ake_json_parse(s, strlen(s), &o, &off, &why), 0);
    return o;
}

static void test_mann_whitney_equals_scipy(void **state) {
    (void)state;
    double p;
    /* mannwhitneyu([1,2,3], [4,5,6], alternative="less", method="asymptotic") = (0.0, 0.04042779918502612) */
    const double a[] = {1, 2, 3}, b[] = {4, 5, 6};
    assert_float_equal(ake_ab_mann_whitney(a, 3, b, 3, &p), 0.0, 1e-12);
    assert_float_equal(p, 0.04042779918502612, 1e-12);
    /* ties: ([1,2,2,3,5], [2,3,3,4,6,7]) = (7.0, 0.08152252792711867) */
    const double c[] = {1, 2, 2, 3, 5}, d[] = {2, 3, 3, 4, 6, 7};
    assert_float_equal(ake_ab_mann_whitney(c, 5, d, 6, &p), 7.0, 1e-12);
    assert_float_equal(p, 0.08152252792711867, 1e-12);
    /* every value tied: no evidence either way */
    const double e[] = {2, 2}, f[] = {2, 2, 2};
    ake_ab_mann_whitney(e, 2, f, 3, &p);
    assert_float_equal(p, 1.0, 0);
    /* numpy.percentile([3,1,4,1,5,9,2,6], [50, 95]) = [3.5, 7.95] */
    double v[] = {3, 1, 4, 1, 5, 9, 2, 6};
    assert_float_equal(ake_ab_quantile(v, 8, 0.5), 3.5, 1e-12);
    assert_float_equal(ake_ab_quantile(v, 8, 0.95), 7.95, 1e-12);
}

static const char plan_text[] =
    "{\"name\":\"t\",\"model\":\"m\",\"arms\":[{\"version\":\"1\",\"role\":\"control\",\"weight\":95},"
    "{\"version\":\"2\",\"role\":\"canary\",\"weight\":5}],\"shadow_fraction\":0.1,"
    "\"rollout\":{\"steps\":[5,25,50,100],\"min_hold_s\":10,\"min_samples\":100,\"min_canary_samples\":20,"
    "\"min_agreement_samples\":10,\"gates\":{\"latency_improvement_min\":0.3}}}";

static ake_ab_plan the_plan(void) {
    json_object *o = parse(plan_text);
    ake_ab_plan p;
    char err[256];
    assert_int_equal(ake_ab_plan_parse(o, &p, err, sizeof err), AKE_OK);
    json_object_put(o);
    return p;
}

/* Latencies: control around 10 ms, canary around `canary_ms`; n of each; error counts; agreement. */
typedef struct {
    double ctl[200], can[200], agr[50];
} buffers;

static ake_ab_snapshot make(buffers *b, double canary_ms, int64_t n, int64_t can_errors, double agreement,
                            double held_s) {
    for (int64_t i = 0; i < n; i++) {
        b->ctl[i] = 10 + (double)(i % 7) * 0.3;
        b->can[i] = canary_ms + (double)(i % 5) * 0.3;
    }
    for (int i = 0; i < 50; i++) b->agr[i] = agreement;
    return (ake_ab_snapshot){.step = 0, .held_s = held_s,
                             .control = {.latency_ms = b->ctl, .n_latency = n, .requests = n, .errors = 0},
                             .canary = {.latency_ms = b->can, .n_latency = n, .requests = n, .errors = can_errors,
                                        .agreement = b->agr, .n_agreement = 50}};
}

static void test_each_outcome(void **state) {
    (void)state;
    ake_ab_plan p = the_plan();
    assert_float_equal(p.rollout.gates.error_rate_increase_max, 0.05, 0); /* defaults where the plan is silent */
    assert_float_equal(p.rollout.gates.agreement_mean_min, 0.99, 0);
    buffers b;
    ake_ab_decision d;
    ake_ab_snapshot s = make(&b, 5, 200, 0, 0.999, 11);
    ake_ab_decide(&p, &s, &d);
    assert_int_equal(d.outcome, AKE_AB_NEXT_STEP);
    assert_true(d.latency_improvement > 0.3 && d.p_value < 1e-10 && d.effect_size == 1.0);
    s.step = 2; /* the last step below 100 % */
    ake_ab_decide(&p, &s, &d);
    assert_int_equal(d.outcome, AKE_AB_PROMOTE);
    s = make(&b, 5, 200, 0, 0.999, 9); /* not held long enough */
    ake_ab_decide(&p, &s, &d);
    assert_int_equal(d.outcome, AKE_AB_WAIT);
    assert_non_null(strstr(d.reason, "9.0 of 10.0 s held"));
    s = make(&b, 5, 200, 20, 0.999, 11); /* 10 % canary errors against none */
    ake_ab_decide(&p, &s, &d);
    assert_int_equal(d.outcome, AKE_AB_ROLLBACK);
    assert_non_null(strstr(d.reason, "error rate"));
    s = make(&b, 5, 200, 0, 0.4, 11); /* faster but different vectors */
    ake_ab_decide(&p, &s, &d);
    assert_int_equal(d.outcome, AKE_AB_ROLLBACK);
    assert_non_null(strstr(d.reason, "agreement"));
    s = make(&b, 12, 200, 0, 0.999, 11); /* slower */
    ake_ab_decide(&p, &s, &d);
    assert_int_equal(d.outcome, AKE_AB_ROLLBACK);
    assert_non_null(strstr(d.reason, "P95 latency"));
    /* 15 % faster, short of the 30 % asked: below equal load (5 %) only a slower canary rolls back,
     * at 50 % (equal load) the gate applies */
    s = make(&b, 8.5, 200, 0, 0.999, 11);
    ake_ab_decide(&p, &s, &d);
    assert_int_equal(d.outcome, AKE_AB_NEXT_STEP);
    s.step = 2;
    ake_ab_decide(&p, &s, &d);
    assert_int_equal(d.outcome, AKE_AB_ROLLBACK);
    /* faster at P95 by enough, but too few samples to show it: hold */
    const double c3[] = {10, 1, 1}, k3[] = {1, 1, 5};
    ake_ab_snapshot h = {.step = 2, .held_s = 11, .control = {.latency_ms = c3, .n_latency = 3, .requests = 60},
                         .canary = {.latency_ms = k3, .n_latency = 3, .requests = 60, .agreement = b.agr,
                                    .n_agreement = 50}};
    ake_ab_decide(&p, &h, &d);
    assert_int_equal(d.outcome, AKE_AB_HOLD);
    p.rollout.max_hold_s = 10; /* ... and past max_hold_s that is a rollback */
    ake_ab_decide(&p, &h, &d);
    assert_int_equal(d.outcome, AKE_AB_ROLLBACK);
}

static void test_plan_validation(void **state) {
    (void)state;
    static const struct {
        const char *json, *msg;
    } bad[] = {
        {"{\"name\":\"t\",\"model\":\"m\",\"arms\":[{\"version\":\"1\",\"role\":\"control\"}]}", "2..8 arms"},
        {"{\"name\":\"t\",\"model\":\"m\",\"arms\":[{\"version\":\"1\",\"role\":\"canary\"},{\"version\":\"2\","
         "\"role\":\"canary\",\"weight\":1}]}", "exactly one arm"},
        {"{\"name\":\"t\",\"model\":\"m\",\"arms\":[{\"version\":\"1\",\"role\":\"control\"},{\"version\":\"1\","
         "\"role\":\"canary\"}]}", "already an arm"},
        {"{\"name\":\"t\",\"model\":\"m\",\"arms\":[{\"version\":\"1\",\"role\":\"control\"},{\"version\":\"2\","
         "\"role\":\"canary\"}]}", "must not all be 0"},
        {"{\"name\":\"t\",\"model\":\"m\",\"arms\":[{\"version\":\"1\",\"role\":\"control\"},{\"version\":\"2\","
         "\"role\":\"canary\"}],\"rollout\":{\"steps\":[25,5]}}", "increasing"},
        {"{\"name\":\"t\",\"model\":\"m\",\"arms\":[{\"version\":\"1\",\"role\":\"control\"},{\"version\":\"2\","
         "\"role\":\"canary\"}],\"rollout\":{\"gates\":{\"latency_improvment_min\":0.6}}}", "latency_improvment_min"},
        {"{\"name\":\"a b\",\"model\":\"m\",\"arms\":[]}", "`name`"},
        {"{\"name\":\"t\",\"model\":\"m\",\"shadow_fraction\":2,\"arms\":[]}", "shadow_fraction"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_object *o = parse(bad[i].json);
        ake_ab_plan p;
        char err[256] = "";
        assert_int_equal(ake_ab_plan_parse(o, &p, err, sizeof err), AKE_EINVAL);
        if (!strstr(err, bad[i].msg)) fail_msg("case %zu: '%s' does not say '%s'", i, err, bad[i].msg);
        json_object_put(o);
    }
    /* a rollout's weights come from its first step; the plan reads back equal */
    ake_ab_plan p = the_plan(), q;
    char err[256];
    assert_float_equal(p.arms[0].weight, 95, 0);
    ake_buf b = {0};
    ake_ab_plan_write(&p, &b);
    json_object *o = parse(b.data);
    assert_int_equal(ake_ab_plan_parse(o, &q, err, sizeof err), AKE_OK);
    json_object_put(o);
    ake_buf_release(&b);
    assert_memory_equal(&p, &q, sizeof p);
}

static void test_snapshot_round_trip(void **state) {
    (void)state;
    ake_ab_plan p = the_plan();
    buffers b;
    ake_ab_snapshot s = make(&b, 5.123456789, 150, 3, 0.99912345678, 12.5), t;
    ake_buf w = {0};
    ake_ab_snapshot_write(&p, &s, &w);
    json_object *o = parse(w.data);
    char err[256];
    assert_int_equal(ake_ab_snapshot_parse(o, &t, err, sizeof err), AKE_OK);
    json_object_put(o);
    ake_buf_release(&w);
    ake_ab_decision d1, d2;
    ake_ab_decide(&p, &s, &d1);
    ake_ab_decide(&p, &t, &d2);
    assert_memory_equal(&d1, &d2, sizeof d1); /* every double written exactly */
    assert_int_equal(t.canary.errors, 3);
    ake_ab_snapshot_release(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mann_whitney_equals_scipy),
        cmocka_unit_test(test_each_outcome),
        cmocka_unit_test(test_plan_validation),
        cmocka_unit_test(test_snapshot_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
