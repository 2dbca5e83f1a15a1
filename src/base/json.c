#include "base/json.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <utf8proc.h>

#include "base/fs.h"

/* One json-c tokener per thread, reset for each text: making one costs a third of the parse
 * time of a small request (bench/src/parse_bench.c). Freed when its thread ends. */
static pthread_key_t tokener_key;
static pthread_once_t tokener_once = PTHREAD_ONCE_INIT;
static void tokener_free(void *t) { json_tokener_free(t); }
static void tokener_key_make(void) { (void)pthread_key_create(&tokener_key, tokener_free); }

static json_tokener *thread_tokener(void) {
    (void)pthread_once(&tokener_once, tokener_key_make);
    json_tokener *tok = pthread_getspecific(tokener_key);
    if (!tok) {
        if (!(tok = json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH))) return NULL;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT); /* UTF-8 and the rest json-c lets through: bad_text */
        if (pthread_setspecific(tokener_key, tok)) {
            json_tokener_free(tok);
            return NULL;
        }
    }
    json_tokener_reset(tok);
    return tok;
}

static int hex4(const char *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        const char c = p[i];
        const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* json-c 0.16 (fixed in 0.19) tests a character decoded from an escaped surrogate pair for being a
 * surrogate with a 16-bit mask, so U+xD800..U+xDFFF of every supplementary plane (CJK Extension F
 * and Sutton SignWriting among them) comes out as U+FFFD. */
static bool json_c_misreads(int hi, int lo) { return ((((hi & 0x3FF) << 10) + (lo & 0x3FF)) & 0xF800) == 0xD800; }

/* Offset of the first "\uXXXX" escape that is half a surrogate pair, or n; *misread tells whether
 * a pair json-c misreads is there. Runs only over backslashes (memchr), after json-c has accepted
 * the text, so every escape is well formed. */
static size_t lone_surrogate(const char *s, size_t n, bool *misread) {
    *misread = false;
    for (const char *p = memchr(s, '\\', n); p; p = memchr(p, '\\', n - (size_t)(p - s))) {
        if ((size_t)(s + n - p) < 6 || p[1] != 'u') {
            p += 2; /* \" \\ \n ...: the escaped character is not a backslash that starts an escape */
            if (p >= s + n) break;
            continue;
        }
        const int u = hex4(p + 2);
        if (u >= 0xDC00 && u <= 0xDFFF) return (size_t)(p - s);
        if (u >= 0xD800 && u <= 0xDBFF) {
            const int lo = (size_t)(s + n - p) >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4(p + 8) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF) return (size_t)(p - s);
            *misread |= json_c_misreads(u, lo);
            p += 12;
        } else {
            p += 6;
        }
        if (p >= s + n) break;
    }
    return n;
}

/* s[0..n) (accepted by json-c, no lone surrogate) into out (n bytes), each escaped pair json-c
 * misreads written as its UTF-8 bytes instead; returns the length written. */
static size_t unescape_misread(const char *s, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        const size_t k = s[i] != '\\' ? 1 : s[i + 1] != 'u' ? 2 : 6;
        const int hi = k == 6 ? hex4(s + i + 2) : -1;
        if (hi >= 0xD800 && hi <= 0xDBFF && json_c_misreads(hi, hex4(s + i + 8))) {
            const unsigned cp = 0x10000 + (((unsigned)hi & 0x3FF) << 10) + ((unsigned)hex4(s + i + 8) & 0x3FF);
            out[o++] = (char)(0xF0 | cp >> 18);
            out[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (cp & 0x3F));
            i += 12;
            continue;
        }
        memcpy(out + o, s + i, k);
        o += k;
        i += k;
    }
    return o;
}

/* Offset of the first byte that json-c would take but RFC 8259 / 3629 do not, or n, with *why:
 * not UTF-8 (overlong forms, UTF-16 surrogates, code points past U+10FFFF, stray or missing
 * continuation bytes: json-c's JSON_TOKENER_VALIDATE_UTF8 lets the first two through), a NUL byte,
 * a raw control character inside a string, or NaN / Infinity (json-c reads them even when strict).
 * Tracks only whether it is inside a string: json-c checks the rest of the grammar. */
static size_t bad_text(const char *s, size_t n, const char **why) {
    bool in_string = false;
    for (size_t i = 0; i < n;) {
        const unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x80) {
            if (in_string && c == '\\') i++; /* the escaped byte is never a quote that ends the string */
            else if (c == '"') in_string = !in_string;
            else if (!in_string && (c == 'N' || c == 'I')) { /* no JSON token outside a string has these */
                *why = "NaN and Infinity are not JSON numbers";
                return i;
            }
            i++;
            continue;
        }
        if (c == 0) {
            *why = "a NUL byte (U+0000 in a string is written \\u0000)";
            return i;
        }
        if (c < 0x20) {
            if (in_string) {
                *why = "a control character inside a string (JSON writes it as an escape such as \\n)";
                return i;
            }
            i++; /* white space between tokens; json-c refuses other control bytes there */
            continue;
        }
        utf8proc_int32_t cp;
        const utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) {
            *why = "not UTF-8 (RFC 3629)";
            return i;
        }
        i += (size_t)k;
    }
    return n;
}

int ake_json_parse(const char *s, size_t n, json_object **out, size_t *err_off, const char **why) {
    *out = NULL;
    *err_off = 0;
    if (n > INT_MAX) {
        *why = "the text is over 2 GiB";
        return -1;
    }
    const size_t bad = bad_text(s, n, why);
    if (bad < n) {
        *err_off = bad;
        return -1;
    }
    json_tokener *tok = thread_tokener();
    if (!tok) {
        *why = "out of memory";
        return -1;
    }
    json_object *v = json_tokener_parse_ex(tok, s, (int)n);
    enum json_tokener_error e = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    /* a number at the very end ("42") is unfinished until json-c sees what follows it */
    if (e == json_tokener_continue && end == n) {
        v = json_tokener_parse_ex(tok, " ", 1);
        e = json_tokener_get_error(tok);
    }
    if (e != json_tokener_success || end < n) {
        json_object_put(v);
        *err_off = end < n ? end : n;
        *why = e == json_tokener_continue ? "the text ends inside a value"
               : e == json_tokener_success ? "unexpected data after the value" : json_tokener_error_desc(e);
        return -1;
    }
    bool misread;
    const size_t lone = lone_surrogate(s, n, &misread);
    if (lone < n) {
        json_object_put(v);
        *err_off = lone;
        *why = "an escape of half a UTF-16 surrogate pair";
        return -1;
    }
    if (misread) { /* read again with those characters as UTF-8, which json-c copies as they are */
        json_object_put(v);
        char *fixed = malloc(n);
        v = NULL;
        if (fixed) {
            const size_t m = unescape_misread(s, n, fixed);
            json_tokener_reset(tok);
            v = json_tokener_parse_ex(tok, fixed, (int)m);
            if (json_tokener_get_error(tok) == json_tokener_continue) v = json_tokener_parse_ex(tok, " ", 1);
            free(fixed);
        }
        if (!v) {
            *why = "out of memory";
            return -1;
        }
    }
    *out = v;
    return 0;
}

void ake_json_line_col(const char *s, size_t off, size_t *line, size_t *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (s[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

bool ake_json_number(const json_object *v, double *out) {
    if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double)) return false;
    *out = json_object_get_double(v);
    return true;
}

json_object *ake_json_new_number(double v) {
    if (!isfinite(v)) return NULL;
    char text[32];
    snprintf(text, sizeof text, "%.15g", v);
    if (strtod(text, NULL) != v) snprintf(text, sizeof text, "%.17g", v);
    return json_object_new_double_s(v, text);
}

ake_status ake_json_read_file(const char *path, size_t max_bytes, json_object **out, char *err, size_t errlen) {
    *out = NULL;
    char *text = NULL;
    size_t len = 0, off, line, col;
    const char *why;
    ake_status st = ake_read_file(path, max_bytes, &text, &len, err, errlen);
    if (st != AKE_OK) return st;
    if (ake_json_parse(text, len, out, &off, &why) != 0) {
        ake_json_line_col(text, off, &line, &col);
        st = ake_errf(err, errlen, AKE_EFORMAT, "%s:%zu:%zu: %s", path, line, col, why);
    }
    free(text);
    return st;
}
