/* The whole training step against PyTorch (llm.c's test_gpt2 idea): tests/golden/distill/
 * holds a tiny teacher, 50 batches, and the loss and gradient norm of each step of PyTorch
 * training the same student from the same weights with the same AdamW settings
 * (make_distill_golden.py), for three losses: MSE, + hidden-state MSE (with clipping), +
 * in-batch contrastive. Our CPU trainer must follow each sequence to 1e-3 relative. */
#include <math.h>

#include <json-c/json.h>

#include "test_util.h"
#include "train/trainer.h"

#define GOLDEN "tests/golden/distill"

static double num(json_object *o, const char *key) {
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v)) fail_msg("steps.json: no %s", key);
    return json_object_get_double(v);
}

static void run_golden(const char *run) {
    json_object *root = json_object_from_file(GOLDEN "/steps.json"), *runs, *r, *settings, *batches, *loss, *gnorm,
                *layers_j;
    assert_non_null(root);
    assert_true(json_object_object_get_ex(root, "runs", &runs));
    assert_true(json_object_object_get_ex(runs, run, &r));
    assert_true(json_object_object_get_ex(r, "settings", &settings));
    assert_true(json_object_object_get_ex(r, "loss", &loss));
    assert_true(json_object_object_get_ex(r, "grad_norm", &gnorm));
    assert_true(json_object_object_get_ex(root, "batches", &batches));
    assert_true(json_object_object_get_ex(root, "layers", &layers_j));
    int32_t layers[8], nl = (int32_t)json_object_array_length(layers_j);
    for (int32_t j = 0; j < nl; j++) layers[j] = json_object_get_int(json_object_array_get_idx(layers_j, j));

    char err[512];
    ake_model *teacher = NULL;
    assert_int_equal(ake_model_load(GOLDEN "/teacher", &teacher, err, sizeof err), AKE_OK);
    json_object *sched;
    assert_true(json_object_object_get_ex(settings, "schedule", &sched));
    ake_trainer_opts o = {.device = "cpu", .max_tokens = 1024, .max_batch = 64};
    o.optim = (ake_optim_config){.lr = num(settings, "lr"),
                                 .warmup_steps = (int64_t)num(settings, "warmup_steps"),
                                 .total_steps = (int64_t)num(settings, "total_steps"),
                                 .weight_decay = num(settings, "weight_decay"),
                                 .beta1 = num(settings, "beta1"),
                                 .beta2 = num(settings, "beta2"),
                                 .eps = num(settings, "eps"),
                                 .max_grad_norm = num(settings, "max_grad_norm")};
    assert_int_equal(ake_lr_schedule_parse(json_object_get_string(sched), &o.optim.schedule), 0);
    o.loss.hidden = num(settings, "hidden_loss_weight");
    json_object *cw;
    if (json_object_object_get_ex(settings, "contrastive_weight", &cw)) {
        o.loss.contrastive = json_object_get_double(cw);
        o.loss.temperature = num(settings, "temperature");
    }
    ake_trainer *tr = NULL;
    if (ake_trainer_create(teacher, layers, nl, &o, &tr, err, sizeof err) != AKE_OK) fail_msg("%s", err);

    const int steps = (int)json_object_array_length(loss);
    assert_int_equal(steps, 50);
    int clipped = 0;
    for (int s = 0; s < steps; s++) {
        json_object *b = json_object_array_get_idx(batches, s);
        int32_t n = (int32_t)json_object_array_length(b), ids[1024], cu[65] = {0};
        for (int32_t i = 0; i < n; i++) {
            json_object *seq = json_object_array_get_idx(b, i);
            const int32_t len = (int32_t)json_object_array_length(seq);
            for (int32_t t = 0; t < len; t++) ids[cu[i] + t] = json_object_get_int(json_object_array_get_idx(seq, t));
            cu[i + 1] = cu[i] + len;
        }
        ake_step_stats st;
        if (ake_trainer_step(tr, ids, cu, n, &st, err, sizeof err) != AKE_OK) fail_msg("step %d: %s", s, err);
        const double want = json_object_get_double(json_object_array_get_idx(loss, s)),
                     want_norm = json_object_get_double(json_object_array_get_idx(gnorm, s));
        if (fabs(st.loss - want) > 1e-3 * fabs(want))
            fail_msg("run %s, step %d: loss %.8g, PyTorch %.8g (relative %.2g)", run, s, st.loss, want,
                     fabs(st.loss - want) / fabs(want));
        if (fabs(st.grad_norm - want_norm) > 1e-3 * want_norm)
            fail_msg("run %s, step %d: gradient norm %.8g, PyTorch %.8g", run, s, st.grad_norm, want_norm);
        clipped += st.grad_norm > o.optim.max_grad_norm;
    }
    /* the sequence must have moved: a trainer that never updated would fail above, but say so */
    const double first = json_object_get_double(json_object_array_get_idx(loss, 0)),
                 last = json_object_get_double(json_object_array_get_idx(loss, steps - 1));
    assert_true(last < (o.loss.contrastive > 0 ? 0.75 : 0.5) * first);
    if (o.loss.hidden > 0) assert_true(clipped > steps / 2); /* this run exercises clipping */
    ake_trainer_free(tr);
    ake_model_free(teacher);
    json_object_put(root);
}

static void test_matches_pytorch_mse(void **state) {
    (void)state;
    run_golden("mse");
}

static void test_matches_pytorch_hidden_loss_and_clipping(void **state) {
    (void)state;
    run_golden("hidden");
}

static void test_matches_pytorch_contrastive(void **state) {
    (void)state;
    run_golden("contrastive");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_pytorch_mse),
        cmocka_unit_test(test_matches_pytorch_hidden_loss_and_clipping),
        cmocka_unit_test(test_matches_pytorch_contrastive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
