#include "serve/jsonw.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool ake_buf_reserve(ake_buf *b, size_t extra) {
    if (b->oom) return false;
    if (b->len + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
        b->oom = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

void ake_buf_put(ake_buf *b, const char *s, size_t n) {
    if (!ake_buf_reserve(b, n)) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

void ake_buf_puts(ake_buf *b, const char *s) { ake_buf_put(b, s, strlen(s)); }

void ake_buf_printf(ake_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !ake_buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void ake_buf_int(ake_buf *b, int64_t v) {
    char tmp[24];
    int i = sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) tmp[--i] = '-';
    ake_buf_put(b, tmp + i, sizeof tmp - (size_t)i);
}

void ake_buf_json_string(ake_buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    if (!ake_buf_reserve(b, n + 2)) return;
    ake_buf_put(b, "\"", 1);
    size_t run = 0; /* start of the pending run of bytes that need no escape */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        ake_buf_put(b, s + run, i - run);
        run = i + 1;
        char esc[7] = {'\\', 0};
        size_t len = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            len = 6;
        }
        ake_buf_put(b, esc, len);
    }
    ake_buf_put(b, s + run, n - run);
    ake_buf_put(b, "\"", 1);
}

/* Exact powers of ten in double: 10^0 .. 10^22. */
static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                       1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* a * 10^k with one rounding (|k| <= 22, so 10^|k| is exact). */
static double scale10(double a, int k) { return k >= 0 ? a * pow10_exact[k] : a / pow10_exact[-k]; }

/* Writes digits of u (exactly `n` of them, leading zeros kept) at out. */
static void put_digits(char *out, uint32_t u, int n) {
    for (int i = n - 1; i >= 0; i--) {
        out[i] = (char)('0' + u % 10);
        u /= 10;
    }
}

int ake_format_float(char *out, float v) {
    if (!isfinite(v)) return (int)(memcpy(out, "null", 5), 4);
    double x = (double)v;
    if (x == 0.0) return snprintf(out, 32, "%.9g", x); /* "0" or "-0" */
    double a = fabs(x);
    /* Decimal exponent e with 10^e <= a < 10^(e+1), estimated then fixed up. */
    int e = (int)floor(log10(a));
    int k = 8 - e; /* scale so that 10^8 <= a*10^k < 10^9 */
    if (k < -22 || k > 22) return snprintf(out, 32, "%.9g", x);
    double s = scale10(a, k);
    if (s < 1e8 || s >= 1e9) { /* the log10 estimate was one off */
        int adj = s < 1e8 ? 1 : -1;
        k += adj;
        e -= adj;
        if (k < -22 || k > 22) return snprintf(out, 32, "%.9g", x);
        s = scale10(a, k);
    }
    double fl = floor(s), frac = s - fl;
    /* One rounding in the scaling: |s - exact| <= 1e9 * 2^-53 < 1.2e-7. Near a tie the
     * direction may be wrong, so let printf decide there. */
    if (fabs(frac - 0.5) < 1e-6 || s < 1e8 || s >= 1e9) return snprintf(out, 32, "%.9g", x);
    uint32_t m = (uint32_t)fl + (frac > 0.5);
    if (m == 1000000000u) {
        m = 100000000u;
        e++;
    }
    /* Now v = ±m * 10^(e-8) with m of 9 digits; format as %g does. */
    char digits[9];
    put_digits(digits, m, 9);
    int nd = 9;
    while (nd > 1 && digits[nd - 1] == '0') nd--; /* %g drops trailing zeros */
    char *o = out;
    if (x < 0) *o++ = '-';
    if (e < -4 || e >= 9) { /* scientific: d.ddde±XX */
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        *o++ = 'e';
        *o++ = e < 0 ? '-' : '+';
        int ae = e < 0 ? -e : e;
        if (ae >= 100) *o++ = (char)('0' + ae / 100);
        *o++ = (char)('0' + ae / 10 % 10);
        *o++ = (char)('0' + ae % 10);
    } else if (e >= 0) { /* ddd.ddd */
        int ip = e + 1;
        if (nd <= ip) {
            memcpy(o, digits, (size_t)nd);
            o += nd;
            for (int i = nd; i < ip; i++) *o++ = '0';
        } else {
            memcpy(o, digits, (size_t)ip);
            o += ip;
            *o++ = '.';
            memcpy(o, digits + ip, (size_t)(nd - ip));
            o += nd - ip;
        }
    } else { /* 0.000ddd */
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -e - 1; i++) *o++ = '0';
        memcpy(o, digits, (size_t)nd);
        o += nd;
    }
    *o = 0;
    return (int)(o - out);
}

void ake_buf_float(ake_buf *b, float v) {
    if (!ake_buf_reserve(b, 32)) return;
    b->len += (size_t)ake_format_float(b->data + b->len, v);
}

void ake_buf_float_array(ake_buf *b, const float *v, int32_t n) {
    if (!ake_buf_reserve(b, (size_t)n * 17 + 2)) return;
    ake_buf_put(b, "[", 1);
    for (int32_t i = 0; i < n; i++) {
        if (!ake_buf_reserve(b, 33)) return;
        if (i) b->data[b->len++] = ',';
        b->len += (size_t)ake_format_float(b->data + b->len, v[i]);
    }
    ake_buf_put(b, "]", 1);
}

void ake_buf_base64(ake_buf *b, const void *bytes, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = bytes;
    if (!ake_buf_reserve(b, (n + 2) / 3 * 4)) return;
    char *o = b->data + b->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t w = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = tab[w >> 18];
        *o++ = tab[w >> 12 & 63];
        *o++ = tab[w >> 6 & 63];
        *o++ = tab[w & 63];
    }
    if (i < n) {
        uint32_t w = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = tab[w >> 18];
        *o++ = tab[w >> 12 & 63];
        *o++ = i + 1 < n ? tab[w >> 6 & 63] : '=';
        *o++ = '=';
    }
    b->len = (size_t)(o - b->data);
    b->data[b->len] = 0;
}

void ake_buf_base64_floats(ake_buf *b, const float *v, int32_t n) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    ake_buf_base64(b, v, (size_t)n * sizeof(float));
#else
    unsigned char *tmp = malloc((size_t)n * 4);
    if (!tmp) {
        b->oom = true;
        return;
    }
    for (int32_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int j = 0; j < 4; j++) tmp[4 * i + j] = (unsigned char)(u >> (8 * j));
    }
    ake_buf_base64(b, tmp, (size_t)n * 4);
    free(tmp);
#endif
}

char *ake_buf_take(ake_buf *b, size_t *len) {
    if (!b->data) ake_buf_reserve(b, 0);
    char *d = b->data;
    if (len) *len = b->len;
    *b = (ake_buf){0};
    return d;
}

void ake_buf_release(ake_buf *b) {
    free(b->data);
    *b = (ake_buf){0};
}
