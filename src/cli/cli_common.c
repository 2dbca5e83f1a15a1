#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "base/json.h"
#include "cli/cli.h"
#include "serve/jsonw.h"

void ake_cli_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "akidb-embed %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

bool ake_cli_can_create(const char *cmd, const char *flag, const char *path) {
    if (!*path) {
        ake_cli_error(cmd, "%s: an empty path", flag);
        return false;
    }
    char *dir = strdup(path);
    if (!dir) return true; /* the write itself will say so */
    char *slash = strrchr(dir, '/');
    while (slash && slash > dir && slash[1] == 0) { /* "out/" names out */
        *slash = 0;
        slash = strrchr(dir, '/');
    }
    const char *parent = !slash ? "." : slash == dir ? "/" : (*slash = 0, dir);
    const bool ok = access(parent, W_OK | X_OK) == 0;
    if (!ok) ake_cli_error(cmd, "%s %s: cannot write in '%s': %s", flag, path, parent, strerror(errno));
    free(dir);
    return ok;
}

bool ake_cli_parse_int(const char *flag, const char *s, int32_t lo, int32_t hi, int32_t *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "akidb-embed: %s expects an integer in %d..%d, got '%s'\n", flag, lo, hi, s);
        return false;
    }
    *out = (int32_t)v;
    return true;
}

/* One JSON string literal per line, read as the server reads bodies (base/json.h): a text may
 * hold U+0000, which the tokenizer drops as HF `tokenizers` does; len says where it ends. The
 * text is copied out so that the line's tree can go at once. */
static bool decode_json_line(ake_text_reader *r, size_t n, size_t *len, char *err, size_t errlen) {
    json_object *v;
    size_t off;
    const char *why;
    if (ake_json_parse(r->line, n, &v, &off, &why)) {
        ake_errf(err, errlen, AKE_EINVAL, "not a JSON string literal (column %zu: %s)", off + 1, why);
        return false;
    }
    bool ok = json_object_is_type(v, json_type_string);
    if (!ok) {
        ake_errf(err, errlen, AKE_EINVAL, "expected a JSON string literal (a line starting with '\"'), not %s",
                 json_type_to_name(json_object_get_type(v)));
    } else {
        *len = (size_t)json_object_get_string_len(v);
        if (*len + 1 > r->text_cap) {
            char *t = realloc(r->text, *len + 1);
            if (!(ok = t != NULL)) ake_errf(err, errlen, AKE_ENOMEM, "out of memory");
            else r->text = t, r->text_cap = *len + 1;
        }
        if (ok) memcpy(r->text, json_object_get_string(v), *len + 1);
    }
    json_object_put(v);
    return ok;
}

int ake_text_reader_next(ake_text_reader *r, const char **text, size_t *len, char *err, size_t errlen) {
    ssize_t n = getline(&r->line, &r->line_cap, r->f);
    if (n < 0) return 0;
    r->line_no++;
    if (n > 0 && r->line[n - 1] == '\n') r->line[--n] = 0;
    if (!r->jsonl) {
        *text = r->line;
        *len = (size_t)n;
        return 1;
    }
    if (!decode_json_line(r, (size_t)n, len, err, errlen)) return -1;
    *text = r->text;
    return 1;
}

void ake_text_reader_release(ake_text_reader *r) {
    free(r->line);
    free(r->text);
    r->line = r->text = NULL;
    r->line_cap = r->text_cap = 0;
}

void ake_write_float_array(FILE *f, const float *v, int32_t n) {
    char num[40];
    fputc('[', f);
    for (int32_t i = 0; i < n; i++) {
        if (i) fputc(',', f);
        fwrite(num, 1, (size_t)ake_format_float(num, v[i]), f);
    }
    fputs("]\n", f);
}

int ake_cli_read_texts(const char *cmd, const char *path, bool jsonl, int32_t limit, ake_texts *out) {
    memset(out, 0, sizeof *out);
    ake_text_reader r = {.jsonl = jsonl};
    if (!(r.f = fopen(path, "rb"))) {
        ake_cli_error(cmd, "cannot open '%s': %s", path, strerror(errno));
        return 1;
    }
    char err[256];
    const char *text;
    size_t len, cap = 0;
    int got, rc = 0;
    while ((limit <= 0 || out->n < limit) && (got = ake_text_reader_next(&r, &text, &len, err, sizeof err)) != 0) {
        if (got < 0) {
            ake_cli_error(cmd, "%s line %lld: %s", path, (long long)r.line_no, err);
            rc = 1;
            break;
        }
        if ((size_t)out->n == cap) {
            cap = cap ? cap * 2 : 1024;
            char **t = realloc(out->text, cap * sizeof *t);
            size_t *l = t ? realloc(out->len, cap * sizeof *l) : NULL;
            if (t) out->text = t;
            if (l) out->len = l;
            if (!t || !l) {
                ake_cli_error(cmd, "out of memory reading '%s'", path);
                rc = 1;
                break;
            }
        }
        if (!(out->text[out->n] = malloc(len + 1))) {
            ake_cli_error(cmd, "out of memory reading '%s'", path);
            rc = 1;
            break;
        }
        memcpy(out->text[out->n], text, len);
        out->text[out->n][len] = 0;
        out->len[out->n++] = len;
    }
    fclose(r.f);
    ake_text_reader_release(&r);
    if (rc) ake_texts_release(out);
    return rc;
}

void ake_texts_release(ake_texts *t) {
    for (int32_t i = 0; i < t->n; i++) free(t->text[i]);
    free(t->text);
    free(t->len);
    memset(t, 0, sizeof *t);
}
