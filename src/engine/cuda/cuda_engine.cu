/* CUDA backend behind engine.h: the encoder forward in FP16 or BF16 on one GPU.
 *
 * Per layer, over the T tokens of a packed batch padded up to a bucket of Tb rows:
 *   qkv = x Wqkv^T + bqkv          cuBLASLt, bias in the epilogue          [Tb, 3d]
 *   ctx = attention(qkv)           packed sequences, tensor cores           [Tb, d]
 *   tmp = ctx Wo^T + bo            cuBLASLt, bias epilogue                  [Tb, d]
 *   x   = LN(tmp + x)              fused residual + LayerNorm               [Tb, d]
 *   h   = gelu(x W1^T + b1)        cuBLASLt bias epilogue + exact GELU      [Tb, inter]
 *   tmp = h W2^T + b2              cuBLASLt, bias epilogue                  [Tb, d]
 *   x   = LN(tmp + x)
 * after the fused embeddings + LayerNorm, and before the fused pooling + L2 normalize.
 * bf16 keeps 8 bits of mantissa, too few for cosine >= 0.9999 against fp32 on 24 layers
 * (measured 0.99986 on bert-large), so bf16 engines keep the residual stream in fp32
 * (res32): the output projections write fp32 without bias, and the LayerNorm adds bias and
 * residual in fp32 and writes x twice (fp32 for the residual, bf16 for the next GEMM);
 * pooling reads the fp32 copy. fp16 (11 bits) needs none of it. AKE_CUDA_RES32=0/1 overrides.
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

typedef struct {
    void *wqkv, *bqkv;           /* [3d, d], [3d] */
    void *wo, *bo;               /* [d, d], [d] */
    void *w1, *b1;               /* [inter, d], [inter] */
    void *w2, *b2;               /* [d, inter], [d] */
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
    ake_dtype dt;                /* F16 or BF16 */
    cudaStream_t stream, copy;   /* compute; host-to-device uploads */
    ake_cuda_gemm *gemm;
    /* weights */
    void *warena;                /* device, dt elements */
    float *farena;               /* device, fp32 LayerNorm parameters */
    void *word, *pos, *type;     /* [vocab, d] [max_position, d] [types, d] */
    float *emb_g, *emb_b;        /* [d] */
    cuda_layer *layer;           /* owned [layers] */
    /* activations, sized once for tb_max rows */
    void *x, *tmp, *ctx;         /* [tb_max, d] */
    void *qkv;                   /* [tb_max, 3d] */
    void *h;                     /* [tb_max, inter] */
    float *out_d;                /* [max_batch, d] */
    float *x32, *tmp32;          /* [tb_max, d] fp32 residual stream and sublayer outputs (res32 only) */
    int32_t tb_max;
    call_slot slot[2];
    int next, oldest, pending;   /* slot ring: next to fill, oldest outstanding, outstanding count */
    graph_entry *graphs;         /* owned [graph_cap] */
    int ngraphs, graph_cap;
    bool use_graphs, gelu_tanh;
    bool res32;                  /* residual stream in fp32 (default for bf16, see forward()) */
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
    void *bufs[] = {e->warena, e->farena, e->x, e->tmp, e->ctx, e->qkv, e->h, e->out_d, e->x32, e->tmp32};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
    ake_cuda_gemm_free(e->gemm);
    if (e->stream) cudaStreamDestroy(e->stream);
    if (e->copy) cudaStreamDestroy(e->copy);
    free(e->layer);
    free(e);
}

/* Enqueues the whole forward for bucket tb reading the meta block of slot s. */
static void forward(cuda_engine *e, int s, int32_t tb) {
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
        ake_cuda_gemm_run(e->gemm, st, e->dt, tb, 3 * d, d, e->x, w->wqkv, w->bqkv, NULL, e->qkv, AKE_GEMM_BIAS);
        ake_cuda_attention(st, e->dt, e->ctx, e->qkv, meta + m.tiles, meta + 2, m.max_tiles, H, D);
        if (e->res32) {
            ake_cuda_gemm_run_f32out(e->gemm, st, e->dt, tb, d, d, e->ctx, w->wo, e->tmp32);
            ake_cuda_layernorm_f32(st, e->dt, e->x, e->x32, e->tmp32, w->bo32, e->x32, w->ln1_g, w->ln1_b, tb, d, eps);
        } else {
            ake_cuda_gemm_run(e->gemm, st, e->dt, tb, d, d, e->ctx, w->wo, w->bo, NULL, e->tmp, AKE_GEMM_BIAS);
            ake_cuda_layernorm(st, e->dt, e->x, e->tmp, e->x, w->ln1_g, w->ln1_b, tb, d, eps);
        }
        if (e->gelu_tanh) {
            ake_cuda_gemm_run(e->gemm, st, e->dt, tb, inter, d, e->x, w->w1, w->b1, NULL, e->h,
                              AKE_GEMM_BIAS_GELU_TANH);
        } else {
            ake_cuda_gemm_run(e->gemm, st, e->dt, tb, inter, d, e->x, w->w1, w->b1, NULL, e->h, AKE_GEMM_BIAS);
            ake_cuda_gelu(st, e->dt, e->h, (size_t)tb * inter);
        }
        if (e->res32) {
            ake_cuda_gemm_run_f32out(e->gemm, st, e->dt, tb, d, inter, e->h, w->w2, e->tmp32);
            ake_cuda_layernorm_f32(st, e->dt, e->x, e->x32, e->tmp32, w->b2_32, e->x32, w->ln2_g, w->ln2_b, tb, d, eps);
        } else {
            ake_cuda_gemm_run(e->gemm, st, e->dt, tb, d, inter, e->h, w->w2, w->b2, NULL, e->tmp, AKE_GEMM_BIAS);
            ake_cuda_layernorm(st, e->dt, e->x, e->tmp, e->x, w->ln2_g, w->ln2_b, tb, d, eps);
        }
    }
    ake_cuda_pool(st, e->res32 ? AKE_DT_F32 : e->dt, e->out_d, e->res32 ? (const void *)e->x32 : e->x, meta + m.cu,
                  meta, m.maxseq, d, (int)cfg->pooling, cfg->normalize);
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
    const int32_t T = cu[n], tb = bucket_of(T);
    AKE_ASSERT(tb <= e->tb_max);
    const meta_layout m = layout_for(e, tb);
    int32_t *mh = sl->meta_h;
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
    const size_t bytes = (size_t)(m.tiles + 4 * mh[2]) * sizeof *mh;
    if (e->pending == 1) {
        /* nothing else in flight: upload on the compute stream, no cross-stream event */
        CUDA_CHECK(cudaMemcpyAsync(sl->meta_d, mh, bytes, cudaMemcpyHostToDevice, e->stream));
    } else {
        /* the previous call still computes: upload beside it on the copy stream */
        CUDA_CHECK(cudaMemcpyAsync(sl->meta_d, mh, bytes, cudaMemcpyHostToDevice, e->copy));
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

static const ake_engine_ops cuda_ops = {"cuda", cuda_free, cuda_embed, cuda_submit, cuda_wait, cuda_hardware, NULL};

/* ---- creation ----------------------------------------------------------------------- */

static size_t align_elems(size_t n) { return (n + 127) & ~(size_t)127; } /* 256 bytes of 16-bit */

/* Copies tensor t to dst (device, dst_dt) through the device staging buffer, converting. */
static ake_status upload(const ake_tensor *t, void *dst, ake_dtype dst_dt, void *staging, char *err, size_t errlen) {
    cudaError_t ce = cudaMemcpy(staging, t->data, t->nbytes, cudaMemcpyHostToDevice);
    if (ce != cudaSuccess)
        return ake_errf(err, errlen, AKE_EIO, "uploading tensor %s: %s", t->name, cudaGetErrorString(ce));
    ake_cuda_convert(0, dst_dt, dst, t->dtype, staging, (size_t)t->numel); /* legacy stream: ordered with memcpy */
    return AKE_OK;
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
 * the kernels). Precisions: what this engine implements. */
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
    out->precisions = 1u << AKE_PREC_FP16 | 1u << AKE_PREC_BF16;
    out->default_precision = AKE_PREC_FP16;
    return AKE_OK;
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
    if (m->qdtype != AKE_DT_F32)
        return ake_errf(err, errlen, AKE_EUNSUPPORTED,
                        "%s holds %s weights; the CUDA engine runs float folders only (fp16 or bf16)", m->name,
                        ake_dtype_name(m->qdtype));
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, idx)); /* the capability query checked idx and 8.0+ */
    /* AKE_CUDA_SYNC=spin|yield|block: how a host thread waits for the GPU (the primary
     * context's scheduling flag; only before the context exists, else left as it is).
     * Unset: CUDA's auto (spins while there are more cores than active contexts). */
    const char *sync = getenv("AKE_CUDA_SYNC");
    if (sync && *sync) {
        unsigned flag = !strcmp(sync, "spin")    ? cudaDeviceScheduleSpin
                        : !strcmp(sync, "yield") ? cudaDeviceScheduleYield
                        : !strcmp(sync, "block") ? cudaDeviceScheduleBlockingSync
                                                 : cudaDeviceScheduleAuto;
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
    const char *env = getenv("AKE_CUDA_GRAPHS");
    e->use_graphs = !(env && !strcmp(env, "0"));
    env = getenv("AKE_CUDA_GELU");
    e->gelu_tanh = env && !strcmp(env, "tanh");
    /* cuBLASLt's first heuristic choice, cached per shape; AKE_CUDA_GEMM_TUNE=1 times the
     * candidates instead (measured slower on the H100 in most cells: dev/cuda/NOTES.md) */
    env = getenv("AKE_CUDA_GEMM_TUNE");
    const int autotune = env && !strcmp(env, "1");
    env = getenv("AKE_CUDA_RES32");
    e->res32 = env && *env ? strcmp(env, "0") != 0 : e->dt == AKE_DT_BF16;
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

    /* weight arena (dt) and LayerNorm arena (fp32) */
    const size_t es = 2, V = (size_t)cfg->vocab_size, P = (size_t)cfg->max_position, TY = (size_t)cfg->type_vocab_size;
    const size_t per_layer = align_elems((size_t)3 * d * d) + align_elems((size_t)3 * d) + align_elems((size_t)d * d) +
                             align_elems(d) + align_elems((size_t)inter * d) + align_elems(inter) +
                             align_elems((size_t)d * inter) + align_elems(d);
    const size_t welems = align_elems(V * d) + align_elems(P * d) + align_elems(TY * d) + per_layer * L;
    const size_t felems = align_elems(d) * (2 + 6 * (size_t)L);
    const size_t tb = (size_t)e->tb_max, B = (size_t)opts->max_batch;
    const meta_layout ml = layout_for(e, e->tb_max);
    if ((st = dev_alloc(&e->warena, welems * es, "the weights", device, err, errlen)) ||
        (st = dev_alloc((void **)&e->farena, felems * sizeof(float), "the LayerNorm weights", device, err, errlen)) ||
        (st = dev_alloc(&e->x, tb * d * es, "activations", device, err, errlen)) ||
        (st = dev_alloc(&e->tmp, tb * d * es, "activations", device, err, errlen)) ||
        (st = dev_alloc(&e->ctx, tb * d * es, "activations", device, err, errlen)) ||
        (st = dev_alloc(&e->qkv, tb * 3 * d * es, "activations", device, err, errlen)) ||
        (st = dev_alloc(&e->h, tb * inter * es, "activations", device, err, errlen)) ||
        (st = dev_alloc((void **)&e->out_d, B * d * sizeof(float), "the output", device, err, errlen)) ||
        (e->res32 && (st = dev_alloc((void **)&e->x32, tb * d * 4, "activations", device, err, errlen))) ||
        (e->res32 && (st = dev_alloc((void **)&e->tmp32, tb * d * 4, "activations", device, err, errlen)))) {
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

    /* upload + convert, tensor by tensor, through one staging buffer as large as the largest */
    size_t stage_bytes = 0;
    const ake_tensor *all[] = {m->word_emb, m->pos_emb, m->type_emb, m->emb_ln_g, m->emb_ln_b};
    for (size_t i = 0; i < 5; i++) stage_bytes = all[i]->nbytes > stage_bytes ? all[i]->nbytes : stage_bytes;
    for (int l = 0; l < L; l++) {
        const ake_layer_weights *lw = &m->layer[l];
        const ake_tensor *t[] = {lw->q.w, lw->k.w, lw->v.w, lw->o.w, lw->ff1.w, lw->ff2.w};
        for (size_t i = 0; i < 6; i++) stage_bytes = t[i]->nbytes > stage_bytes ? t[i]->nbytes : stage_bytes;
    }
    void *staging = NULL;
    if ((st = dev_alloc(&staging, stage_bytes, "weight staging", device, err, errlen))) {
        cuda_free(&e->base);
        return st;
    }
    char *wp = (char *)e->warena;
    float *fp = e->farena;
    auto take = [&](size_t elems) {
        void *p = wp;
        wp += align_elems(elems) * es;
        return p;
    };
    auto takef = [&](size_t elems) {
        float *p = fp;
        fp += align_elems(elems);
        return p;
    };
    const ake_dtype dt = e->dt;
    e->word = take(V * d);
    e->pos = take(P * d);
    e->type = take(TY * d);
    e->emb_g = takef(d);
    e->emb_b = takef(d);
    st = upload(m->word_emb, e->word, dt, staging, err, errlen);
    if (!st) st = upload(m->pos_emb, e->pos, dt, staging, err, errlen);
    if (!st) st = upload(m->type_emb, e->type, dt, staging, err, errlen);
    if (!st) st = upload(m->emb_ln_g, e->emb_g, AKE_DT_F32, staging, err, errlen);
    if (!st) st = upload(m->emb_ln_b, e->emb_b, AKE_DT_F32, staging, err, errlen);
    for (int l = 0; l < L && !st; l++) {
        const ake_layer_weights *lw = &m->layer[l];
        cuda_layer *w = &e->layer[l];
        w->wqkv = take((size_t)3 * d * d);
        w->bqkv = take((size_t)3 * d);
        w->wo = take((size_t)d * d);
        w->bo = take(d);
        w->w1 = take((size_t)inter * d);
        w->b1 = take(inter);
        w->w2 = take((size_t)d * inter);
        w->b2 = take(d);
        w->ln1_g = takef(d);
        w->ln1_b = takef(d);
        w->ln2_g = takef(d);
        w->ln2_b = takef(d);
        w->bo32 = takef(d);
        w->b2_32 = takef(d);
        const size_t dd = (size_t)d * d * es;
        struct { const ake_tensor *t; void *dst; ake_dtype to; } jobs[] = {
            {lw->q.w, w->wqkv, dt}, {lw->k.w, (char *)w->wqkv + dd, dt}, {lw->v.w, (char *)w->wqkv + 2 * dd, dt},
            {lw->q.b, w->bqkv, dt}, {lw->k.b, (char *)w->bqkv + d * es, dt}, {lw->v.b, (char *)w->bqkv + 2 * d * es, dt},
            {lw->o.w, w->wo, dt},   {lw->o.b, w->bo, dt},
            {lw->ff1.w, w->w1, dt}, {lw->ff1.b, w->b1, dt},
            {lw->ff2.w, w->w2, dt}, {lw->ff2.b, w->b2, dt},
            {lw->ln1_g, w->ln1_g, AKE_DT_F32}, {lw->ln1_b, w->ln1_b, AKE_DT_F32},
            {lw->ln2_g, w->ln2_g, AKE_DT_F32}, {lw->ln2_b, w->ln2_b, AKE_DT_F32},
            {lw->o.b, w->bo32, AKE_DT_F32},    {lw->ff2.b, w->b2_32, AKE_DT_F32}};
        for (size_t i = 0; i < sizeof jobs / sizeof jobs[0] && !st; i++)
            st = upload(jobs[i].t, jobs[i].dst, jobs[i].to, staging, err, errlen);
    }
    AKE_ASSERT(wp <= (char *)e->warena + welems * es && fp <= e->farena + felems);
    CUDA_CHECK(cudaDeviceSynchronize());
    cudaFree(staging);
    e->base.weight_bytes = welems * es + felems * sizeof(float);
    if (st) {
        cuda_free(&e->base);
        return st;
    }
    *out = &e->base;
    return AKE_OK;
}
