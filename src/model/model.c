/* Model folder loader: config.json, the sentence-transformers files and the
 * weights in model.safetensors, checked against each other.
 *
 * What is read, and the choices made where files are silent:
 *   config.json                 required. BertModel fields; type_vocab_size defaults
 *                               to 2, layer_norm_eps to 1e-12, hidden_act to "gelu".
 *                               hidden_act must be "gelu" (exact erf GELU) and
 *                               position_embedding_type absent or "absolute";
 *                               model_type, when present, must be "bert" (RoBERTa-style
 *                               models share the tensor names but not the position
 *                               ids, and would load and silently compute garbage).
 *   modules.json                optional. Only the sentence-transformers modules
 *                               Transformer, Pooling and Normalize are implemented;
 *                               any other (Dense, ...) is AKE_EUNSUPPORTED rather
 *                               than silently skipped. When present it must list a
 *                               Pooling module; normalize = a Normalize module is
 *                               listed (its folder need not exist, it holds nothing).
 *                               When ABSENT: pooling comes from 1_Pooling/config.json
 *                               if that file exists, else mean pooling; normalize is
 *                               false (plain Hugging Face models are not normalized).
 *   <pooling>/config.json       exactly one of pooling_mode_cls_token / _mean_tokens /
 *                               _max_tokens true, or (sentence-transformers 6) "pooling_mode":
 *                               "cls" | "mean" | "max" (a list of one); mean_sqrt_len,
 *                               weightedmean, lasttoken, or several modes at once:
 *                               AKE_EUNSUPPORTED. Both forms present must agree.
 *   sentence_bert_config.json   optional max_seq_length, clamped to max_position.
 *   model.safetensors           required; see load_weights().
 */
#include "model/model.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "base/fs.h"
#include "base/half.h"
#include "base/json.h"

#define CFG_MAX_FILE ((size_t)16 << 20) /* a JSON config bigger than this is not a config */

/* Sane upper bounds: well above every BERT-family model, low enough that shape
 * products cannot overflow and a forged config cannot ask for absurd buffers. */
#define MAX_VOCAB (1 << 24)
#define MAX_HIDDEN 16384
#define MAX_LAYERS 256
#define MAX_INTER 262144
#define MAX_POSITION (1 << 20)
#define MAX_TYPE_VOCAB 1024

const char *ake_pooling_name(ake_pooling p) {
    switch (p) {
    case AKE_POOL_MEAN: return "mean";
    case AKE_POOL_CLS: return "cls";
    case AKE_POOL_MAX: return "max";
    }
    return "?";
}

/* Parses a JSON file (ake_json_parse: a NUL byte, bad UTF-8 or trailing data is an error too).
 * AKE_ENOTFOUND (message filled) when the file is absent, so callers decide whether that is an
 * error. *out is NULL for the JSON null; free it with json_object_put. */
static ake_status load_json(const char *path, json_object **out, char *err, size_t errlen) {
    *out = NULL;
    char *buf = NULL;
    size_t len = 0;
    ake_status rc = ake_read_file(path, CFG_MAX_FILE, &buf, &len, err, errlen);
    if (rc != AKE_OK) return rc;
    size_t at, line, col;
    const char *why;
    if (ake_json_parse(buf, len, out, &at, &why)) {
        ake_json_line_col(buf, at, &line, &col);
        rc = ake_errf(err, errlen, AKE_EFORMAT, "%s is not valid JSON (error at line %zu, column %zu: %s).", path, line,
                      col, why);
    }
    free(buf);
    return rc;
}

/* An integer field in [lo, hi]. Absent or null: AKE_ENOTFOUND when required, else *out = def. */
static ake_status get_int(const json_object *root, const char *path, const char *key, bool required, int32_t def,
                          int64_t lo, int64_t hi, int32_t *out, char *err, size_t errlen) {
    const json_object *it = json_object_object_get(root, key);
    if (!it) {
        if (required) return ake_errf(err, errlen, AKE_ENOTFOUND, "%s has no \"%s\".", path, key);
        *out = def;
        return AKE_OK;
    }
    double v;
    if (!ake_json_number(it, &v))
        return ake_errf(err, errlen, AKE_EFORMAT, "%s: \"%s\" is not a number.", path, key);
    if (!isfinite(v) || v != floor(v) || v < (double)lo || v > (double)hi)
        return ake_errf(err, errlen, AKE_EFORMAT, "%s: \"%s\" is %g; expected an integer from %lld to %lld.", path,
                        key, v, (long long)lo, (long long)hi);
    *out = (int32_t)v;
    return AKE_OK;
}

/* A string field that, when present, must equal one of the allowed values. */
static ake_status check_str(const json_object *root, const char *path, const char *key, const char *allowed,
                            const char *why, char *err, size_t errlen) {
    const json_object *it = json_object_object_get(root, key);
    if (!it) return AKE_OK;
    if (!json_object_is_type(it, json_type_string))
        return ake_errf(err, errlen, AKE_EFORMAT, "%s: \"%s\" is not a string.", path, key);
    if (strcmp(json_object_get_string((json_object *)it), allowed) != 0)
        return ake_errf(err, errlen, AKE_EUNSUPPORTED, "%s: %s '%s' is not supported; %s.", path, key,
                        json_object_get_string((json_object *)it), why);
    return AKE_OK;
}

static ake_status parse_config(const char *dir, ake_model_config *c, char *err, size_t errlen) {
    char *path = ake_path_join(dir, "config.json");
    if (!path) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory loading %s.", dir);
    json_object *root = NULL;
    ake_status rc = load_json(path, &root, err, errlen);
    if (rc == AKE_ENOTFOUND) rc = ake_errf(err, errlen, AKE_ENOTFOUND, "model folder %s has no config.json.", dir);
    if (rc != AKE_OK) goto out;
    if (!json_object_is_type(root, json_type_object)) {
        rc = ake_errf(err, errlen, AKE_EFORMAT, "%s is JSON but not an object.", path);
        goto out;
    }
    if ((rc = check_str(root, path, "model_type", "bert", "only BERT encoders (model_type 'bert') are implemented", err,
                        errlen)) ||
        (rc = check_str(root, path, "hidden_act", "gelu", "only 'gelu' (exact erf GELU) is implemented", err,
                        errlen)) ||
        (rc = check_str(root, path, "position_embedding_type", "absolute",
                        "only 'absolute' position embeddings are implemented", err, errlen)))
        goto out;
    if ((rc = get_int(root, path, "vocab_size", true, 0, 1, MAX_VOCAB, &c->vocab_size, err, errlen)) ||
        (rc = get_int(root, path, "hidden_size", true, 0, 1, MAX_HIDDEN, &c->hidden, err, errlen)) ||
        (rc = get_int(root, path, "num_hidden_layers", true, 0, 1, MAX_LAYERS, &c->layers, err, errlen)) ||
        (rc = get_int(root, path, "num_attention_heads", true, 0, 1, MAX_HIDDEN, &c->heads, err, errlen)) ||
        (rc = get_int(root, path, "intermediate_size", true, 0, 1, MAX_INTER, &c->intermediate, err, errlen)) ||
        (rc = get_int(root, path, "max_position_embeddings", true, 0, 1, MAX_POSITION, &c->max_position, err,
                      errlen)) ||
        (rc = get_int(root, path, "type_vocab_size", false, 2, 1, MAX_TYPE_VOCAB, &c->type_vocab_size, err, errlen)))
        goto out;
    if (c->hidden % c->heads != 0) {
        rc = ake_errf(err, errlen, AKE_EFORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d.", path,
                      c->hidden, c->heads);
        goto out;
    }
    json_object *origin = json_object_object_get(root, "_name_or_path");
    c->synthetic = json_object_is_type(origin, json_type_string) &&
                   !strcmp(json_object_get_string(origin), "akidb-embed synth");
    const json_object *eps = json_object_object_get(root, "layer_norm_eps");
    c->layer_norm_eps = 1e-12f;
    if (eps) {
        double v;
        if (!ake_json_number(eps, &v) || !isfinite(v) || v <= 0 || v >= 1) {
            rc = ake_errf(err, errlen, AKE_EFORMAT, "%s: \"layer_norm_eps\" must be a number between 0 and 1.", path);
            goto out;
        }
        c->layer_norm_eps = (float)v;
    }
out:
    json_object_put(root);
    free(path);
    return rc;
}

/* A modules.json "path" must stay inside the model folder. */
static bool safe_rel_path(const char *p) {
    if (!*p || p[0] == '/') return false;
    for (const char *s = p; *s;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 2 && s[0] == '.' && s[1] == '.') return false;
        if (!e) break;
        s = e + 1;
    }
    return true;
}

/* Reads modules.json. *pool_rel (malloc'd, caller frees) gets the Pooling module's
 * folder; *normalize whether a Normalize module is listed. AKE_ENOTFOUND when absent. */

/* The class a sentence-transformers module type names: "Transformer" for both the classic
 * "sentence_transformers.models.Transformer" and the paths that sentence-transformers 6 saves
 * ("sentence_transformers.base.modules.transformer.Transformer",
 * "sentence_transformers.sentence_transformer.modules.pooling.Pooling"); NULL for a type from
 * another package. */
static const char *st_module_class(const char *type) {
    static const char prefix[] = "sentence_transformers.";
    if (strncmp(type, prefix, sizeof prefix - 1) != 0) return NULL;
    const char *dot = strrchr(type, '.');
    return dot + 1;
}
static ake_status parse_modules(const char *dir, char **pool_rel, bool *normalize, char *err, size_t errlen) {
    *pool_rel = NULL;
    *normalize = false;
    char *path = ake_path_join(dir, "modules.json");
    if (!path) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory loading %s.", dir);
    json_object *root = NULL;
    ake_status rc = load_json(path, &root, err, errlen);
    if (rc != AKE_OK) goto out;
    if (!json_object_is_type(root, json_type_array)) {
        rc = ake_errf(err, errlen, AKE_EFORMAT, "%s is not a JSON array of modules.", path);
        goto out;
    }
    const size_t n_modules = json_object_array_length(root);
    for (size_t i = 0; i < n_modules; i++) {
        json_object *m = json_object_array_get_idx(root, i);
        json_object *type = json_object_object_get(m, "type"), *mp = json_object_object_get(m, "path");
        if (!json_object_is_type(type, json_type_string)) {
            rc = ake_errf(err, errlen, AKE_EFORMAT, "%s: module #%zu has no string \"type\".", path, i);
            goto out;
        }
        const char *t = json_object_get_string(type), *cls = st_module_class(t);
        if (cls && strcmp(cls, "Transformer") == 0) {
            continue;
        } else if (cls && strcmp(cls, "Pooling") == 0) {
            if (*pool_rel) {
                rc = ake_errf(err, errlen, AKE_EUNSUPPORTED, "%s lists more than one Pooling module.", path);
                goto out;
            }
            if (!json_object_is_type(mp, json_type_string) || !safe_rel_path(json_object_get_string(mp))) {
                rc = ake_errf(err, errlen, AKE_EFORMAT,
                              "%s: the Pooling module's \"path\" is missing or leaves the model folder.", path);
                goto out;
            }
            if (!(*pool_rel = strdup(json_object_get_string(mp)))) {
                rc = ake_errf(err, errlen, AKE_ENOMEM, "out of memory reading %s.", path);
                goto out;
            }
        } else if (cls && strcmp(cls, "Normalize") == 0) {
            if (!*pool_rel) {
                rc = ake_errf(err, errlen, AKE_EUNSUPPORTED,
                              "%s lists Normalize before any Pooling module; only Pooling then Normalize is "
                              "implemented.",
                              path);
                goto out;
            }
            *normalize = true;
        } else {
            rc = ake_errf(err, errlen, AKE_EUNSUPPORTED,
                          "%s lists module type '%s'; only Transformer, Pooling and Normalize are implemented.", path,
                          t);
            goto out;
        }
    }
    if (!*pool_rel)
        rc = ake_errf(err, errlen, AKE_EUNSUPPORTED,
                      "%s lists no Pooling module; akidb-embed produces pooled sentence vectors only.", path);
out:
    if (rc != AKE_OK) {
        free(*pool_rel);
        *pool_rel = NULL;
    }
    json_object_put(root);
    free(path);
    return rc;
}

/* Reads <dir>/<rel>/config.json of a Pooling module into c->pooling. */
static ake_status parse_pooling(const char *dir, const char *rel, ake_model_config *c, bool required, char *err,
                                size_t errlen) {
    char *folder = ake_path_join(dir, rel);
    char *path = folder ? ake_path_join(folder, "config.json") : NULL;
    free(folder);
    if (!path) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory loading %s.", dir);
    json_object *root = NULL;
    ake_status rc = load_json(path, &root, err, errlen);
    if (rc == AKE_ENOTFOUND && !required) {
        rc = AKE_OK;
        goto out;
    }
    if (rc == AKE_ENOTFOUND)
        rc = ake_errf(err, errlen, AKE_ENOTFOUND, "%s/modules.json lists a Pooling module in '%s', but %s does not exist.",
                      dir, rel, path);
    if (rc != AKE_OK) goto out;
    if (!json_object_is_type(root, json_type_object)) {
        rc = ake_errf(err, errlen, AKE_EFORMAT, "%s is JSON but not an object.", path);
        goto out;
    }
    static const struct {
        const char *key;
        int mode; /* ake_pooling, or -1 for modes we do not implement */
    } modes[] = {
        {"pooling_mode_cls_token", AKE_POOL_CLS},
        {"pooling_mode_mean_tokens", AKE_POOL_MEAN},
        {"pooling_mode_max_tokens", AKE_POOL_MAX},
        {"pooling_mode_mean_sqrt_len_tokens", -1},
        {"pooling_mode_weightedmean_tokens", -1},
        {"pooling_mode_lasttoken", -1},
    };
    int n_on = 0, chosen = -1;
    char on[256] = "";
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        json_object *it = json_object_object_get(root, modes[i].key);
        if (!it) continue;
        if (!json_object_is_type(it, json_type_boolean)) {
            rc = ake_errf(err, errlen, AKE_EFORMAT, "%s: \"%s\" is not true or false.", path, modes[i].key);
            goto out;
        }
        if (!json_object_get_boolean(it)) continue;
        if (modes[i].mode < 0) {
            rc = ake_errf(err, errlen, AKE_EUNSUPPORTED,
                          "%s sets %s, which is not implemented (only cls, mean or max pooling).", path, modes[i].key);
            goto out;
        }
        n_on++;
        chosen = modes[i].mode;
        size_t l = strlen(on);
        snprintf(on + l, sizeof on - l, "%s%s", l ? " and " : "", modes[i].key);
    }
    /* sentence-transformers 6 writes one "pooling_mode" string (or a list of them) instead */
    json_object *pm = json_object_object_get(root, "pooling_mode");
    if (json_object_is_type(pm, json_type_array) && json_object_array_length(pm) == 1)
        pm = json_object_array_get_idx(pm, 0);
    if (pm) {
        static const struct {
            const char *name;
            int mode;
        } named[] = {{"cls", AKE_POOL_CLS}, {"mean", AKE_POOL_MEAN}, {"max", AKE_POOL_MAX}};
        const char *name = json_object_is_type(pm, json_type_string) ? json_object_get_string(pm) : NULL;
        int mode = -1;
        for (size_t i = 0; name && i < sizeof named / sizeof named[0]; i++)
            if (strcmp(name, named[i].name) == 0) mode = named[i].mode;
        if (mode < 0) {
            rc = ake_errf(err, errlen, AKE_EUNSUPPORTED,
                          "%s: pooling_mode %s is not implemented (only cls, mean or max pooling, one at a time).", path,
                          json_object_to_json_string_ext(pm, JSON_C_TO_STRING_PLAIN));
            goto out;
        }
        if (n_on == 1 && mode != chosen) {
            rc = ake_errf(err, errlen, AKE_EFORMAT, "%s: pooling_mode \"%s\" contradicts %s.", path, name, on);
            goto out;
        }
        n_on = 1;
        chosen = mode;
    }
    if (n_on == 0) {
        rc = ake_errf(err, errlen, AKE_EFORMAT, "%s sets no pooling mode (expected one of cls, mean or max).", path);
        goto out;
    }
    if (n_on > 1) {
        rc = ake_errf(err, errlen, AKE_EUNSUPPORTED,
                      "%s sets several pooling modes (%s); only one pooling mode at a time is implemented.", path, on);
        goto out;
    }
    double wd;
    for (int k = 0; k < 2; k++) { /* embedding_dimension: sentence-transformers 6's name */
        const char *key = k ? "embedding_dimension" : "word_embedding_dimension";
        if (ake_json_number(json_object_object_get(root, key), &wd) && wd != (double)c->hidden) {
            rc = ake_errf(err, errlen, AKE_EFORMAT, "%s: %s %g does not match hidden_size %d.", path, key, wd,
                          c->hidden);
            goto out;
        }
    }
    /* include_prompt false (INSTRUCTOR-style) leaves the prompt's tokens out of the pooling;
     * our pooling covers every token, so such a model would give other vectors */
    json_object *ip = json_object_object_get(root, "include_prompt");
    if (json_object_is_type(ip, json_type_boolean) && !json_object_get_boolean(ip)) {
        rc = ake_errf(err, errlen, AKE_EUNSUPPORTED,
                      "%s sets include_prompt false (prompt tokens left out of the pooling), which is not implemented.",
                      path);
        goto out;
    }
    c->pooling = (ake_pooling)chosen;
out:
    json_object_put(root);
    free(path);
    return rc;
}

static ake_status parse_sbert(const char *dir, ake_model_config *c, char *err, size_t errlen) {
    char *path = ake_path_join(dir, "sentence_bert_config.json");
    if (!path) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory loading %s.", dir);
    json_object *root = NULL;
    ake_status rc = load_json(path, &root, err, errlen);
    c->max_seq_length = 0;
    if (rc == AKE_ENOTFOUND) {
        rc = AKE_OK;
        goto out;
    }
    if (rc != AKE_OK) goto out;
    if (!json_object_is_type(root, json_type_object)) {
        rc = ake_errf(err, errlen, AKE_EFORMAT, "%s is JSON but not an object.", path);
        goto out;
    }
    int32_t msl = 0;
    if ((rc = get_int(root, path, "max_seq_length", false, 0, 1, INT32_MAX, &msl, err, errlen)) != AKE_OK) goto out;
    c->max_seq_length = msl > c->max_position ? c->max_position : msl;
out:
    json_object_put(root);
    free(path);
    return rc;
}

/* config_sentence_transformers.json's "prompts" (an object of strings) and
 * "default_prompt_name" (null or one of them); an absent file or field means none. */
static ake_status parse_prompts(ake_model *m, char *err, size_t errlen) {
    char *path = ake_path_join(m->dir, "config_sentence_transformers.json");
    if (!path) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory loading %s.", m->dir);
    json_object *root = NULL;
    ake_status rc = load_json(path, &root, err, errlen);
    m->default_prompt = -1;
    if (rc == AKE_ENOTFOUND) {
        rc = AKE_OK;
        goto out;
    }
    if (rc != AKE_OK) goto out;
    json_object *prompts = json_object_object_get(root, "prompts");
    json_object *def = json_object_object_get(root, "default_prompt_name");
    if (!json_object_is_type(root, json_type_object) || (prompts && !json_object_is_type(prompts, json_type_object))) {
        rc = ake_errf(err, errlen, AKE_EFORMAT, "%s: \"prompts\" is not an object of strings.", path);
        goto out;
    }
    const int32_t n = prompts ? json_object_object_length(prompts) : 0;
    if (n > 0 && (!(m->prompt_name = calloc((size_t)n, sizeof *m->prompt_name)) ||
                  !(m->prompt_text = calloc((size_t)n, sizeof *m->prompt_text)))) {
        rc = ake_errf(err, errlen, AKE_ENOMEM, "out of memory loading %s.", path);
        goto out;
    }
    if (n > 0) {
        json_object_object_foreach(prompts, name, text) {
            if (!json_object_is_type(text, json_type_string)) {
                rc = ake_errf(err, errlen, AKE_EFORMAT, "%s: prompt \"%.64s\" is not a string.", path, name);
                goto out;
            }
            const int32_t i = m->n_prompts++;
            if (!(m->prompt_name[i] = strdup(name)) || !(m->prompt_text[i] = strdup(json_object_get_string(text)))) {
                rc = ake_errf(err, errlen, AKE_ENOMEM, "out of memory loading %s.", path);
                goto out;
            }
        }
    }
    if (def) {
        for (int32_t i = 0; i < m->n_prompts && json_object_is_type(def, json_type_string); i++)
            if (!strcmp(m->prompt_name[i], json_object_get_string(def))) m->default_prompt = i;
        if (m->default_prompt < 0) {
            rc = ake_errf(err, errlen, AKE_EFORMAT, "%s: \"default_prompt_name\" is not one of its \"prompts\".", path);
            goto out;
        }
    }
out:
    json_object_put(root);
    free(path);
    return rc;
}

typedef struct {
    ake_model *m;
    const char *prefix; /* "" or "bert." */
    char *err;
    size_t errlen;
} wctx;

enum { KIND_FLOAT = 1, KIND_Q8 = 2 }; /* dtypes a tensor may have: F32/F16/BF16, I8/F8_E4M3 */

/* Finds prefix+name and checks its shape (d1 < 0 for 1-D) and that its dtype is of `kinds`. */
static ake_status need_as(wctx *w, const char *name, int64_t d0, int64_t d1, unsigned kinds,
                          const ake_tensor **out) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", w->prefix, name);
    const ake_tensor *t = ake_safetensors_find(w->m->st, full);
    if (!t)
        return ake_errf(w->err, w->errlen, AKE_ENOTFOUND, "model.safetensors in %s has no tensor '%s'.", w->m->dir,
                        full);
    int nd = d1 < 0 ? 1 : 2;
    if (t->ndim != nd || t->shape[0] != d0 || (nd == 2 && t->shape[1] != d1)) {
        char found[160] = "[";
        size_t l = 1;
        for (int i = 0; i < t->ndim && l < sizeof found; i++)
            l += (size_t)snprintf(found + l, sizeof found - l, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        if (l < sizeof found) snprintf(found + l, sizeof found - l, "]");
        char want[64];
        if (nd == 1) snprintf(want, sizeof want, "[%lld]", (long long)d0);
        else snprintf(want, sizeof want, "[%lld, %lld]", (long long)d0, (long long)d1);
        return ake_errf(w->err, w->errlen, AKE_EFORMAT,
                        "model.safetensors in %s: tensor '%s' has shape %s, but config.json implies %s.", w->m->dir,
                        full, found, want);
    }
    const bool is_float = t->dtype == AKE_DT_F32 || t->dtype == AKE_DT_F16 || t->dtype == AKE_DT_BF16;
    const bool is_q8 = t->dtype == AKE_DT_I8 || t->dtype == AKE_DT_F8_E4M3;
    if (!((kinds & KIND_FLOAT) && is_float) && !((kinds & KIND_Q8) && is_q8))
        return ake_errf(w->err, w->errlen, AKE_EUNSUPPORTED, "model.safetensors in %s: tensor '%s' has dtype %s; %s.",
                        w->m->dir, full, ake_dtype_name(t->dtype),
                        kinds & KIND_Q8 ? "this weight must be F32, F16, BF16, or I8 / F8_E4M3 with a weight_scale"
                                        : "this tensor must be F32, F16 or BF16");
    if (is_q8) {
        if (w->m->qdtype != AKE_DT_F32 && w->m->qdtype != t->dtype)
            return ake_errf(w->err, w->errlen, AKE_EFORMAT,
                            "model.safetensors in %s: tensor '%s' is %s but earlier 8-bit weights are %s; a folder "
                            "holds one 8-bit type.",
                            w->m->dir, full, ake_dtype_name(t->dtype), ake_dtype_name(w->m->qdtype));
        w->m->qdtype = t->dtype;
    }
    if (t->dtype == AKE_DT_F8_E4M3) { /* E4M3 has no infinities; 0x7f / 0xff are its NaNs */
        const uint8_t *b = (const uint8_t *)t->data;
        for (int64_t i = 0; i < t->numel; i++)
            if ((b[i] & 0x7f) == 0x7f)
                return ake_errf(w->err, w->errlen, AKE_EFORMAT,
                                "model.safetensors in %s: tensor '%s' holds the F8_E4M3 NaN code 0x%02x at index %lld.",
                                w->m->dir, full, b[i], (long long)i);
    }
    if ((uintptr_t)t->data % ake_dtype_size(t->dtype) != 0)
        return ake_errf(w->err, w->errlen, AKE_EUNSUPPORTED,
                        "model.safetensors in %s: tensor '%s' is not aligned to its %zu-byte element size in the file.",
                        w->m->dir, full, ake_dtype_size(t->dtype));
    *out = t;
    return AKE_OK;
}

static ake_status need(wctx *w, const char *name, int64_t d0, int64_t d1, const ake_tensor **out) {
    return need_as(w, name, d0, d1, KIND_FLOAT, out);
}

/* A scale tensor of n F32 values, each finite and > 0 (a zero scale would divide by zero
 * when quantizing, a negative one flip signs, NaN poison every vector). */
static ake_status need_scales(wctx *w, const char *name, int64_t n, const ake_tensor **out) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", w->prefix, name);
    const ake_tensor *t = ake_safetensors_find(w->m->st, full);
    if (!t)
        return ake_errf(w->err, w->errlen, AKE_EFORMAT, "model.safetensors in %s: 8-bit weights need the scale tensor "
                        "'%s', which is missing.", w->m->dir, full);
    if (t->dtype != AKE_DT_F32 || t->ndim != 1 || t->shape[0] != n)
        return ake_errf(w->err, w->errlen, AKE_EFORMAT,
                        "model.safetensors in %s: scale tensor '%s' must be F32 of shape [%lld] (it is %s of %d "
                        "dimensions, first %lld).",
                        w->m->dir, full, (long long)n, ake_dtype_name(t->dtype), t->ndim,
                        (long long)(t->ndim ? t->shape[0] : 0));
    if ((uintptr_t)t->data % 4 != 0)
        return ake_errf(w->err, w->errlen, AKE_EUNSUPPORTED,
                        "model.safetensors in %s: tensor '%s' is not aligned to 4 bytes in the file.", w->m->dir, full);
    const float *v = (const float *)t->data;
    for (int64_t i = 0; i < n; i++)
        if (!(isfinite(v[i]) && v[i] > 0.0f))
            return ake_errf(w->err, w->errlen, AKE_EFORMAT,
                            "model.safetensors in %s: scale tensor '%s' holds %g at index %lld; scales must be "
                            "finite and greater than 0.",
                            w->m->dir, full, (double)v[i], (long long)i);
    *out = t;
    return AKE_OK;
}

/* The linear layer `base` (e.g. "encoder.layer.0.intermediate.dense") of shape [out, in]:
 * weight and bias, and for 8-bit weights their weight_scale and optional input_scale. */
static ake_status need_linear(wctx *w, const char *base, int64_t out, int64_t in, ake_linear_weights *lw) {
    char n[200], probe[256];
    ake_status rc;
    snprintf(n, sizeof n, "%s.weight", base);
    if ((rc = need_as(w, n, out, in, KIND_FLOAT | KIND_Q8, &lw->w))) return rc;
    snprintf(n, sizeof n, "%s.bias", base);
    if ((rc = need(w, n, out, -1, &lw->b))) return rc;
    const bool q8 = lw->w->dtype == AKE_DT_I8 || lw->w->dtype == AKE_DT_F8_E4M3;
    lw->scale = lw->in_scale = lw->in_smooth = lw->in_rotation = NULL;
    if (!q8) {
        static const char *const extra[] = {"weight_scale", "input_scale", "input_smooth", "input_rotation"};
        for (int i = 0; i < 4; i++) {
            snprintf(probe, sizeof probe, "%s%s.%s", w->prefix, base, extra[i]);
            if (ake_safetensors_find(w->m->st, probe))
                return ake_errf(w->err, w->errlen, AKE_EFORMAT,
                                "model.safetensors in %s: '%s' stands beside a %s weight; scales belong to 8-bit "
                                "weights only.",
                                w->m->dir, probe, ake_dtype_name(lw->w->dtype));
        }
        return AKE_OK;
    }
    snprintf(n, sizeof n, "%s.weight_scale", base);
    if ((rc = need_scales(w, n, out, &lw->scale))) return rc;
    snprintf(n, sizeof n, "%s.input_scale", base);
    snprintf(probe, sizeof probe, "%s%s", w->prefix, n);
    if (ake_safetensors_find(w->m->st, probe) && (rc = need_scales(w, n, 1, &lw->in_scale))) return rc;
    snprintf(n, sizeof n, "%s.input_smooth", base);
    snprintf(probe, sizeof probe, "%s%s", w->prefix, n);
    if (ake_safetensors_find(w->m->st, probe) && (rc = need_scales(w, n, in, &lw->in_smooth))) return rc;
    snprintf(probe, sizeof probe, "%s%s.input_rotation", w->prefix, base);
    const ake_tensor *rt = ake_safetensors_find(w->m->st, probe);
    if (rt) {
        const int32_t b = rt->dtype == AKE_DT_I32 && rt->ndim == 1 && rt->shape[0] == 1 ? *(const int32_t *)rt->data : 0;
        if ((uintptr_t)rt->data % 4 || b < 2 || (b & (b - 1)) || in % b)
            return ake_errf(w->err, w->errlen, AKE_EFORMAT,
                            "model.safetensors in %s: '%s' must be one I32, a power of two from 2 that divides the "
                            "input width %lld.",
                            w->m->dir, probe, (long long)in);
        lw->in_rotation = rt;
    }
    return AKE_OK;
}

/* q, k and v are fused into one GEMM by the engines: one dtype, one input scale. And
 * static activation scales are all or nothing over the folder's 8-bit linears. */
static ake_status check_layer_quant(wctx *w, int layer, const ake_layer_weights *L, int *n_q8, int *n_static,
                                    const char **no_static) {
    const ake_linear_weights *qkv[3] = {&L->q, &L->k, &L->v};
    for (int i = 1; i < 3; i++) {
        const ake_linear_weights *a = &L->q, *p = qkv[i];
        const char *what = NULL;
        const ake_tensor *at = NULL, *pt = NULL;
        if (p->w->dtype != a->w->dtype) what = "dtype", at = a->w, pt = p->w;
        else if (!p->in_scale != !a->in_scale ||
                 (a->in_scale && *(const float *)a->in_scale->data != *(const float *)p->in_scale->data))
            what = "input_scale", at = a->in_scale, pt = p->in_scale;
        else if (!p->in_smooth != !a->in_smooth ||
                 (a->in_smooth && memcmp(a->in_smooth->data, p->in_smooth->data, a->in_smooth->nbytes) != 0))
            what = "input_smooth", at = a->in_smooth, pt = p->in_smooth;
        else if (!p->in_rotation != !a->in_rotation ||
                 (a->in_rotation && *(const int32_t *)a->in_rotation->data != *(const int32_t *)p->in_rotation->data))
            what = "input_rotation", at = a->in_rotation, pt = p->in_rotation;
        if (what)
            return ake_errf(w->err, w->errlen, AKE_EFORMAT,
                            "model.safetensors in %s: layer %d: %s (%s) differs from the query's %s (%s); query, key "
                            "and value read one input and must share dtype, input_scale, input_smooth and "
                            "input_rotation.",
                            w->m->dir, layer, pt ? pt->name : p->w->name, pt ? "present" : "absent", what,
                            at ? at->name : "absent");
    }
    const ake_linear_weights *all[6] = {&L->q, &L->k, &L->v, &L->o, &L->ff1, &L->ff2};
    for (int i = 0; i < 6; i++) {
        *n_q8 += all[i]->scale != NULL;
        *n_static += all[i]->in_scale != NULL;
        if (all[i]->scale && !all[i]->in_scale && !*no_static) *no_static = all[i]->w->name;
    }
    return AKE_OK;
}

/* A LayerNorm pair: X.weight/X.bias, or the older X.gamma/X.beta spelling. */
static ake_status need_ln(wctx *w, const char *base, int64_t d, const ake_tensor **g, const ake_tensor **b) {
    char n1[200], n2[200], probe[256];
    snprintf(probe, sizeof probe, "%s%s.gamma", w->prefix, base);
    bool old = ake_safetensors_find(w->m->st, probe) != NULL;
    snprintf(n1, sizeof n1, "%s.%s", base, old ? "gamma" : "weight");
    snprintf(n2, sizeof n2, "%s.%s", base, old ? "beta" : "bias");
    ake_status rc = need(w, n1, d, -1, g);
    return rc ? rc : need(w, n2, d, -1, b);
}

/* Tensor names as BertModel saves them, with an optional "bert." prefix (BertFor*
 * checkpoints) detected once from the word embeddings. embeddings.position_ids,
 * pooler.* and any other extra tensors are allowed and ignored. */
static ake_status load_weights(ake_model *m, char *err, size_t errlen) {
    const ake_model_config *c = &m->cfg;
    wctx w = {m, "", err, errlen};
    if (!ake_safetensors_find(m->st, "embeddings.word_embeddings.weight") &&
        ake_safetensors_find(m->st, "bert.embeddings.word_embeddings.weight"))
        w.prefix = "bert.";
    const int64_t d = c->hidden, ff = c->intermediate;
    ake_status rc;
    m->qdtype = AKE_DT_F32;
    if ((rc = need_as(&w, "embeddings.word_embeddings.weight", c->vocab_size, d, KIND_FLOAT | KIND_Q8,
                      &m->word_emb)) ||
        (rc = need(&w, "embeddings.position_embeddings.weight", c->max_position, d, &m->pos_emb)) ||
        (rc = need(&w, "embeddings.token_type_embeddings.weight", c->type_vocab_size, d, &m->type_emb)) ||
        (rc = need_ln(&w, "embeddings.LayerNorm", d, &m->emb_ln_g, &m->emb_ln_b)))
        return rc;
    m->word_emb_scale = NULL;
    if (m->word_emb->dtype == AKE_DT_I8 || m->word_emb->dtype == AKE_DT_F8_E4M3) {
        if ((rc = need_scales(&w, "embeddings.word_embeddings.weight_scale", c->vocab_size, &m->word_emb_scale)))
            return rc;
    }
    m->layer = calloc((size_t)c->layers, sizeof *m->layer);
    if (!m->layer) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory loading %s.", m->dir);
    int n_q8 = 0, n_static = 0;
    const char *no_static = NULL; /* the first 8-bit weight without an input_scale */
    for (int i = 0; i < c->layers; i++) {
        ake_layer_weights *L = &m->layer[i];
        char n[160];
#define LINEAR(suffix, d0, d1, dst)                                                                                    \
    do {                                                                                                               \
        snprintf(n, sizeof n, "encoder.layer.%d.%s", i, suffix);                                                       \
        if ((rc = need_linear(&w, n, d0, d1, dst)) != AKE_OK) return rc;                                               \
    } while (0)
        LINEAR("attention.self.query", d, d, &L->q);
        LINEAR("attention.self.key", d, d, &L->k);
        LINEAR("attention.self.value", d, d, &L->v);
        LINEAR("attention.output.dense", d, d, &L->o);
        LINEAR("intermediate.dense", ff, d, &L->ff1);
        LINEAR("output.dense", d, ff, &L->ff2);
#undef LINEAR
        snprintf(n, sizeof n, "encoder.layer.%d.attention.output.LayerNorm", i);
        if ((rc = need_ln(&w, n, d, &L->ln1_g, &L->ln1_b)) != AKE_OK) return rc;
        snprintf(n, sizeof n, "encoder.layer.%d.output.LayerNorm", i);
        if ((rc = need_ln(&w, n, d, &L->ln2_g, &L->ln2_b)) != AKE_OK) return rc;
        if ((rc = check_layer_quant(&w, i, L, &n_q8, &n_static, &no_static)) != AKE_OK) return rc;
    }
    if (n_static && n_static != n_q8)
        return ake_errf(err, errlen, AKE_EFORMAT,
                        "model.safetensors in %s: %d of its %d 8-bit linear layers have an input_scale, not "
                        "'%.*s.input_scale'; static activation scales are all or none.",
                        m->dir, n_static, n_q8, (int)(strlen(no_static) - strlen(".weight")), no_static);
    m->static_act = n_static > 0;
    return AKE_OK;
}

/* Last path component without trailing slashes; falls back to realpath for "." etc. */
static char *folder_name(const char *dir) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && dir[s - 1] != '/') s--;
    size_t len = n - s;
    if ((len == 1 && dir[s] == '.') || (len == 2 && dir[s] == '.' && dir[s + 1] == '.') || len == 0) {
        char *rp = realpath(dir, NULL);
        if (rp) {
            char *slash = strrchr(rp, '/');
            char *name = strdup(slash && slash[1] ? slash + 1 : rp);
            free(rp);
            return name;
        }
    }
    return strndup(dir + s, len);
}

/* quantization_config.json, when present, is kept as text for reports (/info, metrics);
 * it must be a JSON object. Nothing the engines do depends on it. */
static ake_status read_quant_config(ake_model *m, char *err, size_t errlen) {
    char *path = ake_path_join(m->dir, "quantization_config.json");
    if (!path) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory loading %s.", m->dir);
    json_object *root = NULL;
    ake_status rc = load_json(path, &root, err, errlen);
    if (rc == AKE_ENOTFOUND) rc = AKE_OK;
    else if (rc == AKE_OK && !json_object_is_type(root, json_type_object))
        rc = ake_errf(err, errlen, AKE_EFORMAT, "%s is JSON but not an object.", path);
    else if (rc == AKE_OK) {
        const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!text || !(m->quant_config = strdup(text)))
            rc = ake_errf(err, errlen, AKE_ENOMEM, "out of memory loading %s.", path);
    }
    json_object_put(root);
    free(path);
    return rc;
}

void ake_model_free(ake_model *m) {
    if (!m) return;
    free(m->quant_config);
    for (int32_t i = 0; i < m->n_prompts; i++) {
        free(m->prompt_name[i]);
        free(m->prompt_text[i]);
    }
    free(m->prompt_name);
    free(m->prompt_text);
    ake_safetensors_close(m->st);
    free(m->layer);
    free(m->name);
    free(m->dir);
    free(m);
}

ake_status ake_model_load(const char *dir, ake_model **out, char *err, size_t errlen) {
    AKE_ASSERT(out);
    *out = NULL;
    if (!dir || !*dir) return ake_errf(err, errlen, AKE_EINVAL, "no model folder given.");
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        int e = errno;
        return ake_errf(err, errlen, e == ENOENT ? AKE_ENOTFOUND : AKE_EIO, "cannot open model folder %s: %s.", dir,
                        strerror(e));
    }
    if (!S_ISDIR(sb.st_mode)) return ake_errf(err, errlen, AKE_EINVAL, "model path %s is not a folder.", dir);

    ake_model *m = calloc(1, sizeof *m);
    if (!m || !(m->dir = strdup(dir)) || !(m->name = folder_name(dir))) {
        ake_model_free(m);
        return ake_errf(err, errlen, AKE_ENOMEM, "out of memory loading %s.", dir);
    }
    ake_model_config *c = &m->cfg;
    char *pool_rel = NULL, *st_path = NULL;
    ake_status rc;
    if ((rc = parse_config(dir, c, err, errlen)) != AKE_OK) goto fail;

    c->pooling = AKE_POOL_MEAN;
    c->normalize = false;
    rc = parse_modules(dir, &pool_rel, &c->normalize, err, errlen);
    if (rc == AKE_OK) rc = parse_pooling(dir, pool_rel, c, true, err, errlen);
    else if (rc == AKE_ENOTFOUND) rc = parse_pooling(dir, "1_Pooling", c, false, err, errlen);
    if (rc != AKE_OK) goto fail;
    if ((rc = parse_sbert(dir, c, err, errlen)) != AKE_OK) goto fail;
    if ((rc = parse_prompts(m, err, errlen)) != AKE_OK) goto fail;

    if (!(st_path = ake_path_join(dir, "model.safetensors"))) {
        rc = ake_errf(err, errlen, AKE_ENOMEM, "out of memory loading %s.", dir);
        goto fail;
    }
    if (!ake_file_exists(st_path)) {
        char *bin = ake_path_join(dir, "pytorch_model.bin");
        bool has_bin = bin && ake_file_exists(bin);
        free(bin);
        rc = ake_errf(err, errlen, AKE_ENOTFOUND, "model folder %s has no model.safetensors%s.", dir,
                      has_bin ? " (pytorch_model.bin is not read; convert it to safetensors)" : "");
        goto fail;
    }
    if ((rc = ake_safetensors_open(st_path, &m->st, err, errlen)) != AKE_OK) goto fail;
    if ((rc = load_weights(m, err, errlen)) != AKE_OK) goto fail;
    if ((rc = read_quant_config(m, err, errlen)) != AKE_OK) goto fail;
    free(pool_rel);
    free(st_path);
    *out = m;
    return AKE_OK;
fail:
    free(pool_rel);
    free(st_path);
    ake_model_free(m);
    return rc;
}

void ake_tensor_f32(const ake_tensor *t, float *dst) {
    AKE_ASSERT(t->dtype == AKE_DT_F32 || t->dtype == AKE_DT_F16 || t->dtype == AKE_DT_BF16);
    if (t->dtype == AKE_DT_F32) {
        memcpy(dst, t->data, (size_t)t->numel * sizeof *dst);
        return;
    }
    const uint16_t *src = (const uint16_t *)t->data;
    for (int64_t i = 0; i < t->numel; i++)
        dst[i] = t->dtype == AKE_DT_F16 ? ake_f16_to_f32(src[i]) : ake_bf16_to_f32(src[i]);
}

void ake_linear_weight_f32(const ake_linear_weights *lw, float *dst, bool stored) {
    const ake_tensor *t = lw->w;
    if (lw->scale) ake_dequantize_rows(t->data, t->dtype, (const float *)lw->scale->data, t->shape[0], t->shape[1], dst);
    else ake_tensor_f32(t, dst);
    if (lw->in_rotation && !stored) /* H H = I */
        ake_hadamard_rows(dst, t->shape[0], t->shape[1], *(const int32_t *)lw->in_rotation->data);
    if (lw->in_smooth && !stored) {
        const float *s = (const float *)lw->in_smooth->data;
        for (int64_t r = 0; r < t->shape[0]; r++)
            for (int64_t c = 0; c < t->shape[1]; c++) dst[r * t->shape[1] + c] /= s[c];
    }
}

void ake_word_emb_f32(const ake_model *m, float *dst) {
    const ake_tensor *t = m->word_emb;
    if (m->word_emb_scale)
        ake_dequantize_rows(t->data, t->dtype, (const float *)m->word_emb_scale->data, t->shape[0], t->shape[1], dst);
    else ake_tensor_f32(t, dst);
}
