/* safetensors reader and writer.
 *
 * On-disk format (https://github.com/huggingface/safetensors, little-endian):
 *
 *   offset 0      u64 N        length of the JSON header in bytes
 *   offset 8      N bytes      UTF-8 JSON object; may be padded with trailing spaces
 *   offset 8+N    data buffer  the rest of the file
 *
 * The header maps each tensor name to
 *   {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}
 * where begin/end are byte offsets into the data buffer, plus an optional
 * "__metadata__": {"key": "value", ...} of strings only.
 *
 * Every field below is checked as hostile input; the guards and why:
 *   - N == 0, N > 100 MiB, 8 + N > file size: truncated or forged length.
 *   - header bytes must be UTF-8 without NUL (the format says UTF-8; a NUL would
 *     let a C-string reader stop early and hide the rest of the header).
 *   - numbers are read as doubles (json-c's integers too, rounded past 2^53):
 *     non-finite, negative, fractional or >= 2^53 values are rejected before any
 *     cast to an integer type; 1.0 is the integer 1.
 *   - product(shape) * dtype size is computed with overflow checks and must equal
 *     end - begin; end must not pass the data buffer.
 *   - sorted by offset, tensors must tile the data buffer exactly: no overlap
 *     (two tensors aliasing the same bytes) and no gap (bytes nobody owns).
 *   - a key twice in one object (JSON allows it; json-c keeps the last, other
 *     readers the first, so two readers would see two different files) is rejected:
 *     tensor names, "__metadata__", metadata keys and tensor fields alike.
 */
#include "model/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "base/json.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "akidb-embed reads safetensors data in place and needs a little-endian host"
#endif

#define ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024) /* same order as the reference reader */
#define ST_MAX_SAFE_INT 9007199254740992.0          /* 2^53: doubles are exact below it */

typedef struct {
    char *key, *value;
} st_meta;

struct ake_safetensors {
    char *label;      /* owned copy of the path or caller's label */
    void *map;        /* mmap of the whole file, or NULL */
    size_t map_len;
    void *heap;       /* aligned heap copy of the file when not mapped, or NULL */
    int n;
    ake_tensor *t;    /* [n] in header order; names owned (strdup) */
    int *by_name;     /* [n] indices into t sorted by strcmp of name, for find() */
    int n_meta;
    st_meta *meta;    /* [n_meta] sorted by key; strings owned */
};

/* Exact, case-sensitive: the header spelling is part of the format. */
static int dtype_from_header(const char *s, ake_dtype *out) {
    for (int i = 0; i < AKE_DT_COUNT; i++) {
        if (strcmp(s, ake_dtype_name((ake_dtype)i)) == 0) {
            *out = (ake_dtype)i;
            return 0;
        }
    }
    return -1;
}

/* Writes "[a, b, c]" into buf (truncating if needed). */
static const char *shape_str(char *buf, size_t len, int ndim, const int64_t *shape) {
    size_t pos = 0;
    buf[0] = 0;
    pos += (size_t)snprintf(buf + pos, len - pos, "[");
    for (int i = 0; i < ndim && pos < len; i++)
        pos += (size_t)snprintf(buf + pos, len - pos, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (pos < len) snprintf(buf + pos, len - pos, "]");
    return buf;
}

/* Returns the byte offset of the first invalid UTF-8 sequence or NUL byte in s[0..n), or n. */
static size_t utf8_invalid_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c == 0) return i;
        if (c < 0x80) { i++; continue; }
        size_t need;
        unsigned min;
        if (c >= 0xC2 && c <= 0xDF) { need = 1; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; min = 0x10000; }
        else return i;
        if (n - i <= need) return i;
        unsigned cp = c & (0x3F >> need);
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += need + 1;
    }
    return n;
}

/* Checks a JSON number is an exact non-negative integer below 2^53. Returns NULL
 * and sets *out when it is; otherwise a phrase describing what is wrong. */
static const char *json_uint(const json_object *it, uint64_t *out) {
    double v;
    if (!ake_json_number(it, &v)) return "is not a number";
    if (!isfinite(v)) return "is not a finite number";
    if (v < 0) return "is negative";
    if (v != floor(v)) return "is not an integer";
    if (v >= ST_MAX_SAFE_INT) return "is 2^53 or larger";
    *out = (uint64_t)v;
    return NULL;
}

void ake_safetensors_close(ake_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) free((char *)st->t[i].name);
    free(st->t);
    free(st->by_name);
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta[i].key);
        free(st->meta[i].value);
    }
    free(st->meta);
    if (st->map) munmap(st->map, st->map_len);
    free(st->heap);
    free(st->label);
    free(st);
}

/* qsort contexts cannot carry state in C11; these sort arrays of pointers instead. */
static int cmp_name_ptr(const void *a, const void *b) {
    const ake_tensor *x = *(const ake_tensor *const *)a, *y = *(const ake_tensor *const *)b;
    return strcmp(x->name, y->name);
}

typedef struct {
    uint64_t begin, end;
    int idx;
} st_span;

static int cmp_span(const void *a, const void *b) {
    const st_span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx - y->idx;
}

static int cmp_meta(const void *a, const void *b) {
    return strcmp(((const st_meta *)a)->key, ((const st_meta *)b)->key);
}

static int cmp_cstr_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The key whose JSON string literal is s[0..n), as json-c's tree holds it: a C string, which an
 * escaped U+0000 ends. NULL when out of memory. */
static char *key_text(const char *s, size_t n) {
    if (!memchr(s, '\\', n)) return strndup(s + 1, n - 2);
    json_object *v;
    size_t off;
    const char *why;
    if (ake_json_parse(s, n, &v, &off, &why)) return NULL; /* s was read once already: only memory can fail */
    char *k = strdup(json_object_get_string(v));
    json_object_put(v);
    return k;
}

/* json-c keeps the last of two equal keys of an object and leaves no trace of the first, so the
 * header text itself is searched for them, the keys compared as json-c decodes them. s[0..n) is
 * JSON that ake_json_parse accepted (strings closed, nesting within json-c's depth) whose top
 * level is an object. The error names the key: a tensor, "__metadata__", a metadata key, or a
 * field of a tensor. */
static ake_status dup_key(const char *L, const char *s, size_t n, char *err, size_t errlen) {
    struct {
        bool obj;
        size_t first; /* the object's keys so far are keys[first..nk) */
    } fr[JSON_TOKENER_DEFAULT_DEPTH + 1];
    int depth = 0;
    char **keys = NULL;
    size_t nk = 0, cap = 0;
    bool want_key = false; /* just after '{', or after ',' in an object: the next string is a key */
    ake_status rc = AKE_OK;
    for (size_t i = 0; i < n && rc == AKE_OK; i++) {
        const char c = s[i];
        if (c == '"') {
            const size_t b = i;
            for (i++; s[i] != '"'; i++)
                if (s[i] == '\\') i++;
            if (!want_key) continue;
            want_key = false;
            if (nk == cap) {
                char **k = realloc(keys, (cap = cap ? 2 * cap : 64) * sizeof *k);
                if (!k) {
                    rc = ake_errf(err, errlen, AKE_ENOMEM, "%s: out of memory reading the header's keys.", L);
                    break;
                }
                keys = k;
            }
            if (!(keys[nk] = key_text(s + b, i + 1 - b))) {
                rc = ake_errf(err, errlen, AKE_ENOMEM, "%s: out of memory reading the header's keys.", L);
                break;
            }
            nk++;
        } else if (c == '{' || c == '[') {
            if (depth == (int)(sizeof fr / sizeof fr[0])) {
                rc = ake_errf(err, errlen, AKE_EFORMAT, "%s: safetensors header nests deeper than %d levels.", L, depth);
                break;
            }
            fr[depth].obj = c == '{';
            fr[depth++].first = nk;
            want_key = c == '{';
        } else if (c == ',') {
            want_key = fr[depth - 1].obj;
        } else if (c == '}' || c == ']') {
            const size_t first = fr[--depth].first;
            if (nk - first > 1) qsort(keys + first, nk - first, sizeof *keys, cmp_cstr_ptr);
            for (size_t k = first + 1; k < nk && rc == AKE_OK; k++) {
                if (strcmp(keys[k - 1], keys[k]) != 0) continue;
                const char *key = keys[k], *outer = depth > 0 ? keys[fr[1].first - 1] : NULL;
                if (!outer && !strcmp(key, "__metadata__"))
                    rc = ake_errf(err, errlen, AKE_EFORMAT, "%s: safetensors header has \"__metadata__\" twice.", L);
                else if (!outer)
                    rc = ake_errf(err, errlen, AKE_EFORMAT, "%s: safetensors header names tensor '%s' twice.", L, key);
                else if (!strcmp(outer, "__metadata__"))
                    rc = ake_errf(err, errlen, AKE_EFORMAT, "%s: \"__metadata__\" has the key '%s' twice.", L, key);
                else
                    rc = ake_errf(err, errlen, AKE_EFORMAT, "%s: tensor '%s' has the key '%s' twice.", L, outer, key);
            }
            while (nk > first) free(keys[--nk]);
            want_key = false;
        }
    }
    while (nk > 0) free(keys[--nk]);
    free(keys);
    return rc;
}

/* Copies "__metadata__" (string -> string) into st->meta, sorted by key (no key is there twice:
 * dup_key has checked). */
static ake_status parse_metadata(ake_safetensors *st, json_object *meta, char *err, size_t errlen) {
    const char *L = st->label;
    if (!json_object_is_type(meta, json_type_object))
        return ake_errf(err, errlen, AKE_EFORMAT, "%s: \"__metadata__\" in the header is not a JSON object.", L);
    int n = json_object_object_length(meta);
    if (n == 0) return AKE_OK;
    st->meta = calloc((size_t)n, sizeof *st->meta);
    if (!st->meta) return ake_errf(err, errlen, AKE_ENOMEM, "%s: out of memory reading the header metadata.", L);
    json_object_object_foreach(meta, key, val) {
        if (!json_object_is_type(val, json_type_string))
            return ake_errf(err, errlen, AKE_EFORMAT, "%s: \"__metadata__\" entry '%s' is not a string.", L, key);
        st_meta *m = &st->meta[st->n_meta++];
        m->key = strdup(key);
        m->value = strdup(json_object_get_string(val));
        if (!m->key || !m->value)
            return ake_errf(err, errlen, AKE_ENOMEM, "%s: out of memory reading the header metadata.", L);
    }
    qsort(st->meta, (size_t)st->n_meta, sizeof *st->meta, cmp_meta);
    return AKE_OK;
}

/* Fills t from one header entry. begin/end are returned for the coverage check. */
static ake_status parse_entry(const char *L, const char *name, json_object *e, uint64_t data_len, ake_tensor *t,
                              uint64_t *begin_out, uint64_t *end_out, char *err, size_t errlen) {
    if (!json_object_is_type(e, json_type_object))
        return ake_errf(err, errlen, AKE_EFORMAT, "%s: tensor '%s' is not described by a JSON object.", L, name);

    json_object *dt, *sh, *off;
    if (!json_object_object_get_ex(e, "dtype", &dt))
        return ake_errf(err, errlen, AKE_EFORMAT, "%s: tensor '%s' has no \"dtype\".", L, name);
    if (!json_object_is_type(dt, json_type_string))
        return ake_errf(err, errlen, AKE_EFORMAT, "%s: tensor '%s' has a \"dtype\" that is not a string.", L, name);
    /* the whole string must name the dtype: "F32\u0000x" is not F32 */
    const char *dts = json_object_get_string(dt);
    if (strlen(dts) != (size_t)json_object_get_string_len(dt) || dtype_from_header(dts, &t->dtype) != 0)
        return ake_errf(err, errlen, AKE_EUNSUPPORTED,
                        "%s: tensor '%s' has dtype '%s', which is not one of F32 F16 BF16 I8 U8 F8_E4M3 F8_E5M2 "
                        "I16 I32 I64 F64 BOOL.",
                        L, name, dts);

    if (!json_object_object_get_ex(e, "shape", &sh))
        return ake_errf(err, errlen, AKE_EFORMAT, "%s: tensor '%s' has no \"shape\".", L, name);
    if (!json_object_is_type(sh, json_type_array))
        return ake_errf(err, errlen, AKE_EFORMAT, "%s: tensor '%s' has a \"shape\" that is not an array.", L, name);
    size_t ndim = json_object_array_length(sh);
    if (ndim > AKE_MAX_DIMS)
        return ake_errf(err, errlen, AKE_EFORMAT, "%s: tensor '%s' has %zu dimensions, more than the %d supported.", L,
                        name, ndim, AKE_MAX_DIMS);
    t->ndim = (int)ndim;
    uint64_t numel = 1;
    bool overflow = false;
    for (int k = 0; k < t->ndim; k++) {
        uint64_t v = 0;
        const char *why = json_uint(json_object_array_get_idx(sh, (size_t)k), &v);
        if (why)
            return ake_errf(err, errlen, AKE_EFORMAT, "%s: tensor '%s' has shape dimension %d that %s.", L, name, k,
                            why);
        t->shape[k] = (int64_t)v;
        if (!overflow && __builtin_mul_overflow(numel, v, &numel)) overflow = true;
    }
    size_t esz = ake_dtype_size(t->dtype);
    uint64_t nbytes = 0;
    if (overflow || numel > (uint64_t)INT64_MAX || __builtin_mul_overflow(numel, (uint64_t)esz, &nbytes)) {
        char sb[256];
        return ake_errf(err, errlen, AKE_EFORMAT, "%s: tensor '%s' has shape %s whose size overflows 64 bits.", L,
                        name, shape_str(sb, sizeof sb, t->ndim, t->shape));
    }
    t->numel = (int64_t)numel;

    if (!json_object_object_get_ex(e, "data_offsets", &off))
        return ake_errf(err, errlen, AKE_EFORMAT, "%s: tensor '%s' has no \"data_offsets\".", L, name);
    if (!json_object_is_type(off, json_type_array) || json_object_array_length(off) != 2)
        return ake_errf(err, errlen, AKE_EFORMAT, "%s: tensor '%s' has \"data_offsets\" that is not a [begin, end] pair.",
                        L, name);
    uint64_t b = 0, en = 0;
    const char *why = json_uint(json_object_array_get_idx(off, 0), &b);
    if (why) return ake_errf(err, errlen, AKE_EFORMAT, "%s: tensor '%s' has a begin offset that %s.", L, name, why);
    why = json_uint(json_object_array_get_idx(off, 1), &en);
    if (why) return ake_errf(err, errlen, AKE_EFORMAT, "%s: tensor '%s' has an end offset that %s.", L, name, why);
    if (b > en)
        return ake_errf(err, errlen, AKE_EFORMAT, "%s: tensor '%s' has data_offsets [%llu, %llu] with begin after end.",
                        L, name, (unsigned long long)b, (unsigned long long)en);
    if (en > data_len)
        return ake_errf(err, errlen, AKE_EFORMAT,
                        "%s: tensor '%s' ends at data offset %llu, past the %llu-byte data buffer (file truncated?).", L,
                        name, (unsigned long long)en, (unsigned long long)data_len);
    if (en - b != nbytes) {
        char sb[256];
        return ake_errf(err, errlen, AKE_EFORMAT,
                        "%s: tensor '%s' has data_offsets [%llu, %llu] spanning %llu bytes, but dtype %s and shape %s "
                        "need %llu bytes.",
                        L, name, (unsigned long long)b, (unsigned long long)en, (unsigned long long)(en - b),
                        ake_dtype_name(t->dtype), shape_str(sb, sizeof sb, t->ndim, t->shape), (unsigned long long)nbytes);
    }
    t->nbytes = (size_t)nbytes;
    *begin_out = b;
    *end_out = en;
    return AKE_OK;
}

/* The body shared by parse() and open(): validates buf and fills st (whose label is set). */
static ake_status parse_into(ake_safetensors *st, const unsigned char *buf, size_t len, char *err, size_t errlen) {
    const char *L = st->label;
    if (len < 8)
        return ake_errf(err, errlen, AKE_EFORMAT,
                        "%s is %zu bytes, too short to hold the 8-byte header length of a safetensors file.", L, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
    if (hlen == 0) return ake_errf(err, errlen, AKE_EFORMAT, "%s declares an empty (0-byte) safetensors header.", L);
    if (hlen > ST_MAX_HEADER)
        return ake_errf(err, errlen, AKE_ETOOLONG,
                        "%s declares a %llu-byte safetensors header, over the %llu-byte limit (corrupt file?).", L,
                        (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
    if (hlen > len - 8)
        return ake_errf(err, errlen, AKE_EFORMAT,
                        "%s declares a %llu-byte safetensors header but only %zu bytes follow the length field "
                        "(file truncated?).",
                        L, (unsigned long long)hlen, len - 8);
    const unsigned char *hdr = buf + 8;
    size_t hn = (size_t)hlen;
    size_t bad = utf8_invalid_at(hdr, hn);
    if (bad != hn)
        return ake_errf(err, errlen, AKE_EFORMAT, "%s: safetensors header has %s at byte %zu.", L,
                        hdr[bad] ? "invalid UTF-8" : "a NUL byte", bad);

    const unsigned char *data = hdr + hn;
    uint64_t data_len = (uint64_t)(len - 8 - hn);

    const char *text = (const char *)hdr, *why;
    json_object *root;
    size_t at;
    if (ake_json_parse(text, hn, &root, &at, &why))
        return ake_errf(err, errlen, AKE_EFORMAT, "%s: safetensors header is not valid JSON (error near byte %zu: %s).",
                        L, at, why);
    ake_status rc = AKE_OK;
    st_span *spans = NULL;
    const ake_tensor **sorted = NULL;
    if (!json_object_is_type(root, json_type_object)) {
        rc = ake_errf(err, errlen, AKE_EFORMAT, "%s: safetensors header is JSON but not an object.", L);
        goto done;
    }
    if ((rc = dup_key(L, text, hn, err, errlen)) != AKE_OK) goto done;

    int total = json_object_object_length(root);
    st->t = calloc(total ? (size_t)total : 1, sizeof *st->t);
    spans = calloc(total ? (size_t)total : 1, sizeof *spans);
    if (!st->t || !spans) {
        rc = ake_errf(err, errlen, AKE_ENOMEM, "%s: out of memory for %d header entries.", L, total);
        goto done;
    }
    json_object_object_foreach(root, name, e) {
        if (strcmp(name, "__metadata__") == 0) {
            if ((rc = parse_metadata(st, e, err, errlen)) != AKE_OK) goto done;
            continue;
        }
        ake_tensor *t = &st->t[st->n];
        uint64_t b = 0, en = 0;
        if ((rc = parse_entry(L, name, e, data_len, t, &b, &en, err, errlen)) != AKE_OK) goto done;
        t->name = strdup(name);
        if (!t->name) {
            rc = ake_errf(err, errlen, AKE_ENOMEM, "%s: out of memory copying tensor names.", L);
            goto done;
        }
        t->data = data + b;
        spans[st->n] = (st_span){b, en, st->n};
        st->n++;
    }

    /* The names are unique (dup_key); sorted, they are the index for find(). */
    sorted = malloc((st->n ? (size_t)st->n : 1) * sizeof *sorted);
    st->by_name = malloc((st->n ? (size_t)st->n : 1) * sizeof *st->by_name);
    if (!sorted || !st->by_name) {
        rc = ake_errf(err, errlen, AKE_ENOMEM, "%s: out of memory indexing %d tensors.", L, st->n);
        goto done;
    }
    for (int i = 0; i < st->n; i++) sorted[i] = &st->t[i];
    qsort(sorted, (size_t)st->n, sizeof *sorted, cmp_name_ptr);
    for (int i = 0; i < st->n; i++) st->by_name[i] = (int)(sorted[i] - st->t);

    /* The tensors must tile [0, data_len) exactly. */
    qsort(spans, (size_t)st->n, sizeof *spans, cmp_span);
    uint64_t cursor = 0;
    for (int i = 0; i < st->n; i++) {
        const st_span *s = &spans[i];
        const char *name = st->t[s->idx].name;
        if (s->begin < cursor) {
            rc = ake_errf(err, errlen, AKE_EFORMAT,
                          "%s: tensor '%s' at data offsets [%llu, %llu] overlaps tensor '%s', which ends at %llu.", L,
                          name, (unsigned long long)s->begin, (unsigned long long)s->end, st->t[spans[i - 1].idx].name,
                          (unsigned long long)cursor);
            goto done;
        }
        if (s->begin > cursor) {
            rc = ake_errf(err, errlen, AKE_EFORMAT,
                          "%s: data bytes [%llu, %llu) belong to no tensor (gap before tensor '%s').", L,
                          (unsigned long long)cursor, (unsigned long long)s->begin, name);
            goto done;
        }
        cursor = s->end;
    }
    if (cursor != data_len) {
        rc = ake_errf(err, errlen, AKE_EFORMAT,
                      "%s: data bytes [%llu, %llu) at the end of the file belong to no tensor.", L,
                      (unsigned long long)cursor, (unsigned long long)data_len);
        goto done;
    }

done:
    free(sorted);
    free(spans);
    json_object_put(root);
    return rc;
}

static ake_safetensors *st_new(const char *label) {
    ake_safetensors *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->label = strdup(label ? label : "(buffer)");
    if (!st->label) {
        free(st);
        return NULL;
    }
    return st;
}

ake_status ake_safetensors_parse(const void *buf, size_t len, const char *label, ake_safetensors **out, char *err,
                                 size_t errlen) {
    AKE_ASSERT(out);
    *out = NULL;
    if (!buf && len) return ake_errf(err, errlen, AKE_EINVAL, "%s: NULL buffer.", label ? label : "(buffer)");
    ake_safetensors *st = st_new(label);
    if (!st) return ake_errf(err, errlen, AKE_ENOMEM, "%s: out of memory.", label ? label : "(buffer)");
    static const unsigned char empty[1];
    ake_status rc = parse_into(st, buf ? buf : empty, len, err, errlen);
    if (rc != AKE_OK) {
        ake_safetensors_close(st);
        return rc;
    }
    *out = st;
    return AKE_OK;
}

ake_status ake_safetensors_open(const char *path, ake_safetensors **out, char *err, size_t errlen) {
    AKE_ASSERT(path && out);
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return ake_errf(err, errlen, e == ENOENT ? AKE_ENOTFOUND : AKE_EIO, "cannot open %s: %s.", path, strerror(e));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return ake_errf(err, errlen, AKE_EIO, "cannot stat %s: %s.", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return ake_errf(err, errlen, AKE_EIO, "%s is not a regular file.", path);
    }
    if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX) {
        close(fd);
        return ake_errf(err, errlen, AKE_ETOOLONG, "%s is too large to map.", path);
    }
    size_t len = (size_t)sb.st_size;
    ake_safetensors *st = st_new(path);
    if (!st) {
        close(fd);
        return ake_errf(err, errlen, AKE_ENOMEM, "%s: out of memory.", path);
    }
    const unsigned char *base = NULL;
    unsigned char hb[8];
    uint64_t hlen = 0;
    bool aligned = true;
    if (len >= 8) {
        if (pread(fd, hb, 8, 0) != 8) {
            int e = errno;
            close(fd);
            ake_safetensors_close(st);
            return ake_errf(err, errlen, AKE_EIO, "cannot read %s: %s.", path, strerror(e));
        }
        for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | hb[i];
        aligned = (hlen % 8) == 0;
    }
    if (len > 0 && aligned) {
        void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            ake_safetensors_close(st);
            return ake_errf(err, errlen, AKE_EIO, "cannot map %s: %s.", path, strerror(e));
        }
        st->map = m;
        st->map_len = len;
        base = m;
    } else if (len > 0) {
        /* Data buffer would start at 8 + hlen, not a multiple of 8: read the file into
         * a heap block placed so that the data buffer lands on a 64-byte boundary. */
        size_t shift = (size_t)((64 - (8 + hlen) % 64) % 64);
        if (len > SIZE_MAX - 128) {
            close(fd);
            ake_safetensors_close(st);
            return ake_errf(err, errlen, AKE_ETOOLONG, "%s is too large to read.", path);
        }
        st->heap = aligned_alloc(64, ((len + shift) + 63) / 64 * 64);
        if (!st->heap) {
            close(fd);
            ake_safetensors_close(st);
            return ake_errf(err, errlen, AKE_ENOMEM, "%s: out of memory reading %zu bytes.", path, len);
        }
        unsigned char *dst = (unsigned char *)st->heap + shift;
        size_t got = 0;
        while (got < len) {
            ssize_t r = pread(fd, dst + got, len - got, (off_t)got);
            if (r <= 0) {
                int e = r < 0 ? errno : EIO;
                close(fd);
                ake_safetensors_close(st);
                return ake_errf(err, errlen, AKE_EIO, "cannot read %s: %s.", path, strerror(e));
            }
            got += (size_t)r;
        }
        base = dst;
    }
    close(fd);
    static const unsigned char empty[1];
    ake_status rc = parse_into(st, base ? base : empty, len, err, errlen);
    if (rc != AKE_OK) {
        ake_safetensors_close(st);
        return rc;
    }
    *out = st;
    return AKE_OK;
}

int ake_safetensors_count(const ake_safetensors *st) {
    AKE_ASSERT(st);
    return st->n;
}

const ake_tensor *ake_safetensors_at(const ake_safetensors *st, int i) {
    AKE_ASSERT(st && i >= 0 && i < st->n);
    return &st->t[i];
}

const ake_tensor *ake_safetensors_find(const ake_safetensors *st, const char *name) {
    AKE_ASSERT(st);
    if (!name) return NULL;
    int lo = 0, hi = st->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const ake_tensor *t = &st->t[st->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

const char *ake_safetensors_label(const ake_safetensors *st) {
    AKE_ASSERT(st);
    return st->label;
}

const char *ake_safetensors_metadata(const ake_safetensors *st, const char *key) {
    AKE_ASSERT(st);
    if (!key || !st->n_meta) return NULL;
    st_meta probe = {(char *)key, NULL};
    const st_meta *m = bsearch(&probe, st->meta, (size_t)st->n_meta, sizeof *st->meta, cmp_meta);
    return m ? m->value : NULL;
}

/* ---- writer ---------------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_u64(sbuf *b, uint64_t v) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    sb_put(b, tmp, (size_t)n);
}

/* A JSON string literal: escapes quote, backslash and control bytes; UTF-8 passes through. */
static void sb_json_str(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            sb_put(b, esc, 2);
        } else if (*p < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            sb_put(b, esc, 6);
        } else {
            sb_put(b, (const char *)p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

/* Checks one tensor description for the writer; returns its byte size via *nbytes. */
static ake_status check_write_tensor(const char *path, const ake_tensor *t, int i, uint64_t *nbytes, char *err,
                                     size_t errlen) {
    if (!t->name)
        return ake_errf(err, errlen, AKE_EINVAL, "writing %s: tensor #%d has no name.", path, i);
    if (strcmp(t->name, "__metadata__") == 0)
        return ake_errf(err, errlen, AKE_EINVAL, "writing %s: \"__metadata__\" cannot name a tensor.", path);
    size_t nl = strlen(t->name);
    if (utf8_invalid_at((const unsigned char *)t->name, nl) != nl)
        return ake_errf(err, errlen, AKE_EINVAL, "writing %s: tensor #%d's name is not valid UTF-8.", path, i);
    if ((int)t->dtype < 0 || t->dtype >= AKE_DT_COUNT)
        return ake_errf(err, errlen, AKE_EINVAL, "writing %s: tensor '%s' has an invalid dtype %d.", path, t->name,
                        (int)t->dtype);
    if (t->ndim < 0 || t->ndim > AKE_MAX_DIMS)
        return ake_errf(err, errlen, AKE_EINVAL, "writing %s: tensor '%s' has %d dimensions (0 to %d allowed).", path,
                        t->name, t->ndim, AKE_MAX_DIMS);
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0 || (double)t->shape[d] >= ST_MAX_SAFE_INT)
            return ake_errf(err, errlen, AKE_EINVAL, "writing %s: tensor '%s' has dimension %d of %lld.", path,
                            t->name, d, (long long)t->shape[d]);
        if (__builtin_mul_overflow(n, (uint64_t)t->shape[d], &n))
            return ake_errf(err, errlen, AKE_EINVAL, "writing %s: tensor '%s' has a shape whose size overflows.",
                            path, t->name);
    }
    if (__builtin_mul_overflow(n, (uint64_t)ake_dtype_size(t->dtype), &n))
        return ake_errf(err, errlen, AKE_EINVAL, "writing %s: tensor '%s' has a shape whose size overflows.", path,
                        t->name);
    if (n != (uint64_t)t->nbytes)
        return ake_errf(err, errlen, AKE_EINVAL,
                        "writing %s: tensor '%s' says nbytes %zu but its dtype and shape need %llu bytes.", path,
                        t->name, t->nbytes, (unsigned long long)n);
    *nbytes = n;
    return AKE_OK;
}

static ake_status write_impl(const char *path, const ake_tensor *tensors, int n, ake_safetensors_fill_fn fill,
                             void *ctx, char *err, size_t errlen) {
    AKE_ASSERT(path && (tensors || n == 0) && n >= 0);
    ake_status rc = AKE_OK;
    sbuf hb = {0};
    const char **names = NULL;
    void *scratch = NULL;
    char *tmp = NULL;
    FILE *f = NULL;
    uint64_t max_bytes = 0;

    names = malloc((n ? (size_t)n : 1) * sizeof *names);
    if (!names) return ake_errf(err, errlen, AKE_ENOMEM, "writing %s: out of memory.", path);

    uint64_t offset = 0;
    sb_str(&hb, "{");
    for (int i = 0; i < n; i++) {
        const ake_tensor *t = &tensors[i];
        uint64_t nb = 0;
        if ((rc = check_write_tensor(path, t, i, &nb, err, errlen)) != AKE_OK) goto out;
        if (!fill && nb && !t->data) {
            rc = ake_errf(err, errlen, AKE_EINVAL, "writing %s: tensor '%s' has no data.", path, t->name);
            goto out;
        }
        names[i] = t->name;
        if (nb > max_bytes) max_bytes = nb;
        if (i) sb_str(&hb, ",");
        sb_json_str(&hb, t->name);
        sb_str(&hb, ":{\"dtype\":\"");
        sb_str(&hb, ake_dtype_name(t->dtype));
        sb_str(&hb, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) sb_str(&hb, ",");
            sb_u64(&hb, (uint64_t)t->shape[d]);
        }
        sb_str(&hb, "],\"data_offsets\":[");
        sb_u64(&hb, offset);
        sb_str(&hb, ",");
        if (__builtin_add_overflow(offset, nb, &offset) || (double)offset >= ST_MAX_SAFE_INT) {
            rc = ake_errf(err, errlen, AKE_EINVAL, "writing %s: the tensors add up to more than 2^53 bytes.", path);
            goto out;
        }
        sb_u64(&hb, offset);
        sb_str(&hb, "]}");
    }
    sb_str(&hb, "}");
    while (hb.len % 8) sb_str(&hb, " ");
    if (hb.oom) {
        rc = ake_errf(err, errlen, AKE_ENOMEM, "writing %s: out of memory building the header.", path);
        goto out;
    }
    if ((uint64_t)hb.len > ST_MAX_HEADER) {
        rc = ake_errf(err, errlen, AKE_ETOOLONG, "writing %s: the header would be %zu bytes, over the limit.", path,
                      hb.len);
        goto out;
    }
    qsort(names, (size_t)n, sizeof *names, cmp_cstr_ptr);
    for (int i = 1; i < n; i++) {
        if (strcmp(names[i - 1], names[i]) == 0) {
            rc = ake_errf(err, errlen, AKE_EINVAL, "writing %s: two tensors are named '%s'.", path, names[i]);
            goto out;
        }
    }
    if (fill && max_bytes) {
        if (max_bytes > SIZE_MAX || !(scratch = malloc((size_t)max_bytes))) {
            rc = ake_errf(err, errlen, AKE_ENOMEM, "writing %s: out of memory for a %llu-byte tensor.", path,
                          (unsigned long long)max_bytes);
            goto out;
        }
    }

    size_t tl = strlen(path) + 32;
    tmp = malloc(tl);
    if (!tmp) {
        rc = ake_errf(err, errlen, AKE_ENOMEM, "writing %s: out of memory.", path);
        goto out;
    }
    snprintf(tmp, tl, "%s.tmp.%ld", path, (long)getpid());
    f = fopen(tmp, "wb");
    if (!f) {
        rc = ake_errf(err, errlen, AKE_EIO, "cannot create %s: %s.", tmp, strerror(errno));
        goto out;
    }
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)(((uint64_t)hb.len >> (8 * i)) & 0xFF);
    bool ok = fwrite(lenb, 1, 8, f) == 8 && fwrite(hb.p, 1, hb.len, f) == hb.len;
    for (int i = 0; ok && i < n; i++) {
        const ake_tensor *t = &tensors[i];
        if (!t->nbytes) continue;
        const void *src = t->data;
        if (fill) {
            if ((rc = fill(ctx, i, scratch, t->nbytes, err, errlen)) != AKE_OK) goto out;
            src = scratch;
        }
        ok = fwrite(src, 1, t->nbytes, f) == t->nbytes;
    }
    if (!ok) {
        rc = ake_errf(err, errlen, AKE_EIO, "cannot write %s: %s.", tmp, strerror(errno));
        goto out;
    }
    int cr = fclose(f);
    f = NULL;
    if (cr != 0) {
        rc = ake_errf(err, errlen, AKE_EIO, "cannot write %s: %s.", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        rc = ake_errf(err, errlen, AKE_EIO, "cannot rename %s to %s: %s.", tmp, path, strerror(errno));
        goto out;
    }

out:
    if (f) fclose(f);
    if (rc != AKE_OK && tmp) unlink(tmp);
    free(tmp);
    free(scratch);
    free(names);
    free(hb.p);
    return rc;
}

ake_status ake_safetensors_write(const char *path, const ake_tensor *tensors, int n, char *err, size_t errlen) {
    return write_impl(path, tensors, n, NULL, NULL, err, errlen);
}

ake_status ake_safetensors_write_fill(const char *path, const ake_tensor *tensors, int n, ake_safetensors_fill_fn fill,
                                      void *ctx, char *err, size_t errlen) {
    AKE_ASSERT(fill);
    return write_impl(path, tensors, n, fill, ctx, err, errlen);
}
