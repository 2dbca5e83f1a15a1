/* The CPU engine against a naive float64 reference forward, on tiny random models
 * written here, one per attention code path: head size 32 (8- and 4-query blocks),
 * 64, 128, and 24 (the plain-loop path); with mean, cls and max pooling. */
#include "test_util.h"

#include <math.h>

#include "engine/engine.h"
#include "model/model.h"
#include "model/safetensors.h"

enum { VOCAB = 50, MAXPOS = 80, INTER_MULT = 2, NLAYERS = 2 };

typedef struct {
    int d, heads;
    const char *pooling; /* "mean" | "cls" | "max" */
    bool normalize;
} tiny_cfg;

static uint64_t rng_state;
static float urand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

/* Tensor storage for one tiny model: names and data live as long as the test. */
typedef struct {
    ake_tensor t[8 + 16 * NLAYERS];
    char names[8 + 16 * NLAYERS][96];
    float *data[8 + 16 * NLAYERS];
    int n;
} tensors;

static float *add(tensors *ts, const char *name, int64_t rows, int64_t cols, float scale, float offset) {
    int i = ts->n++;
    snprintf(ts->names[i], sizeof ts->names[i], "%s", name);
    int64_t numel = rows * (cols ? cols : 1);
    ts->data[i] = malloc((size_t)numel * sizeof(float));
    for (int64_t k = 0; k < numel; k++) ts->data[i][k] = offset + scale * urand();
    ts->t[i] = (ake_tensor){.name = ts->names[i], .dtype = AKE_DT_F32, .ndim = cols ? 2 : 1,
                            .shape = {rows, cols}, .numel = numel, .data = ts->data[i],
                            .nbytes = (size_t)numel * sizeof(float)};
    return ts->data[i];
}

/* Writes the model folder and returns views of its weights (ts keeps the data). */
static void make_model(const char *dir, const tiny_cfg *c, tensors *ts) {
    const int d = c->d, inter = INTER_MULT * d;
    char buf[1024], name[96];
    snprintf(buf, sizeof buf,
             "{\"model_type\":\"bert\",\"vocab_size\":%d,\"hidden_size\":%d,\"num_hidden_layers\":%d,"
             "\"num_attention_heads\":%d,\"intermediate_size\":%d,\"max_position_embeddings\":%d,"
             "\"type_vocab_size\":2,\"layer_norm_eps\":1e-12,\"hidden_act\":\"gelu\"}",
             VOCAB, d, NLAYERS, c->heads, inter, MAXPOS);
    test_put_file(dir, "config.json", buf);
    snprintf(buf, sizeof buf,
             "[{\"idx\":0,\"name\":\"0\",\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
             "{\"idx\":1,\"name\":\"1\",\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"}%s]",
             c->normalize ? ",{\"idx\":2,\"name\":\"2\",\"path\":\"2_Normalize\","
                            "\"type\":\"sentence_transformers.models.Normalize\"}"
                          : "");
    test_put_file(dir, "modules.json", buf);
    snprintf(buf, sizeof buf, "%s/1_Pooling", dir);
    mkdir(buf, 0755);
    snprintf(buf, sizeof buf,
             "{\"word_embedding_dimension\":%d,\"pooling_mode_cls_token\":%s,\"pooling_mode_mean_tokens\":%s,"
             "\"pooling_mode_max_tokens\":%s}",
             d, strcmp(c->pooling, "cls") ? "false" : "true", strcmp(c->pooling, "mean") ? "false" : "true",
             strcmp(c->pooling, "max") ? "false" : "true");
    test_put_file(dir, "1_Pooling/config.json", buf);

    ts->n = 0;
    add(ts, "embeddings.word_embeddings.weight", VOCAB, d, 0.5f, 0);
    add(ts, "embeddings.position_embeddings.weight", MAXPOS, d, 0.5f, 0);
    add(ts, "embeddings.token_type_embeddings.weight", 2, d, 0.5f, 0);
    add(ts, "embeddings.LayerNorm.weight", d, 0, 0.1f, 1.0f);
    add(ts, "embeddings.LayerNorm.bias", d, 0, 0.1f, 0);
    static const char *const lin[][2] = {{"attention.self.query", "q"}, {"attention.self.key", "k"},
                                         {"attention.self.value", "v"}, {"attention.output.dense", "o"},
                                         {"intermediate.dense", "1"},   {"output.dense", "2"}};
    for (int l = 0; l < NLAYERS; l++) {
        for (int k = 0; k < 6; k++) {
            int out = k == 4 ? inter : d, in = k == 5 ? inter : d;
            snprintf(name, sizeof name, "encoder.layer.%d.%s.weight", l, lin[k][0]);
            add(ts, name, out, in, 1.0f / sqrtf((float)in), 0);
            snprintf(name, sizeof name, "encoder.layer.%d.%s.bias", l, lin[k][0]);
            add(ts, name, out, 0, 0.1f, 0);
        }
        for (int k = 0; k < 2; k++) {
            const char *ln = k ? "output.LayerNorm" : "attention.output.LayerNorm";
            snprintf(name, sizeof name, "encoder.layer.%d.%s.weight", l, ln);
            add(ts, name, d, 0, 0.1f, 1.0f);
            snprintf(name, sizeof name, "encoder.layer.%d.%s.bias", l, ln);
            add(ts, name, d, 0, 0.1f, 0);
        }
    }
    char err[256];
    snprintf(buf, sizeof buf, "%s/model.safetensors", dir);
    if (ake_safetensors_write(buf, ts->t, ts->n, err, sizeof err) != AKE_OK) fail_msg("%s", err);
}

/* ---- float64 reference: the textbook BERT forward, one sequence at a time ---- */

static const float *w_of(const tensors *ts, const char *name) {
    for (int i = 0; i < ts->n; i++)
        if (!strcmp(ts->names[i], name)) return ts->data[i];
    fail_msg("no tensor %s", name);
    return NULL;
}

static void ref_layernorm(double *x, const float *g, const float *b, int d) {
    double mean = 0, var = 0;
    for (int c = 0; c < d; c++) mean += x[c];
    mean /= d;
    for (int c = 0; c < d; c++) var += (x[c] - mean) * (x[c] - mean);
    var /= d;
    for (int c = 0; c < d; c++) x[c] = (x[c] - mean) / sqrt(var + 1e-12) * g[c] + b[c];
}

static void ref_linear(const double *x, const float *w, const float *b, int out, int in, double *y) {
    for (int o = 0; o < out; o++) {
        double s = b[o];
        for (int i = 0; i < in; i++) s += x[i] * w[(size_t)o * in + i];
        y[o] = s;
    }
}

static void ref_embed(const tensors *ts, const tiny_cfg *c, const int32_t *ids, int L, double *out) {
    const int d = c->d, H = c->heads, dh = d / H, inter = INTER_MULT * d;
    double *x = calloc((size_t)L * d, sizeof *x), *q = calloc((size_t)L * d, sizeof *q);
    double *k = calloc((size_t)L * d, sizeof *k), *v = calloc((size_t)L * d, sizeof *v);
    double *ctx = calloc((size_t)L * d, sizeof *ctx), *h = calloc((size_t)inter, sizeof *h);
    double *tmp = calloc((size_t)d, sizeof *tmp), *p = calloc((size_t)L, sizeof *p);
    const float *we = w_of(ts, "embeddings.word_embeddings.weight"), *pe = w_of(ts, "embeddings.position_embeddings.weight");
    const float *te = w_of(ts, "embeddings.token_type_embeddings.weight");
    for (int t = 0; t < L; t++) {
        for (int cc = 0; cc < d; cc++)
            x[t * d + cc] = (double)we[ids[t] * d + cc] + pe[t * d + cc] + te[cc];
        ref_layernorm(x + t * d, w_of(ts, "embeddings.LayerNorm.weight"), w_of(ts, "embeddings.LayerNorm.bias"), d);
    }
    char n1[96], n2[96];
#define W(l, s) (snprintf(n1, sizeof n1, "encoder.layer.%d.%s.weight", l, s), w_of(ts, n1))
#define B(l, s) (snprintf(n2, sizeof n2, "encoder.layer.%d.%s.bias", l, s), w_of(ts, n2))
    for (int l = 0; l < NLAYERS; l++) {
        for (int t = 0; t < L; t++) {
            ref_linear(x + t * d, W(l, "attention.self.query"), B(l, "attention.self.query"), d, d, q + t * d);
            ref_linear(x + t * d, W(l, "attention.self.key"), B(l, "attention.self.key"), d, d, k + t * d);
            ref_linear(x + t * d, W(l, "attention.self.value"), B(l, "attention.self.value"), d, d, v + t * d);
        }
        for (int hd = 0; hd < H; hd++)
            for (int i = 0; i < L; i++) {
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < L; j++) {
                    double s = 0;
                    for (int cc = 0; cc < dh; cc++) s += q[i * d + hd * dh + cc] * k[j * d + hd * dh + cc];
                    p[j] = s / sqrt((double)dh);
                    mx = fmax(mx, p[j]);
                }
                for (int j = 0; j < L; j++) sum += p[j] = exp(p[j] - mx);
                for (int cc = 0; cc < dh; cc++) {
                    double o = 0;
                    for (int j = 0; j < L; j++) o += p[j] / sum * v[j * d + hd * dh + cc];
                    ctx[i * d + hd * dh + cc] = o;
                }
            }
        for (int t = 0; t < L; t++) {
            ref_linear(ctx + t * d, W(l, "attention.output.dense"), B(l, "attention.output.dense"), d, d, tmp);
            for (int cc = 0; cc < d; cc++) x[t * d + cc] += tmp[cc];
            ref_layernorm(x + t * d, W(l, "attention.output.LayerNorm"), B(l, "attention.output.LayerNorm"), d);
            ref_linear(x + t * d, W(l, "intermediate.dense"), B(l, "intermediate.dense"), inter, d, h);
            for (int cc = 0; cc < inter; cc++) h[cc] = 0.5 * h[cc] * (1.0 + erf(h[cc] / sqrt(2.0)));
            ref_linear(h, W(l, "output.dense"), B(l, "output.dense"), d, inter, tmp);
            for (int cc = 0; cc < d; cc++) x[t * d + cc] += tmp[cc];
            ref_layernorm(x + t * d, W(l, "output.LayerNorm"), B(l, "output.LayerNorm"), d);
        }
    }
#undef W
#undef B
    for (int cc = 0; cc < d; cc++) {
        double acc = !strcmp(c->pooling, "max") ? -INFINITY : 0;
        for (int t = 0; t < L; t++) {
            if (!strcmp(c->pooling, "max")) acc = fmax(acc, x[t * d + cc]);
            else if (!strcmp(c->pooling, "mean")) acc += x[t * d + cc] / L;
        }
        out[cc] = !strcmp(c->pooling, "cls") ? x[cc] : acc;
    }
    if (c->normalize) {
        double ss = 0;
        for (int cc = 0; cc < d; cc++) ss += out[cc] * out[cc];
        for (int cc = 0; cc < d; cc++) out[cc] /= sqrt(ss);
    }
    free(x), free(q), free(k), free(v), free(ctx), free(h), free(tmp), free(p);
}

static void check_config(const tiny_cfg *c, uint64_t seed) {
    char *dir = test_tmp_dir(), err[512];
    rng_state = seed;
    tensors ts;
    make_model(dir, c, &ts);
    ake_model *m = NULL;
    ake_engine *e = NULL;
    if (ake_model_load(dir, &m, err, sizeof err) != AKE_OK) fail_msg("%s", err);
    ake_engine_opts eo = {.device = "cpu", .max_tokens = 4 * MAXPOS, .max_batch = 8, .threads = 2};
    if (ake_engine_create(m, &eo, &e, err, sizeof err) != AKE_OK) fail_msg("%s", err);
    /* lengths cover 8-query blocks, 4-query blocks, single rows and one full-length sequence */
    const int32_t lens[] = {1, 3, 4, 12, 13, 31, MAXPOS};
    const int n = (int)(sizeof lens / sizeof lens[0]);
    int32_t cu[8] = {0}, *ids = malloc(sizeof(int32_t) * 4 * MAXPOS);
    for (int i = 0; i < n; i++) {
        cu[i + 1] = cu[i] + lens[i];
        for (int t = cu[i]; t < cu[i + 1]; t++) ids[t] = (int32_t)((t * 7 + i * 13) % VOCAB);
    }
    float *out = malloc(sizeof(float) * (size_t)n * c->d);
    double *ref = malloc(sizeof(double) * c->d);
    assert_int_equal(ake_engine_embed(e, ids, cu, n, out, err, sizeof err), AKE_OK);
    for (int i = 0; i < n; i++) {
        ref_embed(&ts, c, ids + cu[i], lens[i], ref);
        for (int cc = 0; cc < c->d; cc++) {
            double diff = fabs(out[(size_t)i * c->d + cc] - ref[cc]);
            if (diff > 2e-5 + 2e-5 * fabs(ref[cc]))
                fail_msg("d=%d heads=%d %s: sequence %d (len %d) feature %d: engine %.7g, reference %.7g", c->d,
                         c->heads, c->pooling, i, lens[i], cc, out[(size_t)i * c->d + cc], ref[cc]);
        }
    }
    free(out), free(ref), free(ids);
    ake_engine_free(e);
    ake_model_free(m);
    for (int i = 0; i < ts.n; i++) free(ts.data[i]);
    test_rm_rf(dir);
    free(dir);
}

static void test_head32_mean_normalized(void **s) { (void)s; check_config(&(tiny_cfg){64, 2, "mean", true}, 1); }
static void test_head64_cls(void **s) { (void)s; check_config(&(tiny_cfg){128, 2, "cls", true}, 2); }
static void test_head128_max(void **s) { (void)s; check_config(&(tiny_cfg){128, 1, "max", false}, 3); }
static void test_head24_plain_loops(void **s) { (void)s; check_config(&(tiny_cfg){72, 3, "mean", false}, 4); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head32_mean_normalized),
        cmocka_unit_test(test_head64_cls),
        cmocka_unit_test(test_head128_max),
        cmocka_unit_test(test_head24_plain_loops),
    };
    return cmocka_run_group_tests_name("engine vs float64 reference", tests, NULL, NULL);
}
