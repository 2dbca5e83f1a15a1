/* The whole training step against PyTorch (llm.c's test_gpt2 idea): tests/golden/distill/
 * holds a tiny teacher, 50 batches, and the loss and gradient norm of each step of PyTorch
 * training the same student from the same weights with the same AdamW settings
 * (make_distill_golden.py), for three losses: MSE, + hidden-state MSE (with clipping), +
 * in-batch contrastive. Our CPU trainer must follow each sequence to 1e-3 relative. */
#include "test_util.h"
#include "../golden/distill/golden_steps.h"

static void run_golden(const char *run) {
    char err[512];
    golden_run g;
    ake_trainer_opts o = {.device = "cpu"};
    if (!golden_open(run, &g, &o, err, sizeof err)) fail_msg("%s", err);
    ake_model *teacher = NULL;
    assert_int_equal(ake_model_load(GOLDEN_DIR "/teacher", &teacher, err, sizeof err), AKE_OK);
    ake_trainer *tr = NULL;
    if (ake_trainer_create(teacher, g.layers, g.nlayers, &o, &tr, err, sizeof err) != AKE_OK) fail_msg("%s", err);

    assert_int_equal(g.steps, 50);
    int clipped = 0;
    for (int s = 0; s < g.steps; s++) {
        int32_t ids[GOLDEN_MAX_TOKENS], cu[GOLDEN_MAX_BATCH + 1];
        const int32_t n = golden_batch(&g, s, ids, cu);
        assert_true(n > 0);
        ake_step_stats st;
        if (ake_trainer_step(tr, ids, cu, n, &st, err, sizeof err) != AKE_OK) fail_msg("step %d: %s", s, err);
        const double want = golden_loss(&g, s), want_norm = golden_grad_norm(&g, s);
        if (fabs(st.loss - want) > 1e-3 * fabs(want))
            fail_msg("run %s, step %d: loss %.8g, PyTorch %.8g (relative %.2g)", run, s, st.loss, want,
                     fabs(st.loss - want) / fabs(want));
        if (fabs(st.grad_norm - want_norm) > 1e-3 * want_norm)
            fail_msg("run %s, step %d: gradient norm %.8g, PyTorch %.8g", run, s, st.grad_norm, want_norm);
        clipped += st.grad_norm > o.optim.max_grad_norm;
    }
    /* the sequence must have moved: a trainer that never updated would fail above, but say so */
    assert_true(golden_loss(&g, g.steps - 1) < (o.loss.contrastive > 0 ? 0.75 : 0.5) * golden_loss(&g, 0));
    if (o.loss.hidden > 0) assert_true(clipped > g.steps / 2); /* this run exercises clipping */
    ake_trainer_free(tr);
    ake_model_free(teacher);
    golden_close(&g);
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
