#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static bool grow(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    char *b = realloc(*buf, c);
    if (!b) return false;
    *buf = b;
    *cap = c;
    return true;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex4(const char *s) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(s[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes one JSON string literal (the whole line, surrounding spaces allowed)
 * into out. A decoder of our own because cJSON stores strings NUL-terminated and
 * would cut a text at an escaped U+0000; this one returns the length. Unpaired
 * surrogate escapes are rejected, raw bytes are passed through (the tokenizer
 * checks UTF-8). Returns false with a message naming the column on bad input. */
static bool decode_json_string(const char *s, size_t n, char **out, size_t *cap, size_t *len, char *err,
                               size_t errlen) {
    size_t i = 0, o = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) i++;
    while (n > i && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
    if (i >= n || s[i] != '"') {
        ake_errf(err, errlen, AKE_EINVAL, "expected a JSON string literal (a line starting with '\"')");
        return false;
    }
    if (!grow(out, cap, n + 1)) { ake_errf(err, errlen, AKE_ENOMEM, "out of memory"); return false; }
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"') {
            if (i + 1 != n) {
                ake_errf(err, errlen, AKE_EINVAL, "unexpected characters after the closing quote at column %zu",
                         i + 2);
                return false;
            }
            (*out)[o] = 0;
            *len = o;
            return true;
        }
        if (c < 0x20) {
            ake_errf(err, errlen, AKE_EINVAL, "unescaped control character at column %zu", i + 1);
            return false;
        }
        if (c != '\\') { (*out)[o++] = (char)c; continue; }
        if (++i >= n) break;
        switch (s[i]) {
        case '"': (*out)[o++] = '"'; break;
        case '\\': (*out)[o++] = '\\'; break;
        case '/': (*out)[o++] = '/'; break;
        case 'b': (*out)[o++] = '\b'; break;
        case 'f': (*out)[o++] = '\f'; break;
        case 'n': (*out)[o++] = '\n'; break;
        case 'r': (*out)[o++] = '\r'; break;
        case 't': (*out)[o++] = '\t'; break;
        case 'u': {
            int hi = i + 4 < n ? read_hex4(s + i + 1) : -1;
            if (hi < 0) { ake_errf(err, errlen, AKE_EINVAL, "bad \\u escape at column %zu", i); return false; }
            i += 4;
            uint32_t cp = (uint32_t)hi;
            if (hi >= 0xD800 && hi <= 0xDBFF) {
                int lo = i + 6 < n && s[i + 1] == '\\' && s[i + 2] == 'u' ? read_hex4(s + i + 3) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    ake_errf(err, errlen, AKE_EINVAL, "unpaired surrogate escape at column %zu", i - 4);
                    return false;
                }
                cp = 0x10000 + (((uint32_t)hi - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
                i += 6;
            } else if (hi >= 0xDC00 && hi <= 0xDFFF) {
                ake_errf(err, errlen, AKE_EINVAL, "unpaired surrogate escape at column %zu", i - 4);
                return false;
            }
            o += put_utf8(*out + o, cp); /* never longer than the escape it replaces */
            break;
        }
        default: ake_errf(err, errlen, AKE_EINVAL, "bad escape '\\%c' at column %zu", s[i], i); return false;
        }
    }
    ake_errf(err, errlen, AKE_EINVAL, "unterminated JSON string");
    return false;
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
    if (!decode_json_string(r->line, (size_t)n, &r->text, &r->text_cap, len, err, errlen)) return -1;
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
