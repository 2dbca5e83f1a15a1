/* Synthetic model folders; see synth.h for the layout, the architectures and the
 * weight distributions. */
#include "model/synth.h"

#include "base/fs.h"
#include "model/folder.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    int layers, hidden, heads, inter;
    ake_pooling pooling;
    bool normalize;
} synth_arch;

static const synth_arch archs[] = {
    {"bert-base", 12, 768, 12, 3072, AKE_POOL_MEAN, false},
    {"bert-large", 24, 1024, 16, 4096, AKE_POOL_CLS, true},
    {"bge-small", 12, 384, 12, 1536, AKE_POOL_CLS, true},
    {"minilm-l6", 6, 384, 12, 1536, AKE_POOL_MEAN, true},
    {"minilm-l3", 3, 384, 12, 1536, AKE_POOL_MEAN, true},
};
#define N_ARCHS ((int)(sizeof archs / sizeof archs[0]))

#define SYNTH_VOCAB 30522
#define SYNTH_MAX_POS 512
#define SYNTH_TYPE_VOCAB 2
#define SYNTH_LN_EPS 1e-12
#define SYNTH_MAX_SEQ 512

const char *ake_model_synth_archs(void) { return "bert-base, bert-large, bge-small, minilm-l6, minilm-l3"; }

static const synth_arch *find_arch(const char *name, char *err, size_t errlen, ake_status *rc) {
    for (int i = 0; name && i < N_ARCHS; i++)
        if (strcmp(archs[i].name, name) == 0) return &archs[i];
    *rc = ake_errf(err, errlen, AKE_EINVAL, "unknown synthetic model arch '%s'; valid: %s.", name ? name : "(null)",
                   ake_model_synth_archs());
    return NULL;
}

ake_status ake_model_synth_config(const char *arch, ake_model_config *cfg, char *err, size_t errlen) {
    ake_status rc = AKE_OK;
    const synth_arch *a = find_arch(arch, err, errlen, &rc);
    if (!a) return rc;
    AKE_ASSERT(cfg);
    *cfg = (ake_model_config){
        .vocab_size = SYNTH_VOCAB,
        .hidden = a->hidden,
        .layers = a->layers,
        .heads = a->heads,
        .intermediate = a->inter,
        .max_position = SYNTH_MAX_POS,
        .type_vocab_size = SYNTH_TYPE_VOCAB,
        .layer_norm_eps = (float)SYNTH_LN_EPS,
        .pooling = a->pooling,
        .normalize = a->normalize,
        .max_seq_length = SYNTH_MAX_SEQ,
    };
    return AKE_OK;
}

/* ---- random numbers ------------------------------------------------------------------- */

/* splitmix64 (Steele, Lea, Flood 2014): one 64-bit state, passes BigCrush, trivially seeded. */
static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

typedef struct {
    uint64_t s;
    bool has_spare;
    double spare;
} synth_rng;

/* Standard normal by Box-Muller, both outputs used. */
static double rng_normal(synth_rng *r) {
    if (r->has_spare) {
        r->has_spare = false;
        return r->spare;
    }
    double u1 = 1.0 - (double)(splitmix64(&r->s) >> 11) * 0x1.0p-53; /* (0, 1] */
    double u2 = (double)(splitmix64(&r->s) >> 11) * 0x1.0p-53;       /* [0, 1) */
    double rad = sqrt(-2.0 * log(u1));
    double th = 2.0 * 3.14159265358979323846 * u2;
    r->spare = rad * sin(th);
    r->has_spare = true;
    return rad * cos(th);
}

/* ---- float conversions (round to nearest even) ------------------------------------------ */

static uint16_t f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) return (uint16_t)(sign | 0x7E00u);  /* NaN */
    if (ax >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u); /* rounds to inf (65520 and up) */
    if (ax < 0x38800000u) {                                   /* below 2^-14: subnormal half */
        if (ax < 0x33000000u) return (uint16_t)sign;          /* at most 2^-25: rounds to zero */
        uint32_t e = ax >> 23, m = (ax & 0x7FFFFFu) | 0x800000u, shift = 126 - e;
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ax - 0x38000000u; /* rebias exponent 127 -> 15 */
    uint32_t h = r >> 13, rem = r & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

static uint16_t f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
    x += 0x7FFFu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* ---- tensor list ------------------------------------------------------------------------ */

typedef enum { K_WEIGHT, K_BIAS, K_GAMMA, K_BETA, K_POSIDS } synth_kind;

typedef struct {
    ake_tensor *t; /* [n] descriptions handed to the writer; names owned */
    synth_kind *kind;
    int n, cap;
    uint64_t seed;
} synth_list;

static bool add(synth_list *l, const char *name, ake_dtype dt, synth_kind kind, int64_t d0, int64_t d1) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 64;
        ake_tensor *t = realloc(l->t, (size_t)cap * sizeof *t);
        if (!t) return false;
        l->t = t;
        synth_kind *k = realloc(l->kind, (size_t)cap * sizeof *k);
        if (!k) return false;
        l->kind = k;
        l->cap = cap;
    }
    ake_tensor *t = &l->t[l->n];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) return false;
    t->dtype = dt;
    t->ndim = d1 < 0 ? 1 : 2;
    t->shape[0] = d0;
    if (d1 >= 0) t->shape[1] = d1;
    t->numel = d0 * (d1 < 0 ? 1 : d1);
    t->nbytes = (size_t)t->numel * ake_dtype_size(dt);
    l->kind[l->n++] = kind;
    return true;
}

static void list_free(synth_list *l) {
    for (int i = 0; i < l->n; i++) free((char *)l->t[i].name);
    free(l->t);
    free(l->kind);
}

/* BertModel's state dict, in the order Hugging Face lists it (position_ids first keeps
 * the 8-byte I64 tensor aligned; every later size is a multiple of 8 bytes). */
static bool build_list(synth_list *l, const synth_arch *a, ake_dtype dt) {
    const int64_t d = a->hidden, ff = a->inter;
    bool ok = add(l, "embeddings.position_ids", AKE_DT_I64, K_POSIDS, 1, SYNTH_MAX_POS) &&
              add(l, "embeddings.word_embeddings.weight", dt, K_WEIGHT, SYNTH_VOCAB, d) &&
              add(l, "embeddings.position_embeddings.weight", dt, K_WEIGHT, SYNTH_MAX_POS, d) &&
              add(l, "embeddings.token_type_embeddings.weight", dt, K_WEIGHT, SYNTH_TYPE_VOCAB, d) &&
              add(l, "embeddings.LayerNorm.weight", dt, K_GAMMA, d, -1) &&
              add(l, "embeddings.LayerNorm.bias", dt, K_BETA, d, -1);
    static const struct {
        const char *suffix;
        synth_kind kind;
        char d0, d1; /* 'd' hidden, 'f' intermediate, 0 for 1-D */
    } per_layer[] = {
        {"attention.self.query.weight", K_WEIGHT, 'd', 'd'},
        {"attention.self.query.bias", K_BIAS, 'd', 0},
        {"attention.self.key.weight", K_WEIGHT, 'd', 'd'},
        {"attention.self.key.bias", K_BIAS, 'd', 0},
        {"attention.self.value.weight", K_WEIGHT, 'd', 'd'},
        {"attention.self.value.bias", K_BIAS, 'd', 0},
        {"attention.output.dense.weight", K_WEIGHT, 'd', 'd'},
        {"attention.output.dense.bias", K_BIAS, 'd', 0},
        {"attention.output.LayerNorm.weight", K_GAMMA, 'd', 0},
        {"attention.output.LayerNorm.bias", K_BETA, 'd', 0},
        {"intermediate.dense.weight", K_WEIGHT, 'f', 'd'},
        {"intermediate.dense.bias", K_BIAS, 'f', 0},
        {"output.dense.weight", K_WEIGHT, 'd', 'f'},
        {"output.dense.bias", K_BIAS, 'd', 0},
        {"output.LayerNorm.weight", K_GAMMA, 'd', 0},
        {"output.LayerNorm.bias", K_BETA, 'd', 0},
    };
    for (int i = 0; ok && i < a->layers; i++) {
        for (size_t k = 0; ok && k < sizeof per_layer / sizeof per_layer[0]; k++) {
            char name[128];
            snprintf(name, sizeof name, "encoder.layer.%d.%s", i, per_layer[k].suffix);
            int64_t d0 = per_layer[k].d0 == 'd' ? d : ff;
            int64_t d1 = per_layer[k].d1 == 0 ? -1 : per_layer[k].d1 == 'd' ? d : ff;
            ok = add(l, name, dt, per_layer[k].kind, d0, d1);
        }
    }
    return ok;
}

/* Writer callback: tensor i's values from its own stream, converted to its dtype. */
static ake_status fill(void *ctx, int i, void *dst, size_t nbytes, char *err, size_t errlen) {
    (void)err;
    (void)errlen;
    const synth_list *l = ctx;
    const ake_tensor *t = &l->t[i];
    synth_kind kind = l->kind[i];
    if (kind == K_POSIDS) {
        for (int64_t j = 0; j < t->numel; j++) {
            int64_t v = j;
            memcpy((char *)dst + 8 * j, &v, 8);
        }
        return AKE_OK;
    }
    synth_rng r = {.s = l->seed ^ (0xD1B54A32D192ED03ULL * (uint64_t)(i + 1))};
    (void)splitmix64(&r.s); /* decorrelate nearby seeds */
    double scale = kind == K_WEIGHT ? 0.02 : kind == K_GAMMA ? 0.02 : 0.01;
    double center = kind == K_GAMMA ? 1.0 : 0.0;
    size_t n = (size_t)t->numel;
    AKE_ASSERT(nbytes == n * ake_dtype_size(t->dtype));
    for (size_t j = 0; j < n; j++) {
        float v = (float)(center + scale * rng_normal(&r));
        switch (t->dtype) {
        case AKE_DT_F32: memcpy((char *)dst + 4 * j, &v, 4); break;
        case AKE_DT_F16: {
            uint16_t h = f32_to_f16(v);
            memcpy((char *)dst + 2 * j, &h, 2);
            break;
        }
        case AKE_DT_BF16: {
            uint16_t h = f32_to_bf16(v);
            memcpy((char *)dst + 2 * j, &h, 2);
            break;
        }
        default: AKE_ASSERT(!"synth weight dtype");
        }
    }
    return AKE_OK;
}

ake_status ake_model_synth(const char *arch, uint64_t seed, const char *src_tokenizer_dir, const char *out_dir,
                           char *err, size_t errlen) {
    return ake_model_synth_ex(arch, seed, src_tokenizer_dir, out_dir, NULL, err, errlen);
}

ake_status ake_model_synth_ex(const char *arch, uint64_t seed, const char *src_tokenizer_dir, const char *out_dir,
                              const ake_model_synth_opts *opts, char *err, size_t errlen) {
    ake_status rc = AKE_OK;
    const synth_arch *a = find_arch(arch, err, errlen, &rc);
    if (!a) return rc;
    if (!src_tokenizer_dir || !out_dir || !*out_dir)
        return ake_errf(err, errlen, AKE_EINVAL, "synth needs a tokenizer source folder and an output folder.");
    ake_dtype dt = opts ? opts->dtype : AKE_DT_F32;
    if (dt != AKE_DT_F32 && dt != AKE_DT_F16 && dt != AKE_DT_BF16)
        return ake_errf(err, errlen, AKE_EINVAL, "synth writes F32, F16 or BF16 weights, not %s.", ake_dtype_name(dt));

    /* Check the tokenizer source before writing hundreds of megabytes. */
    if ((rc = ake_folder_check_tokenizer(src_tokenizer_dir, err, errlen)) != AKE_OK) return rc;
    ake_model_config cfg;
    if ((rc = ake_model_synth_config(arch, &cfg, err, errlen)) != AKE_OK) return rc;
    char *st_path = ake_path_join(out_dir, "model.safetensors");
    synth_list l = {.seed = seed};
    if (!st_path) {
        rc = ake_errf(err, errlen, AKE_ENOMEM, "out of memory writing %s.", out_dir);
        goto done;
    }
    if ((rc = ake_model_folder_write(out_dir, &cfg, "akidb-embed synth", src_tokenizer_dir, err, errlen)) != AKE_OK)
        goto done;
    if (!build_list(&l, a, dt)) {
        rc = ake_errf(err, errlen, AKE_ENOMEM, "out of memory listing the tensors of %s.", a->name);
        goto done;
    }
    rc = ake_safetensors_write_fill(st_path, l.t, l.n, fill, &l, err, errlen);
done:
    list_free(&l);
    free(st_path);
    return rc;
}
