/* A growable byte buffer and the JSON / base64 writers of the HTTP responses.
 *
 * Floats: ake_buf_float writes the shortest text that printf("%.9g") writes, byte
 * for byte (9 significant digits, which reads back to the very same float32), without
 * going through printf: the value is scaled by an exact power of ten in double
 * precision and rounded to a 9-digit integer. Where the scaled value lies within 1e-6
 * of a rounding tie (the double scaling may then have rounded the wrong way), and for
 * magnitudes whose power of ten is not exact in double (|x| < 1e-14 or >= 1e30), it
 * falls back to snprintf. Non-finite values (never produced by the engine) are
 * written as null, since JSON has no NaN or Infinity.
 *
 * Base64 is RFC 4648 with padding, the alphabet OpenAI's encoding_format=base64 uses.
 * Every writer sets b->oom and stops writing when an allocation fails; callers check
 * oom once at the end. */
#ifndef AKE_SERVE_JSONW_H
#define AKE_SERVE_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *data; /* owned, malloc'd; NUL-terminated after every write; take it with ake_buf_take */
    size_t len;
    size_t cap;
    bool oom;   /* an allocation failed; data holds what was written before */
} ake_buf;

/* Makes room for `extra` more bytes (plus the NUL); false (and oom) on failure. */
bool ake_buf_reserve(ake_buf *b, size_t extra);
void ake_buf_put(ake_buf *b, const char *s, size_t n);
void ake_buf_puts(ake_buf *b, const char *s);
void ake_buf_printf(ake_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ake_buf_int(ake_buf *b, int64_t v);
/* A JSON string literal with quotes; bytes >= 0x80 are copied as they are (UTF-8). */
void ake_buf_json_string(ake_buf *b, const char *s, size_t n);
/* One float as described above. */
void ake_buf_float(ake_buf *b, float v);
/* JSON array of n floats: [a,b,...]. */
void ake_buf_float_array(ake_buf *b, const float *v, int32_t n);
/* base64 of `n` bytes, no quotes. */
void ake_buf_base64(ake_buf *b, const void *bytes, size_t n);
/* base64 of the little-endian float32 bytes of v[0..n), no quotes. */
void ake_buf_base64_floats(ake_buf *b, const float *v, int32_t n);
/* Hands the buffer to the caller (who frees it with free()) and empties b. */
char *ake_buf_take(ake_buf *b, size_t *len);
void ake_buf_release(ake_buf *b);

/* Writes the %.9g text of v into out (at least 32 bytes); returns its length. */
int ake_format_float(char *out, float v);

#endif
