/* The student on a CUDA GPU: trainer_cuda.h. The same sequence of operations as
 * student_cpu.inc (its reference in tests/gpu), with the GEMMs through cuBLASLt
 * (ake_cuda_gemm_train) and the rest through train_kernels.cuh. Biases are added by the
 * kernel that reads a GEMM's output (attention adds bqkv, LayerNorm bo and b2, GELU b1), so
 * every GEMM is a plain product. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/cuda/train_common.cuh"

extern "C" {
#include "engine/cuda/gemm.cuh"
#include "train/cuda/train_kernels.cuh"
#include "train/trainer_cuda.h"
}

typedef struct {
    float *qkv;                /* [T, 3C] x Wqkv^T (no bias) */
    float *lse;                /* [T, NH] */
    float *ctx;                /* [T, C] attention output */
    void *ctx_lo;
    float *attn_o;             /* [T, C] ctx Wo^T */
    float *res1, *ln1_mean, *ln1_rstd;
    float *x1;                 /* [T, C] LN1 output */
    void *x1_lo;
    float *ff;                 /* [T, I] x1 W1^T, then + b1 (GELU's input) */
    void *act_lo;              /* [T, I] GELU output */
    float *ff2;                /* [T, C] act W2^T */
    float *res2, *ln2_mean, *ln2_rstd;
    float *mse_part;           /* [ake_trk_mse_blocks(max_tokens)] */
} layer_acts;

struct ake_train_cuda {
    const ake_student_layout *L;
    ake_dtype dt;
    size_t dt_size;
    int device;
    cudaStream_t s;
    ake_cuda_gemm *gemm;
    int32_t max_tokens, max_batch, max_len;
    float *params, *grads, *m, *v; /* [numel] */
    void *p_lo;                    /* [numel] in dt (params itself for F32) */
    uint8_t *decay;                /* [numel] */
    float *word;                   /* [vocab, C] */
    int32_t *ids, *cu;             /* [max_tokens], [max_batch + 1] */
    float *target;                 /* [max_batch, C] */
    float **hidden;                /* [J] of [max_tokens, C] */
    float *emb_sum, *emb_mean, *emb_rstd;
    float **h;                     /* [J + 1] of [T, C] */
    void **h_lo;
    layer_acts *layer;             /* [J] */
    float *dh, *dres, *dctx, *dff, *dqkv, *scratch, *colsum_part;
    void *dh_lo, *dres_lo, *dff_lo, *dqkv_lo;
    float *emb_out, *emb_norm;     /* [max_batch, C], [max_batch]: the head's output and norms */
    float *demb;                   /* [max_batch, C] d loss / d emb */
    float *loss_part, *closs_part; /* [max_batch] each: the MSE's and the contrastive term's per sequence */
    float *logits;                 /* [max_batch, max_batch] the contrastive term's softmax */
    double *norm_part, *norm;      /* [256], [1] */
    float *clip;                   /* [1] */
    float *host_parts;             /* pinned: loss parts, contrastive parts, then each layer's mse parts */
    double host_norm;
    float max_grad_norm;
    /* every cudaMalloc'd pointer, for free */
    void *allocs[256];
    int n_allocs;
};

static bool dmalloc(ake_train_cuda *tc, void **p, size_t bytes) {
    AKE_ASSERT(tc->n_allocs < (int)(sizeof tc->allocs / sizeof tc->allocs[0]));
    if (cudaMalloc(p, bytes ? bytes : 16) != cudaSuccess) return false;
    tc->allocs[tc->n_allocs++] = *p;
    return true;
}

/* An fp32 buffer and its compute-type copy: the same memory when dt is F32. */
static bool dmalloc_lo(ake_train_cuda *tc, void **lo, float *f32, size_t count) {
    if (tc->dt == AKE_DT_F32) {
        *lo = f32;
        return true;
    }
    return dmalloc(tc, lo, count * tc->dt_size);
}

extern "C" void ake_train_cuda_free(ake_train_cuda *tc) {
    if (!tc) return;
    if (tc->s) cudaStreamSynchronize(tc->s);
    for (int i = 0; i < tc->n_allocs; i++) cudaFree(tc->allocs[i]);
    cudaFreeHost(tc->host_parts);
    ake_cuda_gemm_free(tc->gemm);
    if (tc->s) cudaStreamDestroy(tc->s);
    free(tc->hidden);
    free(tc->h);
    free(tc->h_lo);
    free(tc->layer);
    free(tc);
}

static int parse_device(const char *device) {
    if (strcmp(device, "cuda") == 0) return 0;
    if (strncmp(device, "cuda:", 5) != 0) return -1;
    char *end;
    const long v = strtol(device + 5, &end, 10);
    return *end || end == device + 5 || v < 0 || v > 1024 ? -1 : (int)v;
}

extern "C" ake_status ake_train_cuda_create(const ake_student_layout *L, const char *device, ake_dtype dt,
                                            int32_t max_tokens, int32_t max_batch, int32_t max_len,
                                            const float *params, const float *word, ake_train_cuda **out, char *err,
                                            size_t errlen) {
    *out = NULL;
    const int dev = parse_device(device);
    int count = 0;
    if (dev < 0) return ake_errf(err, errlen, AKE_EINVAL, "device '%s': cuda or cuda:N", device);
    if (cudaGetDeviceCount(&count) != cudaSuccess || dev >= count)
        return ake_errf(err, errlen, AKE_EUNSUPPORTED, "device %s: this machine has %d CUDA GPU(s)", device, count);
    if (dt != AKE_DT_F32 && dt != AKE_DT_BF16 && dt != AKE_DT_F16)
        return ake_errf(err, errlen, AKE_EINVAL, "training computes in f32, bf16 or f16, not %s", ake_dtype_name(dt));
    CUDA_CHECK(cudaSetDevice(dev));
    const ake_model_config *cfg = &L->cfg;
    int optin = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    const size_t smem = ake_trk_attention_smem(max_len, cfg->heads, cfg->hidden);
    if (smem > (size_t)optin)
        return ake_errf(err, errlen, AKE_EUNSUPPORTED,
                        "sequences of %d tokens need %zu KiB of shared memory in the attention kernels; this GPU "
                        "gives %d KiB: use a smaller --max-len",
                        max_len, smem >> 10, optin >> 10);
    if ((cfg->hidden / cfg->heads) % 32 != 0 && cfg->hidden / cfg->heads > 32)
        return ake_errf(err, errlen, AKE_EUNSUPPORTED, "head size %d", cfg->hidden / cfg->heads);
    ake_train_cuda *tc = (ake_train_cuda *)calloc(1, sizeof *tc);
    if (!tc) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory");
    tc->L = L;
    tc->dt = dt;
    tc->dt_size = ake_dtype_size(dt);
    tc->device = dev;
    tc->max_tokens = max_tokens;
    tc->max_batch = max_batch;
    tc->max_len = max_len;
    const int32_t J = cfg->layers;
    const size_t T = (size_t)max_tokens, B = (size_t)max_batch, C = (size_t)cfg->hidden, I = (size_t)cfg->intermediate,
                 NH = (size_t)cfg->heads, numel = (size_t)L->numel;
    tc->hidden = (float **)calloc((size_t)J, sizeof *tc->hidden);
    tc->h = (float **)calloc((size_t)J + 1, sizeof *tc->h);
    tc->h_lo = (void **)calloc((size_t)J + 1, sizeof *tc->h_lo);
    tc->layer = (layer_acts *)calloc((size_t)J, sizeof *tc->layer);
    ake_status rc = AKE_ENOMEM;
    if (!tc->hidden || !tc->h || !tc->h_lo || !tc->layer) goto fail;
    if (cudaStreamCreateWithFlags(&tc->s, cudaStreamNonBlocking) != cudaSuccess) goto fail;
    if ((rc = ake_cuda_gemm_create(&tc->gemm, 0, err, errlen)) != AKE_OK) goto fail;
    rc = AKE_ENOMEM;
#define F32(p, count) dmalloc(tc, (void **)&(p), (count) * sizeof(float))
#define LO(lo, f32, count) dmalloc_lo(tc, &(lo), (f32), (count))
    if (!F32(tc->params, numel) || !F32(tc->grads, numel) || !F32(tc->m, numel) || !F32(tc->v, numel) ||
        !LO(tc->p_lo, tc->params, numel) || !dmalloc(tc, (void **)&tc->decay, numel) ||
        !F32(tc->word, (size_t)cfg->vocab_size * C) || !dmalloc(tc, (void **)&tc->ids, T * sizeof(int32_t)) ||
        !dmalloc(tc, (void **)&tc->cu, (B + 1) * sizeof(int32_t)) || !F32(tc->target, B * C) ||
        !F32(tc->emb_sum, T * C) || !F32(tc->emb_mean, T) || !F32(tc->emb_rstd, T) || !F32(tc->dh, T * C) ||
        !F32(tc->dres, T * C) || !F32(tc->dctx, T * C) || !F32(tc->dff, T * I) || !F32(tc->dqkv, T * 3 * C) ||
        !F32(tc->scratch, T * C) || !F32(tc->colsum_part, ake_trk_colsum_scratch((int32_t)(3 * C > I ? 3 * C : I))) ||
        !LO(tc->dh_lo, tc->dh, T * C) || !LO(tc->dres_lo, tc->dres, T * C) || !LO(tc->dff_lo, tc->dff, T * I) ||
        !LO(tc->dqkv_lo, tc->dqkv, T * 3 * C) || !F32(tc->emb_out, B * C) || !F32(tc->loss_part, B) ||
        !F32(tc->emb_norm, B) || !F32(tc->demb, B * C) || !F32(tc->closs_part, B) || !F32(tc->logits, B * B) ||
        !dmalloc(tc, (void **)&tc->norm_part, 256 * sizeof(double)) ||
        !dmalloc(tc, (void **)&tc->norm, sizeof(double)) || !F32(tc->clip, 1))
        goto fail;
    for (int32_t j = 0; j <= J; j++)
        if (!F32(tc->h[j], T * C) || !LO(tc->h_lo[j], tc->h[j], T * C)) goto fail;
    for (int32_t j = 0; j < J; j++) {
        layer_acts *a = &tc->layer[j];
        if (!F32(a->qkv, T * 3 * C) || !F32(a->lse, T * NH) || !F32(a->ctx, T * C) || !LO(a->ctx_lo, a->ctx, T * C) ||
            !F32(a->attn_o, T * C) || !F32(a->res1, T * C) || !F32(a->ln1_mean, T) || !F32(a->ln1_rstd, T) ||
            !F32(a->x1, T * C) || !LO(a->x1_lo, a->x1, T * C) || !F32(a->ff, T * I) ||
            !dmalloc(tc, &a->act_lo, T * I * tc->dt_size) || !F32(a->ff2, T * C) || !F32(a->res2, T * C) ||
            !F32(a->ln2_mean, T) || !F32(a->ln2_rstd, T) || !F32(a->mse_part, (size_t)ake_trk_mse_blocks(max_tokens)) ||
            !F32(tc->hidden[j], T * C))
            goto fail;
    }
#undef F32
#undef LO
    if (cudaMallocHost((void **)&tc->host_parts, (2 * B + (size_t)J * ake_trk_mse_blocks(max_tokens)) * sizeof(float)) !=
        cudaSuccess)
        goto fail;
    {
        uint8_t *decay = (uint8_t *)malloc(numel);
        if (!decay) goto fail;
        for (int32_t k = 0; k < L->n_params; k++)
            memset(decay + L->param[k].offset, L->param[k].decay, (size_t)(L->param[k].rows * L->param[k].cols));
        CUDA_CHECK(cudaMemcpy(tc->decay, decay, numel, cudaMemcpyHostToDevice));
        free(decay);
    }
    CUDA_CHECK(cudaMemcpy(tc->word, word, (size_t)cfg->vocab_size * C * sizeof(float), cudaMemcpyHostToDevice));
    ake_train_cuda_upload(tc, params, NULL, NULL);
    CUDA_CHECK(cudaMemset(tc->m, 0, numel * sizeof(float)));
    CUDA_CHECK(cudaMemset(tc->v, 0, numel * sizeof(float)));
    *out = tc;
    return AKE_OK;
fail:
    ake_train_cuda_free(tc);
    return rc == AKE_OK || rc == AKE_ENOMEM
               ? ake_errf(err, errlen, AKE_ENOMEM, "out of GPU memory for a trainer of %d tokens per batch", max_tokens)
               : rc;
}

extern "C" void ake_train_cuda_upload(ake_train_cuda *tc, const float *params, const float *m, const float *v) {
    const size_t bytes = (size_t)tc->L->numel * sizeof(float);
    CUDA_CHECK(cudaSetDevice(tc->device));
    if (params) {
        CUDA_CHECK(cudaMemcpy(tc->params, params, bytes, cudaMemcpyHostToDevice));
        if (tc->p_lo != tc->params) ake_trk_convert(tc->s, tc->dt, tc->p_lo, tc->params, tc->L->numel);
    }
    if (m) CUDA_CHECK(cudaMemcpy(tc->m, m, bytes, cudaMemcpyHostToDevice));
    if (v) CUDA_CHECK(cudaMemcpy(tc->v, v, bytes, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaStreamSynchronize(tc->s));
}

extern "C" void ake_train_cuda_download(ake_train_cuda *tc, float *params, float *m, float *v) {
    const size_t bytes = (size_t)tc->L->numel * sizeof(float);
    CUDA_CHECK(cudaSetDevice(tc->device));
    CUDA_CHECK(cudaStreamSynchronize(tc->s));
    if (params) CUDA_CHECK(cudaMemcpy(params, tc->params, bytes, cudaMemcpyDeviceToHost));
    if (m) CUDA_CHECK(cudaMemcpy(m, tc->m, bytes, cudaMemcpyDeviceToHost));
    if (v) CUDA_CHECK(cudaMemcpy(v, tc->v, bytes, cudaMemcpyDeviceToHost));
}

/* Parameter k of student layer j (or, with j < 0, embedding parameter k): fp32 and its weight copy. */
#define P(k) (tc->params + L->param[k].offset)
#define G(k) (tc->grads + L->param[k].offset)
#define LP(j, k) (tc->params + L->param[ake_student_pidx(j, k)].offset)
#define LG(j, k) (tc->grads + L->param[ake_student_pidx(j, k)].offset)
#define LW(j, k) ((const char *)tc->p_lo + (size_t)L->param[ake_student_pidx(j, k)].offset * tc->dt_size)

static ake_status upload_batch(ake_train_cuda *tc, const int32_t *ids, const int32_t *cu, int32_t n,
                               int32_t *max_len_out, char *err, size_t errlen) {
    if (n < 1 || n > tc->max_batch || cu[0] != 0 || cu[n] > tc->max_tokens)
        return ake_errf(err, errlen, AKE_EINVAL, "batch of %d sequences and %d tokens is over the trainer's limits",
                        n, n > 0 ? cu[n] : 0);
    int32_t longest = 0;
    for (int32_t i = 0; i < n; i++) {
        const int32_t len = cu[i + 1] - cu[i];
        if (len < 1 || len > tc->max_len || len > tc->L->cfg.max_position)
            return ake_errf(err, errlen, AKE_EINVAL, "sequence %d has %d tokens (1 to %d)", i, len, tc->max_len);
        if (len > longest) longest = len;
    }
    for (int32_t t = 0; t < cu[n]; t++)
        if (ids[t] < 0 || ids[t] >= tc->L->cfg.vocab_size)
            return ake_errf(err, errlen, AKE_EINVAL, "token id %d outside the vocabulary", ids[t]);
    CUDA_CHECK(cudaMemcpyAsync(tc->ids, ids, (size_t)cu[n] * sizeof(int32_t), cudaMemcpyHostToDevice, tc->s));
    CUDA_CHECK(cudaMemcpyAsync(tc->cu, cu, ((size_t)n + 1) * sizeof(int32_t), cudaMemcpyHostToDevice, tc->s));
    *max_len_out = longest;
    return AKE_OK;
}

static void forward(ake_train_cuda *tc, int32_t n, int32_t T) {
    const ake_student_layout *L = tc->L;
    const int32_t C = L->cfg.hidden, I = L->cfg.intermediate, NH = L->cfg.heads;
    const float eps = L->cfg.layer_norm_eps;
    const ake_dtype dt = tc->dt;
    cudaStream_t s = tc->s;
    ake_trk_embed_forward(s, tc->emb_sum, tc->ids, tc->cu, n, T, tc->word, P(AKE_SP_POS), P(AKE_SP_TYPE), C);
    ake_trk_layernorm_forward(s, dt, tc->h[0], tc->h_lo[0], tc->emb_mean, tc->emb_rstd, tc->emb_sum, tc->emb_sum, NULL,
                              NULL, P(AKE_SP_EMB_LN_G), P(AKE_SP_EMB_LN_B), T, C, eps);
    for (int32_t j = 0; j < L->cfg.layers; j++) {
        layer_acts *a = &tc->layer[j];
        ake_cuda_gemm_train(tc->gemm, s, 'N', 'T', T, 3 * C, C, dt, tc->h_lo[j], LW(j, AKE_SP_WQKV), 0, a->qkv);
        ake_trk_attention_forward(s, dt, a->ctx, a->ctx_lo, a->lse, a->qkv, LP(j, AKE_SP_BQKV), tc->cu, n, tc->max_len,
                                  NH, C);
        ake_cuda_gemm_train(tc->gemm, s, 'N', 'T', T, C, C, dt, a->ctx_lo, LW(j, AKE_SP_WO), 0, a->attn_o);
        ake_trk_layernorm_forward(s, dt, a->x1, a->x1_lo, a->ln1_mean, a->ln1_rstd, a->res1, tc->h[j], a->attn_o,
                                  LP(j, AKE_SP_BO), LP(j, AKE_SP_LN1_G), LP(j, AKE_SP_LN1_B), T, C, eps);
        ake_cuda_gemm_train(tc->gemm, s, 'N', 'T', T, I, C, dt, a->x1_lo, LW(j, AKE_SP_W1), 0, a->ff);
        ake_trk_gelu_forward(s, dt, a->ff, a->act_lo, LP(j, AKE_SP_B1), T, I);
        ake_cuda_gemm_train(tc->gemm, s, 'N', 'T', T, C, I, dt, a->act_lo, LW(j, AKE_SP_W2), 0, a->ff2);
        ake_trk_layernorm_forward(s, dt, tc->h[j + 1], tc->h_lo[j + 1], a->ln2_mean, a->ln2_rstd, a->res2, a->x1,
                                  a->ff2, LP(j, AKE_SP_B2), LP(j, AKE_SP_LN2_G), LP(j, AKE_SP_LN2_B), T, C, eps);
    }
}

static void backward(ake_train_cuda *tc, int32_t n, int32_t T, int32_t longest, double hidden_weight) {
    const int pool = tc->L->cfg.pooling == AKE_POOL_CLS, normalize = tc->L->cfg.normalize;
    const ake_student_layout *L = tc->L;
    const int32_t C = L->cfg.hidden, I = L->cfg.intermediate, NH = L->cfg.heads, J = L->cfg.layers;
    const ake_dtype dt = tc->dt;
    cudaStream_t s = tc->s;
    float *cp = tc->colsum_part;
    CUDA_CHECK(cudaMemsetAsync(tc->grads, 0, (size_t)L->numel * sizeof(float), s));
    ake_trk_head_backward(s, tc->dh, tc->demb, tc->emb_out, tc->emb_norm, tc->cu, n, C, pool, normalize);
    for (int32_t j = J - 1; j >= 0; j--) {
        layer_acts *a = &tc->layer[j];
        if (hidden_weight != 0)
            ake_trk_hidden_mse(s, a->mse_part, tc->dh, tc->h[j + 1], tc->hidden[j], T, C, (float)(hidden_weight / J));
        ake_trk_layernorm_backward(s, dt, tc->dres, tc->dres_lo, tc->scratch, tc->dh, a->res2, LP(j, AKE_SP_LN2_G),
                                   a->ln2_mean, a->ln2_rstd, T, C, 0);
        ake_trk_colsum(s, LG(j, AKE_SP_LN2_G), tc->scratch, T, C, cp);
        ake_trk_colsum(s, LG(j, AKE_SP_LN2_B), tc->dh, T, C, cp);
        ake_trk_colsum(s, LG(j, AKE_SP_B2), tc->dres, T, C, cp);
        ake_cuda_gemm_train(tc->gemm, s, 'T', 'N', C, I, T, dt, tc->dres_lo, a->act_lo, 1, LG(j, AKE_SP_W2));
        ake_cuda_gemm_train(tc->gemm, s, 'N', 'N', T, I, C, dt, tc->dres_lo, LW(j, AKE_SP_W2), 0, tc->dff);
        ake_trk_gelu_backward(s, dt, tc->dff, tc->dff_lo, a->ff, (int64_t)T * I);
        ake_trk_colsum(s, LG(j, AKE_SP_B1), tc->dff, T, I, cp);
        ake_cuda_gemm_train(tc->gemm, s, 'T', 'N', I, C, T, dt, tc->dff_lo, a->x1_lo, 1, LG(j, AKE_SP_W1));
        ake_cuda_gemm_train(tc->gemm, s, 'N', 'N', T, C, I, dt, tc->dff_lo, LW(j, AKE_SP_W1), 1, tc->dres);
        ake_trk_layernorm_backward(s, dt, tc->dh, tc->dh_lo, tc->scratch, tc->dres, a->res1, LP(j, AKE_SP_LN1_G),
                                   a->ln1_mean, a->ln1_rstd, T, C, 0);
        ake_trk_colsum(s, LG(j, AKE_SP_LN1_G), tc->scratch, T, C, cp);
        ake_trk_colsum(s, LG(j, AKE_SP_LN1_B), tc->dres, T, C, cp);
        ake_trk_colsum(s, LG(j, AKE_SP_BO), tc->dh, T, C, cp);
        ake_cuda_gemm_train(tc->gemm, s, 'T', 'N', C, C, T, dt, tc->dh_lo, a->ctx_lo, 1, LG(j, AKE_SP_WO));
        ake_cuda_gemm_train(tc->gemm, s, 'N', 'N', T, C, C, dt, tc->dh_lo, LW(j, AKE_SP_WO), 0, tc->dctx);
        ake_trk_attention_backward(s, dt, tc->dqkv, tc->dqkv_lo, tc->dctx, a->qkv, LP(j, AKE_SP_BQKV), a->ctx, a->lse,
                                   tc->cu, n, tc->max_len, NH, C);
        ake_trk_colsum(s, LG(j, AKE_SP_BQKV), tc->dqkv, T, 3 * C, cp);
        ake_cuda_gemm_train(tc->gemm, s, 'T', 'N', 3 * C, C, T, dt, tc->dqkv_lo, tc->h_lo[j], 1, LG(j, AKE_SP_WQKV));
        ake_cuda_gemm_train(tc->gemm, s, 'N', 'N', T, C, 3 * C, dt, tc->dqkv_lo, LW(j, AKE_SP_WQKV), 1, tc->dh);
    }
    ake_trk_layernorm_backward(s, dt, tc->dres, NULL, tc->scratch, tc->dh, tc->emb_sum, P(AKE_SP_EMB_LN_G),
                               tc->emb_mean, tc->emb_rstd, T, C, 0);
    ake_trk_colsum(s, G(AKE_SP_EMB_LN_G), tc->scratch, T, C, cp);
    ake_trk_colsum(s, G(AKE_SP_EMB_LN_B), tc->dh, T, C, cp);
    ake_trk_embed_backward_pos(s, G(AKE_SP_POS), tc->dres, tc->cu, n, longest, C);
    ake_trk_colsum(s, G(AKE_SP_TYPE), tc->dres, T, C, cp); /* row 0: every token has type 0 */
}

static void download_f32(cudaStream_t s, float *host, const float *dev, int64_t count) {
    CUDA_CHECK(cudaMemcpyAsync(host, dev, (size_t)count * sizeof(float), cudaMemcpyDeviceToHost, s));
}

static double sum_f64(const float *v, int64_t count) {
    double t = 0;
    for (int64_t i = 0; i < count; i++) t += v[i];
    return t;
}

extern "C" ake_status ake_train_cuda_grads(ake_train_cuda *tc, const int32_t *ids, const int32_t *cu, int32_t n,
                                           const float *target, const float *const *hidden_target,
                                           const ake_loss_weights *w, float max_grad_norm, double *loss,
                                           double *grad_norm, float *grads, char *err, size_t errlen) {
    const ake_student_layout *L = tc->L;
    const int32_t C = L->cfg.hidden, J = L->cfg.layers, T = cu[n > 0 ? n : 0];
    const int pool = L->cfg.pooling == AKE_POOL_CLS, normalize = L->cfg.normalize;
    const double hidden_weight = w->hidden;
    int32_t longest = 0;
    CUDA_CHECK(cudaSetDevice(tc->device));
    ake_status rc = upload_batch(tc, ids, cu, n, &longest, err, errlen);
    if (rc != AKE_OK) return rc;
    cudaStream_t s = tc->s;
    CUDA_CHECK(cudaMemcpyAsync(tc->target, target, (size_t)n * C * sizeof(float), cudaMemcpyHostToDevice, s));
    if (hidden_weight != 0)
        for (int32_t j = 0; j < J; j++)
            CUDA_CHECK(cudaMemcpyAsync(tc->hidden[j], hidden_target[j], (size_t)T * C * sizeof(float),
                                       cudaMemcpyHostToDevice, s));
    forward(tc, n, T);
    ake_trk_head_forward(s, tc->emb_out, tc->emb_norm, tc->h[J], tc->cu, n, C, pool, normalize);
    ake_trk_emb_mse(s, tc->loss_part, tc->demb, tc->emb_out, tc->target, n, C);
    if (w->contrastive != 0) { /* logits = emb target^T; demb += weight (softmax - I) target / (n tau) */
        ake_cuda_gemm_train(tc->gemm, s, 'N', 'T', n, n, C, AKE_DT_F32, tc->emb_out, tc->target, 0, tc->logits);
        ake_trk_infonce_softmax(s, tc->logits, tc->closs_part, n, (float)w->temperature, (float)w->contrastive);
        ake_cuda_gemm_train(tc->gemm, s, 'N', 'N', n, C, n, AKE_DT_F32, tc->logits, tc->target, 1, tc->demb);
    }
    backward(tc, n, T, longest, hidden_weight);
    ake_trk_grad_norm(s, tc->grads, L->numel, tc->norm_part, tc->norm, tc->clip, max_grad_norm);
    /* the loss parts (per sentence; per block of the hidden-state MSE) are summed on the host
     * in a fixed order: the loss is deterministic without atomics */
    const int32_t mb = ake_trk_mse_blocks(T);
    float *hp = tc->host_parts, *hc = hp + n, *hh = hp + 2 * n;
    download_f32(s, hp, tc->loss_part, n);
    if (w->contrastive != 0) download_f32(s, hc, tc->closs_part, n);
    for (int32_t j = 0; hidden_weight != 0 && j < J; j++) download_f32(s, hh + (size_t)j * mb, tc->layer[j].mse_part, mb);
    CUDA_CHECK(cudaMemcpyAsync(&tc->host_norm, tc->norm, sizeof(double), cudaMemcpyDeviceToHost, s));
    if (grads) download_f32(s, grads, tc->grads, L->numel);
    CUDA_CHECK(cudaStreamSynchronize(s));
    const double embed = sum_f64(hp, n), contrast = w->contrastive != 0 ? sum_f64(hc, n) : 0.0;
    double hid = 0;
    for (int32_t j = 0; hidden_weight != 0 && j < J; j++) hid += sum_f64(hh + (size_t)j * mb, mb) / ((double)T * C);
    *loss = embed / ((double)n * C) + (hidden_weight != 0 ? hidden_weight / J * hid : 0.0) +
            (w->contrastive != 0 ? w->contrastive * contrast / n : 0.0);
    *grad_norm = tc->host_norm;
    return AKE_OK;
}

extern "C" void ake_train_cuda_update(ake_train_cuda *tc, const ake_optim_config *o, double lr, int64_t t) {
    /* the constants of ake_adamw_update_f32, computed the same way */
    const float keep = (float)(1 - lr * o->weight_decay);
    const float step_size = (float)(lr / (1 - pow(o->beta1, (double)t)));
    const float bc2_sqrt = (float)sqrt(1 - pow(o->beta2, (double)t));
    CUDA_CHECK(cudaSetDevice(tc->device));
    ake_trk_adamw(tc->s, tc->dt, tc->params, tc->p_lo == tc->params ? NULL : tc->p_lo, tc->grads, tc->m, tc->v,
                  tc->decay, tc->L->numel, tc->clip, keep, (float)o->beta1, (float)o->beta2, (float)o->eps, step_size,
                  bc2_sqrt);
}

extern "C" ake_status ake_train_cuda_embed(ake_train_cuda *tc, const int32_t *ids, const int32_t *cu, int32_t n,
                                           float *out, char *err, size_t errlen) {
    const ake_student_layout *L = tc->L;
    int32_t longest = 0;
    CUDA_CHECK(cudaSetDevice(tc->device));
    ake_status rc = upload_batch(tc, ids, cu, n, &longest, err, errlen);
    if (rc != AKE_OK) return rc;
    forward(tc, n, cu[n]);
    ake_trk_head_forward(tc->s, tc->emb_out, tc->emb_norm, tc->h[L->cfg.layers], tc->cu, n, L->cfg.hidden,
                         L->cfg.pooling == AKE_POOL_CLS, L->cfg.normalize);
    CUDA_CHECK(cudaMemcpyAsync(out, tc->emb_out, (size_t)n * L->cfg.hidden * sizeof(float), cudaMemcpyDeviceToHost,
                               tc->s));
    CUDA_CHECK(cudaStreamSynchronize(tc->s));
    return AKE_OK;
}
