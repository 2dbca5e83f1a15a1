/* CUDA backend behind engine.h: the encoder forward in FP16, BF16, INT8 or FP8 on one GPU.
 *
 * Per layer, over the T tokens of a packed batch padded up to a bucket of Tb rows:
 *   qkv = x Wqkv^T + bqkv          cuBLASLt, bias in the epilogue          [Tb, 3d]
 *   ctx = attention(qkv)           packed sequences, tensor cores           [Tb, d]
 *   tmp = ctx Wo^T + bo            cuBLASLt, bias epilogue                  [Tb, d]
 *   x   = LN(tmp + x)              fused residual + LayerNorm               [Tb, d]
 *   h   = gelu(x W1^T + b1)        cuBLASLt bias epilogue + exact GELU      [Tb, inter]
 *   tmp = h W2^T + b2              cuBLASLt, bias epilogue                  [Tb, d]
 *   x   = LN(tmp + x)
 * after the fused embeddings + LayerNorm, and before the fused pooling + L2 normalize
 * (ake_engine_embed) or the conversion of x to fp32 (ake_engine_embed_tokens, cuda_hidden).
 * bf16 keeps 8 bits of mantissa, too few for cosine >= 0.9999 against fp32 on 24 layers
 * (measured 0.99986 on bert-large), so bf16 engines keep the residual stream in fp32
 * (res32): the output projections write fp32 without bias, and the LayerNorm adds bias and
 * residual in fp32 and writes x twice (fp32 for the residual, bf16 for the next GEMM);
 * pooling reads the fp32 copy. fp16 (11 bits) needs none of it. opts.cuda.res32 overrides.
 *
 * The W8A8 engines (int8, fp8 E4M3; encode_q8) run each linear whose weights are 8-bit on
 * 8-bit codes: weights with per-output-channel scales (a quantized folder's, or quantized here
 * at load from a float model: dynamic quantization, the inputs then rotated by Hadamard blocks
 * as the CPU engine does), activations with a scale per token (or the folder's static scale),
 * quantized by the kernel that produces them: LayerNorm and GELU write the next GEMM's codes
 * beside (or instead of) their 16-bit output, quantize_rows covers the embeddings and the
 * attention output. INT8 GEMMs leave int32 sums that the next kernel dequantizes (with the
 * per-token zero point of dynamic INT8); FP8 GEMMs scale and add the bias in cuBLASLt's
 * epilogue. Attention, LayerNorm and the residual stream stay fp16. The word table stays 8-bit
 * with a scale per row, dequantized on lookup.
 *
 * Everything a call needs on the device (token ids, positions, cu_seqlens, attention
 * tiles, counts) travels in one "meta" block per call: one host-to-device copy from pinned
 * memory on a copy stream, while the compute stream may still run the previous call.
 * Kernels read counts from that block, so the whole forward of a bucket is captured once
 * into a CUDA graph (lazily, at the bucket's first call, right after an eager run that also
 * times the GEMM candidates) and replayed for any batch that pads to the same Tb. Two
 * slots (meta block + pinned output) let two calls be in flight (ake_engine_submit). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/common.cuh"

extern "C" {
#include "engine/cuda/attention.cuh"
#include "engine/cuda/convert.cuh"
#include "engine/cuda/embed.cuh"
#include "engine/cuda/gelu.cuh"
#include "engine/cuda/gemm.cuh"
#include "engine/cuda/layernorm.cuh"
#include "engine/cuda/pool.cuh"
#include "engine/cuda/quant.cuh"
#include "base/dtype.h"
#include "engine/engine_impl.h"
}

extern "C" void ake_cuda_fail(const char *expr, int code, const char *msg, const char *file, int line) {
    fprintf(stderr, "%s:%d: CUDA failure %d (%s) in %s\n", file, line, code, msg, expr);
    abort();
}

extern "C" int ake_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky-free error so later calls start clean */
        return 0;
    }
    return n;
}

/* One linear layer Y = X W^T + b as the engine runs it: in 16 bits (dt), or in 8 bits (the
 * engine's qdt) with the input transforms and scales of quant.cuh. */
typedef struct {
    bool q8;                     /* 8-bit GEMM on quantized inputs; else dt */
    int32_t n, k;                /* W: [n, k] */
    void *w;                     /* [n, k]: codes of qdt (q8), else dt */
    void *b;                     /* [n] dt: the 16-bit GEMM's and the FP8 GEMM's epilogue bias */
    float *b32;                  /* [n] fp32: the bias the INT8 dequantization adds (INT8 only) */
    float *w_scale;              /* [n] per-output-channel weight scales (q8) */
    float *wsum;                 /* [n] sums of each row's codes, for asymmetric inputs (dynamic INT8) */
    float *in_scale;             /* device [1]: static activation scale, or NULL (dynamic per token) */
    float *inv_smooth;           /* [k]: 1 / SmoothQuant factor of each input channel, or NULL */
    int32_t rot;                 /* Hadamard block of the input rotation; 1: none */
} cuda_linear;

typedef struct {
    cuda_linear qkv, o, ff1, ff2; /* [3d, d] (q, k, v stacked), [d, d], [inter, d], [d, inter] */
    float *ln1_g, *ln1_b, *ln2_g, *ln2_b; /* [d] fp32 */
    float *bo32, *b2_32;         /* [d] fp32 copies of bo, b2 for the fp32 residual path */
} cuda_layer;

typedef struct {
    int32_t tb;                  /* bucket: rows every kernel of the graph covers */
    cudaGraphExec_t exec[2];     /* one per slot (the meta block's address is baked in) */
} graph_entry;

typedef struct {
    int32_t *meta_h;             /* pinned, [meta_ints(tb_max)] */
    int32_t *meta_d;             /* device, same size */
    float *out_h;                /* pinned [max_batch, d] */
    float *user_out;             /* borrowed until wait() */
    int32_t n;
    bool busy;
    cudaEvent_t up, done;        /* meta uploaded; output copied back */
} call_slot;

typedef struct {
    ake_engine base;
    int dev;
    char card[256];
    ake_dtype dt;                /* F16 or BF16: activations and 16-bit weights */
    ake_dtype qdt;               /* I8 or F8_E4M3: the W8A8 engines' codes; F32: a 16-bit engine */
    cudaStream_t stream, copy;   /* compute; host-to-device uploads */
    ake_cuda_gemm *gemm;
    /* weights */
    void *warena;                /* device: every weight and scale, bump-allocated */
    void *word, *pos, *type;     /* [vocab, d] (dt, or codes of qdt), [max_position, d] [types, d] (dt) */
    float *word_scale;           /* [vocab]: per-row scales of an 8-bit word table, or NULL */
    ake_dtype word_qdt;          /* the 8-bit word table's codes: a folder's own type; I8 when quantized
                                    here (a lookup table: INT8's 8 bits of precision beat E4M3's 4 at
                                    the same size, whatever the GEMMs run in) */
    float *emb_g, *emb_b;        /* [d] */
    cuda_layer *layer;           /* owned [layers] */
    /* activations, sized once for tb_max rows */
    void *x, *tmp, *ctx;         /* [tb_max, d] */
    void *qkv;                   /* [tb_max, 3d] */
    void *h;                     /* [tb_max, inter] */
    float *out_d;                /* [max_batch, d] */
    float *x32, *tmp32;          /* [tb_max, d] fp32 residual stream and sublayer outputs (res32 only) */
    uint8_t *xq;                 /* [tb_max, max(d, inter)] codes of the next 8-bit GEMM's input (q8) */
    float *qs[2], *qz[2];        /* [tb_max] their row scales and zero points, two slots: a kernel
                                    reads one while it writes the other */
    int32_t *acc;                /* [tb_max, max(3d, inter)] int32 sums of INT8 GEMMs */
    int32_t tb_max;
    call_slot slot[2];
    int next, oldest, pending;   /* slot ring: next to fill, oldest outstanding, outstanding count */
    graph_entry *graphs;         /* owned [graph_cap] */
    int ngraphs, graph_cap;
    bool use_graphs, gelu_tanh;
    bool res32;                  /* residual stream in fp32 (default for bf16, see encode16()) */
    int attn_version;            /* ake_cuda_attention's version (0: its default) */
} cuda_engine;

/* Token-count buckets: multiples of 8 up to 64, then 8 steps per power of two, so a
 * batch is padded by less than 1/8 of its tokens and a few dozen graphs cover 1..64K. */
static int32_t bucket_of(int32_t T) {
    if (T <= 64) return (T + 7) & ~7;
    int32_t p = 64;
    while (p * 2 <= T) p *= 2;
    const int32_t g = p / 8;
    return (T + g - 1) / g * g;
}

/* Layout of a call's meta block for bucket tb (int32 offsets, each 16-byte aligned):
 *   [0] n, [1] T, [2] ntiles, [3] 0 | ids[tb] | pos[tb] | cu[maxseq+1] | tiles[4*max_tiles] */
typedef struct {
    int32_t ids, pos, cu, tiles, total, maxseq, max_tiles;
} meta_layout;

static int32_t up4(int32_t v) { return (v + 3) & ~3; }

static meta_layout layout_for(const cuda_engine *e, int32_t tb) {
    meta_layout m;
    m.maxseq = e->base.opts.max_batch < tb ? e->base.opts.max_batch : tb;
    m.max_tiles = ake_cuda_attention_max_tiles(tb, m.maxseq);
    m.ids = 4;
    m.pos = m.ids + up4(tb);
    m.cu = m.pos + up4(tb);
    m.tiles = m.cu + up4(m.maxseq + 1);
    m.total = m.tiles + 4 * m.max_tiles;
    return m;
}

static const char *cuda_hardware(const ake_engine *base) { return ((const cuda_engine *)base)->card; }

static void cuda_free(ake_engine *base) {
    cuda_engine *e = (cuda_engine *)base;
    cudaSetDevice(e->dev);
    if (e->stream) cudaStreamSynchronize(e->stream);
    for (int i = 0; i < e->ngraphs; i++)
        for (int s = 0; s < 2; s++)
            if (e->graphs[i].exec[s]) cudaGraphExecDestroy(e->graphs[i].exec[s]);
    free(e->graphs);
    for (int s = 0; s < 2; s++) {
        cudaFreeHost(e->slot[s].meta_h);
        cudaFreeHost(e->slot[s].out_h);
        cudaFree(e->slot[s].meta_d);
        if (e->slot[s].up) cudaEventDestroy(e->slot[s].up);
        if (e->slot[s].done) cudaEventDestroy(e->slot[s].done);
    }
    void *bufs[] = {e->warena, e->x,     e->tmp,   e->ctx,   e->qkv,   e->h,     e->out_d, e->x32,
                    e->tmp32,  e->xq,    e->qs[0], e->qs[1], e->qz[0], e->qz[1], e->acc};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
    ake_cuda_gemm_free(e->gemm);
    if (e->stream) cudaStreamDestroy(e->stream);
    if (e->copy) cudaStreamDestroy(e->copy);
    free(e->layer);
    free(e);
}

/* Enqueues the 16-bit encoder for bucket tb reading the meta block of slot s: its last
 * hidden state ends in e->x32 (res32) or e->x. */
static void encode16(cuda_engine *e, int s, int32_t tb) {
    const ake_model_config *cfg = &e->base.model->cfg;
    const int d = cfg->hidden, inter = cfg->intermediate, H = cfg->heads, D = d / H;
    const float eps = cfg->layer_norm_eps;
    const meta_layout m = layout_for(e, tb);
    const int32_t *meta = e->slot[s].meta_d;
    cudaStream_t st = e->stream;
    ake_cuda_embed_layernorm(st, e->dt, e->x, e->res32 ? e->x32 : NULL, meta + m.ids, meta + m.pos, e->word, e->pos,
                             e->type, e->emb_g, e->emb_b, tb, d, eps);
    for (int l = 0; l < cfg->layers; l++) {
        const cuda_layer *w = &e->layer[l];
        ake_cuda_gemm_run(e->gemm, st, e->dt, tb, 3 * d, d, e->x, w->qkv.w, w->qkv.b, NULL, e->qkv, AKE_GEMM_BIAS);
        ake_cuda_attention(st, e->dt, e->ctx, e->qkv, meta + m.tiles, meta + 2, m.max_tiles, H, D, e->attn_version);
        if (e->res32) {
            ake_cuda_gemm_run_f32out(e->gemm, st, e->dt, tb, d, d, e->ctx, w->o.w, e->tmp32);
            ake_cuda_layernorm_f32(st, e->dt, e->x, e->x32, e->tmp32, w->bo32, e->x32, w->ln1_g, w->ln1_b, tb, d, eps);
        } else {
            ake_cuda_gemm_run(e->gemm, st, e->dt, tb, d, d, e->ctx, w->o.w, w->o.b, NULL, e->tmp, AKE_GEMM_BIAS);
            ake_cuda_layernorm(st, e->dt, e->x, e->tmp, e->x, w->ln1_g, w->ln1_b, tb, d, eps);
        }
        if (e->gelu_tanh) {
            ake_cuda_gemm_run(e->gemm, st, e->dt, tb, inter, d, e->x, w->ff1.w, w->ff1.b, NULL, e->h,
                              AKE_GEMM_BIAS_GELU_TANH);
        } else {
            ake_cuda_gemm_run(e->gemm, st, e->dt, tb, inter, d, e->x, w->ff1.w, w->ff1.b, NULL, e->h, AKE_GEMM_BIAS);
            ake_cuda_gelu(st, e->dt, e->h, (size_t)tb * inter);
        }
        if (e->res32) {
            ake_cuda_gemm_run_f32out(e->gemm, st, e->dt, tb, d, inter, e->h, w->ff2.w, e->tmp32);
            ake_cuda_layernorm_f32(st, e->dt, e->x, e->x32, e->tmp32, w->b2_32, e->x32, w->ln2_g, w->ln2_b, tb, d, eps);
        } else {
            ake_cuda_gemm_run(e->gemm, st, e->dt, tb, d, inter, e->h, w->ff2.w, w->ff2.b, NULL, e->tmp, AKE_GEMM_BIAS);
            ake_cuda_layernorm(st, e->dt, e->x, e->tmp, e->x, w->ln2_g, w->ln2_b, tb, d, eps);
        }
    }
}

/* The descriptor of linear l's quantized input, written to scale slot p. */
static ake_cuda_qout qout_for(const cuda_engine *e, const cuda_linear *l, int p) {
    ake_cuda_qout q = {e->qdt, e->xq, e->qs[p], l->in_scale, NULL, l->inv_smooth, l->rot};
    if (e->qdt == AKE_DT_I8 && !l->in_scale) q.zero = e->qz[p]; /* dynamic INT8: asymmetric */
    return q;
}

static ake_cuda_gemm_result result16(const cuda_engine *e, const void *y) {
    ake_cuda_gemm_result r = {};
    r.dt = e->dt;
    r.y = y;
    return r;
}

/* Runs 8-bit linear l on e->xq (scales in slot p) and says where its result is: INT8, the
 * int32 sums in e->acc with what dequantizes them; FP8, y16 (dt, scales and bias applied). */
static ake_cuda_gemm_result gemm8(cuda_engine *e, const cuda_linear *l, int p, int32_t tb, void *y16) {
    if (e->qdt != AKE_DT_I8) {
        ake_cuda_gemm_run_fp8(e->gemm, e->stream, e->dt, tb, l->n, l->k, e->xq, e->qs[p], l->w, l->w_scale, l->b, y16);
        return result16(e, y16);
    }
    ake_cuda_gemm_run_i8(e->gemm, e->stream, tb, l->n, l->k, e->xq, l->w, e->acc);
    ake_cuda_gemm_result r = {};
    r.dt = AKE_DT_I32;
    r.y = e->acc;
    r.row_scale = e->qs[p];
    r.col_scale = l->w_scale;
    r.bias = l->b32;
    if (!l->in_scale) {
        r.row_zero = e->qz[p];
        r.col_wsum = l->wsum;
    }
    return r;
}

/* Runs linear l as built: in 8 bits on e->xq (gemm8), or in 16 bits on x16 with the bias in the
 * epilogue; 16-bit outputs go to y16. */
static ake_cuda_gemm_result run_linear(cuda_engine *e, const cuda_linear *l, int p, int32_t tb, const void *x16,
                                       void *y16) {
    if (l->q8) return gemm8(e, l, p, tb, y16);
    ake_cuda_gemm_run(e->gemm, e->stream, e->dt, tb, l->n, l->k, x16, l->w, l->b, NULL, y16, AKE_GEMM_BIAS);
    return result16(e, y16);
}

/* The encoder of a W8A8 engine (its last hidden state ends in e->x): each linear in 8 bits or
 * 16 as built; the kernel that makes a GEMM's input quantizes it (LayerNorm, GELU; the
 * attention output and the embeddings through quantize_rows), the kernel after an INT8 GEMM
 * dequantizes its sums. Scale slots alternate: p is the slot of the codes in e->xq. */
static void encode_q8(cuda_engine *e, int s, int32_t tb) {
    const ake_model_config *cfg = &e->base.model->cfg;
    const int d = cfg->hidden, inter = cfg->intermediate, H = cfg->heads, D = d / H;
    const float eps = cfg->layer_norm_eps;
    const meta_layout m = layout_for(e, tb);
    const int32_t *meta = e->slot[s].meta_d;
    cudaStream_t st = e->stream;
    const ake_dtype dt = e->dt;
    const ake_cuda_qout none = {};
    if (e->word_scale)
        ake_cuda_embed_layernorm_q8(st, dt, e->x, meta + m.ids, meta + m.pos, e->word_qdt, e->word, e->word_scale, e->pos,
                                    e->type, e->emb_g, e->emb_b, tb, d, eps);
    else
        ake_cuda_embed_layernorm(st, dt, e->x, NULL, meta + m.ids, meta + m.pos, e->word, e->pos, e->type, e->emb_g,
                                 e->emb_b, tb, d, eps);
    int p = 0;
    if (e->layer[0].qkv.q8) ake_cuda_quantize_rows(st, qout_for(e, &e->layer[0].qkv, p), dt, e->x, tb, d);
    for (int l = 0; l < cfg->layers; l++) {
        const cuda_layer *w = &e->layer[l];
        ake_cuda_gemm_result r = run_linear(e, &w->qkv, p, tb, e->x, e->qkv);
        if (r.dt == AKE_DT_I32) ake_cuda_dequant_bias(st, dt, e->qkv, r, tb, 3 * d);
        ake_cuda_attention(st, dt, e->ctx, e->qkv, meta + m.tiles, meta + 2, m.max_tiles, H, D, e->attn_version);
        if (w->o.q8) {
            p ^= 1;
            ake_cuda_quantize_rows(st, qout_for(e, &w->o, p), dt, e->ctx, tb, d);
        }
        r = run_linear(e, &w->o, p, tb, e->ctx, e->tmp);
        p ^= 1;
        ake_cuda_layernorm_quant(st, dt, e->x, e->x, r, w->ln1_g, w->ln1_b, tb, d, eps,
                                 w->ff1.q8 ? qout_for(e, &w->ff1, p) : none);
        r = run_linear(e, &w->ff1, p, tb, e->x, e->h);
        p ^= 1;
        if (w->ff2.q8) ake_cuda_gelu_quant(st, r, tb, inter, qout_for(e, &w->ff2, p), dt, NULL);
        else if (r.dt == AKE_DT_I32) ake_cuda_gelu_quant(st, r, tb, inter, none, dt, e->h);
        else ake_cuda_gelu(st, dt, e->h, (size_t)tb * inter); /* in place: r.y is e->h */
        r = run_linear(e, &w->ff2, p, tb, e->h, e->tmp);
        p ^= 1;
        const cuda_linear *next = l + 1 < cfg->layers ? &e->layer[l + 1].qkv : NULL;
        ake_cuda_layernorm_quant(st, dt, e->x, e->x, r, w->ln2_g, w->ln2_b, tb, d, eps,
                                 next && next->q8 ? qout_for(e, next, p) : none);
    }
}

static void encode(cuda_engine *e, int s, int32_t tb) {
    if (e->qdt == AKE_DT_F32) encode16(e, s, tb);
    else encode_q8(e, s, tb);
}

/* The pooled forward of ake_engine_embed: the encoder, then pooling + L2 normalize of its
 * last hidden state (fp32 with res32, else dt) into e->out_d. */
static void forward(cuda_engine *e, int s, int32_t tb) {
    const ake_model_config *cfg = &e->base.model->cfg;
    const meta_layout m = layout_for(e, tb);
    const int32_t *meta = e->slot[s].meta_d;
    encode(e, s, tb);
    ake_cuda_pool(e->stream, e->res32 ? AKE_DT_F32 : e->dt, e->out_d, e->res32 ? (const void *)e->x32 : e->x,
                  meta + m.cu, meta, m.maxseq, cfg->hidden, (int)cfg->pooling, cfg->normalize);
}

static graph_entry *find_graph(cuda_engine *e, int32_t tb) {
    for (int i = 0; i < e->ngraphs; i++)
        if (e->graphs[i].tb == tb) return &e->graphs[i];
    AKE_ASSERT(e->ngraphs < e->graph_cap); /* graph_cap counts every bucket up to tb_max */
    graph_entry *g = &e->graphs[e->ngraphs++];
    g->tb = tb;
    g->exec[0] = g->exec[1] = NULL;
    return g;
}

/* Writes the meta block of a batch (n >= 1) into slot s's pinned host copy; returns the
 * batch's bucket and sets *bytes to the length of the block to upload. */
static int32_t fill_meta(cuda_engine *e, int s, const int32_t *ids, const int32_t *cu, int32_t n, size_t *bytes) {
    const int32_t T = cu[n], tb = bucket_of(T);
    AKE_ASSERT(tb <= e->tb_max);
    const meta_layout m = layout_for(e, tb);
    int32_t *mh = e->slot[s].meta_h;
    mh[0] = n;
    mh[1] = T;
    memcpy(mh + m.ids, ids, (size_t)T * sizeof *ids);
    memset(mh + m.ids + T, 0, (size_t)(tb - T) * sizeof *ids); /* padding rows: token 0 at position 0 */
    for (int32_t i = 0; i < n; i++)
        for (int32_t t = cu[i]; t < cu[i + 1]; t++) mh[m.pos + t] = t - cu[i];
    memset(mh + m.pos + T, 0, (size_t)(tb - T) * sizeof *mh);
    memcpy(mh + m.cu, cu, (size_t)(n + 1) * sizeof *cu);
    mh[2] = ake_cuda_attention_tiles(cu, n, mh + m.tiles);
    mh[3] = 0;
    AKE_ASSERT(mh[2] <= m.max_tiles && n <= m.maxseq);
    *bytes = (size_t)(m.tiles + 4 * mh[2]) * sizeof *mh;
    return tb;
}

static ake_status cuda_submit(ake_engine *base, const int32_t *ids, const int32_t *cu, int32_t n, float *out,
                              char *err, size_t errlen) {
    cuda_engine *e = (cuda_engine *)base;
    CUDA_CHECK(cudaSetDevice(e->dev));
    if (e->pending >= 2) return ake_errf(err, errlen, AKE_EINVAL, "two calls already in flight on %s", base->device);
    const int s = e->next;
    call_slot *sl = &e->slot[s];
    AKE_ASSERT(!sl->busy);
    sl->user_out = out;
    sl->n = n;
    sl->busy = true;
    e->next ^= 1;
    e->pending++;
    if (n == 0) {
        CUDA_CHECK(cudaEventRecord(sl->done, e->stream));
        return AKE_OK;
    }
    size_t bytes;
    const int32_t tb = fill_meta(e, s, ids, cu, n, &bytes);
    if (e->pending == 1) {
        /* nothing else in flight: upload on the compute stream, no cross-stream event */
        CUDA_CHECK(cudaMemcpyAsync(sl->meta_d, sl->meta_h, bytes, cudaMemcpyHostToDevice, e->stream));
    } else {
        /* the previous call still computes: upload beside it on the copy stream */
        CUDA_CHECK(cudaMemcpyAsync(sl->meta_d, sl->meta_h, bytes, cudaMemcpyHostToDevice, e->copy));
        CUDA_CHECK(cudaEventRecord(sl->up, e->copy));
        CUDA_CHECK(cudaStreamWaitEvent(e->stream, sl->up, 0));
    }

    if (!e->use_graphs) {
        forward(e, s, tb);
    } else {
        graph_entry *g = find_graph(e, tb);
        if (g->exec[s]) {
            CUDA_CHECK(cudaGraphLaunch(g->exec[s], e->stream));
        } else {
            /* First call of this bucket on this slot: run eagerly (which also picks the GEMM
             * algorithms), then capture the same enqueue sequence for the next calls. */
            forward(e, s, tb);
            cudaGraph_t graph;
            CUDA_CHECK(cudaStreamBeginCapture(e->stream, cudaStreamCaptureModeThreadLocal));
            forward(e, s, tb);
            CUDA_CHECK(cudaStreamEndCapture(e->stream, &graph));
            CUDA_CHECK(cudaGraphInstantiate(&g->exec[s], graph, 0));
            CUDA_CHECK(cudaGraphDestroy(graph));
        }
    }
    CUDA_CHECK(cudaMemcpyAsync(sl->out_h, e->out_d, (size_t)n * base->model->cfg.hidden * sizeof(float),
                               cudaMemcpyDeviceToHost, e->stream));
    CUDA_CHECK(cudaEventRecord(sl->done, e->stream));
    return AKE_OK;
}

static ake_status cuda_wait(ake_engine *base, char *err, size_t errlen) {
    cuda_engine *e = (cuda_engine *)base;
    if (e->pending == 0) return ake_errf(err, errlen, AKE_EINVAL, "no call in flight on %s", base->device);
    call_slot *sl = &e->slot[e->oldest];
    CUDA_CHECK(cudaSetDevice(e->dev));
    CUDA_CHECK(cudaEventSynchronize(sl->done));
    memcpy(sl->user_out, sl->out_h, (size_t)sl->n * base->model->cfg.hidden * sizeof(float));
    sl->busy = false;
    e->oldest ^= 1;
    e->pending--;
    return AKE_OK;
}

static ake_status cuda_embed(ake_engine *base, const int32_t *ids, const int32_t *cu, int32_t n, float *out,
                             char *err, size_t errlen) {
    ake_status st = cuda_submit(base, ids, cu, n, out, err, errlen);
    return st != AKE_OK ? st : cuda_wait(base, err, errlen);
}

/* ake_engine_embed_tokens: the encoder alone, run eagerly. The CUDA graphs stay the pooled
 * forward's: an eager run neither reads nor changes them (a graph replays with its own meta
 * block, uploaded before each launch), and a bucket first seen here is captured at its first
 * pooled call as usual. Nothing is in flight (engine.c refuses otherwise), so the call takes
 * the meta block of the slot the next submit would take, and the qkv buffer, dead once the
 * encoder is done, holds the fp32 rows ([tb_max, 3d] 16-bit values hold [T, d] floats) for one
 * copy into `out`. A res32 engine's fp32 residual stream is copied as it is. */
static ake_status cuda_hidden(ake_engine *base, const int32_t *ids, const int32_t *cu, int32_t n, float *out,
                              char *err, size_t errlen) {
    (void)err;
    (void)errlen;
    cuda_engine *e = (cuda_engine *)base;
    CUDA_CHECK(cudaSetDevice(e->dev));
    AKE_ASSERT(e->pending == 0);
    const int s = e->next;
    size_t bytes;
    const int32_t tb = fill_meta(e, s, ids, cu, n, &bytes);
    CUDA_CHECK(cudaMemcpyAsync(e->slot[s].meta_d, e->slot[s].meta_h, bytes, cudaMemcpyHostToDevice, e->stream));
    encode(e, s, tb);
    const size_t values = (size_t)cu[n] * base->model->cfg.hidden;
    const void *rows = e->x32;
    if (!e->res32) {
        ake_cuda_convert(e->stream, AKE_DT_F32, e->qkv, e->dt, e->x, values);
        rows = e->qkv;
    }
    CUDA_CHECK(cudaMemcpyAsync(out, rows, values * sizeof(float), cudaMemcpyDeviceToHost, e->stream));
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    return AKE_OK;
}

static const ake_engine_ops cuda_ops = {"cuda",    cuda_free, cuda_embed,    cuda_hidden,
                                        cuda_submit, cuda_wait, cuda_hardware, NULL};

/* ---- creation ----------------------------------------------------------------------- */

/* Bump allocation in the weight arena (256-byte aligned pieces), run twice: with base NULL to
 * size the arena, then to place every tensor in it. */
typedef struct {
    char *base;
    size_t off;
} bump;

static void *take(bump *b, size_t bytes) {
    void *p = b->base ? b->base + b->off : NULL;
    b->off += (bytes + 255) & ~(size_t)255;
    return p;
}

static ake_status put(void *dst, const void *src, size_t bytes, const char *what, char *err, size_t errlen) {
    cudaError_t ce = cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice);
    return ce == cudaSuccess ? AKE_OK
                             : ake_errf(err, errlen, AKE_EIO, "uploading %s: %s", what, cudaGetErrorString(ce));
}

/* src [n] fp32 (host) to dst (device, dst_dt) through the device staging buffer, converting. */
static ake_status put_f32(void *dst, ake_dtype dst_dt, const float *src, size_t n, void *staging, const char *what,
                          char *err, size_t errlen) {
    ake_status st = put(staging, src, n * sizeof *src, what, err, errlen);
    if (st == AKE_OK) ake_cuda_convert(0, dst_dt, dst, AKE_DT_F32, staging, n); /* legacy stream: ordered with memcpy */
    return st;
}

/* Copies float tensor t to dst (device, dst_dt) through the device staging buffer, converting. */
static ake_status upload(const ake_tensor *t, void *dst, ake_dtype dst_dt, void *staging, char *err, size_t errlen) {
    ake_status st = put(staging, t->data, t->nbytes, t->name, err, errlen);
    if (st == AKE_OK) ake_cuda_convert(0, dst_dt, dst, t->dtype, staging, (size_t)t->numel);
    return st;
}

static ake_status dev_alloc(void **p, size_t bytes, const char *what, const char *device, char *err, size_t errlen) {
    cudaError_t ce = cudaMalloc(p, bytes ? bytes : 16);
    if (ce != cudaSuccess) {
        *p = NULL;
        cudaGetLastError();
        return ake_errf(err, errlen, AKE_ENOMEM, "%s: cannot allocate %.1f MiB on the GPU for %s (%s)", device,
                        bytes / 1048576.0, what, cudaGetErrorString(ce));
    }
    return cudaMemset(*p, 0, bytes ? bytes : 16) == cudaSuccess ? AKE_OK
                                                                : ake_errf(err, errlen, AKE_EIO, "cudaMemset failed");
}

/* The GPU must be visible and of compute capability 8.0+ (cp.async and bf16 tensor cores in
 * the kernels). Precisions: what this engine implements; FP8 needs the FP8 tensor cores of
 * compute capability 8.9+ (Ada, Hopper). */
extern "C" ake_status ake_cuda_engine_caps(int idx, ake_engine_caps *out, char *err, size_t errlen) {
    int count = 0;
    cudaError_t ce = cudaGetDeviceCount(&count);
    if (ce != cudaSuccess || count == 0) {
        cudaGetLastError();
        return ake_errf(err, errlen, AKE_EUNSUPPORTED, "device 'cuda:%d': no CUDA GPU is visible (%s)", idx,
                        ce != cudaSuccess ? cudaGetErrorString(ce) : "the driver reports 0 devices");
    }
    if (idx >= count)
        return ake_errf(err, errlen, AKE_EINVAL, "device 'cuda:%d': only %d CUDA GPU%s visible (cuda:0..cuda:%d)", idx,
                        count, count == 1 ? " is" : "s are", count - 1);
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, idx));
    snprintf(out->hardware, sizeof out->hardware, "%.96s, compute capability %d.%d", prop.name, prop.major, prop.minor);
    if (prop.major < 8)
        return ake_errf(err, errlen, AKE_EUNSUPPORTED, "device 'cuda:%d' (%s) has compute capability %d.%d; need 8.0+",
                        idx, prop.name, prop.major, prop.minor);
    out->precisions = 1u << AKE_PREC_FP16 | 1u << AKE_PREC_BF16 | 1u << AKE_PREC_INT8;
    if (prop.major * 10 + prop.minor >= 89) out->precisions |= 1u << AKE_PREC_FP8;
    out->default_precision = AKE_PREC_FP16;
    return AKE_OK;
}

/* The input rotation of dynamic quantization on the GPU, measured on the real all-MiniLM-L6-v2
 * (H200, 5,000 sentences of tests/golden/quant_eval.txt against CPU fp32; bert-base B=128
 * S=128 synthesized for the time; dev/cuda/NOTES.md):
 *   int8, Hadamard blocks of 512 / 128 / 32 / 8 / none: recall@10 0.969 / 0.971 / 0.967 / 0.962
 *   / 0.947 (fails the gate), bert-base 8.06 / 7.85 / 7.59 / 7.37 / 7.16 ms: every butterfly
 *   stage past a chunk of 8 is a warp shuffle per value in the quantizing kernels. 32: two
 *   shuffle stages, a 0.017 margin over the gate.
 *   fp8 (E4M3: a float code, outliers cost it no resolution elsewhere in the row): blocks of 512
 *   lower recall@10 (0.904 against 0.922 without): none. */
enum { DYNAMIC_INT8_ROT_BLOCK = 32 };

static float qmax_of(ake_dtype qdt) { return qdt == AKE_DT_I8 ? AKE_I8_QMAX : AKE_E4M3_QMAX; }

/* A layer's four linears with the model weights each is made of (q, k, v stacked for QKV). */
typedef struct {
    cuda_linear *l;
    const ake_linear_weights *parts[3];
    int nparts;
} layer_linear;

static void linears_of(cuda_layer *w, const ake_layer_weights *lw, layer_linear out[4]) {
    out[0] = (layer_linear){&w->qkv, {&lw->q, &lw->k, &lw->v}, 3};
    out[1] = (layer_linear){&w->o, {&lw->o}, 1};
    out[2] = (layer_linear){&w->ff1, {&lw->ff1}, 1};
    out[3] = (layer_linear){&w->ff2, {&lw->ff2}, 1};
}

/* Sets what l is before placement: shape, 8-bit or not, the input rotation. parts: the
 * model's weights stacked by rows (q, k, v for the fused QKV). In a W8A8 engine a float
 * model's linears are all quantized here (dynamic, rotated as DYNAMIC_INT8_ROT_BLOCK says), a
 * quantized folder's are as stored (its float linears, kept by the sensitivity pass, stay 16-bit). */
static void plan_linear(const cuda_engine *e, cuda_linear *l, const ake_linear_weights *const *parts, int nparts) {
    l->k = (int32_t)parts[0]->w->shape[1];
    l->n = 0;
    for (int i = 0; i < nparts; i++) l->n += (int32_t)parts[i]->w->shape[0];
    l->q8 = e->qdt != AKE_DT_F32 && (e->base.model->qdtype == AKE_DT_F32 || parts[0]->scale);
    const ake_tensor *rt = parts[0]->in_rotation;
    l->rot = !l->q8            ? 1
             : parts[0]->scale ? (rt ? *(const int32_t *)rt->data : 1)
             : e->qdt == AKE_DT_I8 ? ake_hadamard_block(l->k, DYNAMIC_INT8_ROT_BLOCK)
                                   : 1;
}

/* Places l's tensors in the arena (see plan_linear). */
static void place_linear(const cuda_engine *e, bump *b, cuda_linear *l, const ake_linear_weights *first) {
    const size_t n = (size_t)l->n, k = (size_t)l->k;
    const bool stat = l->q8 && first->in_scale, int8 = l->q8 && e->qdt == AKE_DT_I8;
    l->w = take(b, n * k * (l->q8 ? 1 : 2));
    l->b = take(b, n * 2);
    l->b32 = int8 ? (float *)take(b, n * 4) : NULL;
    l->w_scale = l->q8 ? (float *)take(b, n * 4) : NULL;
    l->wsum = int8 && !stat ? (float *)take(b, n * 4) : NULL;
    l->in_scale = stat ? (float *)take(b, 4) : NULL;
    l->inv_smooth = l->q8 && first->in_smooth ? (float *)take(b, k * 4) : NULL;
}

/* Fills l's placed tensors from the model. tmp32 [n k] and tmp8 [n k], hv [n] + [k]: host
 * scratch; staging: device scratch of n k floats. */
static ake_status fill_linear(const cuda_engine *e, const cuda_linear *l, const ake_linear_weights *const *parts,
                              int nparts, float *tmp32, uint8_t *tmp8, float *hv, void *staging, char *err,
                              size_t errlen) {
    const int32_t k = l->k, n = l->n;
    const char *name = parts[0]->w->name;
    ake_status st = AKE_OK;
    int32_t row = 0;
    for (int i = 0; i < nparts; i++) {
        const ake_linear_weights *lw = parts[i];
        const int32_t rows = (int32_t)lw->w->shape[0];
        if (!l->q8) {
            ake_linear_weight_f32(lw, tmp32 + (size_t)row * k, false);
        } else if (lw->scale) { /* a folder's codes and scales as they are */
            memcpy(tmp8 + (size_t)row * k, lw->w->data, (size_t)rows * k);
            memcpy(hv + row, lw->scale->data, (size_t)rows * sizeof *hv);
        } else { /* dynamic: rotate the float weight, then per-channel scales */
            ake_linear_weight_f32(lw, tmp32, false);
            if (l->rot > 1) ake_hadamard_rows(tmp32, rows, k, l->rot);
            ake_quantize_rows(tmp32, rows, k, e->qdt, qmax_of(e->qdt), tmp8 + (size_t)row * k, hv + row);
        }
        row += rows;
    }
    if (!l->q8) {
        st = put_f32(l->w, e->dt, tmp32, (size_t)n * k, staging, name, err, errlen);
    } else {
        st = put(l->w, tmp8, (size_t)n * k, name, err, errlen);
        if (!st) st = put(l->w_scale, hv, (size_t)n * sizeof *hv, name, err, errlen);
        if (!st && l->wsum) {
            for (int32_t r = 0; r < n; r++) {
                int32_t sum = 0;
                for (int32_t c = 0; c < k; c++) sum += (int8_t)tmp8[(size_t)r * k + c];
                hv[r] = (float)sum;
            }
            st = put(l->wsum, hv, (size_t)n * sizeof *hv, name, err, errlen);
        }
        if (!st && l->in_scale) st = put(l->in_scale, parts[0]->in_scale->data, sizeof(float), name, err, errlen);
        if (!st && l->inv_smooth) {
            const float *sm = (const float *)parts[0]->in_smooth->data;
            for (int32_t c = 0; c < k; c++) hv[c] = 1.0f / sm[c];
            st = put(l->inv_smooth, hv, (size_t)k * sizeof *hv, name, err, errlen);
        }
    }
    /* the bias, stacked: 16-bit for the GEMM epilogues, fp32 for the INT8 dequantization */
    row = 0;
    for (int i = 0; i < nparts; i++) {
        ake_tensor_f32(parts[i]->b, hv + row);
        row += (int32_t)parts[i]->b->shape[0];
    }
    if (!st) st = put_f32(l->b, e->dt, hv, (size_t)n, staging, name, err, errlen);
    if (!st && l->b32) st = put(l->b32, hv, (size_t)n * sizeof *hv, name, err, errlen);
    return st;
}

/* Places every weight of the engine in the arena (b->base NULL: only sizes it). */
static void place_weights(cuda_engine *e, bump *b) {
    const ake_model *m = e->base.model;
    const ake_model_config *cfg = &m->cfg;
    const size_t d = (size_t)cfg->hidden, V = (size_t)cfg->vocab_size;
    e->word = take(b, V * d * (e->qdt != AKE_DT_F32 ? 1 : 2));
    e->word_scale = e->qdt != AKE_DT_F32 ? (float *)take(b, V * 4) : NULL;
    e->pos = take(b, (size_t)cfg->max_position * d * 2);
    e->type = take(b, (size_t)cfg->type_vocab_size * d * 2);
    e->emb_g = (float *)take(b, d * 4);
    e->emb_b = (float *)take(b, d * 4);
    for (int l = 0; l < cfg->layers; l++) {
        cuda_layer *w = &e->layer[l];
        const ake_layer_weights *lw = &m->layer[l];
        layer_linear ll[4];
        linears_of(w, lw, ll);
        for (int i = 0; i < 4; i++) place_linear(e, b, ll[i].l, ll[i].parts[0]);
        float **f[] = {&w->ln1_g, &w->ln1_b, &w->ln2_g, &w->ln2_b, &w->bo32, &w->b2_32};
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) *f[i] = (float *)take(b, d * 4);
    }
}

/* Uploads every weight placed by place_weights, converting or quantizing on the way. */
static ake_status fill_weights(cuda_engine *e, char *err, size_t errlen) {
    const ake_model *m = e->base.model;
    const ake_model_config *cfg = &m->cfg;
    const size_t d = (size_t)cfg->hidden, V = (size_t)cfg->vocab_size, inter = (size_t)cfg->intermediate;
    size_t most = V * d; /* floats of the largest matrix */
    most = 3 * d * d > most ? 3 * d * d : most;
    most = inter * d > most ? inter * d : most;
    const size_t vec = 3 * d + inter;
    float *tmp32 = (float *)malloc(most * sizeof(float)), *hv = (float *)malloc(vec * sizeof(float));
    uint8_t *tmp8 = (uint8_t *)malloc(most);
    void *staging = NULL;
    ake_status st = !tmp32 || !hv || !tmp8
                        ? ake_errf(err, errlen, AKE_ENOMEM, "out of memory preparing the weights for %s", e->base.opts.device)
                        : dev_alloc(&staging, most * sizeof(float), "weight staging", e->base.opts.device, err, errlen);
    if (!st) {
        ake_word_emb_f32(m, tmp32);
        if (e->qdt == AKE_DT_F32) {
            st = put_f32(e->word, e->dt, tmp32, V * d, staging, m->word_emb->name, err, errlen);
        } else {
            const ake_tensor *ws = m->word_emb_scale;
            if (ws) { /* the folder's codes */
                st = put(e->word, m->word_emb->data, V * d, m->word_emb->name, err, errlen);
                if (!st) st = put(e->word_scale, ws->data, V * sizeof(float), ws->name, err, errlen);
            } else { /* dynamic: a scale per row, as the CPU engine */
                float *sc = (float *)malloc(V * sizeof(float));
                if (!sc) st = ake_errf(err, errlen, AKE_ENOMEM, "out of memory quantizing the word embeddings");
                if (!st) {
                    ake_quantize_rows(tmp32, (int64_t)V, (int64_t)d, e->word_qdt, qmax_of(e->word_qdt), tmp8, sc);
                    st = put(e->word, tmp8, V * d, m->word_emb->name, err, errlen);
                }
                if (!st) st = put(e->word_scale, sc, V * sizeof(float), m->word_emb->name, err, errlen);
                free(sc);
            }
        }
    }
    if (!st) st = upload(m->pos_emb, e->pos, e->dt, staging, err, errlen);
    if (!st) st = upload(m->type_emb, e->type, e->dt, staging, err, errlen);
    if (!st) st = upload(m->emb_ln_g, e->emb_g, AKE_DT_F32, staging, err, errlen);
    if (!st) st = upload(m->emb_ln_b, e->emb_b, AKE_DT_F32, staging, err, errlen);
    for (int l = 0; l < cfg->layers && !st; l++) {
        const ake_layer_weights *lw = &m->layer[l];
        cuda_layer *w = &e->layer[l];
        layer_linear ll[4];
        linears_of(w, lw, ll);
        for (int i = 0; i < 4 && !st; i++)
            st = fill_linear(e, ll[i].l, ll[i].parts, ll[i].nparts, tmp32, tmp8, hv, staging, err, errlen);
        const struct { const ake_tensor *t; float *dst; } f[] = {{lw->ln1_g, w->ln1_g}, {lw->ln1_b, w->ln1_b},
                                                                {lw->ln2_g, w->ln2_g}, {lw->ln2_b, w->ln2_b},
                                                                {lw->o.b, w->bo32},    {lw->ff2.b, w->b2_32}};
        for (size_t i = 0; i < sizeof f / sizeof f[0] && !st; i++)
            st = upload(f[i].t, f[i].dst, AKE_DT_F32, staging, err, errlen);
    }
    if (staging) {
        CUDA_CHECK(cudaDeviceSynchronize());
        cudaFree(staging);
    }
    free(tmp32);
    free(tmp8);
    free(hv);
    return st;
}

extern "C" ake_status ake_cuda_engine_create(const ake_model *m, const ake_engine_opts *opts, ake_engine **out,
                                             char *err, size_t errlen) {
    *out = NULL;
    const char *device = opts->device;
    const int idx = device[4] == ':' ? atoi(device + 5) : 0;
    const ake_model_config *cfg = &m->cfg;
    const int d = cfg->hidden, inter = cfg->intermediate, H = cfg->heads, L = cfg->layers;
    if (d % 8 || d > AKE_CUDA_LN_MAX_D || inter % 8 || d % H || !ake_cuda_attention_supports(d / H))
        return ake_errf(err, errlen, AKE_EUNSUPPORTED,
                        "%s: the CUDA engine takes hidden sizes that are multiples of 8 up to %d, head dims 32, 64 "
                        "or 128 (model: hidden %d, %d heads, intermediate %d)",
                        m->name, AKE_CUDA_LN_MAX_D, d, H, inter);
    const bool q8 = opts->precision == AKE_PREC_INT8 || opts->precision == AKE_PREC_FP8;
    const ake_dtype qdt = opts->precision == AKE_PREC_INT8 ? AKE_DT_I8 : opts->precision == AKE_PREC_FP8 ? AKE_DT_F8_E4M3 : AKE_DT_F32;
    if (q8 && m->qdtype != AKE_DT_F32 && m->qdtype != qdt)
        return ake_errf(err, errlen, AKE_EUNSUPPORTED,
                        "%s holds %s weights; run it as %s (its own type) or in fp16/bf16, or quantize the float "
                        "model to %s", m->name, ake_dtype_name(m->qdtype), m->qdtype == AKE_DT_I8 ? "int8" : "fp8",
                        ake_precision_name(opts->precision));
    /* cuBLASLt's FP8 GEMMs take dimensions that are multiples of 16; the quantizing kernels rows of <= 8192 */
    if (q8 && (d % 16 || inter % 16 || inter > 8192))
        return ake_errf(err, errlen, AKE_EUNSUPPORTED,
                        "%s: the 8-bit CUDA engines take hidden and intermediate sizes that are multiples of 16 "
                        "(intermediate up to 8192; model: %d, %d)", m->name, d, inter);
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, idx)); /* the capability query checked idx and 8.0+ */
    /* how a host thread waits for the GPU: the primary context's scheduling flag, settable only
     * before the context exists (else left as it is). Auto spins while there are more cores
     * than active contexts. */
    const ake_cuda_tuning *tune = &opts->cuda;
    if (tune->sync != AKE_CUDA_SYNC_AUTO) {
        const unsigned flag = tune->sync == AKE_CUDA_SYNC_SPIN    ? cudaDeviceScheduleSpin
                              : tune->sync == AKE_CUDA_SYNC_YIELD ? cudaDeviceScheduleYield
                                                                  : cudaDeviceScheduleBlockingSync;
        if (cudaInitDevice(idx, flag, 0) != cudaSuccess) cudaGetLastError();
    }
    CUDA_CHECK(cudaSetDevice(idx));

    cuda_engine *e = (cuda_engine *)calloc(1, sizeof *e);
    if (!e) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory creating the CUDA engine");
    e->base.ops = &cuda_ops;
    e->base.model = m;
    e->base.opts = *opts;
    e->dev = idx;
    snprintf(e->card, sizeof e->card, "%s", prop.name);
    e->dt = opts->precision == AKE_PREC_BF16 ? AKE_DT_BF16 : AKE_DT_F16;
    e->qdt = qdt;
    e->word_qdt = m->word_emb_scale ? m->word_emb->dtype : AKE_DT_I8;
    e->use_graphs = tune->graphs != AKE_TRI_OFF;
    e->gelu_tanh = !q8 && tune->gelu_tanh == AKE_TRI_ON;
    /* cuBLASLt's first heuristic choice, cached per shape, unless gemm_tune times the candidates
     * (measured slower on the H100 in most cells: dev/cuda/NOTES.md) */
    const int autotune = tune->gemm_tune == AKE_TRI_ON;
    e->res32 = !q8 && (tune->res32 != AKE_TRI_DEFAULT ? tune->res32 == AKE_TRI_ON : e->dt == AKE_DT_BF16);
    e->attn_version = tune->attention;
    e->tb_max = bucket_of(opts->max_tokens);
    e->layer = (cuda_layer *)calloc((size_t)L, sizeof *e->layer);
    e->graph_cap = 8 + 8 * 32; /* > number of buckets up to 2^31 */
    e->graphs = (graph_entry *)calloc((size_t)e->graph_cap, sizeof *e->graphs);
    ake_status st = AKE_OK;
    if (!e->layer || !e->graphs) {
        cuda_free(&e->base);
        return ake_errf(err, errlen, AKE_ENOMEM, "out of memory creating the CUDA engine");
    }
    CUDA_CHECK(cudaStreamCreateWithFlags(&e->stream, cudaStreamNonBlocking));
    CUDA_CHECK(cudaStreamCreateWithFlags(&e->copy, cudaStreamNonBlocking));
    if ((st = ake_cuda_gemm_create(&e->gemm, autotune, err, errlen)) != AKE_OK) {
        cuda_free(&e->base);
        return st;
    }
    if (qdt == AKE_DT_F8_E4M3 && ake_cuda_gemm_fp8_path(e->gemm) == AKE_FP8_NONE) {
        cuda_free(&e->base);
        return ake_errf(err, errlen, AKE_EUNSUPPORTED, "%s (%s): cuBLASLt runs no FP8 GEMM here", device, e->card);
    }

    for (int l = 0; l < L; l++) {
        const ake_layer_weights *lw = &m->layer[l];
        layer_linear ll[4];
        linears_of(&e->layer[l], lw, ll);
        for (int i = 0; i < 4; i++) plan_linear(e, ll[i].l, ll[i].parts, ll[i].nparts);
    }
    bump sizing = {NULL, 0};
    place_weights(e, &sizing);
    const size_t es = 2, tb = (size_t)e->tb_max, B = (size_t)opts->max_batch;
    const size_t qcols = (size_t)(d > inter ? d : inter), acols = (size_t)(3 * d > inter ? 3 * d : inter);
    const meta_layout ml = layout_for(e, e->tb_max);
    /* Everything below at once, against what the device has free: a model that does not fit
     * is refused with the numbers before anything is allocated (several engines share a GPU). */
    const size_t act = tb * d * es * 3 + tb * 3 * d * es + tb * inter * es + B * d * sizeof(float) +
                       (e->res32 ? 2 * tb * d * 4 : 0) + (q8 ? tb * qcols + 4 * tb * 4 : 0) +
                       (qdt == AKE_DT_I8 ? tb * acols * 4 : 0) + 2 * (size_t)ml.total * 4;
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess && sizing.off + act > free_b) {
        cuda_free(&e->base);
        return ake_errf(err, errlen, AKE_ENOMEM,
                        "%s: %s does not fit: it needs %.1f MiB (weights %.1f, activations for %d tokens %.1f) and "
                        "%.1f MiB of %.1f are free",
                        device, m->name, (sizing.off + act) / 1048576.0, sizing.off / 1048576.0, opts->max_tokens,
                        act / 1048576.0, free_b / 1048576.0, total_b / 1048576.0);
    }
    cudaGetLastError();
    if ((st = dev_alloc(&e->warena, sizing.off, "the weights", device, err, errlen)) ||
        (st = dev_alloc(&e->x, tb * d * es, "activations", device, err, errlen)) ||
        (st = dev_alloc(&e->tmp, tb * d * es, "activations", device, err, errlen)) ||
        (st = dev_alloc(&e->ctx, tb * d * es, "activations", device, err, errlen)) ||
        (st = dev_alloc(&e->qkv, tb * 3 * d * es, "activations", device, err, errlen)) ||
        (st = dev_alloc(&e->h, tb * inter * es, "activations", device, err, errlen)) ||
        (st = dev_alloc((void **)&e->out_d, B * d * sizeof(float), "the output", device, err, errlen)) ||
        (e->res32 && (st = dev_alloc((void **)&e->x32, tb * d * 4, "activations", device, err, errlen))) ||
        (e->res32 && (st = dev_alloc((void **)&e->tmp32, tb * d * 4, "activations", device, err, errlen))) ||
        (q8 && (st = dev_alloc((void **)&e->xq, tb * qcols, "activations", device, err, errlen))) ||
        (q8 && (st = dev_alloc((void **)&e->qs[0], tb * 4, "activation scales", device, err, errlen))) ||
        (q8 && (st = dev_alloc((void **)&e->qs[1], tb * 4, "activation scales", device, err, errlen))) ||
        (q8 && (st = dev_alloc((void **)&e->qz[0], tb * 4, "activation scales", device, err, errlen))) ||
        (q8 && (st = dev_alloc((void **)&e->qz[1], tb * 4, "activation scales", device, err, errlen))) ||
        (qdt == AKE_DT_I8 && (st = dev_alloc((void **)&e->acc, tb * acols * 4, "activations", device, err, errlen)))) {
        cuda_free(&e->base);
        return st;
    }
    for (int s = 0; s < 2; s++) {
        call_slot *sl = &e->slot[s];
        if ((st = dev_alloc((void **)&sl->meta_d, (size_t)ml.total * 4, "batch metadata", device, err, errlen))) {
            cuda_free(&e->base);
            return st;
        }
        if (cudaMallocHost((void **)&sl->meta_h, (size_t)ml.total * 4) != cudaSuccess ||
            cudaMallocHost((void **)&sl->out_h, B * d * sizeof(float)) != cudaSuccess) {
            cudaGetLastError();
            cuda_free(&e->base);
            return ake_errf(err, errlen, AKE_ENOMEM, "%s: cannot allocate pinned host staging", device);
        }
        CUDA_CHECK(cudaEventCreateWithFlags(&sl->up, cudaEventDisableTiming));
        CUDA_CHECK(cudaEventCreateWithFlags(&sl->done, cudaEventDisableTiming));
    }
    bump placing = {(char *)e->warena, 0};
    place_weights(e, &placing);
    AKE_ASSERT(placing.off == sizing.off);
    if ((st = fill_weights(e, err, errlen)) != AKE_OK) {
        cuda_free(&e->base);
        return st;
    }
    e->base.weight_bytes = sizing.off;
    *out = &e->base;
    return AKE_OK;
}
