/* CPU forward pass of a BERT encoder in FP32 over a packed (unpadded) batch.
 *
 * Per layer, with x [T, d] the hidden states of all T tokens of the batch:
 *   qkv = x Wqkv^T + bqkv                 one GEMM, Wqkv = [Wq; Wk; Wv]  [3d, d]
 *   ctx = softmax(q k^T / sqrt(dh)) v     per sequence and head, over that sequence only
 *   x   = LN(x + ctx Wo^T + bo)
 *   h   = gelu(x W1^T + b1)               exact erf GELU
 *   x   = LN(x + h W2^T + b2)
 * then pooling (mean / cls / max) per sequence and optional L2 normalization.
 * GEMMs go through oneDNN's sgemm (OpenMP threads); the rest is plain C loops
 * parallelized with OpenMP and written so that gcc vectorizes the inner loops. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <dnnl.h>

#include "base/half.h"
#include "engine/engine_impl.h"

/* FP32 weights of one layer. Pointers either alias the model's mmapped F32
 * tensors or point into the engine's owned `weights` arena. */
typedef struct {
    const float *wqkv, *bqkv; /* [3d, d], [3d] */
    const float *wo, *bo;     /* [d, d], [d] */
    const float *ln1_g, *ln1_b;
    const float *w1, *b1;     /* [inter, d], [inter] */
    const float *w2, *b2;     /* [d, inter], [d] */
    const float *ln2_g, *ln2_b;
} cpu_layer;

typedef struct {
    ake_engine base;
    int32_t threads;
    /* weights */
    float *arena;              /* owned: converted / concatenated weights */
    const float *word, *pos, *type, *emb_g, *emb_b; /* [vocab,d] [maxpos,d] [types,d] [d] [d] */
    cpu_layer *layer;          /* owned [layers] */
    /* activations, sized once for opts.max_tokens */
    float *x;                  /* [T, d] hidden states */
    float *qkv;                /* [T, 3d] */
    float *ctx;                /* [T, d] attention output before Wo */
    float *tmp;                /* [T, d] projection output */
    float *h;                  /* [T, inter] FFN activations */
    float *attn_scratch;       /* [threads, dh*maxpos + maxpos]: K^T of one head + one score row */
} cpu_engine;

/* Bytes of F32 needed to hold `t` converted (0 if it is F32 already and can be aliased). */
static size_t conv_floats(const ake_tensor *t) { return t->dtype == AKE_DT_F32 ? 0 : (size_t)t->numel; }

/* Returns t's data as F32: the mapping itself when F32, else a converted copy
 * written at *cursor (advanced). dtypes were validated by the model loader. */
static const float *as_f32(const ake_tensor *t, float **cursor) {
    if (t->dtype == AKE_DT_F32) return (const float *)t->data;
    float *dst = *cursor;
    const uint16_t *src = (const uint16_t *)t->data;
    for (int64_t i = 0; i < t->numel; i++)
        dst[i] = t->dtype == AKE_DT_F16 ? ake_f16_to_f32(src[i]) : ake_bf16_to_f32(src[i]);
    *cursor += t->numel;
    return dst;
}

/* Copies t (any float dtype) as F32 to dst. */
static void copy_f32(const ake_tensor *t, float *dst) {
    float *cursor = dst;
    const float *src = as_f32(t, &cursor);
    if (src != dst) memcpy(dst, src, (size_t)t->numel * sizeof(float));
}

static void cpu_free(ake_engine *base) {
    cpu_engine *e = (cpu_engine *)base;
    free(e->arena);
    free(e->layer);
    free(e->x);
    free(e->qkv);
    free(e->ctx);
    free(e->tmp);
    free(e->h);
    free(e->attn_scratch);
    free(e);
}

/* Y[M, N] = X[M, K] W[N, K]^T (row-major, W in HF Linear layout). */
static void gemm_xwt(const float *X, const float *W, float *Y, int32_t M, int32_t N, int32_t K) {
    dnnl_status_t s = dnnl_sgemm('N', 'T', M, N, K, 1.0f, X, K, W, K, 0.0f, Y, N);
    AKE_ASSERT(s == dnnl_success);
}

/* x[t] = LN(x[t] + y[t] + bias) over d features, for T rows. */
static void add_bias_residual_layernorm(float *x, const float *y, const float *bias, const float *g, const float *b,
                                        int32_t T, int32_t d, float eps) {
#pragma omp parallel for schedule(static)
    for (int32_t t = 0; t < T; t++) {
        float *xr = x + (size_t)t * d;
        const float *yr = y + (size_t)t * d;
        float sum = 0.0f;
        for (int32_t c = 0; c < d; c++) {
            xr[c] += yr[c] + bias[c];
            sum += xr[c];
        }
        float mean = sum / (float)d, var = 0.0f;
        for (int32_t c = 0; c < d; c++) {
            float v = xr[c] - mean;
            var += v * v;
        }
        float rstd = 1.0f / sqrtf(var / (float)d + eps);
        for (int32_t c = 0; c < d; c++) xr[c] = (xr[c] - mean) * rstd * g[c] + b[c];
    }
}

static void embed_tokens(const cpu_engine *e, const int32_t *ids, const int32_t *cu_seqlens, int32_t n) {
    const ake_model_config *cfg = &e->base.model->cfg;
    const int32_t d = cfg->hidden;
    const float eps = cfg->layer_norm_eps;
#pragma omp parallel for schedule(static)
    for (int32_t s = 0; s < n; s++) {
        for (int32_t t = cu_seqlens[s]; t < cu_seqlens[s + 1]; t++) {
            const float *w = e->word + (size_t)ids[t] * d;
            const float *p = e->pos + (size_t)(t - cu_seqlens[s]) * d;
            const float *ty = e->type; /* token type 0: single-sequence inputs */
            float *xr = e->x + (size_t)t * d;
            float sum = 0.0f;
            for (int32_t c = 0; c < d; c++) {
                xr[c] = w[c] + p[c] + ty[c];
                sum += xr[c];
            }
            float mean = sum / (float)d, var = 0.0f;
            for (int32_t c = 0; c < d; c++) {
                float v = xr[c] - mean;
                var += v * v;
            }
            float rstd = 1.0f / sqrtf(var / (float)d + eps);
            for (int32_t c = 0; c < d; c++) xr[c] = (xr[c] - mean) * rstd * e->emb_g[c] + e->emb_b[c];
        }
    }
}

/* ctx[t, head] = softmax_j(q_t . k_j * scale) v_j over the tokens j of t's sequence.
 * One task per (sequence, head); each transposes its K slice into scratch so the
 * score loop runs over contiguous j. */
static void attention(cpu_engine *e, const int32_t *cu_seqlens, int32_t n) {
    const ake_model_config *cfg = &e->base.model->cfg;
    const int32_t d = cfg->hidden, H = cfg->heads, dh = d / H, maxpos = cfg->max_position;
    const float scale = 1.0f / sqrtf((float)dh);
    const size_t stride = (size_t)3 * d;
#pragma omp parallel for schedule(dynamic, 1)
    for (int32_t task = 0; task < n * H; task++) {
        const int32_t s = task / H, hd = task % H;
        const int32_t start = cu_seqlens[s], L = cu_seqlens[s + 1] - start;
        float *kt = e->attn_scratch + (size_t)omp_get_thread_num() * ((size_t)dh * maxpos + maxpos); /* [dh, L] */
        float *p = kt + (size_t)dh * maxpos;                                                          /* [L] */
        const float *q0 = e->qkv + (size_t)start * stride + (size_t)hd * dh;
        const float *k0 = q0 + d, *v0 = q0 + 2 * d;
        for (int32_t j = 0; j < L; j++)
            for (int32_t c = 0; c < dh; c++) kt[(size_t)c * L + j] = k0[(size_t)j * stride + c];
        for (int32_t i = 0; i < L; i++) {
            const float *q = q0 + (size_t)i * stride;
            for (int32_t j = 0; j < L; j++) p[j] = 0.0f;
            for (int32_t c = 0; c < dh; c++) {
                const float qc = q[c] * scale;
                const float *kr = kt + (size_t)c * L;
                for (int32_t j = 0; j < L; j++) p[j] += qc * kr[j];
            }
            float mx = p[0];
            for (int32_t j = 1; j < L; j++) mx = p[j] > mx ? p[j] : mx;
            float sum = 0.0f;
            for (int32_t j = 0; j < L; j++) {
                p[j] = expf(p[j] - mx);
                sum += p[j];
            }
            const float inv = 1.0f / sum;
            float *o = e->ctx + (size_t)(start + i) * d + (size_t)hd * dh;
            for (int32_t c = 0; c < dh; c++) o[c] = 0.0f;
            for (int32_t j = 0; j < L; j++) {
                const float pj = p[j] * inv;
                const float *v = v0 + (size_t)j * stride;
                for (int32_t c = 0; c < dh; c++) o[c] += pj * v[c];
            }
        }
    }
}

/* h = gelu(h + b1), exact (erf) GELU as in HF "gelu". */
static void bias_gelu(float *h, const float *bias, int32_t T, int32_t inter) {
#pragma omp parallel for schedule(static)
    for (int32_t t = 0; t < T; t++) {
        float *r = h + (size_t)t * inter;
        for (int32_t c = 0; c < inter; c++) {
            float v = r[c] + bias[c];
            r[c] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
        }
    }
}

static void bias_add(float *y, const float *bias, int32_t T, int32_t n) {
#pragma omp parallel for schedule(static)
    for (int32_t t = 0; t < T; t++)
        for (int32_t c = 0; c < n; c++) y[(size_t)t * n + c] += bias[c];
}

static void pool_normalize(const cpu_engine *e, const int32_t *cu_seqlens, int32_t n, float *out) {
    const ake_model_config *cfg = &e->base.model->cfg;
    const int32_t d = cfg->hidden;
#pragma omp parallel for schedule(static)
    for (int32_t s = 0; s < n; s++) {
        const int32_t start = cu_seqlens[s], L = cu_seqlens[s + 1] - start;
        float *o = out + (size_t)s * d;
        const float *x0 = e->x + (size_t)start * d;
        switch (cfg->pooling) {
        case AKE_POOL_CLS: memcpy(o, x0, (size_t)d * sizeof(float)); break;
        case AKE_POOL_MAX:
            memcpy(o, x0, (size_t)d * sizeof(float));
            for (int32_t t = 1; t < L; t++)
                for (int32_t c = 0; c < d; c++) o[c] = fmaxf(o[c], x0[(size_t)t * d + c]);
            break;
        case AKE_POOL_MEAN:
            for (int32_t c = 0; c < d; c++) o[c] = 0.0f;
            for (int32_t t = 0; t < L; t++)
                for (int32_t c = 0; c < d; c++) o[c] += x0[(size_t)t * d + c];
            for (int32_t c = 0; c < d; c++) o[c] /= (float)L;
            break;
        }
        if (cfg->normalize) {
            float ss = 0.0f;
            for (int32_t c = 0; c < d; c++) ss += o[c] * o[c];
            const float inv = 1.0f / fmaxf(sqrtf(ss), 1e-12f); /* as torch.nn.functional.normalize */
            for (int32_t c = 0; c < d; c++) o[c] *= inv;
        }
    }
}

static ake_status cpu_embed(ake_engine *base, const int32_t *ids, const int32_t *cu_seqlens, int32_t n, float *out,
                            char *err, size_t errlen) {
    (void)err;
    (void)errlen;
    cpu_engine *e = (cpu_engine *)base;
    const ake_model_config *cfg = &base->model->cfg;
    const int32_t T = cu_seqlens[n], d = cfg->hidden, inter = cfg->intermediate;
    omp_set_num_threads(e->threads); /* per calling thread: an engine may be driven from any thread */
    embed_tokens(e, ids, cu_seqlens, n);
    for (int32_t l = 0; l < cfg->layers; l++) {
        const cpu_layer *w = &e->layer[l];
        gemm_xwt(e->x, w->wqkv, e->qkv, T, 3 * d, d);
        bias_add(e->qkv, w->bqkv, T, 3 * d);
        attention(e, cu_seqlens, n);
        gemm_xwt(e->ctx, w->wo, e->tmp, T, d, d);
        add_bias_residual_layernorm(e->x, e->tmp, w->bo, w->ln1_g, w->ln1_b, T, d, cfg->layer_norm_eps);
        gemm_xwt(e->x, w->w1, e->h, T, inter, d);
        bias_gelu(e->h, w->b1, T, inter);
        gemm_xwt(e->h, w->w2, e->tmp, T, d, inter);
        add_bias_residual_layernorm(e->x, e->tmp, w->b2, w->ln2_g, w->ln2_b, T, d, cfg->layer_norm_eps);
    }
    pool_normalize(e, cu_seqlens, n, out);
    return AKE_OK;
}

static const ake_engine_ops cpu_ops = {.name = "cpu", .free = cpu_free, .embed = cpu_embed};

ake_status ake_cpu_engine_create(const ake_model *m, const ake_engine_opts *opts, ake_engine **out, char *err,
                                 size_t errlen) {
    const ake_model_config *cfg = &m->cfg;
    const int32_t d = cfg->hidden, inter = cfg->intermediate, L = cfg->layers;
    const int32_t dh = d / cfg->heads, maxpos = cfg->max_position;
    cpu_engine *e = calloc(1, sizeof *e);
    if (!e) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory creating the CPU engine");
    e->base.ops = &cpu_ops;
    e->base.model = m;
    e->base.opts = *opts;
    /* attn_scratch holds one slice per processor, so more threads than processors are not used. */
    e->threads = opts->threads > 0 && opts->threads < omp_get_num_procs() ? opts->threads : omp_get_num_procs();

    /* Arena: fused QKV of every layer plus any non-F32 tensor converted. */
    size_t floats = conv_floats(m->word_emb) + conv_floats(m->pos_emb) + conv_floats(m->type_emb) +
                    conv_floats(m->emb_ln_g) + conv_floats(m->emb_ln_b);
    for (int32_t l = 0; l < L; l++) {
        const ake_layer_weights *lw = &m->layer[l];
        floats += (size_t)3 * d * d + (size_t)3 * d;
        const ake_tensor *rest[] = {lw->o_w,  lw->o_b,  lw->ln1_g, lw->ln1_b, lw->ff1_w, lw->ff1_b,
                                    lw->ff2_w, lw->ff2_b, lw->ln2_g, lw->ln2_b};
        for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++) floats += conv_floats(rest[i]);
    }
    const size_t T = (size_t)opts->max_tokens;
    e->arena = malloc(floats * sizeof(float));
    e->layer = calloc((size_t)L, sizeof *e->layer);
    e->x = malloc(T * d * sizeof(float));
    e->qkv = malloc(T * 3 * d * sizeof(float));
    e->ctx = malloc(T * d * sizeof(float));
    e->tmp = malloc(T * d * sizeof(float));
    e->h = malloc(T * inter * sizeof(float));
    e->attn_scratch = malloc((size_t)omp_get_num_procs() * ((size_t)dh * maxpos + maxpos) * sizeof(float));
    if (!e->arena || !e->layer || !e->x || !e->qkv || !e->ctx || !e->tmp || !e->h || !e->attn_scratch) {
        cpu_free(&e->base);
        return ake_errf(err, errlen, AKE_ENOMEM, "out of memory sizing the CPU engine for %d tokens",
                        opts->max_tokens);
    }

    float *cur = e->arena;
    e->word = as_f32(m->word_emb, &cur);
    e->pos = as_f32(m->pos_emb, &cur);
    e->type = as_f32(m->type_emb, &cur);
    e->emb_g = as_f32(m->emb_ln_g, &cur);
    e->emb_b = as_f32(m->emb_ln_b, &cur);
    for (int32_t l = 0; l < L; l++) {
        const ake_layer_weights *lw = &m->layer[l];
        cpu_layer *w = &e->layer[l];
        float *wqkv = cur, *bqkv = cur + (size_t)3 * d * d;
        cur += (size_t)3 * d * d + (size_t)3 * d;
        copy_f32(lw->q_w, wqkv);
        copy_f32(lw->k_w, wqkv + (size_t)d * d);
        copy_f32(lw->v_w, wqkv + (size_t)2 * d * d);
        copy_f32(lw->q_b, bqkv);
        copy_f32(lw->k_b, bqkv + d);
        copy_f32(lw->v_b, bqkv + 2 * d);
        w->wqkv = wqkv;
        w->bqkv = bqkv;
        w->wo = as_f32(lw->o_w, &cur);
        w->bo = as_f32(lw->o_b, &cur);
        w->ln1_g = as_f32(lw->ln1_g, &cur);
        w->ln1_b = as_f32(lw->ln1_b, &cur);
        w->w1 = as_f32(lw->ff1_w, &cur);
        w->b1 = as_f32(lw->ff1_b, &cur);
        w->w2 = as_f32(lw->ff2_w, &cur);
        w->b2 = as_f32(lw->ff2_b, &cur);
        w->ln2_g = as_f32(lw->ln2_g, &cur);
        w->ln2_b = as_f32(lw->ln2_b, &cur);
    }
    AKE_ASSERT((size_t)(cur - e->arena) == floats);
    *out = &e->base;
    return AKE_OK;
}
