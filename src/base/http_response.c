#include "base/http_response.h"

#include <string.h>
#include <strings.h>

enum { ST_STATUS, ST_HEADER, ST_BODY, ST_CHUNK_SIZE, ST_CHUNK_DATA, ST_CHUNK_END, ST_TRAILER, ST_DONE };

void ake_http_response_init(ake_http_response *r) { memset(r, 0, offsetof(ake_http_response, line)); }

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

/* s[0..n) without optional white space at either end. */
static void trim(const char **s, size_t *n) {
    while (*n && is_ows(**s)) (*s)++, (*n)--;
    while (*n && is_ows((*s)[*n - 1])) (*n)--;
}

static bool token_is(const char *s, size_t n, const char *word) { return n == strlen(word) && !strncasecmp(s, word, n); }

/* The status line, whole in line[0..n). */
static ake_status status_line(ake_http_response *r, const char *l, size_t n, char *err, size_t errlen) {
    const bool ok = n >= 12 && !memcmp(l, "HTTP/1.", 7) && (l[7] == '0' || l[7] == '1') && l[8] == ' ' &&
                    l[9] >= '1' && l[9] <= '5' && l[10] >= '0' && l[10] <= '9' && l[11] >= '0' && l[11] <= '9' &&
                    (n == 12 || l[12] == ' ');
    if (!ok)
        return ake_errf(err, errlen, AKE_EFORMAT, "bad HTTP status line '%.*s'.", (int)(n < 64 ? n : 64), l);
    r->http10 = l[7] == '0';
    r->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
    r->chunked = r->has_length = r->conn_close = r->conn_keep = false;
    r->state = ST_HEADER;
    return AKE_OK;
}

/* One header line, l[0..n) of a line of full_len bytes (n < full_len when it was cut). */
static ake_status header_line(ake_http_response *r, const char *l, size_t n, size_t full_len, char *err, size_t errlen) {
    const char *colon = memchr(l, ':', n);
    if (!colon) {
        if (n < full_len) return AKE_OK; /* a long header, its name cut too: not one of ours, which are short */
        return ake_errf(err, errlen, AKE_EFORMAT, "bad HTTP header line '%.*s' (no colon).", (int)(n < 64 ? n : 64), l);
    }
    const size_t name_n = (size_t)(colon - l);
    if (!name_n || is_ows(l[name_n - 1]))
        return ake_errf(err, errlen, AKE_EFORMAT, "bad HTTP header name '%.*s'.", (int)name_n, l);
    const bool length = token_is(l, name_n, "content-length"), te = token_is(l, name_n, "transfer-encoding"),
               conn = token_is(l, name_n, "connection");
    if (!length && !te && !conn) return AKE_OK;
    if (n < full_len)
        return ake_errf(err, errlen, AKE_ETOOLONG, "HTTP header %.*s longer than %d bytes.", (int)name_n, l,
                        AKE_HTTP_LINE_MAX);
    const char *v = colon + 1;
    size_t vn = n - name_n - 1;
    trim(&v, &vn);
    if (length) {
        uint64_t x = 0;
        for (size_t i = 0; i < vn; i++) {
            if (v[i] < '0' || v[i] > '9' || x > (UINT64_MAX - 9) / 10) {
                x = UINT64_MAX;
                break;
            }
            x = x * 10 + (uint64_t)(v[i] - '0');
        }
        if (!vn || x == UINT64_MAX || (r->has_length && x != r->length))
            return ake_errf(err, errlen, AKE_EFORMAT, "bad HTTP Content-Length '%.*s'.", (int)vn, v);
        r->has_length = true;
        r->length = x;
    } else if (te) {
        /* the last coding decides the framing; the codings before it do not matter to bytes we skip */
        const char *last = v;
        for (const char *c = v; c < v + vn; c++)
            if (*c == ',') last = c + 1;
        size_t ln = (size_t)(v + vn - last);
        trim(&last, &ln);
        if (!token_is(last, ln, "chunked"))
            return ake_errf(err, errlen, AKE_EUNSUPPORTED,
                            "HTTP Transfer-Encoding '%.*s' does not end in chunked (a body that only the closing of "
                            "the connection ends is not read).",
                            (int)vn, v);
        r->chunked = true;
    } else {
        for (const char *s = v, *end = v + vn; s < end;) {
            const char *c = memchr(s, ',', (size_t)(end - s));
            const char *e = c ? c : end;
            const char *t = s;
            size_t tn = (size_t)(e - s);
            trim(&t, &tn);
            r->conn_close |= token_is(t, tn, "close");
            r->conn_keep |= token_is(t, tn, "keep-alive");
            s = c ? c + 1 : end;
        }
    }
    return AKE_OK;
}

/* The empty line after the headers: what frames the body. */
static ake_status end_of_headers(ake_http_response *r, char *err, size_t errlen) {
    if (r->status == 101)
        return ake_errf(err, errlen, AKE_EUNSUPPORTED, "HTTP 101 Switching Protocols is not a response loadgen reads.");
    if (r->status < 200) { /* interim (100 Continue, 103 Early Hints): the final response follows */
        r->status = 0;
        r->state = ST_STATUS;
        return AKE_OK;
    }
    r->keep_alive = r->http10 ? r->conn_keep && !r->conn_close : !r->conn_close;
    if (r->status == 204 || r->status == 304) {
        r->state = ST_DONE;
    } else if (r->chunked) {
        r->state = ST_CHUNK_SIZE;
    } else if (r->has_length) {
        r->left = r->length;
        r->state = r->left ? ST_BODY : ST_DONE;
    } else {
        return ake_errf(err, errlen, AKE_EUNSUPPORTED,
                        "HTTP response %d has neither Content-Length nor chunked Transfer-Encoding (a body that only "
                        "the closing of the connection ends is not read).",
                        r->status);
    }
    return AKE_OK;
}

/* A chunk's size line, whole in l[0..n): hex digits, then optional white space and extensions. */
static ake_status chunk_size(ake_http_response *r, const char *l, size_t n, char *err, size_t errlen) {
    uint64_t x = 0;
    size_t i = 0;
    for (; i < n; i++) {
        const char c = l[i];
        const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) break;
        if (x >> 60) return ake_errf(err, errlen, AKE_EFORMAT, "HTTP chunk size '%.*s' too large.", (int)n, l);
        x = x << 4 | (uint64_t)d;
    }
    size_t j = i;
    while (j < n && is_ows(l[j])) j++;
    if (!i || (j < n && l[j] != ';'))
        return ake_errf(err, errlen, AKE_EFORMAT, "bad HTTP chunk size line '%.*s'.", (int)(n < 64 ? n : 64), l);
    r->left = x;
    r->state = x ? ST_CHUNK_DATA : ST_TRAILER;
    return AKE_OK;
}

/* A whole line of full_len bytes, of which r->line holds the first n (CR LF already off). */
static ake_status on_line(ake_http_response *r, size_t n, size_t full_len, char *err, size_t errlen) {
    const char *l = r->line;
    const bool cut = n < full_len;
    switch (r->state) {
    case ST_STATUS:
        if (cut) return ake_errf(err, errlen, AKE_ETOOLONG, "HTTP status line longer than %d bytes.", AKE_HTTP_LINE_MAX);
        return status_line(r, l, n, err, errlen);
    case ST_HEADER: return full_len ? header_line(r, l, n, full_len, err, errlen) : end_of_headers(r, err, errlen);
    case ST_CHUNK_SIZE:
        if (cut) return ake_errf(err, errlen, AKE_ETOOLONG, "HTTP chunk size line longer than %d bytes.", AKE_HTTP_LINE_MAX);
        return chunk_size(r, l, n, err, errlen);
    case ST_CHUNK_END:
        if (full_len) return ake_errf(err, errlen, AKE_EFORMAT, "HTTP chunk data longer than its size.");
        r->state = ST_CHUNK_SIZE;
        return AKE_OK;
    default: /* ST_TRAILER: trailer fields are skipped; the empty line ends the response */
        if (!full_len) r->state = ST_DONE;
        return AKE_OK;
    }
}

ake_status ake_http_response_feed(ake_http_response *r, const char *buf, size_t n, size_t *used, char *err,
                                  size_t errlen) {
    size_t pos = 0;
    while (pos < n && r->state != ST_DONE) {
        if (r->state == ST_BODY || r->state == ST_CHUNK_DATA) {
            const size_t take = (uint64_t)(n - pos) < r->left ? n - pos : (size_t)r->left;
            pos += take;
            r->left -= take;
            if (!r->left) r->state = r->state == ST_BODY ? ST_DONE : ST_CHUNK_END;
            continue;
        }
        /* a line: keep what fits of it, count the rest */
        const char *nl = memchr(buf + pos, '\n', n - pos);
        const size_t k = nl ? (size_t)(nl - (buf + pos)) : n - pos;
        if (r->state == ST_STATUS || r->state == ST_HEADER || r->state == ST_TRAILER) {
            if (k + (nl != NULL) > (size_t)(AKE_HTTP_HEADERS_MAX - r->head_len))
                return ake_errf(err, errlen, AKE_ETOOLONG, "HTTP response headers longer than %d bytes.",
                                AKE_HTTP_HEADERS_MAX);
            r->head_len += (uint32_t)(k + (nl != NULL));
        }
        if (r->line_len < AKE_HTTP_LINE_MAX) {
            const size_t room = AKE_HTTP_LINE_MAX - r->line_len;
            memcpy(r->line + r->line_len, buf + pos, k < room ? k : room);
        }
        if (k) r->last = buf[pos + k - 1];
        r->line_len = k > UINT32_MAX - r->line_len ? UINT32_MAX : r->line_len + (uint32_t)k;
        pos += k + (nl != NULL);
        if (!nl) break;
        const size_t full = r->line_len - (r->line_len && r->last == '\r');
        r->line_len = 0;
        const size_t kept = full < AKE_HTTP_LINE_MAX ? full : AKE_HTTP_LINE_MAX;
        const ake_status s = on_line(r, kept, full, err, errlen);
        if (s != AKE_OK) return s;
    }
    r->done = r->state == ST_DONE;
    *used = pos;
    return AKE_OK;
}
