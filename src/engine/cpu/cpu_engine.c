/* CPU forward pass of a BERT encoder in FP32 over a packed (unpadded) batch.
 *
 * Per layer, with x [T, d] the hidden states of all T tokens of the batch:
 *   qkv = x Wqkv^T + bqkv                 one GEMM, Wqkv = [Wq; Wk; Wv]  [3d, d]
 *   ctx = softmax(q k^T / sqrt(dh)) v     per sequence and head, over that sequence only
 *   x   = LN(x + ctx Wo^T + bo)
 *   h   = gelu(x W1^T + b1)               exact erf GELU
 *   x   = LN(x + h W2^T + b2)
 * then pooling (mean / cls / max) per sequence and optional L2 normalization.
 * GEMMs are oneDNN matmul primitives created once per weight with a run-time row
 * count, weights reordered once into oneDNN's blocked layout, and bias, GELU and
 * the residual add fused as post-ops. Attention and LayerNorm are plain C with
 * GCC vector extensions (16 floats), parallelized with OpenMP.
 *
 * Per call, the only allocations are oneDNN's small memory handles (a few per
 * GEMM: they carry the call's row count); every buffer is sized at creation. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <dnnl.h>

#include "base/half.h"
#include "engine/engine_impl.h"

/* One linear layer Y[T, N] = X[T, K] W^T + b (+ post-op) as a oneDNN matmul with
 * T given at execution. */
typedef struct {
    int32_t n, k;
    dnnl_primitive_t prim;    /* owned */
    dnnl_memory_t weights;    /* owned: W reordered into the primitive's layout */
    dnnl_memory_t bias;       /* owned: wraps the F32 bias [1, N] */
} cpu_linear;

typedef enum { POST_NONE, POST_GELU, POST_ADD_TO_DST } cpu_post_op;

/* One encoder layer: its four matmuls (weights owned by oneDNN) and its LayerNorm
 * vectors, which alias the model's mmapped F32 tensors or point into the arena. */
typedef struct {
    cpu_linear qkv;           /* [3d, d]: rows of Wq, Wk, Wv stacked; bias [3d] */
    cpu_linear out;           /* [d, d], adds into x (residual) */
    cpu_linear ffn1;          /* [inter, d], exact GELU fused */
    cpu_linear ffn2;          /* [d, inter], adds into x (residual) */
    const float *ln1_g, *ln1_b; /* [d] */
    const float *ln2_g, *ln2_b; /* [d] */
} cpu_layer;

typedef struct {
    ake_engine base;
    int32_t threads;
    dnnl_engine_t dnnl;        /* owned */
    dnnl_stream_t stream;      /* owned */
    /* weights outside the matmuls */
    float *arena;              /* owned: fused QKV biases and any non-F32 vector or embedding, as F32 */
    const float *word, *pos, *type, *emb_g, *emb_b; /* [vocab,d] [maxpos,d] [types,d] [d] [d] */
    cpu_layer *layer;          /* owned [layers] */
    /* activations, sized once for opts.max_tokens */
    float *x;                  /* [T, d] hidden states */
    float *qkv;                /* [T, 3d] */
    float *ctx;                /* [T, d] attention output before Wo */
    float *h;                  /* [T, inter] FFN activations */
    float *attn_scratch;       /* [procs, attn_slice]: K^T of one head [dh, maxpos] + scores [ATTN_QB, maxpos] */
    size_t attn_slice;         /* floats per processor in attn_scratch */
    int32_t max_pos_padded;    /* max_position rounded up to 16 */
} cpu_engine;

/* Floats needed to hold `t` converted to F32 (0 if it is F32 already and can be aliased). */
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

static void linear_free(cpu_linear *l) {
    if (l->prim) dnnl_primitive_destroy(l->prim);
    if (l->weights) dnnl_memory_destroy(l->weights);
    if (l->bias) dnnl_memory_destroy(l->bias);
}

static void cpu_free(ake_engine *base) {
    cpu_engine *e = (cpu_engine *)base;
    for (int32_t l = 0; e->layer && l < base->model->cfg.layers; l++) {
        linear_free(&e->layer[l].qkv);
        linear_free(&e->layer[l].out);
        linear_free(&e->layer[l].ffn1);
        linear_free(&e->layer[l].ffn2);
    }
    if (e->stream) dnnl_stream_destroy(e->stream);
    if (e->dnnl) dnnl_engine_destroy(e->dnnl);
    free(e->arena);
    free(e->layer);
    free(e->x);
    free(e->qkv);
    free(e->ctx);
    free(e->h);
    free(e->attn_scratch);
    free(e);
}

#define DNNL_TRY(call)                                                                                \
    do {                                                                                              \
        if ((call) != dnnl_success) goto fail;                                                       \
    } while (0)

/* Builds l for W [n, k] and bias [n] (both F32, row-major, W in HF Linear layout). */
static ake_status linear_init(cpu_engine *e, cpu_linear *l, const float *w, const float *b, int32_t n, int32_t k,
                              cpu_post_op post) {
    dnnl_memory_desc_t src_md, w_any_md, w_md, b_md, dst_md;
    dnnl_dims_t src_dims = {DNNL_RUNTIME_DIM_VAL, k}, w_dims = {k, n}, b_dims = {1, n};
    dnnl_dims_t dst_dims = {DNNL_RUNTIME_DIM_VAL, n};
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    dnnl_primitive_desc_t pd = NULL, reorder_pd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t w_plain = NULL;
    l->n = n;
    l->k = k;
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&src_md, 2, src_dims, dnnl_f32, dnnl_ab));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_any_md, 2, w_dims, dnnl_f32, dnnl_format_tag_any));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_md, 2, w_dims, dnnl_f32, dnnl_ba)); /* [n, k] row-major is k x n "ba" */
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&b_md, 2, b_dims, dnnl_f32, dnnl_ab));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&dst_md, 2, dst_dims, dnnl_f32, dnnl_ab));
    DNNL_TRY(dnnl_matmul_desc_init(&desc, &src_md, &w_any_md, &b_md, &dst_md));
    DNNL_TRY(dnnl_primitive_attr_create(&attr));
    DNNL_TRY(dnnl_post_ops_create(&ops));
    if (post == POST_GELU) DNNL_TRY(dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_gelu_erf, 0.0f, 0.0f));
    if (post == POST_ADD_TO_DST) DNNL_TRY(dnnl_post_ops_append_sum(ops, 1.0f));
    DNNL_TRY(dnnl_primitive_attr_set_post_ops(attr, ops));
    DNNL_TRY(dnnl_primitive_desc_create(&pd, &desc, attr, e->dnnl, NULL));
    DNNL_TRY(dnnl_primitive_create(&l->prim, pd));
    const dnnl_memory_desc_t *w_packed_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    DNNL_TRY(dnnl_memory_create(&l->weights, w_packed_md, e->dnnl, DNNL_MEMORY_ALLOCATE));
    DNNL_TRY(dnnl_memory_create(&w_plain, &w_md, e->dnnl, (void *)w));
    DNNL_TRY(dnnl_memory_create(&l->bias, &b_md, e->dnnl, (void *)b));
    DNNL_TRY(dnnl_reorder_primitive_desc_create(&reorder_pd, &w_md, e->dnnl, w_packed_md, e->dnnl, NULL));
    DNNL_TRY(dnnl_primitive_create(&reorder, reorder_pd));
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, w_plain}, {DNNL_ARG_TO, l->weights}};
    DNNL_TRY(dnnl_primitive_execute(reorder, e->stream, 2, args));
    DNNL_TRY(dnnl_stream_wait(e->stream));
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(reorder_pd);
    dnnl_memory_destroy(w_plain);
    dnnl_primitive_desc_destroy(pd);
    dnnl_post_ops_destroy(ops);
    dnnl_primitive_attr_destroy(attr);
    return AKE_OK;
fail:
    if (reorder) dnnl_primitive_destroy(reorder);
    if (reorder_pd) dnnl_primitive_desc_destroy(reorder_pd);
    if (w_plain) dnnl_memory_destroy(w_plain);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (ops) dnnl_post_ops_destroy(ops);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return AKE_EUNSUPPORTED;
}

/* Y[T, n] = X[T, k] W^T + b, then the layer's post-op (GELU, or Y += previous Y). */
static void linear_run(cpu_engine *e, const cpu_linear *l, const float *X, float *Y, int32_t T) {
    dnnl_memory_desc_t src_md, dst_md;
    dnnl_dims_t src_dims = {T, l->k}, dst_dims = {T, l->n};
    dnnl_memory_t src, dst;
    AKE_ASSERT(dnnl_memory_desc_init_by_tag(&src_md, 2, src_dims, dnnl_f32, dnnl_ab) == dnnl_success);
    AKE_ASSERT(dnnl_memory_desc_init_by_tag(&dst_md, 2, dst_dims, dnnl_f32, dnnl_ab) == dnnl_success);
    AKE_ASSERT(dnnl_memory_create(&src, &src_md, e->dnnl, (void *)X) == dnnl_success);
    AKE_ASSERT(dnnl_memory_create(&dst, &dst_md, e->dnnl, Y) == dnnl_success);
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, l->weights}, {DNNL_ARG_BIAS, l->bias}, {DNNL_ARG_DST, dst}};
    AKE_ASSERT(dnnl_primitive_execute(l->prim, e->stream, 4, args) == dnnl_success);
    AKE_ASSERT(dnnl_stream_wait(e->stream) == dnnl_success);
    dnnl_memory_destroy(src);
    dnnl_memory_destroy(dst);
}

/* xr = LN(xr) over d features, in place. The simd reductions let the compiler
 * vectorize the sums (reassociating them), which plain C would forbid. */
static inline void layernorm_row(float *xr, const float *g, const float *b, int32_t d, float eps) {
    float sum = 0.0f, var = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int32_t c = 0; c < d; c++) sum += xr[c];
    const float mean = sum / (float)d;
#pragma omp simd reduction(+ : var)
    for (int32_t c = 0; c < d; c++) var += (xr[c] - mean) * (xr[c] - mean);
    const float rstd = 1.0f / sqrtf(var / (float)d + eps);
#pragma omp simd
    for (int32_t c = 0; c < d; c++) xr[c] = (xr[c] - mean) * rstd * g[c] + b[c];
}

/* x[t] = LN(x[t]) for T rows of d features. */
static void layernorm_rows(float *x, const float *g, const float *b, int32_t T, int32_t d, float eps) {
#pragma omp parallel for schedule(static)
    for (int32_t t = 0; t < T; t++) layernorm_row(x + (size_t)t * d, g, b, d, eps);
}

static void embed_tokens(const cpu_engine *e, const int32_t *ids, const int32_t *cu_seqlens, int32_t n) {
    const ake_model_config *cfg = &e->base.model->cfg;
    const int32_t d = cfg->hidden;
#pragma omp parallel for schedule(static)
    for (int32_t s = 0; s < n; s++) {
        for (int32_t t = cu_seqlens[s]; t < cu_seqlens[s + 1]; t++) {
            const float *w = e->word + (size_t)ids[t] * d;
            const float *p = e->pos + (size_t)(t - cu_seqlens[s]) * d;
            const float *ty = e->type; /* token type 0: single-sequence inputs */
            float *xr = e->x + (size_t)t * d;
            for (int32_t c = 0; c < d; c++) xr[c] = w[c] + p[c] + ty[c];
            layernorm_row(xr, e->emb_g, e->emb_b, d, cfg->layer_norm_eps);
        }
    }
}

/* 16 floats: one AVX-512 register, two AVX2 ones; gcc lowers it to what -march has. */
typedef float v16 __attribute__((vector_size(64)));
#define V16_LANES 16
#define ATTN_QB 8 /* most queries per attention block (head size 32) */

static inline v16 load16(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void store16(float *p, v16 v) { memcpy(p, &v, sizeof v); }

/* e^x for x <= 0 (softmax arguments), relative error < 2e-7: x = n ln2 + r with
 * |r| <= ln2/2, e^r by its degree-6 Taylor polynomial, 2^n built in the exponent bits.
 * Written as branch-free lane arithmetic so that it vectorizes. */
typedef int32_t i16v __attribute__((vector_size(64)));

static inline v16 exp16_nonpos(v16 x) {
    const v16 lo = (v16){0} - 87.0f;
    i16v below = x < lo; /* lanes of -1 where x < lo: e^x there is below 2^-125, treated as e^-87 */
    i16v xi, loi;
    memcpy(&xi, &x, sizeof x);
    memcpy(&loi, &lo, sizeof lo);
    xi = (xi & ~below) | (loi & below);
    memcpy(&x, &xi, sizeof x);
    v16 n = x * 1.44269504088896341f + 12582912.0f; /* round to nearest via the 1.5*2^23 trick */
    n = n - 12582912.0f;
    v16 r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;                     /* ln2 = 0.693359375 - 2.12194440e-4 */
    v16 p = (v16){0} + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    i16v bits = (__builtin_convertvector(n, i16v) + 127) << 23;
    v16 scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* Largest of p[0 .. L-1]; p has Lp >= L floats, Lp a multiple of 16. Lanes past L
 * are overwritten with p[0] so that whole vectors can be compared. */
static inline float max_row(float *p, int32_t L, int32_t Lp) {
    for (int32_t j = L; j < Lp; j++) p[j] = p[0];
    v16 m = load16(p);
    for (int32_t jb = V16_LANES; jb < Lp; jb += V16_LANES) {
        v16 x = load16(p + jb);
        i16v gt = x > m, xi, mi;
        memcpy(&xi, &x, sizeof x);
        memcpy(&mi, &m, sizeof m);
        mi = (xi & gt) | (mi & ~gt);
        memcpy(&m, &mi, sizeof m);
    }
    float mx = m[0];
    for (int k = 1; k < V16_LANES; k++) mx = m[k] > mx ? m[k] : mx;
    return mx;
}

/* p[r, jb .. jb+16*NJ) = scale * q[r] . K[jb ..] for the QB query rows q[r]. */
static inline __attribute__((always_inline)) void score_chunks(const float *const *q, const float *kt, int32_t Lp,
                                                               int32_t jb, int32_t dh, float scale, float *p,
                                                               const int QB, const int NJ) {
    v16 acc[QB][NJ];
    for (int r = 0; r < QB; r++)
        for (int u = 0; u < NJ; u++) acc[r][u] = (v16){0};
    for (int32_t c = 0; c < dh; c++) {
        for (int u = 0; u < NJ; u++) {
            const v16 k = load16(kt + (size_t)c * Lp + jb + u * V16_LANES);
            for (int r = 0; r < QB; r++) acc[r][u] += q[r][c] * k;
        }
    }
    for (int r = 0; r < QB; r++)
        for (int u = 0; u < NJ; u++) store16(p + (size_t)r * Lp + jb + u * V16_LANES, acc[r][u] * scale);
}

/* Rows i0 .. i0+QB-1 of one (sequence, head) of attention, with NC = dh/16 16-float
 * chunks per head row. Blocking QB queries lets each K^T and V load feed QB FMAs;
 * QB and NC are compile-time constants at every call, so the accumulators stay in
 * registers.
 *   q0, v0: the head's first Q/V element of the sequence's first token, row stride `stride`
 *   kt [dh, Lp]: K transposed, Lp = L rounded up to 16, zero padded
 *   p  [QB, Lp]: scratch for the rows' scores / probabilities
 *   o0: the head's first output element, row stride d */
static inline __attribute__((always_inline)) void attend_rows(const float *q0, const float *v0, size_t stride,
                                                              float *o0, size_t d, int32_t L, int32_t i0,
                                                              float scale, const float *kt, float *p, const int QB,
                                                              const int NC) {
    const int32_t dh = NC * V16_LANES, Lp = (L + V16_LANES - 1) / V16_LANES * V16_LANES;
    const float *q[QB];
    for (int r = 0; r < QB; r++) q[r] = q0 + (size_t)(i0 + r) * stride;
    int32_t jb = 0;
    for (; jb + 2 * V16_LANES <= Lp; jb += 2 * V16_LANES) /* two key chunks: 2*QB independent FMA chains */
        score_chunks(q, kt, Lp, jb, dh, scale, p, QB, 2);
    if (jb < Lp) score_chunks(q, kt, Lp, jb, dh, scale, p, QB, 1);
    float inv[QB];
    for (int r = 0; r < QB; r++) {
        float *pr = p + (size_t)r * Lp;
        float mx = max_row(pr, L, Lp);
        v16 vsum = {0};
        for (int32_t jb = 0; jb < Lp; jb += V16_LANES) {
            v16 e = exp16_nonpos(load16(pr + jb) - mx);
            store16(pr + jb, e);
            vsum += e;
        }
        float sum = 0.0f;
        for (int32_t j = L; j < Lp; j++) sum -= pr[j]; /* padding lanes are not part of the row */
        for (int k = 0; k < V16_LANES; k++) sum += vsum[k];
        inv[r] = 1.0f / sum;
    }
    v16 acc[QB][NC];
    for (int r = 0; r < QB; r++)
        for (int k = 0; k < NC; k++) acc[r][k] = (v16){0};
    for (int32_t j = 0; j < L; j++) {
        const float *v = v0 + (size_t)j * stride;
        for (int k = 0; k < NC; k++) {
            const v16 vk = load16(v + k * V16_LANES);
            for (int r = 0; r < QB; r++) acc[r][k] += p[(size_t)r * Lp + j] * vk;
        }
    }
    for (int r = 0; r < QB; r++)
        for (int k = 0; k < NC; k++) store16(o0 + (size_t)(i0 + r) * d + k * V16_LANES, acc[r][k] * inv[r]);
}

/* One (sequence, head): transposes K into kt, then attends QB queries at a time. */
static inline __attribute__((always_inline)) void attend_head(const float *q0, const float *k0, const float *v0,
                                                              size_t stride, float *o0, size_t d, int32_t L,
                                                              float scale, float *kt, float *p, const int NC) {
    const int32_t dh = NC * V16_LANES, Lp = (L + V16_LANES - 1) / V16_LANES * V16_LANES;
    for (int32_t c = 0; c < dh; c++) {
        for (int32_t j = 0; j < L; j++) kt[(size_t)c * Lp + j] = k0[(size_t)j * stride + c];
        for (int32_t j = L; j < Lp; j++) kt[(size_t)c * Lp + j] = 0.0f;
    }
    /* Blocks of 8 queries (4 for dh 64) keep QB*NC output accumulators within the 32
     * vector registers while halving the passes over K^T and V; dh 128 goes one by one. */
    int32_t i = 0;
    if (NC <= 2)
        for (; i + ATTN_QB <= L; i += ATTN_QB) attend_rows(q0, v0, stride, o0, d, L, i, scale, kt, p, ATTN_QB, NC);
    if (NC <= 4)
        for (; i + 4 <= L; i += 4) attend_rows(q0, v0, stride, o0, d, L, i, scale, kt, p, 4, NC);
    for (; i < L; i++) attend_rows(q0, v0, stride, o0, d, L, i, scale, kt, p, 1, NC);
}

/* The same function for any head size, plain loops: the path for dh not a multiple of 16. */
static void attend_head_any(const float *q0, const float *k0, const float *v0, size_t stride, float *o0, size_t d,
                            int32_t L, int32_t dh, float scale, float *p) {
    for (int32_t i = 0; i < L; i++) {
        const float *q = q0 + (size_t)i * stride;
        float mx = -INFINITY;
        for (int32_t j = 0; j < L; j++) {
            float s = 0.0f;
            for (int32_t c = 0; c < dh; c++) s += q[c] * k0[(size_t)j * stride + c];
            p[j] = s * scale;
            mx = p[j] > mx ? p[j] : mx;
        }
        float sum = 0.0f;
        for (int32_t j = 0; j < L; j++) sum += p[j] = expf(p[j] - mx);
        float *o = o0 + (size_t)i * d;
        for (int32_t c = 0; c < dh; c++) o[c] = 0.0f;
        for (int32_t j = 0; j < L; j++)
            for (int32_t c = 0; c < dh; c++) o[c] += p[j] / sum * v0[(size_t)j * stride + c];
    }
}

/* ctx[t, head] = softmax_j(q_t . k_j / sqrt(dh)) v_j over the tokens j of t's sequence.
 * One task per (sequence, head). */
static void attention(cpu_engine *e, const int32_t *cu_seqlens, int32_t n) {
    const ake_model_config *cfg = &e->base.model->cfg;
    const int32_t d = cfg->hidden, H = cfg->heads, dh = d / H;
    const float scale = 1.0f / sqrtf((float)dh);
    const size_t stride = (size_t)3 * d;
#pragma omp parallel for schedule(dynamic, 1)
    for (int32_t task = 0; task < n * H; task++) {
        const int32_t s = task / H, hd = task % H;
        const int32_t start = cu_seqlens[s], L = cu_seqlens[s + 1] - start;
        float *kt = e->attn_scratch + (size_t)omp_get_thread_num() * e->attn_slice;
        float *p = kt + (size_t)dh * e->max_pos_padded;
        const float *q0 = e->qkv + (size_t)start * stride + (size_t)hd * dh;
        float *o0 = e->ctx + (size_t)start * d + (size_t)hd * dh;
        switch (dh) {
        case 32: attend_head(q0, q0 + d, q0 + 2 * d, stride, o0, (size_t)d, L, scale, kt, p, 2); break;
        case 64: attend_head(q0, q0 + d, q0 + 2 * d, stride, o0, (size_t)d, L, scale, kt, p, 4); break;
        case 128: attend_head(q0, q0 + d, q0 + 2 * d, stride, o0, (size_t)d, L, scale, kt, p, 8); break;
        default: attend_head_any(q0, q0 + d, q0 + 2 * d, stride, o0, (size_t)d, L, dh, scale, p); break;
        }
    }
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
    const int32_t T = cu_seqlens[n], d = cfg->hidden;
    omp_set_num_threads(e->threads); /* per calling thread: an engine may be driven from any thread */
    embed_tokens(e, ids, cu_seqlens, n);
    for (int32_t l = 0; l < cfg->layers; l++) {
        const cpu_layer *w = &e->layer[l];
        linear_run(e, &w->qkv, e->x, e->qkv, T);
        attention(e, cu_seqlens, n);
        linear_run(e, &w->out, e->ctx, e->x, T); /* x += ctx Wo^T + bo */
        layernorm_rows(e->x, w->ln1_g, w->ln1_b, T, d, cfg->layer_norm_eps);
        linear_run(e, &w->ffn1, e->x, e->h, T);  /* h = gelu(x W1^T + b1) */
        linear_run(e, &w->ffn2, e->h, e->x, T);  /* x += h W2^T + b2 */
        layernorm_rows(e->x, w->ln2_g, w->ln2_b, T, d, cfg->layer_norm_eps);
    }
    pool_normalize(e, cu_seqlens, n, out);
    return AKE_OK;
}

static const ake_engine_ops cpu_ops = {.name = "cpu", .free = cpu_free, .embed = cpu_embed};

/* Converts weight `t` [n, k] to F32 in tmp (or uses the mapping when it is F32) and
 * builds its linear layer; biases stay in the arena, which lives as long as the engine. */
static ake_status linear_from(cpu_engine *e, cpu_linear *l, const ake_tensor *w, const float *bias, float *tmp,
                              cpu_post_op post, char *err, size_t errlen) {
    float *cursor = tmp;
    const float *w32 = as_f32(w, &cursor);
    if (linear_init(e, l, w32, bias, (int32_t)w->shape[0], (int32_t)w->shape[1], post) != AKE_OK)
        return ake_errf(err, errlen, AKE_EUNSUPPORTED, "oneDNN could not build a matmul for tensor '%s'", w->name);
    return AKE_OK;
}

ake_status ake_cpu_engine_create(const ake_model *m, const ake_engine_opts *opts, ake_engine **out, char *err,
                                 size_t errlen) {
    const ake_model_config *cfg = &m->cfg;
    const int32_t d = cfg->hidden, inter = cfg->intermediate, L = cfg->layers;
    const int32_t dh = d / cfg->heads;
    cpu_engine *e = calloc(1, sizeof *e);
    if (!e) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory creating the CPU engine");
    e->base.ops = &cpu_ops;
    e->base.model = m;
    e->base.opts = *opts;
    /* attn_scratch holds one slice per processor, so more threads than processors are not used. */
    e->threads = opts->threads > 0 && opts->threads < omp_get_num_procs() ? opts->threads : omp_get_num_procs();
    e->max_pos_padded = (cfg->max_position + V16_LANES - 1) / V16_LANES * V16_LANES;
    e->attn_slice = (size_t)(dh + ATTN_QB) * e->max_pos_padded;

    /* Arena: embeddings and small per-layer vectors converted to F32 (none for an F32
     * model), plus the fused QKV bias. Weight matrices go to oneDNN's own layout. */
    size_t floats = conv_floats(m->word_emb) + conv_floats(m->pos_emb) + conv_floats(m->type_emb) +
                    conv_floats(m->emb_ln_g) + conv_floats(m->emb_ln_b);
    for (int32_t l = 0; l < L; l++) {
        const ake_layer_weights *lw = &m->layer[l];
        const ake_tensor *vecs[] = {lw->o_b, lw->ln1_g, lw->ln1_b, lw->ff1_b, lw->ff2_b, lw->ln2_g, lw->ln2_b};
        floats += (size_t)3 * d;
        for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++) floats += conv_floats(vecs[i]);
    }
    const size_t T = (size_t)opts->max_tokens;
    const size_t tmp_floats = (size_t)(3 * d > inter ? 3 * d : inter) * d;
    float *tmp = malloc(tmp_floats * sizeof(float)); /* [3d or inter, d]: one weight matrix in F32 */
    e->arena = malloc(floats * sizeof(float));
    e->layer = calloc((size_t)L, sizeof *e->layer);
    e->x = malloc(T * d * sizeof(float));
    e->qkv = malloc(T * 3 * d * sizeof(float));
    e->ctx = malloc(T * d * sizeof(float));
    e->h = malloc(T * inter * sizeof(float));
    e->attn_scratch = malloc((size_t)omp_get_num_procs() * e->attn_slice * sizeof(float));
    if (!tmp || !e->arena || !e->layer || !e->x || !e->qkv || !e->ctx || !e->h || !e->attn_scratch) {
        free(tmp);
        cpu_free(&e->base);
        return ake_errf(err, errlen, AKE_ENOMEM, "out of memory sizing the CPU engine for %d tokens",
                        opts->max_tokens);
    }
    if (dnnl_engine_create(&e->dnnl, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&e->stream, e->dnnl, dnnl_stream_default_flags) != dnnl_success) {
        free(tmp);
        cpu_free(&e->base);
        return ake_errf(err, errlen, AKE_EUNSUPPORTED, "oneDNN could not create a CPU engine");
    }
    omp_set_num_threads(e->threads);

    float *cur = e->arena;
    e->word = as_f32(m->word_emb, &cur);
    e->pos = as_f32(m->pos_emb, &cur);
    e->type = as_f32(m->type_emb, &cur);
    e->emb_g = as_f32(m->emb_ln_g, &cur);
    e->emb_b = as_f32(m->emb_ln_b, &cur);
    ake_status st = AKE_OK;
    for (int32_t l = 0; l < L && st == AKE_OK; l++) {
        const ake_layer_weights *lw = &m->layer[l];
        cpu_layer *w = &e->layer[l];
        float *bqkv = cur;
        cur += (size_t)3 * d;
        copy_f32(lw->q_b, bqkv);
        copy_f32(lw->k_b, bqkv + d);
        copy_f32(lw->v_b, bqkv + 2 * d);
        const float *bo = as_f32(lw->o_b, &cur), *b1 = as_f32(lw->ff1_b, &cur), *b2 = as_f32(lw->ff2_b, &cur);
        w->ln1_g = as_f32(lw->ln1_g, &cur);
        w->ln1_b = as_f32(lw->ln1_b, &cur);
        w->ln2_g = as_f32(lw->ln2_g, &cur);
        w->ln2_b = as_f32(lw->ln2_b, &cur);
        copy_f32(lw->q_w, tmp); /* Wqkv [3d, d]: Wq, Wk, Wv stacked by rows */
        copy_f32(lw->k_w, tmp + (size_t)d * d);
        copy_f32(lw->v_w, tmp + (size_t)2 * d * d);
        if (linear_init(e, &w->qkv, tmp, bqkv, 3 * d, d, POST_NONE) != AKE_OK)
            st = ake_errf(err, errlen, AKE_EUNSUPPORTED, "oneDNN could not build the QKV matmul of layer %d", l);
        if (st == AKE_OK) st = linear_from(e, &w->out, lw->o_w, bo, tmp, POST_ADD_TO_DST, err, errlen);
        if (st == AKE_OK) st = linear_from(e, &w->ffn1, lw->ff1_w, b1, tmp, POST_GELU, err, errlen);
        if (st == AKE_OK) st = linear_from(e, &w->ffn2, lw->ff2_w, b2, tmp, POST_ADD_TO_DST, err, errlen);
    }
    free(tmp);
    if (st != AKE_OK) {
        cpu_free(&e->base);
        return st;
    }
    AKE_ASSERT((size_t)(cur - e->arena) == floats);
    *out = &e->base;
    return AKE_OK;
}
