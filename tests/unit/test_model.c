/* Model folder loader and synthetic models: the real all-MiniLM-L6-v2 folder, a tiny
 * hand-built model broken one way at a time (each must fail with the right status and
 * a message naming the file and field or tensor), and synthesized folders that must
 * load back with the configuration of their arch. */
#include "test_util.h"

#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/model.h"
#include "model/safetensors.h"
#include "model/synth.h"

/* ---- helpers -------------------------------------------------------------------------- */

static void del_file(const char *dir, const char *rel) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    assert_int_equal(unlink(path), 0);
}

/* Loads dir and expects status `want` and every needle (NULL-terminated list) in the message. */
static void expect_load_fail(const char *dir, ake_status want, const char *n1, const char *n2, const char *n3) {
    ake_model *m = (ake_model *)0x1;
    char err[1024] = "";
    ake_status rc = ake_model_load(dir, &m, err, sizeof err);
    const char *needles[] = {n1, n2, n3};
    bool ok = rc == want;
    for (int i = 0; i < 3; i++)
        if (needles[i] && !strstr(err, needles[i])) ok = false;
    if (!ok)
        fail_msg("want status %d with '%s' '%s' '%s', got %d: %s", want, n1 ? n1 : "", n2 ? n2 : "", n3 ? n3 : "", rc,
                 err);
    assert_null(m);
    assert_true(err[0] && err[strlen(err) - 1] == '.');
}

static ake_model *expect_load_ok(const char *dir) {
    ake_model *m = NULL;
    char err[1024] = "";
    ake_status rc = ake_model_load(dir, &m, err, sizeof err);
    if (rc != AKE_OK) fail_msg("loading %s: %s", dir, err);
    assert_non_null(m);
    return m;
}

/* ---- a tiny model built by hand --------------------------------------------------------- */

/* vocab 10, hidden 8, 2 layers, 2 heads, intermediate 16, max_position 16, type_vocab 2. */
#define TV 10
#define TD 8
#define TL 2
#define TF 16
#define TP 16

static const char *tiny_config =
    "{\"architectures\":[\"BertModel\"],\"model_type\":\"bert\",\"hidden_act\":\"gelu\",\n"
    " \"vocab_size\":10,\"hidden_size\":8,\"num_hidden_layers\":2,\"num_attention_heads\":2,\n"
    " \"intermediate_size\":16,\"max_position_embeddings\":16,\"type_vocab_size\":2,\n"
    " \"layer_norm_eps\":1e-5,\"position_embedding_type\":\"absolute\"}\n";

typedef struct {
    const char *prefix;   /* "" or "bert." */
    bool gamma_beta;      /* LayerNorm.gamma/beta instead of weight/bias */
    const char *skip;     /* unprefixed name of a tensor to leave out */
    const char *reshape;  /* unprefixed name of a tensor to give shape [3, 5] */
    const char *as_i8;    /* unprefixed name of a tensor stored as I8 */
    ake_dtype dtype;      /* of every weight */
    bool extras;          /* add position_ids and pooler tensors */
} tiny_opts;

static int add_tensor(ake_tensor *ts, int n, char names[][96], const tiny_opts *o, const char *name, int64_t d0,
                      int64_t d1) {
    if (o->skip && strcmp(name, o->skip) == 0) return n;
    ake_tensor *t = &ts[n];
    memset(t, 0, sizeof *t);
    snprintf(names[n], 96, "%s%s", o->prefix, name);
    t->name = names[n];
    t->dtype = o->dtype;
    t->ndim = d1 < 0 ? 1 : 2;
    t->shape[0] = d0;
    t->shape[1] = d1 < 0 ? 0 : d1;
    if (o->reshape && strcmp(name, o->reshape) == 0) {
        t->ndim = 2;
        t->shape[0] = 3;
        t->shape[1] = 5;
    }
    if (o->as_i8 && strcmp(name, o->as_i8) == 0) t->dtype = AKE_DT_I8;
    t->numel = t->shape[0] * (t->ndim == 2 ? t->shape[1] : 1);
    t->nbytes = (size_t)t->numel * ake_dtype_size(t->dtype);
    return n + 1;
}

static ake_status fill_const(void *ctx, int i, void *dst, size_t nbytes, char *err, size_t errlen) {
    (void)ctx;
    (void)err;
    (void)errlen;
    memset(dst, 0x11 + i, nbytes);
    return AKE_OK;
}

static void write_tiny_weights(const char *dir, const tiny_opts *o) {
    static ake_tensor ts[64];
    static char names[64][96];
    int n = 0;
    const char *g = o->gamma_beta ? "gamma" : "weight", *b = o->gamma_beta ? "beta" : "bias";
    char nm[96];
    if (o->extras) {
        tiny_opts e = *o;
        e.dtype = AKE_DT_I64;
        n = add_tensor(ts, n, names, &e, "embeddings.position_ids", 1, TP);
    }
    n = add_tensor(ts, n, names, o, "embeddings.word_embeddings.weight", TV, TD);
    n = add_tensor(ts, n, names, o, "embeddings.position_embeddings.weight", TP, TD);
    n = add_tensor(ts, n, names, o, "embeddings.token_type_embeddings.weight", 2, TD);
    snprintf(nm, sizeof nm, "embeddings.LayerNorm.%s", g);
    n = add_tensor(ts, n, names, o, nm, TD, -1);
    snprintf(nm, sizeof nm, "embeddings.LayerNorm.%s", b);
    n = add_tensor(ts, n, names, o, nm, TD, -1);
    for (int l = 0; l < TL; l++) {
        static const char *const lin[] = {"attention.self.query", "attention.self.key", "attention.self.value",
                                          "attention.output.dense"};
        for (int k = 0; k < 4; k++) {
            snprintf(nm, sizeof nm, "encoder.layer.%d.%s.weight", l, lin[k]);
            n = add_tensor(ts, n, names, o, nm, TD, TD);
            snprintf(nm, sizeof nm, "encoder.layer.%d.%s.bias", l, lin[k]);
            n = add_tensor(ts, n, names, o, nm, TD, -1);
        }
        snprintf(nm, sizeof nm, "encoder.layer.%d.attention.output.LayerNorm.%s", l, g);
        n = add_tensor(ts, n, names, o, nm, TD, -1);
        snprintf(nm, sizeof nm, "encoder.layer.%d.attention.output.LayerNorm.%s", l, b);
        n = add_tensor(ts, n, names, o, nm, TD, -1);
        snprintf(nm, sizeof nm, "encoder.layer.%d.intermediate.dense.weight", l);
        n = add_tensor(ts, n, names, o, nm, TF, TD);
        snprintf(nm, sizeof nm, "encoder.layer.%d.intermediate.dense.bias", l);
        n = add_tensor(ts, n, names, o, nm, TF, -1);
        snprintf(nm, sizeof nm, "encoder.layer.%d.output.dense.weight", l);
        n = add_tensor(ts, n, names, o, nm, TD, TF);
        snprintf(nm, sizeof nm, "encoder.layer.%d.output.dense.bias", l);
        n = add_tensor(ts, n, names, o, nm, TD, -1);
        snprintf(nm, sizeof nm, "encoder.layer.%d.output.LayerNorm.%s", l, g);
        n = add_tensor(ts, n, names, o, nm, TD, -1);
        snprintf(nm, sizeof nm, "encoder.layer.%d.output.LayerNorm.%s", l, b);
        n = add_tensor(ts, n, names, o, nm, TD, -1);
    }
    if (o->extras) {
        n = add_tensor(ts, n, names, o, "pooler.dense.weight", TD, TD);
        n = add_tensor(ts, n, names, o, "pooler.dense.bias", TD, -1);
    }
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ake_status rc = ake_safetensors_write_fill(path, ts, n, fill_const, NULL, err, sizeof err);
    if (rc != AKE_OK) fail_msg("%s", err);
}

/* A fresh temp folder holding a valid tiny model with F32 weights and no sentence-transformers files. */
static char *make_tiny(const tiny_opts *o) {
    char *dir = test_tmp_dir();
    test_put_file(dir, "config.json", tiny_config);
    tiny_opts d = o ? *o : (tiny_opts){0};
    if (!d.prefix) d.prefix = "";
    write_tiny_weights(dir, &d);
    return dir;
}

static void drop(char *dir) {
    test_rm_rf(dir);
    free(dir);
}

/* ---- the real model ------------------------------------------------------------------- */

static void test_real_model(void **state) {
    (void)state;
    ake_model *m = expect_load_ok(test_model_dir());
    const ake_model_config *c = &m->cfg;
    assert_string_equal(m->name, "all-MiniLM-L6-v2");
    assert_string_equal(m->dir, test_model_dir());
    assert_int_equal(c->vocab_size, 30522);
    assert_int_equal(c->hidden, 384);
    assert_int_equal(c->layers, 6);
    assert_int_equal(c->heads, 12);
    assert_int_equal(c->intermediate, 1536);
    assert_int_equal(c->max_position, 512);
    assert_int_equal(c->type_vocab_size, 2);
    assert_true(fabsf(c->layer_norm_eps - 1e-12f) < 1e-18f);
    assert_int_equal(c->pooling, AKE_POOL_MEAN);
    assert_string_equal(ake_pooling_name(c->pooling), "mean");
    assert_true(c->normalize);
    assert_int_equal(c->max_seq_length, 256);
    assert_int_equal(m->word_emb->shape[0], 30522);
    assert_int_equal(m->word_emb->shape[1], 384);
    assert_int_equal(m->pos_emb->shape[0], 512);
    assert_int_equal(m->type_emb->shape[0], 2);
    assert_int_equal(m->emb_ln_g->shape[0], 384);
    assert_string_equal(m->emb_ln_b->name, "embeddings.LayerNorm.bias");
    for (int i = 0; i < c->layers; i++) {
        const ake_layer_weights *L = &m->layer[i];
        const ake_tensor *all[] = {L->q.w, L->q.b, L->k.w, L->k.b, L->v.w, L->v.b, L->o.w, L->o.b,
                                   L->ln1_g, L->ln1_b, L->ff1.w, L->ff1.b, L->ff2.w, L->ff2.b, L->ln2_g, L->ln2_b};
        for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
            assert_non_null(all[k]);
            assert_int_equal(all[k]->dtype, AKE_DT_F32);
            assert_int_equal((uintptr_t)all[k]->data % 4, 0);
        }
        assert_int_equal(L->ff1.w->shape[0], 1536);
        assert_int_equal(L->ff1.w->shape[1], 384);
        assert_int_equal(L->ff2.w->shape[0], 384);
        assert_int_equal(L->ff2.w->shape[1], 1536);
    }
    assert_string_equal(m->layer[5].ff2.w->name, "encoder.layer.5.output.dense.weight");
    assert_string_equal(m->layer[3].ln1_g->name, "encoder.layer.3.attention.output.LayerNorm.weight");
    ake_model_free(m);
    ake_model_free(NULL);
}

static void test_pooling_names(void **state) {
    (void)state;
    assert_string_equal(ake_pooling_name(AKE_POOL_MEAN), "mean");
    assert_string_equal(ake_pooling_name(AKE_POOL_CLS), "cls");
    assert_string_equal(ake_pooling_name(AKE_POOL_MAX), "max");
}

/* ---- the tiny model: valid variants ----------------------------------------------------- */

static void test_tiny_defaults(void **state) {
    (void)state;
    tiny_opts o = {.extras = true};
    char *dir = make_tiny(&o);
    ake_model *m = expect_load_ok(dir);
    /* Without modules.json: mean pooling, no normalization, no max_seq_length. */
    assert_int_equal(m->cfg.pooling, AKE_POOL_MEAN);
    assert_false(m->cfg.normalize);
    assert_int_equal(m->cfg.max_seq_length, 0);
    assert_true(fabsf(m->cfg.layer_norm_eps - 1e-5f) < 1e-10f);
    assert_int_equal(m->cfg.layers, TL);
    assert_int_equal(m->layer[1].ff1.w->shape[0], TF);
    assert_string_equal(m->name, strrchr(dir, '/') + 1); /* the folder's last component */
    ake_model_free(m);

    /* Defaults for type_vocab_size, layer_norm_eps, hidden_act, position_embedding_type. */
    test_put_file(dir, "config.json",
             "{\"vocab_size\":10,\"hidden_size\":8,\"num_hidden_layers\":2,\"num_attention_heads\":2,"
             "\"intermediate_size\":16,\"max_position_embeddings\":16}");
    m = expect_load_ok(dir);
    assert_int_equal(m->cfg.type_vocab_size, 2);
    assert_true(m->cfg.layer_norm_eps == 1e-12f);
    ake_model_free(m);

    /* A trailing slash does not change the name. */
    char slashed[512];
    snprintf(slashed, sizeof slashed, "%s/", dir);
    m = expect_load_ok(slashed);
    assert_null(strchr(m->name, '/'));
    assert_string_equal(m->name, strrchr(dir, '/') + 1); /* the folder's last component */
    ake_model_free(m);
    drop(dir);
}

static void test_tiny_prefix_and_gamma(void **state) {
    (void)state;
    tiny_opts o = {.prefix = "bert.", .gamma_beta = true, .extras = true};
    char *dir = make_tiny(&o);
    ake_model *m = expect_load_ok(dir);
    assert_string_equal(m->word_emb->name, "bert.embeddings.word_embeddings.weight");
    assert_string_equal(m->layer[1].ln2_g->name, "bert.encoder.layer.1.output.LayerNorm.gamma");
    assert_string_equal(m->emb_ln_b->name, "bert.embeddings.LayerNorm.beta");
    ake_model_free(m);
    drop(dir);
}

static void test_tiny_half_dtypes(void **state) {
    (void)state;
    ake_dtype dts[] = {AKE_DT_F16, AKE_DT_BF16};
    for (int i = 0; i < 2; i++) {
        tiny_opts o = {.dtype = dts[i]};
        char *dir = make_tiny(&o);
        ake_model *m = expect_load_ok(dir);
        assert_int_equal(m->layer[0].q.w->dtype, dts[i]);
        ake_model_free(m);
        drop(dir);
    }
}

static void test_tiny_sentence_transformers(void **state) {
    (void)state;
    char *dir = make_tiny(NULL);
    char sub[512];
    snprintf(sub, sizeof sub, "%s/1_Pooling", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    test_put_file(dir, "modules.json",
             "[{\"idx\":0,\"name\":\"0\",\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
             "{\"idx\":1,\"name\":\"1\",\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"},"
             "{\"idx\":2,\"name\":\"2\",\"path\":\"2_Normalize\",\"type\":\"sentence_transformers.models.Normalize\"}]");
    test_put_file(dir, "1_Pooling/config.json",
             "{\"word_embedding_dimension\":8,\"pooling_mode_cls_token\":true,\"pooling_mode_mean_tokens\":false,"
             "\"pooling_mode_max_tokens\":false,\"pooling_mode_mean_sqrt_len_tokens\":false}");
    test_put_file(dir, "sentence_bert_config.json", "{\"max_seq_length\":1000,\"do_lower_case\":false}");
    ake_model *m = expect_load_ok(dir);
    assert_int_equal(m->cfg.pooling, AKE_POOL_CLS);
    assert_true(m->cfg.normalize); /* the 2_Normalize folder does not exist: modules.json decides */
    assert_int_equal(m->cfg.max_seq_length, TP); /* clamped to max_position */
    ake_model_free(m);

    test_put_file(dir, "1_Pooling/config.json", "{\"pooling_mode_max_tokens\":true}");
    test_put_file(dir, "sentence_bert_config.json", "{\"max_seq_length\":12}");
    m = expect_load_ok(dir);
    assert_int_equal(m->cfg.pooling, AKE_POOL_MAX);
    assert_int_equal(m->cfg.max_seq_length, 12);
    ake_model_free(m);

    /* The module paths sentence-transformers 6 saves load the same. */
    test_put_file(dir, "modules.json",
             "[{\"path\":\"\",\"type\":\"sentence_transformers.base.modules.transformer.Transformer\"},"
             "{\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.sentence_transformer.modules.pooling.Pooling\"},"
             "{\"path\":\"2_Normalize\",\"type\":\"sentence_transformers.base.modules.normalize.Normalize\"}]");
    m = expect_load_ok(dir);
    assert_int_equal(m->cfg.pooling, AKE_POOL_MAX);
    assert_true(m->cfg.normalize);
    ake_model_free(m);
    test_put_file(dir, "1_Pooling/config.json", "{\"embedding_dimension\":8,\"pooling_mode\":\"cls\",\"include_prompt\":true}");
    m = expect_load_ok(dir);
    assert_int_equal(m->cfg.pooling, AKE_POOL_CLS);
    ake_model_free(m);
    test_put_file(dir, "1_Pooling/config.json", "{\"pooling_mode\":[\"mean\"]}");
    m = expect_load_ok(dir);
    assert_int_equal(m->cfg.pooling, AKE_POOL_MEAN);
    ake_model_free(m);
    test_put_file(dir, "1_Pooling/config.json", "{\"pooling_mode\":\"lasttoken\"}");
    expect_load_fail(dir, AKE_EUNSUPPORTED, "lasttoken", NULL, NULL);
    test_put_file(dir, "1_Pooling/config.json", "{\"pooling_mode\":\"mean\",\"pooling_mode_cls_token\":true}");
    expect_load_fail(dir, AKE_EFORMAT, "contradicts", NULL, NULL);
    test_put_file(dir, "1_Pooling/config.json", "{\"pooling_mode\":\"mean\",\"embedding_dimension\":9}");
    expect_load_fail(dir, AKE_EFORMAT, "embedding_dimension", NULL, NULL);
    test_put_file(dir, "1_Pooling/config.json", "{\"pooling_mode_max_tokens\":true}");
    test_put_file(dir, "modules.json",
             "[{\"path\":\"\",\"type\":\"other_package.Transformer\"}]");
    expect_load_fail(dir, AKE_EUNSUPPORTED, "other_package.Transformer", NULL, NULL);

    /* Pooling without Normalize. */
    test_put_file(dir, "modules.json",
             "[{\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
             "{\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"}]");
    m = expect_load_ok(dir);
    assert_false(m->cfg.normalize);
    ake_model_free(m);

    /* No modules.json: 1_Pooling/config.json still read, normalize false. */
    del_file(dir, "modules.json");
    test_put_file(dir, "1_Pooling/config.json", "{\"pooling_mode_cls_token\":true}");
    m = expect_load_ok(dir);
    assert_int_equal(m->cfg.pooling, AKE_POOL_CLS);
    assert_false(m->cfg.normalize);
    ake_model_free(m);
    drop(dir);
}

/* ---- the tiny model: broken one way at a time ------------------------------------------- */

static void test_missing_files(void **state) {
    (void)state;
    char *dir = make_tiny(NULL);
    del_file(dir, "model.safetensors");
    expect_load_fail(dir, AKE_ENOTFOUND, dir, "model.safetensors", NULL);
    test_put_file(dir, "pytorch_model.bin", "x");
    expect_load_fail(dir, AKE_ENOTFOUND, "model.safetensors", "pytorch_model.bin", NULL);
    drop(dir);

    dir = make_tiny(NULL);
    del_file(dir, "config.json");
    expect_load_fail(dir, AKE_ENOTFOUND, dir, "config.json", NULL);
    drop(dir);

    expect_load_fail("/nonexistent/akidb-model", AKE_ENOTFOUND, "/nonexistent/akidb-model", NULL, NULL);
    char *d2 = test_tmp_dir();
    test_put_file(d2, "file", "x");
    char fp[512];
    snprintf(fp, sizeof fp, "%s/file", d2);
    expect_load_fail(fp, AKE_EINVAL, fp, "not a folder", NULL);
    drop(d2);
}

typedef struct {
    const char *what;
    const char *config;
    ake_status want;
    const char *n1, *n2;
} cfg_case;

#define CFG_BASE "\"vocab_size\":10,\"num_hidden_layers\":2,\"intermediate_size\":16,\"max_position_embeddings\":16"

static const cfg_case cfg_cases[] = {
    {"invalid JSON", "{\"vocab_size\": 10,\n \"hidden_size\": ,}", AKE_EFORMAT, "not valid JSON", "line 2"},
    {"empty file", "", AKE_EFORMAT, "not valid JSON", NULL},
    {"not an object", "[1,2]", AKE_EFORMAT, "not an object", NULL},
    {"hidden_act relu", "{" CFG_BASE ",\"hidden_size\":8,\"num_attention_heads\":2,\"hidden_act\":\"relu\"}",
     AKE_EUNSUPPORTED, "hidden_act", "'relu'"},
    {"hidden_act gelu_new", "{" CFG_BASE ",\"hidden_size\":8,\"num_attention_heads\":2,\"hidden_act\":\"gelu_new\"}",
     AKE_EUNSUPPORTED, "hidden_act", "'gelu_new'"},
    {"relative positions",
     "{" CFG_BASE ",\"hidden_size\":8,\"num_attention_heads\":2,\"position_embedding_type\":\"relative_key\"}",
     AKE_EUNSUPPORTED, "position_embedding_type", "'relative_key'"},
    {"roberta", "{" CFG_BASE ",\"hidden_size\":8,\"num_attention_heads\":2,\"model_type\":\"roberta\"}",
     AKE_EUNSUPPORTED, "model_type", "'roberta'"},
    {"missing hidden_size", "{" CFG_BASE ",\"num_attention_heads\":2}", AKE_ENOTFOUND, "\"hidden_size\"", NULL},
    {"hidden not divisible by heads", "{" CFG_BASE ",\"hidden_size\":8,\"num_attention_heads\":3}", AKE_EFORMAT,
     "hidden_size 8", "num_attention_heads 3"},
    {"zero heads", "{" CFG_BASE ",\"hidden_size\":8,\"num_attention_heads\":0}", AKE_EFORMAT, "num_attention_heads",
     NULL},
    {"negative layers", "{\"vocab_size\":10,\"num_hidden_layers\":-2,\"intermediate_size\":16,"
                        "\"max_position_embeddings\":16,\"hidden_size\":8,\"num_attention_heads\":2}",
     AKE_EFORMAT, "num_hidden_layers", NULL},
    {"fractional size", "{" CFG_BASE ",\"hidden_size\":8.5,\"num_attention_heads\":2}", AKE_EFORMAT, "hidden_size",
     NULL},
    {"absurd size", "{" CFG_BASE ",\"hidden_size\":1e12,\"num_attention_heads\":2}", AKE_EFORMAT, "hidden_size",
     NULL},
    {"size as string", "{" CFG_BASE ",\"hidden_size\":\"8\",\"num_attention_heads\":2}", AKE_EFORMAT, "hidden_size",
     NULL},
    {"bad eps", "{" CFG_BASE ",\"hidden_size\":8,\"num_attention_heads\":2,\"layer_norm_eps\":-1}", AKE_EFORMAT,
     "layer_norm_eps", NULL},
};

static void test_bad_configs(void **state) {
    (void)state;
    char *dir = make_tiny(NULL);
    for (size_t i = 0; i < sizeof cfg_cases / sizeof cfg_cases[0]; i++) {
        const cfg_case *c = &cfg_cases[i];
        print_message("case: %s\n", c->what);
        test_put_file(dir, "config.json", c->config);
        expect_load_fail(dir, c->want, "config.json", c->n1, c->n2);
    }
    drop(dir);
}

static void test_bad_tensors(void **state) {
    (void)state;
    char msg[512];
    /* Missing tensor: the exact message. */
    tiny_opts o = {.skip = "encoder.layer.1.output.dense.weight"};
    char *dir = make_tiny(&o);
    snprintf(msg, sizeof msg, "model.safetensors in %s has no tensor 'encoder.layer.1.output.dense.weight'.", dir);
    ake_model *m = NULL;
    char err[1024];
    assert_int_equal(ake_model_load(dir, &m, err, sizeof err), AKE_ENOTFOUND);
    assert_string_equal(err, msg);
    assert_null(m);
    drop(dir);

    o = (tiny_opts){.prefix = "bert.", .skip = "embeddings.LayerNorm.bias"};
    dir = make_tiny(&o);
    expect_load_fail(dir, AKE_ENOTFOUND, "'bert.embeddings.LayerNorm.bias'", dir, NULL);
    drop(dir);

    o = (tiny_opts){.skip = "embeddings.word_embeddings.weight"};
    dir = make_tiny(&o);
    expect_load_fail(dir, AKE_ENOTFOUND, "'embeddings.word_embeddings.weight'", NULL, NULL);
    drop(dir);

    /* Wrong shape: tensor, found and expected shapes. */
    o = (tiny_opts){.reshape = "encoder.layer.0.intermediate.dense.weight"};
    dir = make_tiny(&o);
    expect_load_fail(dir, AKE_EFORMAT, "'encoder.layer.0.intermediate.dense.weight'", "[3, 5]", "[16, 8]");
    drop(dir);
    o = (tiny_opts){.reshape = "embeddings.LayerNorm.weight"};
    dir = make_tiny(&o);
    expect_load_fail(dir, AKE_EFORMAT, "'embeddings.LayerNorm.weight'", "[3, 5]", "[8]");
    drop(dir);

    /* A weight stored as I8 without the per-channel scales that give its codes a meaning. */
    o = (tiny_opts){.as_i8 = "encoder.layer.1.attention.self.value.weight"};
    dir = make_tiny(&o);
    expect_load_fail(dir, AKE_EFORMAT, "'encoder.layer.1.attention.self.value.weight_scale'", "missing", dir);
    drop(dir);
    /* A bias stored as I8: only weights may be 8-bit. */
    o = (tiny_opts){.as_i8 = "encoder.layer.1.attention.self.value.bias"};
    dir = make_tiny(&o);
    expect_load_fail(dir, AKE_EUNSUPPORTED, "'encoder.layer.1.attention.self.value.bias'", "I8", dir);
    drop(dir);

    /* A config that disagrees with every tensor (vocab 11). */
    dir = make_tiny(NULL);
    test_put_file(dir, "config.json",
             "{\"vocab_size\":11,\"hidden_size\":8,\"num_hidden_layers\":2,\"num_attention_heads\":2,"
             "\"intermediate_size\":16,\"max_position_embeddings\":16}");
    expect_load_fail(dir, AKE_EFORMAT, "'embeddings.word_embeddings.weight'", "[10, 8]", "[11, 8]");
    /* More layers in the config than in the file. */
    test_put_file(dir, "config.json",
             "{\"vocab_size\":10,\"hidden_size\":8,\"num_hidden_layers\":3,\"num_attention_heads\":2,"
             "\"intermediate_size\":16,\"max_position_embeddings\":16}");
    expect_load_fail(dir, AKE_ENOTFOUND, "'encoder.layer.2.attention.self.query.weight'", NULL, NULL);
    drop(dir);

    /* A corrupt safetensors file is reported with its path. */
    dir = make_tiny(NULL);
    test_put_file(dir, "model.safetensors", "garbage!garbage!"); /* reads as a ~2.4e18-byte header length */
    expect_load_fail(dir, AKE_ETOOLONG, "model.safetensors", dir, NULL);
    test_put_file(dir, "model.safetensors", "short");
    expect_load_fail(dir, AKE_EFORMAT, "model.safetensors", dir, "too short");
    drop(dir);
}

static void test_bad_sentence_transformers(void **state) {
    (void)state;
    char *dir = make_tiny(NULL);
    char sub[512];
    snprintf(sub, sizeof sub, "%s/1_Pooling", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    const char *modules =
        "[{\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
        "{\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"},"
        "{\"path\":\"2_Normalize\",\"type\":\"sentence_transformers.models.Normalize\"}]";
    test_put_file(dir, "modules.json", modules);

    test_put_file(dir, "1_Pooling/config.json", "{\"pooling_mode_cls_token\":true,\"pooling_mode_mean_tokens\":true}");
    expect_load_fail(dir, AKE_EUNSUPPORTED, "1_Pooling/config.json", "pooling_mode_cls_token",
                     "pooling_mode_mean_tokens");
    test_put_file(dir, "1_Pooling/config.json", "{\"pooling_mode_mean_sqrt_len_tokens\":true}");
    expect_load_fail(dir, AKE_EUNSUPPORTED, "1_Pooling/config.json", "pooling_mode_mean_sqrt_len_tokens", NULL);
    test_put_file(dir, "1_Pooling/config.json", "{\"pooling_mode_mean_tokens\":false}");
    expect_load_fail(dir, AKE_EFORMAT, "1_Pooling/config.json", "no pooling mode", NULL);
    test_put_file(dir, "1_Pooling/config.json", "{\"pooling_mode_mean_tokens\":1}");
    expect_load_fail(dir, AKE_EFORMAT, "1_Pooling/config.json", "pooling_mode_mean_tokens", NULL);
    test_put_file(dir, "1_Pooling/config.json", "{\"pooling_mode_mean_tokens\":true,\"word_embedding_dimension\":9}");
    expect_load_fail(dir, AKE_EFORMAT, "1_Pooling/config.json", "word_embedding_dimension", NULL);
    test_put_file(dir, "1_Pooling/config.json", "{\"pooling_mode_mean_tokens\":true");
    expect_load_fail(dir, AKE_EFORMAT, "1_Pooling/config.json", "not valid JSON", NULL);
    del_file(dir, "1_Pooling/config.json");
    expect_load_fail(dir, AKE_ENOTFOUND, "1_Pooling/config.json", "modules.json", NULL);
    test_put_file(dir, "1_Pooling/config.json", "{\"pooling_mode_mean_tokens\":true}");

    test_put_file(dir, "modules.json",
             "[{\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
             "{\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"},"
             "{\"path\":\"2_Dense\",\"type\":\"sentence_transformers.models.Dense\"}]");
    expect_load_fail(dir, AKE_EUNSUPPORTED, "modules.json", "'sentence_transformers.models.Dense'", NULL);
    test_put_file(dir, "modules.json", "[{\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"}]");
    expect_load_fail(dir, AKE_EUNSUPPORTED, "modules.json", "no Pooling", NULL);
    test_put_file(dir, "modules.json", "[{\"path\":\"../x\",\"type\":\"sentence_transformers.models.Pooling\"}]");
    expect_load_fail(dir, AKE_EFORMAT, "modules.json", "path", NULL);
    test_put_file(dir, "modules.json", "{\"a\":1}");
    expect_load_fail(dir, AKE_EFORMAT, "modules.json", "array", NULL);
    test_put_file(dir, "modules.json", "[1]");
    expect_load_fail(dir, AKE_EFORMAT, "modules.json", "module #0", NULL);

    test_put_file(dir, "modules.json", modules);
    test_put_file(dir, "sentence_bert_config.json", "{\"max_seq_length\":-5}");
    expect_load_fail(dir, AKE_EFORMAT, "sentence_bert_config.json", "max_seq_length", NULL);
    test_put_file(dir, "sentence_bert_config.json", "{\"max_seq_length\":null}");
    ake_model *m = expect_load_ok(dir);
    assert_int_equal(m->cfg.max_seq_length, 0);
    ake_model_free(m);
    drop(dir);
}

/* ---- synthetic models ------------------------------------------------------------------- */

static float f16_to_f32(uint16_t h) {
    int e = (h >> 10) & 0x1F, man = h & 0x3FF;
    double v = e == 0 ? ldexp(man, -24) : e == 31 ? INFINITY : ldexp(1024 + man, e - 25);
    return (float)((h & 0x8000) ? -v : v);
}

static float bf16_to_f32(uint16_t h) {
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static float f32_at(const ake_tensor *t, int64_t i) {
    float f;
    memcpy(&f, (const char *)t->data + 4 * i, 4);
    return f;
}

static uint16_t u16_at(const ake_tensor *t, int64_t i) {
    uint16_t h;
    memcpy(&h, (const char *)t->data + 2 * i, 2);
    return h;
}

/* h must be the binary16 nearest to x (ties to even): no neighbor is closer. */
static void check_f16_nearest(float x, uint16_t h) {
    double dx = x, d = fabs(dx - f16_to_f32(h));
    uint16_t mag = h & 0x7FFF, sign = h & 0x8000;
    if (mag < 0x7BFF) assert_true(d <= fabs(dx - f16_to_f32((uint16_t)(sign | (mag + 1)))));
    if (mag > 0) assert_true(d <= fabs(dx - f16_to_f32((uint16_t)(sign | (mag - 1)))));
    if (mag == 0) assert_true(fabs(dx) <= ldexp(1, -25));
}

static void check_synth_config(const ake_model *m, const char *arch) {
    ake_model_config want;
    char err[512];
    assert_int_equal(ake_model_synth_config(arch, &want, err, sizeof err), AKE_OK);
    const ake_model_config *c = &m->cfg;
    assert_int_equal(c->vocab_size, want.vocab_size);
    assert_int_equal(c->hidden, want.hidden);
    assert_int_equal(c->layers, want.layers);
    assert_int_equal(c->heads, want.heads);
    assert_int_equal(c->intermediate, want.intermediate);
    assert_int_equal(c->max_position, want.max_position);
    assert_int_equal(c->type_vocab_size, want.type_vocab_size);
    assert_true(c->layer_norm_eps == want.layer_norm_eps);
    assert_int_equal(c->pooling, want.pooling);
    assert_int_equal(c->normalize, want.normalize);
    assert_int_equal(c->max_seq_length, want.max_seq_length);
}

static void test_synth_configs(void **state) {
    (void)state;
    ake_model_config c;
    char err[512];
    assert_int_equal(ake_model_synth_config("bert-large", &c, err, sizeof err), AKE_OK);
    assert_int_equal(c.layers, 24);
    assert_int_equal(c.hidden, 1024);
    assert_int_equal(c.heads, 16);
    assert_int_equal(c.intermediate, 4096);
    assert_int_equal(ake_model_synth_config("bert-base", &c, err, sizeof err), AKE_OK);
    assert_int_equal(c.hidden, 768);
    assert_int_equal(c.intermediate, 3072);
    assert_int_equal(ake_model_synth_config("bge-small", &c, err, sizeof err), AKE_OK);
    assert_int_equal(c.pooling, AKE_POOL_CLS);
    assert_true(c.normalize);
    assert_int_equal(ake_model_synth_config("minilm-l6", &c, err, sizeof err), AKE_OK);
    assert_int_equal(c.layers, 6);
    assert_int_equal(c.pooling, AKE_POOL_MEAN);
    assert_int_equal(c.vocab_size, 30522);
    assert_int_equal(c.max_position, 512);

    char *dir = test_tmp_dir();
    assert_int_equal(ake_model_synth("gpt-2", 1, test_model_dir(), dir, err, sizeof err), AKE_EINVAL);
    assert_non_null(strstr(err, "'gpt-2'"));
    assert_non_null(strstr(err, "minilm-l3"));
    assert_non_null(strstr(err, "bert-large"));
    assert_int_equal(ake_model_synth_config("gpt-2", &c, err, sizeof err), AKE_EINVAL);
    ake_model_synth_opts bad = {.dtype = AKE_DT_I8};
    assert_int_equal(ake_model_synth_ex("minilm-l3", 1, test_model_dir(), dir, &bad, err, sizeof err), AKE_EINVAL);
    assert_non_null(strstr(err, "I8"));
    assert_int_equal(ake_model_synth("minilm-l3", 1, dir, dir, err, sizeof err), AKE_ENOTFOUND);
    assert_non_null(strstr(err, "tokenizer"));
    drop(dir);
}

static void test_synth_minilm_l3(void **state) {
    (void)state;
    char *dir = test_tmp_dir();
    char out[512], out16[512], out16b[512], err[512];
    snprintf(out, sizeof out, "%s/a/b/minilm-l3", dir); /* parents created */
    snprintf(out16, sizeof out16, "%s/l3-f16", dir);
    snprintf(out16b, sizeof out16b, "%s/l3-f16-again", dir);
    ake_status rc = ake_model_synth("minilm-l3", 42, test_model_dir(), out, err, sizeof err);
    if (rc != AKE_OK) fail_msg("%s", err);
    ake_model_synth_opts f16 = {.dtype = AKE_DT_F16};
    rc = ake_model_synth_ex("minilm-l3", 42, test_model_dir(), out16, &f16, err, sizeof err);
    if (rc != AKE_OK) fail_msg("%s", err);

    ake_model *m = expect_load_ok(out);
    ake_model *h = expect_load_ok(out16);
    check_synth_config(m, "minilm-l3");
    check_synth_config(h, "minilm-l3");
    assert_string_equal(m->name, "minilm-l3");
    assert_int_equal(m->word_emb->dtype, AKE_DT_F32);
    assert_int_equal(h->word_emb->dtype, AKE_DT_F16);

    /* The tokenizer files came along. */
    const char *tok[] = {"tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"};
    for (int i = 0; i < 4; i++) {
        char a[600], b[600];
        snprintf(a, sizeof a, "%s/%s", test_model_dir(), tok[i]);
        snprintf(b, sizeof b, "%s/%s", out, tok[i]);
        size_t la = 0, lb = 0;
        char *da = test_read_file(a, &la), *db = test_read_file(b, &lb);
        assert_non_null(da);
        assert_non_null(db);
        assert_int_equal(la, lb);
        assert_memory_equal(da, db, la);
        free(da);
        free(db);
    }

    /* Weight statistics: N(0, 0.02) weights, gamma near 1, beta near 0. */
    const ake_tensor *w = m->word_emb;
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < w->numel; i++) {
        double v = f32_at(w, i);
        s += v;
        s2 += v * v;
    }
    double mean = s / (double)w->numel, sd = sqrt(s2 / (double)w->numel - mean * mean);
    assert_true(fabs(mean) < 1e-4);
    assert_true(fabs(sd - 0.02) < 5e-4);
    const ake_tensor *g = m->layer[2].ln2_g, *bt = m->layer[2].ln2_b;
    s = 0;
    for (int64_t i = 0; i < g->numel; i++) s += f32_at(g, i);
    assert_true(fabs(s / (double)g->numel - 1.0) < 0.01);
    for (int64_t i = 0; i < bt->numel; i++) assert_true(fabs(f32_at(bt, i)) < 0.1);

    /* The F16 file holds the F32 values rounded to nearest even, tensor by tensor. */
    const ake_tensor *pairs[][2] = {{m->word_emb, h->word_emb},
                                    {m->layer[0].q.w, h->layer[0].q.w},
                                    {m->layer[2].ff2.w, h->layer[2].ff2.w},
                                    {m->layer[1].ln1_g, h->layer[1].ln1_g},
                                    {m->emb_ln_b, h->emb_ln_b}};
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
        const ake_tensor *a = pairs[p][0], *b = pairs[p][1];
        assert_int_equal(a->numel, b->numel);
        for (int64_t i = 0; i < a->numel; i++) check_f16_nearest(f32_at(a, i), u16_at(b, i));
    }
    ake_model_free(h);

    /* Deterministic: same seed, same bytes; another seed, other bytes. */
    rc = ake_model_synth_ex("minilm-l3", 42, test_model_dir(), out16b, &f16, err, sizeof err);
    if (rc != AKE_OK) fail_msg("%s", err);
    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/model.safetensors", out16);
    snprintf(pb, sizeof pb, "%s/model.safetensors", out16b);
    size_t la = 0, lb = 0;
    char *da = test_read_file(pa, &la), *db = test_read_file(pb, &lb);
    assert_non_null(da);
    assert_non_null(db);
    assert_int_equal(la, lb);
    assert_memory_equal(da, db, la);
    free(db);
    rc = ake_model_synth_ex("minilm-l3", 43, test_model_dir(), out16b, &f16, err, sizeof err);
    if (rc != AKE_OK) fail_msg("%s", err);
    db = test_read_file(pb, &lb);
    assert_int_equal(la, lb);
    assert_true(memcmp(da, db, la) != 0);
    free(da);
    free(db);

    /* BF16: the F32 values rounded to their top 16 bits (nearest even). */
    ake_model_synth_opts bf = {.dtype = AKE_DT_BF16};
    rc = ake_model_synth_ex("minilm-l3", 42, test_model_dir(), out16b, &bf, err, sizeof err);
    if (rc != AKE_OK) fail_msg("%s", err);
    h = expect_load_ok(out16b);
    assert_int_equal(h->layer[0].k.w->dtype, AKE_DT_BF16);
    for (int64_t i = 0; i < m->layer[0].k.w->numel; i++) {
        float x = f32_at(m->layer[0].k.w, i), y = bf16_to_f32(u16_at(h->layer[0].k.w, i));
        assert_true(fabsf(x - y) <= fabsf(x) * (1.0f / 256.0f));
    }
    ake_model_free(h);
    ake_model_free(m);
    drop(dir);
}

static void test_synth_bge_small(void **state) {
    (void)state;
    char *dir = test_tmp_dir();
    char out[512], err[512];
    snprintf(out, sizeof out, "%s/bge-small", dir);
    ake_model_synth_opts f16 = {.dtype = AKE_DT_F16};
    ake_status rc = ake_model_synth_ex("bge-small", 7, test_model_dir(), out, &f16, err, sizeof err);
    if (rc != AKE_OK) fail_msg("%s", err);
    ake_model *m = expect_load_ok(out);
    check_synth_config(m, "bge-small");
    assert_int_equal(m->cfg.layers, 12);
    assert_int_equal(m->cfg.pooling, AKE_POOL_CLS);
    assert_true(m->cfg.normalize);
    assert_int_equal(m->cfg.max_seq_length, 512);
    assert_int_equal(m->layer[11].ff1.w->dtype, AKE_DT_F16);
    assert_int_equal(m->layer[11].ff1.w->shape[0], 1536);
    ake_model_free(m);
    /* Overwriting an existing folder works. */
    rc = ake_model_synth_ex("bge-small", 7, test_model_dir(), out, &f16, err, sizeof err);
    if (rc != AKE_OK) fail_msg("%s", err);
    drop(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_model),
        cmocka_unit_test(test_pooling_names),
        cmocka_unit_test(test_tiny_defaults),
        cmocka_unit_test(test_tiny_prefix_and_gamma),
        cmocka_unit_test(test_tiny_half_dtypes),
        cmocka_unit_test(test_tiny_sentence_transformers),
        cmocka_unit_test(test_missing_files),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_bad_tensors),
        cmocka_unit_test(test_bad_sentence_transformers),
        cmocka_unit_test(test_synth_configs),
        cmocka_unit_test(test_synth_minilm_l3),
        cmocka_unit_test(test_synth_bge_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
