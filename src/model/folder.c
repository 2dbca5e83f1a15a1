/* A model folder's JSON files and tokenizer copy; see folder.h. */
#include "model/folder.h"

#include "base/fs.h"
#include "base/json.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <json-c/json.h>

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

/* Prints a json-c tree into dir/rel, indented as transformers writes its files, and frees the
 * tree (NULL: out of memory building it). */
static ake_status write_json(const char *dir, const char *rel, json_object *root, char *err, size_t errlen) {
    const char *text = root ? json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                                       JSON_C_TO_STRING_NOSLASHESCAPE)
                            : NULL;
    ake_status rc = text ? write_text(dir, rel, text, err, errlen)
                         : ake_errf(err, errlen, AKE_ENOMEM, "out of memory writing %s/%s.", dir, rel);
    json_object_put(root);
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

/* The builders return NULL when out of memory. A value json-c could not make is written null. */
static json_object *config_json(const ake_model_config *c, const char *name_or_path) {
    json_object *j = json_object_new_object(), *archs = json_object_new_array();
    if (!j || !archs) {
        json_object_put(j);
        json_object_put(archs);
        return NULL;
    }
    json_object_array_add(archs, json_object_new_string("BertModel"));
    json_object_object_add(j, "architectures", archs);
    json_object_object_add(j, "model_type", json_object_new_string("bert"));
    json_object_object_add(j, "_name_or_path", json_object_new_string(name_or_path ? name_or_path : ""));
    json_object_object_add(j, "attention_probs_dropout_prob", ake_json_new_number(0.1));
    json_object_object_add(j, "hidden_act", json_object_new_string("gelu"));
    json_object_object_add(j, "hidden_dropout_prob", ake_json_new_number(0.1));
    json_object_object_add(j, "hidden_size", json_object_new_int(c->hidden));
    json_object_object_add(j, "initializer_range", ake_json_new_number(0.02));
    json_object_object_add(j, "intermediate_size", json_object_new_int(c->intermediate));
    json_object_object_add(j, "layer_norm_eps", ake_json_new_number(shortest_float(c->layer_norm_eps)));
    json_object_object_add(j, "max_position_embeddings", json_object_new_int(c->max_position));
    json_object_object_add(j, "num_attention_heads", json_object_new_int(c->heads));
    json_object_object_add(j, "num_hidden_layers", json_object_new_int(c->layers));
    json_object_object_add(j, "pad_token_id", json_object_new_int(0));
    json_object_object_add(j, "position_embedding_type", json_object_new_string("absolute"));
    json_object_object_add(j, "type_vocab_size", json_object_new_int(c->type_vocab_size));
    json_object_object_add(j, "vocab_size", json_object_new_int(c->vocab_size));
    return j;
}

static json_object *modules_json(const ake_model_config *c) {
    static const char *const types[] = {"sentence_transformers.models.Transformer",
                                        "sentence_transformers.models.Pooling",
                                        "sentence_transformers.models.Normalize"};
    static const char *const paths[] = {"", "1_Pooling", "2_Normalize"};
    json_object *arr = json_object_new_array();
    for (int i = 0; arr && i < (c->normalize ? 3 : 2); i++) {
        json_object *m = json_object_new_object();
        if (!m) {
            json_object_put(arr);
            return NULL;
        }
        char nm[16];
        snprintf(nm, sizeof nm, "%d", i);
        json_object_object_add(m, "idx", json_object_new_int(i));
        json_object_object_add(m, "name", json_object_new_string(nm));
        json_object_object_add(m, "path", json_object_new_string(paths[i]));
        json_object_object_add(m, "type", json_object_new_string(types[i]));
        json_object_array_add(arr, m);
    }
    return arr;
}

static json_object *pooling_json(const ake_model_config *c) {
    json_object *p = json_object_new_object();
    if (!p) return NULL;
    json_object_object_add(p, "word_embedding_dimension", json_object_new_int(c->hidden));
    json_object_object_add(p, "pooling_mode_cls_token", json_object_new_boolean(c->pooling == AKE_POOL_CLS));
    json_object_object_add(p, "pooling_mode_mean_tokens", json_object_new_boolean(c->pooling == AKE_POOL_MEAN));
    json_object_object_add(p, "pooling_mode_max_tokens", json_object_new_boolean(c->pooling == AKE_POOL_MAX));
    json_object_object_add(p, "pooling_mode_mean_sqrt_len_tokens", json_object_new_boolean(0));
    return p;
}

static json_object *sbert_json(const ake_model_config *c) {
    json_object *s = json_object_new_object();
    if (!s) return NULL;
    json_object_object_add(s, "max_seq_length", json_object_new_int(c->max_seq_length));
    json_object_object_add(s, "do_lower_case", json_object_new_boolean(0));
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
