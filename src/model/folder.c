/* A model folder's JSON files and tokenizer copy; see folder.h. */
#include "model/folder.h"

#include "base/fs.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

static const char *const TOKENIZER_FILES[] = {"tokenizer.json", "vocab.txt", "tokenizer_config.json",
                                              "special_tokens_map.json"};

ake_status ake_folder_make_dirs(const char *path, char *err, size_t errlen) {
    char *p = strdup(path);
    if (!p) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory creating %s.", path);
    size_t n = strlen(p);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != 0) continue;
        char c = p[i];
        p[i] = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            int e = errno;
            ake_status rc = ake_errf(err, errlen, AKE_EIO, "cannot create folder %s: %s.", p, strerror(e));
            free(p);
            return rc;
        }
        p[i] = c;
    }
    free(p);
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return ake_errf(err, errlen, AKE_EIO, "%s exists and is not a folder.", path);
    return AKE_OK;
}

ake_status ake_folder_check_tokenizer(const char *src_dir, char *err, size_t errlen) {
    char *tj = ake_path_join(src_dir, "tokenizer.json"), *vt = ake_path_join(src_dir, "vocab.txt");
    bool oom = !tj || !vt, have = !oom && (ake_file_exists(tj) || ake_file_exists(vt));
    free(tj);
    free(vt);
    if (oom) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory checking %s.", src_dir);
    if (!have)
        return ake_errf(err, errlen, AKE_ENOTFOUND, "tokenizer folder %s has neither tokenizer.json nor vocab.txt.",
                        src_dir);
    return AKE_OK;
}

static ake_status write_text(const char *dir, const char *rel, const char *text, char *err, size_t errlen) {
    char *path = ake_path_join(dir, rel);
    if (!path) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory writing %s.", dir);
    FILE *f = fopen(path, "wb");
    ake_status rc = AKE_OK;
    if (!f) {
        rc = ake_errf(err, errlen, AKE_EIO, "cannot create %s: %s.", path, strerror(errno));
    } else {
        size_t n = strlen(text);
        bool ok = fwrite(text, 1, n, f) == n && fputc('\n', f) != EOF;
        if (fclose(f) != 0) ok = false;
        if (!ok) rc = ake_errf(err, errlen, AKE_EIO, "cannot write %s.", path);
    }
    free(path);
    return rc;
}

/* Prints a cJSON tree into dir/rel and frees the tree (NULL: out of memory building it). */
static ake_status write_json(const char *dir, const char *rel, cJSON *root, char *err, size_t errlen) {
    char *text = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory writing %s/%s.", dir, rel);
    ake_status rc = write_text(dir, rel, text, err, errlen);
    cJSON_free(text);
    return rc;
}

/* Copies src_dir/name to dst_dir/name. AKE_ENOTFOUND (no message) when the source is absent. */
static ake_status copy_file(const char *src_dir, const char *dst_dir, const char *name, char *err, size_t errlen) {
    char *src = ake_path_join(src_dir, name), *dst = ake_path_join(dst_dir, name);
    ake_status rc = AKE_OK;
    FILE *in = NULL, *out = NULL;
    if (!src || !dst) {
        rc = ake_errf(err, errlen, AKE_ENOMEM, "out of memory copying %s.", name);
        goto done;
    }
    if (!(in = fopen(src, "rb"))) {
        rc = errno == ENOENT ? AKE_ENOTFOUND : ake_errf(err, errlen, AKE_EIO, "cannot open %s: %s.", src, strerror(errno));
        goto done;
    }
    if (!(out = fopen(dst, "wb"))) {
        rc = ake_errf(err, errlen, AKE_EIO, "cannot create %s: %s.", dst, strerror(errno));
        goto done;
    }
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        if (fwrite(buf, 1, n, out) != n) {
            rc = ake_errf(err, errlen, AKE_EIO, "cannot write %s.", dst);
            goto done;
        }
    }
    if (ferror(in)) rc = ake_errf(err, errlen, AKE_EIO, "cannot read %s.", src);
done:
    if (in) fclose(in);
    if (out && fclose(out) != 0 && rc == AKE_OK) rc = ake_errf(err, errlen, AKE_EIO, "cannot write %s.", dst);
    free(src);
    free(dst);
    return rc;
}

/* The shortest decimal that reads back as the same float, so 1e-12f is written "1e-12" and
 * not as the double nearest the float (9.99999996e-13). */
static double shortest_float(float v) {
    char buf[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    return strtod(buf, NULL);
}

static cJSON *config_json(const ake_model_config *c, const char *name_or_path) {
    cJSON *j = cJSON_CreateObject();
    cJSON *archs_arr = cJSON_AddArrayToObject(j, "architectures");
    cJSON_AddItemToArray(archs_arr, cJSON_CreateString("BertModel"));
    cJSON_AddStringToObject(j, "model_type", "bert");
    cJSON_AddStringToObject(j, "_name_or_path", name_or_path ? name_or_path : "");
    cJSON_AddNumberToObject(j, "attention_probs_dropout_prob", 0.1);
    cJSON_AddStringToObject(j, "hidden_act", "gelu");
    cJSON_AddNumberToObject(j, "hidden_dropout_prob", 0.1);
    cJSON_AddNumberToObject(j, "hidden_size", c->hidden);
    cJSON_AddNumberToObject(j, "initializer_range", 0.02);
    cJSON_AddNumberToObject(j, "intermediate_size", c->intermediate);
    cJSON_AddNumberToObject(j, "layer_norm_eps", shortest_float(c->layer_norm_eps));
    cJSON_AddNumberToObject(j, "max_position_embeddings", c->max_position);
    cJSON_AddNumberToObject(j, "num_attention_heads", c->heads);
    cJSON_AddNumberToObject(j, "num_hidden_layers", c->layers);
    cJSON_AddNumberToObject(j, "pad_token_id", 0);
    cJSON_AddStringToObject(j, "position_embedding_type", "absolute");
    cJSON_AddNumberToObject(j, "type_vocab_size", c->type_vocab_size);
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
    return j;
}

static cJSON *modules_json(const ake_model_config *c) {
    static const char *const types[] = {"sentence_transformers.models.Transformer",
                                        "sentence_transformers.models.Pooling",
                                        "sentence_transformers.models.Normalize"};
    static const char *const paths[] = {"", "1_Pooling", "2_Normalize"};
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < (c->normalize ? 3 : 2); i++) {
        cJSON *m = cJSON_CreateObject();
        char nm[16];
        snprintf(nm, sizeof nm, "%d", i);
        cJSON_AddNumberToObject(m, "idx", i);
        cJSON_AddStringToObject(m, "name", nm);
        cJSON_AddStringToObject(m, "path", paths[i]);
        cJSON_AddStringToObject(m, "type", types[i]);
        cJSON_AddItemToArray(arr, m);
    }
    return arr;
}

static cJSON *pooling_json(const ake_model_config *c) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "word_embedding_dimension", c->hidden);
    cJSON_AddBoolToObject(p, "pooling_mode_cls_token", c->pooling == AKE_POOL_CLS);
    cJSON_AddBoolToObject(p, "pooling_mode_mean_tokens", c->pooling == AKE_POOL_MEAN);
    cJSON_AddBoolToObject(p, "pooling_mode_max_tokens", c->pooling == AKE_POOL_MAX);
    cJSON_AddBoolToObject(p, "pooling_mode_mean_sqrt_len_tokens", 0);
    return p;
}

static cJSON *sbert_json(const ake_model_config *c) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddNumberToObject(s, "max_seq_length", c->max_seq_length);
    cJSON_AddBoolToObject(s, "do_lower_case", 0);
    return s;
}

ake_status ake_model_folder_write(const char *out_dir, const ake_model_config *cfg, const char *name_or_path,
                                  const char *tokenizer_src, char *err, size_t errlen) {
    if (!out_dir || !*out_dir || !cfg || !tokenizer_src)
        return ake_errf(err, errlen, AKE_EINVAL, "writing a model folder needs a folder, a config and a tokenizer source.");
    ake_status rc = ake_folder_check_tokenizer(tokenizer_src, err, errlen);
    if (rc != AKE_OK) return rc;
    if ((rc = ake_folder_make_dirs(out_dir, err, errlen)) != AKE_OK) return rc;
    char *pool_dir = ake_path_join(out_dir, "1_Pooling"), *norm_dir = ake_path_join(out_dir, "2_Normalize");
    if (!pool_dir || !norm_dir) {
        rc = ake_errf(err, errlen, AKE_ENOMEM, "out of memory writing %s.", out_dir);
        goto done;
    }
    if ((rc = ake_folder_make_dirs(pool_dir, err, errlen)) ||
        (cfg->normalize && (rc = ake_folder_make_dirs(norm_dir, err, errlen))) ||
        (rc = write_json(out_dir, "config.json", config_json(cfg, name_or_path), err, errlen)) ||
        (rc = write_json(out_dir, "modules.json", modules_json(cfg), err, errlen)) ||
        (rc = write_json(pool_dir, "config.json", pooling_json(cfg), err, errlen)) ||
        (cfg->max_seq_length > 0 &&
         (rc = write_json(out_dir, "sentence_bert_config.json", sbert_json(cfg), err, errlen))))
        goto done;
    for (size_t i = 0; i < sizeof TOKENIZER_FILES / sizeof TOKENIZER_FILES[0]; i++) {
        rc = copy_file(tokenizer_src, out_dir, TOKENIZER_FILES[i], err, errlen);
        if (rc == AKE_ENOTFOUND) rc = AKE_OK;
        if (rc != AKE_OK) goto done;
    }
done:
    free(pool_dir);
    free(norm_dir);
    return rc;
}
