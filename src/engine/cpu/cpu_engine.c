/* CPU forward pass of a BERT encoder in FP32 over a packed (unpadded) batch.
 *
 * Per layer, with x [T, d] the hidden states of all T tokens of the batch:
 *   qkv = x Wqkv^T + bqkv                 one GEMM, Wqkv = [Wq; Wk; Wv]  [3d, d]
 *   ctx = softmax(q k^T / sqrt(dh)) v     per sequence and head, over that sequence only
 *   x   = LN(x + ctx Wo^T + bo)
 *   h   = gelu(x W1^T + b1)               exact erf GELU
 *   x   = LN(x + h W2^T + b2)
 * then pooling (mean / cls / max) per sequence and optional L2 normalization, or, for
 * ake_engine_embed_tokens, the final x itself copied out.
 * GEMMs are oneDNN matmul primitives created once per weight with a run-time row
 * count, weights reordered once into oneDNN's blocked layout, and bias, GELU and
 * the residual add fused as post-ops. Attention and LayerNorm are plain C with
 * GCC vector extensions (one register of floats), parallelized with OpenMP.
 *
 * INT8 (W8A8): a linear layer multiplies s8 weights (a scale per output channel) by u8
 * activations (a scale and a zero point per token, or the folder's static scale with the
 * zero point 128) into s32 (oneDNN: u8 x s8 is the layout of vpmaddubsw / vpdpbusd, which
 * s8 x s8 would first convert to), and one pass per row does the rest in fp32 while the row is in
 * cache: dequantize (acc * sx[t] * sw[n]) + bias, then GELU or the residual add and
 * LayerNorm, then quantize the row for the next GEMM. Layers a quantized folder keeps in
 * float run the fp32 path above inside the same forward.
 *
 * Per call, the only allocations are oneDNN's small memory handles (a few per
 * GEMM: they carry the call's row count); every buffer is sized at creation. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dnnl.h>

#include "engine/cpu/gemm_u8s8.h"

#include "base/half.h"
#include "base/log.h"
#include "engine/engine_impl.h"

/* One linear layer Y[T, N] = X[T, K] W^T + b (+ post-op) as a oneDNN matmul with
 * T given at execution. An fp32 layer does bias and post-op inside oneDNN; an INT8
 * layer computes ACC[T, N] = Xq Wq^T in s32 and leaves scales, bias and post-op to
 * finish_rows(). */
typedef struct {
    int32_t n, k;
    bool q8;                  /* u8 x s8 -> s32 */
    dnnl_primitive_t prim;    /* owned (unless own_gemm) */
    dnnl_memory_t weights;    /* owned: W reordered into the primitive's layout (unless own_gemm) */
    ake_u8s8_weights own;     /* q8 on AVX2 without VNNI: W packed for our kernel (gemm_u8s8.h) */
    dnnl_memory_t bias;       /* owned (fp32 layers): wraps the F32 bias [1, N] */
    const float *b;           /* [N] the bias, in the arena */
    float *w_scale;           /* owned (q8) [N]: per-output-channel weight scales */
    float in_scale;           /* q8: static per-tensor activation scale; 0 = per token at run time */
    float *inv_smooth;        /* owned (q8) [K] or NULL: 1 / SmoothQuant factor of each input channel */
    float *wsum;              /* owned (q8) [N]: sum over k of the codes of row n, for the zero point */
    int32_t rot;              /* q8: Hadamard block of the input rotation (1: none; base/dtype.h) */
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
    /* INT8 engines */
    const int8_t *word_q;      /* [vocab, d] s8 word embeddings (owned when word_q_owned) */
    const float *word_scale;   /* [vocab] their per-row scales (owned when word_q_owned) */
    bool word_q_owned;
    uint8_t *xq;               /* [T, max(d, inter)] u8 codes of the next GEMM's input */
    float *xs;                 /* [T] their per-token scales */
    float *xz;                 /* [T] their zero points (per token; 128 for static scales) */
    int32_t *acc;              /* [T, max(3d, inter)] s32 GEMM output */
    float *smooth_scratch;     /* [procs, smooth_cols]: one smoothed row per thread */
    int32_t smooth_cols;       /* max(d, inter) */
    float *attn_scratch;       /* [procs, attn_slice]: K^T of one head [dh, maxpos] + scores [ATTN_QB, maxpos] */
    size_t attn_slice;         /* floats per processor in attn_scratch */
    int32_t max_pos_padded;    /* max_position rounded up to VL */
    ake_linear_observer observer; /* calibration hook (fp32 engines), or NULL */
    void *observer_ctx;
    float w_qmax;              /* largest s8 weight code: 127, or 63 where int8 products go through
                                  16-bit pair sums (see weight_qmax) */
    bool own_gemm;             /* q8 GEMMs through gemm_u8s8.h (plain AVX2: oneDNN's there is slower) */
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

static void linear_free(cpu_linear *l) {
    ake_u8s8_free(&l->own);
    if (l->prim) dnnl_primitive_destroy(l->prim);
    if (l->weights) dnnl_memory_destroy(l->weights);
    if (l->bias) dnnl_memory_destroy(l->bias);
    free(l->w_scale);
    free(l->inv_smooth);
    free(l->wsum);
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
    if (e->word_q_owned) {
        free((void *)e->word_q);
        free((void *)e->word_scale);
    }
    free(e->xq);
    free(e->xs);
    free(e->xz);
    free(e->smooth_scratch);
    free(e->acc);
    free(e);
}

#define DNNL_TRY(call)                                                                                \
    do {                                                                                              \
        if ((call) != dnnl_success) goto fail;                                                       \
    } while (0)

/* Builds l for W [n, k] (row-major, HF Linear layout) and bias [n]: an fp32 matmul with
 * bias and `post` fused when w32 is given, else an s8 x s8 -> s32 matmul of the codes w8
 * (bias and post-op are then finish_rows()'s). */
static ake_status linear_init(cpu_engine *e, cpu_linear *l, const float *w32, const int8_t *w8, const float *b,
                              int32_t n, int32_t k, cpu_post_op post) {
    const bool q8 = w32 == NULL;
    const dnnl_data_type_t src_dt = q8 ? dnnl_u8 : dnnl_f32, w_dt = q8 ? dnnl_s8 : dnnl_f32,
                           dst_dt = q8 ? dnnl_s32 : dnnl_f32;
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
    l->q8 = q8;
    l->b = b;
    if (q8 && e->own_gemm) return ake_u8s8_pack(&l->own, w8, n, k) ? AKE_OK : AKE_ENOMEM;
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&src_md, 2, src_dims, src_dt, dnnl_ab));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_any_md, 2, w_dims, w_dt, dnnl_format_tag_any));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_md, 2, w_dims, w_dt, dnnl_ba)); /* [n, k] row-major is k x n "ba" */
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&b_md, 2, b_dims, dnnl_f32, dnnl_ab));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&dst_md, 2, dst_dims, dst_dt, dnnl_ab));
    DNNL_TRY(dnnl_matmul_desc_init(&desc, &src_md, &w_any_md, q8 ? NULL : &b_md, &dst_md));
    DNNL_TRY(dnnl_primitive_attr_create(&attr));
    DNNL_TRY(dnnl_post_ops_create(&ops));
    if (!q8 && post == POST_GELU) DNNL_TRY(dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_gelu_erf, 0.0f, 0.0f));
    if (!q8 && post == POST_ADD_TO_DST) DNNL_TRY(dnnl_post_ops_append_sum(ops, 1.0f));
    DNNL_TRY(dnnl_primitive_attr_set_post_ops(attr, ops));
    DNNL_TRY(dnnl_primitive_desc_create(&pd, &desc, attr, e->dnnl, NULL));
    DNNL_TRY(dnnl_primitive_create(&l->prim, pd));
    const dnnl_memory_desc_t *w_packed_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    DNNL_TRY(dnnl_memory_create(&l->weights, w_packed_md, e->dnnl, DNNL_MEMORY_ALLOCATE));
    DNNL_TRY(dnnl_memory_create(&w_plain, &w_md, e->dnnl, q8 ? (void *)w8 : (void *)w32));
    if (!q8) DNNL_TRY(dnnl_memory_create(&l->bias, &b_md, e->dnnl, (void *)b));
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

/* Y[T, n] = X[T, k] W^T + b, then the layer's post-op (GELU, or Y += previous Y); for a
 * q8 layer X is u8 codes and Y the s32 accumulators. */
static void linear_run(cpu_engine *e, const cpu_linear *l, const void *X, void *Y, int32_t T) {
    if (l->own.packed) {
        ake_u8s8_gemm(&l->own, (const uint8_t *)X, T, (int32_t *)Y);
        return;
    }
    dnnl_memory_desc_t src_md, dst_md;
    dnnl_dims_t src_dims = {T, l->k}, dst_dims = {T, l->n};
    dnnl_memory_t src, dst;
    AKE_ASSERT(dnnl_memory_desc_init_by_tag(&src_md, 2, src_dims, l->q8 ? dnnl_u8 : dnnl_f32, dnnl_ab) == dnnl_success);
    AKE_ASSERT(dnnl_memory_desc_init_by_tag(&dst_md, 2, dst_dims, l->q8 ? dnnl_s32 : dnnl_f32, dnnl_ab) ==
               dnnl_success);
    AKE_ASSERT(dnnl_memory_create(&src, &src_md, e->dnnl, (void *)X) == dnnl_success);
    AKE_ASSERT(dnnl_memory_create(&dst, &dst_md, e->dnnl, Y) == dnnl_success);
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, l->weights}, {DNNL_ARG_DST, dst}, {DNNL_ARG_BIAS, l->bias}};
    AKE_ASSERT(dnnl_primitive_execute(l->prim, e->stream, l->q8 ? 3 : 4, args) == dnnl_success);
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
            const float *p = e->pos + (size_t)(t - cu_seqlens[s]) * d;
            const float *ty = e->type; /* token type 0: single-sequence inputs */
            float *xr = e->x + (size_t)t * d;
            if (e->word_q) { /* 8-bit table: dequantized on lookup */
                const int8_t *w = e->word_q + (size_t)ids[t] * d;
                const float ws = e->word_scale[ids[t]];
                for (int32_t c = 0; c < d; c++) xr[c] = (float)w[c] * ws + p[c] + ty[c];
            } else {
                const float *w = e->word + (size_t)ids[t] * d;
                for (int32_t c = 0; c < d; c++) xr[c] = w[c] + p[c] + ty[c];
            }
            layernorm_row(xr, e->emb_g, e->emb_b, d, cfg->layer_norm_eps);
        }
    }
}

/* One vector register of floats: 16 with AVX-512 (32 registers), 8 with AVX2 (16 registers).
 * Wider vectors than the registers make gcc keep them on the stack (measured on a Zen 3:
 * 16-float vectors under AVX2 made attention 63% of an int8 forward, through spills). */
#ifdef __AVX512F__
#define VL 16
#define VREGS 32
#else
#define VL 8
#define VREGS 16
#endif
typedef float vf __attribute__((vector_size(VL * 4)));
#define ATTN_QB 8 /* most queries per attention block */

static inline vf loadv(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void storev(float *p, vf v) { memcpy(p, &v, sizeof v); }

/* e^x for x <= 0 (softmax arguments), relative error < 2e-7: x = n ln2 + r with
 * |r| <= ln2/2, e^r by its degree-6 Taylor polynomial, 2^n built in the exponent bits.
 * Written as branch-free lane arithmetic so that it vectorizes. */
typedef int32_t vi __attribute__((vector_size(VL * 4)));

static inline vf expv_nonpos(vf x) {
    const vf lo = (vf){0} - 87.0f;
    vi below = x < lo; /* lanes of -1 where x < lo: e^x there is below 2^-125, treated as e^-87 */
    vi xi, loi;
    memcpy(&xi, &x, sizeof x);
    memcpy(&loi, &lo, sizeof lo);
    xi = (xi & ~below) | (loi & below);
    memcpy(&x, &xi, sizeof x);
    vf n = x * 1.44269504088896341f + 12582912.0f; /* round to nearest via the 1.5*2^23 trick */
    n = n - 12582912.0f;
    vf r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;                     /* ln2 = 0.693359375 - 2.12194440e-4 */
    vf p = (vf){0} + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
    vf scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* Largest of p[0 .. L-1]; p has Lp >= L floats, Lp a multiple of VL. Lanes past L
 * are overwritten with p[0] so that whole vectors can be compared. */
static inline float max_row(float *p, int32_t L, int32_t Lp) {
    for (int32_t j = L; j < Lp; j++) p[j] = p[0];
    vf m = loadv(p);
    for (int32_t jb = VL; jb < Lp; jb += VL) {
        vf x = loadv(p + jb);
        vi gt = x > m, xi, mi;
        memcpy(&xi, &x, sizeof x);
        memcpy(&mi, &m, sizeof m);
        mi = (xi & gt) | (mi & ~gt);
        memcpy(&m, &mi, sizeof m);
    }
    float mx = m[0];
    for (int k = 1; k < VL; k++) mx = m[k] > mx ? m[k] : mx;
    return mx;
}

/* p[r, jb .. jb+VL*NJ) = scale * q[r] . K[jb ..] for the QB query rows q[r]. */
static inline __attribute__((always_inline)) void score_chunks(const float *const *q, const float *kt, int32_t Lp,
                                                               int32_t jb, int32_t dh, float scale, float *p,
                                                               const int QB, const int NJ) {
    vf acc[QB][NJ];
    for (int r = 0; r < QB; r++)
        for (int u = 0; u < NJ; u++) acc[r][u] = (vf){0};
    for (int32_t c = 0; c < dh; c++) {
        for (int u = 0; u < NJ; u++) {
            const vf k = loadv(kt + (size_t)c * Lp + jb + u * VL);
            for (int r = 0; r < QB; r++) acc[r][u] += q[r][c] * k;
        }
    }
    for (int r = 0; r < QB; r++)
        for (int u = 0; u < NJ; u++) storev(p + (size_t)r * Lp + jb + u * VL, acc[r][u] * scale);
}

/* Rows i0 .. i0+QB-1 of one (sequence, head) of attention, with NC = dh/VL VL-float
 * chunks per head row. Blocking QB queries lets each K^T and V load feed QB FMAs;
 * QB and NC are compile-time constants at every call, so the accumulators stay in
 * registers.
 *   q0, v0: the head's first Q/V element of the sequence's first token, row stride `stride`
 *   kt [dh, Lp]: K transposed, Lp = L rounded up to VL, zero padded
 *   p  [QB, Lp]: scratch for the rows' scores / probabilities
 *   o0: the head's first output element, row stride d */
static inline __attribute__((always_inline)) void attend_rows(const float *q0, const float *v0, size_t stride,
                                                              float *o0, size_t d, int32_t L, int32_t i0,
                                                              float scale, const float *kt, float *p, const int QB,
                                                              const int NC) {
    const int32_t dh = NC * VL, Lp = (L + VL - 1) / VL * VL;
    const float *q[QB];
    for (int r = 0; r < QB; r++) q[r] = q0 + (size_t)(i0 + r) * stride;
    int32_t jb = 0;
    for (; jb + 2 * VL <= Lp; jb += 2 * VL) /* two key chunks: 2*QB independent FMA chains */
        score_chunks(q, kt, Lp, jb, dh, scale, p, QB, 2);
    if (jb < Lp) score_chunks(q, kt, Lp, jb, dh, scale, p, QB, 1);
    float inv[QB];
    for (int r = 0; r < QB; r++) {
        float *pr = p + (size_t)r * Lp;
        float mx = max_row(pr, L, Lp);
        vf vsum = {0};
        for (int32_t jb = 0; jb < Lp; jb += VL) {
            vf e = expv_nonpos(loadv(pr + jb) - mx);
            storev(pr + jb, e);
            vsum += e;
        }
        float sum = 0.0f;
        for (int32_t j = L; j < Lp; j++) sum -= pr[j]; /* padding lanes are not part of the row */
        for (int k = 0; k < VL; k++) sum += vsum[k];
        inv[r] = 1.0f / sum;
    }
    vf acc[QB][NC];
    for (int r = 0; r < QB; r++)
        for (int k = 0; k < NC; k++) acc[r][k] = (vf){0};
    for (int32_t j = 0; j < L; j++) {
        const float *v = v0 + (size_t)j * stride;
        for (int k = 0; k < NC; k++) {
            const vf vk = loadv(v + k * VL);
            for (int r = 0; r < QB; r++) acc[r][k] += p[(size_t)r * Lp + j] * vk;
        }
    }
    for (int r = 0; r < QB; r++)
        for (int k = 0; k < NC; k++) storev(o0 + (size_t)(i0 + r) * d + k * VL, acc[r][k] * inv[r]);
}

/* One (sequence, head): transposes K into kt, then attends QB queries at a time. */
static inline __attribute__((always_inline)) void attend_head(const float *q0, const float *k0, const float *v0,
                                                              size_t stride, float *o0, size_t d, int32_t L,
                                                              float scale, float *kt, float *p, const int NC) {
    const int32_t dh = NC * VL, Lp = (L + VL - 1) / VL * VL;
    for (int32_t c = 0; c < dh; c++) {
        for (int32_t j = 0; j < L; j++) kt[(size_t)c * Lp + j] = k0[(size_t)j * stride + c];
        for (int32_t j = L; j < Lp; j++) kt[(size_t)c * Lp + j] = 0.0f;
    }
    /* Blocks of QB queries keep QB*NC output accumulators within half the vector registers
     * while cutting the passes over K^T and V by QB. */
    int32_t i = 0;
    if (ATTN_QB * NC <= VREGS / 2)
        for (; i + ATTN_QB <= L; i += ATTN_QB) attend_rows(q0, v0, stride, o0, d, L, i, scale, kt, p, ATTN_QB, NC);
    if (4 * NC <= VREGS / 2)
        for (; i + 4 <= L; i += 4) attend_rows(q0, v0, stride, o0, d, L, i, scale, kt, p, 4, NC);
    if (2 * NC <= VREGS / 2)
        for (; i + 2 <= L; i += 2) attend_rows(q0, v0, stride, o0, d, L, i, scale, kt, p, 2, NC);
    for (; i < L; i++) attend_rows(q0, v0, stride, o0, d, L, i, scale, kt, p, 1, NC);
}

/* The same function for any head size, plain loops: the path for dh not a multiple of VL. */
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
        case 32: attend_head(q0, q0 + d, q0 + 2 * d, stride, o0, (size_t)d, L, scale, kt, p, 32 / VL); break;
        case 64: attend_head(q0, q0 + d, q0 + 2 * d, stride, o0, (size_t)d, L, scale, kt, p, 64 / VL); break;
        case 128: attend_head(q0, q0 + d, q0 + 2 * d, stride, o0, (size_t)d, L, scale, kt, p, 128 / VL); break;
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

/* Exact (erf) GELU of VL lanes: x * Phi(x) with Phi(x) = erfc(-x / sqrt 2) / 2, erfc by
 * Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7) evaluated on |z|, so that the negative
 * side, where 1 + erf(z) would cancel, is computed directly as erfc(|z|). */
static inline vf geluv(vf x) {
    const vf z = x * 0.70710678118654752f;
    const vi neg = z < 0.0f; /* lanes of -1 where z < 0 */
    vi zi, bits;
    memcpy(&zi, &z, sizeof z);
    zi &= 0x7fffffff;
    vf az;
    memcpy(&az, &zi, sizeof az);
    const vf t = 1.0f / (1.0f + 0.3275911f * az);
    vf poly = t * 1.061405429f - 1.453152027f;
    poly = poly * t + 1.421413741f;
    poly = poly * t - 0.284496736f;
    poly = poly * t + 0.254829592f;
    const vf q = poly * t * expv_nonpos(-az * az); /* erfc(|z|) */
    const vf p2 = 2.0f - q;                         /* 1 + erf(|z|) */
    vi qi, pi;
    memcpy(&qi, &q, sizeof q);
    memcpy(&pi, &p2, sizeof p2);
    bits = (qi & neg) | (pi & ~neg);
    vf one_plus_erf;
    memcpy(&one_plus_erf, &bits, sizeof bits);
    return 0.5f * x * one_plus_erf;
}

/* u8 codes of one row for the next GEMM, from x' = (x * inv_smooth) H: per channel by
 * inv_smooth (unless NULL), then rotated by the block Hadamard matrix of `rot` (unless 1),
 * in the scratch row sm [n]. Returns the scale s and sets *z, with x' ~ s (q - z):
 *   static_scale > 0: symmetric, q = round(x' / s) saturated to +-127 and offset by z = 128
 *   else (per token): asymmetric over the row's [min, max] (0 included), s = (max - min) / 255,
 *   z = -round(min / s), q = round(x' / s) + z in 0..255. Against symmetric absmax codes this
 *   spends every code on values the row holds: GELU outputs (>= -0.17) would leave half of
 *   them unused. (The same codes as quant.cuh's INT8 ones, shifted by 128 into u8.) */
static inline float quantize_row(const float *x, int32_t n, float static_scale, const float *inv_smooth, int32_t rot,
                                 float *sm, uint8_t *q, float *z) {
    if (inv_smooth || rot > 1) {
        if (inv_smooth) {
#pragma omp simd
            for (int32_t c = 0; c < n; c++) sm[c] = x[c] * inv_smooth[c];
        } else {
            memcpy(sm, x, (size_t)n * sizeof *sm);
        }
        if (rot > 1) ake_hadamard_rows(sm, 1, n, rot);
        x = sm;
    }
    float s = static_scale, zp = 128.0f, lo = 1.0f, hi = 255.0f;
    if (s <= 0.0f) {
        float mn = x[0], mx = x[0];
#pragma omp simd reduction(min : mn) reduction(max : mx)
        for (int32_t c = 0; c < n; c++) {
            mn = x[c] < mn ? x[c] : mn; /* not fminf/fmaxf: without -ffast-math gcc calls libm for them */
            mx = x[c] > mx ? x[c] : mx;
        }
        mn = mn < 0.0f ? mn : 0.0f; /* keep 0 exact: padding-free rows, but zeros are common */
        mx = mx > 0.0f ? mx : 0.0f;
        s = mx > mn ? (mx - mn) / 255.0f : 1.0f;
        zp = -rintf(mn / s);
        lo = 0.0f;
    }
    const float inv = 1.0f / s;
#pragma omp simd
    for (int32_t c = 0; c < n; c++) {
        float r = rintf(x[c] * inv) + zp;
        r = r > hi ? hi : r < lo ? lo : r;
        q[c] = (uint8_t)r;
    }
    *z = zp;
    return s;
}

/* What happens to each row of a sublayer's output after its GEMM, in one pass per row:
 *   y = acc * xs[t] * w_scale + bias            (q8 layers; fp32 layers have y in dst already)
 *   dst = gelu(y) | dst + y | y
 *   dst = LN(dst)                               (when ln_g)
 *   xq[t], xs[t] = quantize(dst)                (when the next GEMM is q8) */
typedef struct {
    const cpu_linear *lin;     /* the q8 layer whose s32 output e->acc holds, or NULL */
    float *dst;                /* [T, n] */
    bool gelu, residual;
    const float *ln_g, *ln_b;  /* [n] or NULL */
    const cpu_linear *next;    /* the GEMM this output feeds: quantized for it when q8, else NULL */
} row_epilogue;

static void finish_rows(cpu_engine *e, const row_epilogue *ep, int32_t T, int32_t n) {
    const float eps = e->base.model->cfg.layer_norm_eps;
    const cpu_linear *l = ep->lin;
    const bool quant = ep->next && ep->next->q8;
#pragma omp parallel for schedule(static)
    for (int32_t t = 0; t < T; t++) {
        float *y = ep->dst + (size_t)t * n;
        if (l) {
            const int32_t *a = e->acc + (size_t)t * n;
            /* x ~ sx (q - z): sum_k x_k w_nk = sx sw_n (acc_n - z wsum_n) */
            const float sx = e->xs[t], z = e->xz[t];
            const float *sw = l->w_scale, *b = l->b, *ws = l->wsum;
            if (ep->gelu) {
                for (int32_t c = 0; c < n; c += VL) { /* n % 16 == 0: checked at creation */
                    vf v, bw, bb, bs;
                    for (int k = 0; k < VL; k++) v[k] = (float)a[c + k];
                    memcpy(&bw, sw + c, sizeof bw);
                    memcpy(&bb, b + c, sizeof bb);
                    memcpy(&bs, ws + c, sizeof bs);
                    storev(y + c, geluv((v - z * bs) * (sx * bw) + bb));
                }
            } else if (ep->residual) {
#pragma omp simd
                for (int32_t c = 0; c < n; c++) y[c] += ((float)a[c] - z * ws[c]) * (sx * sw[c]) + b[c];
            } else {
#pragma omp simd
                for (int32_t c = 0; c < n; c++) y[c] = ((float)a[c] - z * ws[c]) * (sx * sw[c]) + b[c];
            }
        }
        if (ep->ln_g) layernorm_row(y, ep->ln_g, ep->ln_b, n, eps);
        if (quant) {
            e->xs[t] = quantize_row(y, n, ep->next->in_scale, ep->next->inv_smooth, ep->next->rot,
                                    e->smooth_scratch + (size_t)omp_get_thread_num() * e->smooth_cols,
                                    e->xq + (size_t)t * n, &e->xz[t]);
        }
    }
}

/* The forward of an engine with any q8 layer: each linear runs in s8 or fp32 as built,
 * and finish_rows() hands each sublayer's output to the next in the form it takes. */
static void forward_q8(cpu_engine *e, const int32_t *cu_seqlens, int32_t n) {
    const ake_model_config *cfg = &e->base.model->cfg;
    const int32_t T = cu_seqlens[n], d = cfg->hidden, inter = cfg->intermediate;
    const row_epilogue emb = {.dst = e->x, .next = &e->layer[0].qkv};
    finish_rows(e, &emb, T, d);
    for (int32_t l = 0; l < cfg->layers; l++) {
        const cpu_layer *w = &e->layer[l];
        const cpu_linear *next_qkv = l + 1 < cfg->layers ? &e->layer[l + 1].qkv : NULL;
        /* qkv = x Wqkv^T + b */
        if (w->qkv.q8) {
            linear_run(e, &w->qkv, e->xq, e->acc, T);
            const row_epilogue ep = {.lin = &w->qkv, .dst = e->qkv};
            finish_rows(e, &ep, T, 3 * d);
        } else {
            linear_run(e, &w->qkv, e->x, e->qkv, T);
        }
        attention(e, cu_seqlens, n);
        /* x = LN1(x + ctx Wo^T + bo) */
        if (w->out.q8) {
            const row_epilogue q = {.dst = e->ctx, .next = &w->out};
            finish_rows(e, &q, T, d);
            linear_run(e, &w->out, e->xq, e->acc, T);
        } else {
            linear_run(e, &w->out, e->ctx, e->x, T);
        }
        const row_epilogue ln1 = {.lin = w->out.q8 ? &w->out : NULL, .dst = e->x, .residual = true,
                                  .ln_g = w->ln1_g, .ln_b = w->ln1_b, .next = &w->ffn1};
        finish_rows(e, &ln1, T, d);
        /* h = gelu(x W1^T + b1) */
        if (w->ffn1.q8) {
            linear_run(e, &w->ffn1, e->xq, e->acc, T);
        } else {
            linear_run(e, &w->ffn1, e->x, e->h, T);
        }
        const row_epilogue g = {.lin = w->ffn1.q8 ? &w->ffn1 : NULL, .dst = e->h, .gelu = true, .next = &w->ffn2};
        finish_rows(e, &g, T, inter);
        /* x = LN2(x + h W2^T + b2) */
        if (w->ffn2.q8) {
            linear_run(e, &w->ffn2, e->xq, e->acc, T);
        } else {
            linear_run(e, &w->ffn2, e->h, e->x, T);
        }
        const row_epilogue ln2 = {.lin = w->ffn2.q8 ? &w->ffn2 : NULL, .dst = e->x, .residual = true,
                                  .ln_g = w->ln2_g, .ln_b = w->ln2_b, .next = next_qkv};
        finish_rows(e, &ln2, T, d);
    }
}

/* Runs the encoder over the batch, leaving the last hidden state [T, d] in e->x: what
 * cpu_embed pools and cpu_hidden hands out. */
static void cpu_encode(cpu_engine *e, const int32_t *ids, const int32_t *cu_seqlens, int32_t n) {
    const ake_model_config *cfg = &e->base.model->cfg;
    const int32_t T = cu_seqlens[n], d = cfg->hidden;
    omp_set_num_threads(e->threads); /* per calling thread: an engine may be driven from any thread */
    embed_tokens(e, ids, cu_seqlens, n);
    if (e->base.opts.precision == AKE_PREC_INT8) {
        forward_q8(e, cu_seqlens, n);
        return;
    }
#define OBSERVE(kind, X, cols)                                                                                        \
    if (e->observer) e->observer(e->observer_ctx, l, kind, X, T, cols)
    for (int32_t l = 0; l < cfg->layers; l++) {
        const cpu_layer *w = &e->layer[l];
        OBSERVE(AKE_LINEAR_QKV, e->x, d);
        linear_run(e, &w->qkv, e->x, e->qkv, T);
        attention(e, cu_seqlens, n);
        OBSERVE(AKE_LINEAR_OUT, e->ctx, d);
        linear_run(e, &w->out, e->ctx, e->x, T); /* x += ctx Wo^T + bo */
        layernorm_rows(e->x, w->ln1_g, w->ln1_b, T, d, cfg->layer_norm_eps);
        OBSERVE(AKE_LINEAR_FFN1, e->x, d);
        linear_run(e, &w->ffn1, e->x, e->h, T);  /* h = gelu(x W1^T + b1) */
        OBSERVE(AKE_LINEAR_FFN2, e->h, cfg->intermediate);
        linear_run(e, &w->ffn2, e->h, e->x, T);  /* x += h W2^T + b2 */
        layernorm_rows(e->x, w->ln2_g, w->ln2_b, T, d, cfg->layer_norm_eps);
    }
}

static ake_status cpu_embed(ake_engine *base, const int32_t *ids, const int32_t *cu_seqlens, int32_t n, float *out,
                            char *err, size_t errlen) {
    (void)err;
    (void)errlen;
    cpu_engine *e = (cpu_engine *)base;
    cpu_encode(e, ids, cu_seqlens, n);
    pool_normalize(e, cu_seqlens, n, out);
    return AKE_OK;
}

static ake_status cpu_hidden(ake_engine *base, const int32_t *ids, const int32_t *cu_seqlens, int32_t n, float *out,
                             char *err, size_t errlen) {
    (void)err;
    (void)errlen;
    cpu_engine *e = (cpu_engine *)base;
    cpu_encode(e, ids, cu_seqlens, n);
    memcpy(out, e->x, (size_t)cu_seqlens[n] * base->model->cfg.hidden * sizeof(float));
    return AKE_OK;
}

#undef OBSERVE

static ake_status cpu_set_observer(ake_engine *base, ake_linear_observer fn, void *ctx, char *err, size_t errlen) {
    cpu_engine *e = (cpu_engine *)base;
    if (fn && base->opts.precision != AKE_PREC_FP32)
        return ake_errf(err, errlen, AKE_EUNSUPPORTED, "calibration observes an fp32 engine (this one is %s)",
                        ake_precision_name(base->opts.precision));
    e->observer = fn;
    e->observer_ctx = ctx;
    return AKE_OK;
}

static const ake_engine_ops cpu_ops = {
    .name = "cpu", .free = cpu_free, .embed = cpu_embed, .hidden = cpu_hidden, .set_observer = cpu_set_observer};

/* Bytes of l's packed weights (oneDNN's layout) and its scales (its bias is in the arena). */
static size_t linear_bytes(const cpu_linear *l) {
    const dnnl_memory_desc_t *md = NULL;
    if (l->weights) dnnl_memory_get_memory_desc(l->weights, &md);
    return (md ? dnnl_memory_desc_get_size(md) : 0) + ake_u8s8_bytes(&l->own) +
           (l->q8 ? (size_t)l->n * sizeof(float) : 0);
}

/* Builds l from the weights `parts` stacked by rows (q, k, v for the fused QKV, else one),
 * in fp32 or as s8 codes with per-row scales: a folder's I8 codes as they are, anything
 * else quantized here (dynamic quantization). tmp32, tmp8: scratch for the stacked matrix. */
static ake_status build_linear(cpu_engine *e, cpu_linear *l, const ake_linear_weights *const *parts, int nparts,
                               const float *bias, bool q8, cpu_post_op post, float *tmp32, int8_t *tmp8, char *err,
                               size_t errlen) {
    const int32_t k = (int32_t)parts[0]->w->shape[1];
    int32_t n = 0;
    for (int i = 0; i < nparts; i++) n += (int32_t)parts[i]->w->shape[0];
    if (q8 && !(l->w_scale = malloc((size_t)n * sizeof(float))))
        return ake_errf(err, errlen, AKE_ENOMEM, "out of memory quantizing '%s'", parts[0]->w->name);
    /* rotation of the inputs: a quantized folder's own (none without input_rotation); for the
     * dynamic quantization of a float weight, the largest Hadamard block */
    const ake_tensor *rt = parts[0]->in_rotation;
    const int32_t rot = !q8                 ? 1
                        : parts[0]->scale ? (rt ? *(const int32_t *)rt->data : 1)
                                          : ake_hadamard_block(k, AKE_HADAMARD_MAX_BLOCK);
    l->rot = rot;
    int32_t row = 0;
    for (int i = 0; i < nparts; i++) {
        const ake_linear_weights *lw = parts[i];
        const int32_t rows = (int32_t)lw->w->shape[0];
        if (!q8) {
            ake_linear_weight_f32(lw, tmp32 + (size_t)row * k, false);
        } else if (lw->w->dtype == AKE_DT_I8 && e->w_qmax == AKE_I8_QMAX) {
            memcpy(tmp8 + (size_t)row * k, lw->w->data, (size_t)rows * k);
            memcpy(l->w_scale + row, lw->scale->data, (size_t)rows * sizeof(float));
        } else {
            ake_linear_weight_f32(lw, tmp32, true);
            if (!lw->scale) ake_hadamard_rows(tmp32, rows, k, rot); /* a float weight: rotate it here */
            ake_quantize_rows(tmp32, rows, k, AKE_DT_I8, e->w_qmax, tmp8 + (size_t)row * k, l->w_scale + row);
        }
        row += rows;
    }
    l->in_scale = q8 && parts[0]->in_scale ? *(const float *)parts[0]->in_scale->data : 0.0f;
    if (q8 && parts[0]->in_smooth) {
        if (!(l->inv_smooth = malloc((size_t)k * sizeof(float))))
            return ake_errf(err, errlen, AKE_ENOMEM, "out of memory loading '%s'", parts[0]->w->name);
        for (int32_t c = 0; c < k; c++) l->inv_smooth[c] = 1.0f / ((const float *)parts[0]->in_smooth->data)[c];
    }
    if (q8) {
        if (!(l->wsum = malloc((size_t)n * sizeof(float))))
            return ake_errf(err, errlen, AKE_ENOMEM, "out of memory loading '%s'", parts[0]->w->name);
        for (int32_t r = 0; r < n; r++) {
            int32_t sum = 0;
            for (int32_t c = 0; c < k; c++) sum += tmp8[(size_t)r * k + c];
            l->wsum[r] = (float)sum;
        }
    }
    const ake_status st = linear_init(e, l, q8 ? NULL : tmp32, q8 ? tmp8 : NULL, bias, n, k, post);
    if (st == AKE_ENOMEM) return ake_errf(err, errlen, st, "out of memory packing '%s'", parts[0]->w->name);
    if (st != AKE_OK)
        return ake_errf(err, errlen, AKE_EUNSUPPORTED, "oneDNN could not build a%s matmul for '%s'",
                        q8 ? " u8 x s8" : "n fp32", parts[0]->w->name);
    return AKE_OK;
}

/* Without VNNI, oneDNN multiplies s8 codes with vpmaddubsw, which adds pairs of u8 x s8
 * products in 16 bits with saturation: full-range codes overflow (measured with oneDNN 2.6
 * on a Zen 3: every output of a 64x384x256 s8 GEMM of +-127 codes was wrong). Weights of 7
 * bits (+-63) keep every pair sum within 16 bits; oneDNN's int8 guide gives the same advice.
 * VNNI (vpdpbusd) accumulates in 32 bits and takes the full range. */
static float weight_qmax(void) {
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_avx512_core_vnni:
    case dnnl_cpu_isa_avx512_core_bf16:
    case dnnl_cpu_isa_avx512_core_amx:
    case dnnl_cpu_isa_avx2_vnni: return AKE_I8_QMAX;
    default: return 63.0f;
    }
}

static const char *isa_name(void) {
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "SSE4.1";
    case dnnl_cpu_isa_avx: return "AVX";
    case dnnl_cpu_isa_avx2: return "AVX2";
    case dnnl_cpu_isa_avx2_vnni: return "AVX2-VNNI";
    case dnnl_cpu_isa_avx512_core: return "AVX-512";
    case dnnl_cpu_isa_avx512_core_vnni: return "AVX-512 VNNI";
    case dnnl_cpu_isa_avx512_core_bf16: return "AVX-512 BF16";
    case dnnl_cpu_isa_avx512_core_amx: return "AMX";
    default: return "baseline";
    }
}

ake_status ake_cpu_engine_caps(ake_engine_caps *out, char *err, size_t errlen) {
    (void)err;
    (void)errlen;
    const dnnl_version_t *v = dnnl_version();
    snprintf(out->hardware, sizeof out->hardware, "cpu (%s, oneDNN %d.%d)", isa_name(), v->major, v->minor);
    out->precisions = 1u << AKE_PREC_FP32 | 1u << AKE_PREC_INT8;
    out->default_precision = AKE_PREC_FP32;
    return AKE_OK;
}

ake_status ake_cpu_engine_create(const ake_model *m, const ake_engine_opts *opts, ake_engine **out, char *err,
                                 size_t errlen) {
    const ake_model_config *cfg = &m->cfg;
    const int32_t d = cfg->hidden, inter = cfg->intermediate, L = cfg->layers;
    const int32_t dh = d / cfg->heads;
    const bool int8 = opts->precision == AKE_PREC_INT8;
    if (int8 && m->qdtype == AKE_DT_F8_E4M3)
        return ake_errf(err, errlen, AKE_EUNSUPPORTED,
                        "%s holds FP8 weights; the CPU runs them in fp32 (converted at load), not int8", m->name);
    if (int8 && (d % VL || inter % VL))
        return ake_errf(err, errlen, AKE_EUNSUPPORTED,
                        "%s: the CPU int8 engine takes hidden and intermediate sizes that are multiples of 16 (%d, %d)",
                        m->name, d, inter);
    if (m->qdtype == AKE_DT_F8_E4M3)
        ake_log(AKE_LOG_INFO, "%s: FP8 weights converted to fp32 at load (the CPU has no FP8 arithmetic)", m->name);
    cpu_engine *e = calloc(1, sizeof *e);
    if (!e) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory creating the CPU engine");
    e->base.ops = &cpu_ops;
    e->base.model = m;
    e->base.opts = *opts;
    /* attn_scratch holds one slice per processor, so more threads than processors are not used. */
    e->threads = opts->threads > 0 && opts->threads < omp_get_num_procs() ? opts->threads : omp_get_num_procs();
    e->max_pos_padded = (cfg->max_position + VL - 1) / VL * VL;
    e->attn_slice = (size_t)(dh + ATTN_QB) * e->max_pos_padded;
    e->w_qmax = weight_qmax();
    e->own_gemm = dnnl_get_effective_cpu_isa() == dnnl_cpu_isa_avx2 && ake_u8s8_available();

    /* Arena: embeddings and small per-layer vectors converted to F32 (none for an F32
     * model), plus the fused QKV bias. Weight matrices go to oneDNN's own layout. An 8-bit
     * word table stays 8-bit in an int8 engine and is dequantized into the arena otherwise;
     * a float one is quantized (owned) for an int8 engine. */
    const bool word_q8 = m->word_emb_scale != NULL;
    const size_t word_floats = int8 ? 0 : word_q8 ? (size_t)m->word_emb->numel : conv_floats(m->word_emb);
    size_t floats = word_floats + conv_floats(m->pos_emb) + conv_floats(m->type_emb) + conv_floats(m->emb_ln_g) +
                    conv_floats(m->emb_ln_b);
    for (int32_t l = 0; l < L; l++) {
        const ake_layer_weights *lw = &m->layer[l];
        const ake_tensor *vecs[] = {lw->o.b, lw->ln1_g, lw->ln1_b, lw->ff1.b, lw->ff2.b, lw->ln2_g, lw->ln2_b};
        floats += (size_t)3 * d;
        for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++) floats += conv_floats(vecs[i]);
    }
    const size_t T = (size_t)opts->max_tokens;
    const size_t wide = (size_t)(3 * d > inter ? 3 * d : inter);
    const size_t tmp_elems = wide * (size_t)(d > inter ? d : inter); /* the largest stacked weight matrix */
    float *tmp = malloc(tmp_elems * sizeof(float));
    int8_t *tmp8 = int8 ? malloc(tmp_elems) : NULL;
    e->arena = malloc(floats * sizeof(float));
    e->layer = calloc((size_t)L, sizeof *e->layer);
    e->x = malloc(T * d * sizeof(float));
    e->qkv = malloc(T * 3 * d * sizeof(float));
    e->ctx = malloc(T * d * sizeof(float));
    e->h = malloc(T * inter * sizeof(float));
    e->attn_scratch = malloc((size_t)omp_get_num_procs() * e->attn_slice * sizeof(float));
    bool ok = tmp && e->arena && e->layer && e->x && e->qkv && e->ctx && e->h && e->attn_scratch;
    if (ok && int8) {
        e->xq = malloc(T * (size_t)(d > inter ? d : inter) + 4); /* + what gemm_u8s8 may read past the last row */
        e->xs = malloc(T * sizeof(float));
        e->xz = malloc(T * sizeof(float));
        e->acc = malloc(T * wide * sizeof(int32_t));
        e->smooth_cols = d > inter ? d : inter;
        e->smooth_scratch = malloc((size_t)omp_get_num_procs() * e->smooth_cols * sizeof(float));
        ok = tmp8 && e->xq && e->xs && e->xz && e->acc && e->smooth_scratch;
        if (ok && word_q8) {
            e->word_q = (const int8_t *)m->word_emb->data;
            e->word_scale = (const float *)m->word_emb_scale->data;
        } else if (ok) {
            int8_t *q = malloc((size_t)m->word_emb->numel);
            float *sc = malloc((size_t)cfg->vocab_size * sizeof(float));
            float *w32 = m->word_emb->dtype == AKE_DT_F32 ? NULL : malloc((size_t)m->word_emb->numel * sizeof(float));
            ok = q && sc && (w32 || m->word_emb->dtype == AKE_DT_F32);
            if (ok) {
                if (w32) ake_tensor_f32(m->word_emb, w32);
                ake_quantize_rows(w32 ? w32 : (const float *)m->word_emb->data, cfg->vocab_size, d, AKE_DT_I8,
                                  AKE_I8_QMAX, q, sc);
            }
            free(w32);
            e->word_q = q;
            e->word_scale = sc;
            e->word_q_owned = true;
        }
    }
    if (!ok) {
        free(tmp);
        free(tmp8);
        cpu_free(&e->base);
        return ake_errf(err, errlen, AKE_ENOMEM, "out of memory sizing the CPU engine for %d tokens",
                        opts->max_tokens);
    }
    if (dnnl_engine_create(&e->dnnl, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&e->stream, e->dnnl, dnnl_stream_default_flags) != dnnl_success) {
        free(tmp);
        free(tmp8);
        cpu_free(&e->base);
        return ake_errf(err, errlen, AKE_EUNSUPPORTED, "oneDNN could not create a CPU engine");
    }
    omp_set_num_threads(e->threads);

    float *cur = e->arena;
    if (!int8 && word_q8) {
        float *w = cur;
        cur += m->word_emb->numel;
        ake_word_emb_f32(m, w);
        e->word = w;
    } else if (!int8) {
        e->word = as_f32(m->word_emb, &cur);
    }
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
        ake_tensor_f32(lw->q.b, bqkv);
        ake_tensor_f32(lw->k.b, bqkv + d);
        ake_tensor_f32(lw->v.b, bqkv + 2 * d);
        const float *bo = as_f32(lw->o.b, &cur), *b1 = as_f32(lw->ff1.b, &cur), *b2 = as_f32(lw->ff2.b, &cur);
        w->ln1_g = as_f32(lw->ln1_g, &cur);
        w->ln1_b = as_f32(lw->ln1_b, &cur);
        w->ln2_g = as_f32(lw->ln2_g, &cur);
        w->ln2_b = as_f32(lw->ln2_b, &cur);
        /* int8: every linear of a float model (dynamic), the I8 ones of a quantized folder */
#define Q8(lin) (int8 && (m->qdtype == AKE_DT_F32 || (lin).w->dtype == AKE_DT_I8))
        const ake_linear_weights *qkv[3] = {&lw->q, &lw->k, &lw->v}, *o[1] = {&lw->o}, *f1[1] = {&lw->ff1},
                                 *f2[1] = {&lw->ff2};
        st = build_linear(e, &w->qkv, qkv, 3, bqkv, Q8(lw->q), POST_NONE, tmp, tmp8, err, errlen);
        if (st == AKE_OK) st = build_linear(e, &w->out, o, 1, bo, Q8(lw->o), POST_ADD_TO_DST, tmp, tmp8, err, errlen);
        if (st == AKE_OK) st = build_linear(e, &w->ffn1, f1, 1, b1, Q8(lw->ff1), POST_GELU, tmp, tmp8, err, errlen);
        if (st == AKE_OK) st = build_linear(e, &w->ffn2, f2, 1, b2, Q8(lw->ff2), POST_ADD_TO_DST, tmp, tmp8, err, errlen);
#undef Q8
    }
    free(tmp);
    free(tmp8);
    if (st != AKE_OK) {
        cpu_free(&e->base);
        return st;
    }
    AKE_ASSERT((size_t)(cur - e->arena) == floats);
    /* resident weights: the arena's float copies, mmapped F32 tensors used as they are,
     * the 8-bit word table, and every packed matrix */
    size_t bytes = floats * sizeof(float);
    const ake_tensor *aliased[] = {m->pos_emb, m->type_emb, m->emb_ln_g, m->emb_ln_b};
    for (size_t i = 0; i < 4; i++) bytes += aliased[i]->dtype == AKE_DT_F32 ? aliased[i]->nbytes : 0;
    if (e->word_q) bytes += (size_t)m->word_emb->numel + (size_t)cfg->vocab_size * sizeof(float);
    else if (!word_q8 && m->word_emb->dtype == AKE_DT_F32) bytes += m->word_emb->nbytes;
    for (int32_t l = 0; l < L; l++) {
        const cpu_layer *w = &e->layer[l];
        bytes += linear_bytes(&w->qkv) + linear_bytes(&w->out) + linear_bytes(&w->ffn1) + linear_bytes(&w->ffn2);
        const ake_tensor *ln[] = {m->layer[l].ln1_g, m->layer[l].ln1_b, m->layer[l].ln2_g, m->layer[l].ln2_b};
        for (size_t i = 0; i < 4; i++) bytes += ln[i]->dtype == AKE_DT_F32 ? ln[i]->nbytes : 0;
    }
    e->base.weight_bytes = bytes;
    *out = &e->base;
    return AKE_OK;
}
