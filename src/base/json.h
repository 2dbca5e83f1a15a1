/* Reading JSON text: the one reader of request bodies and of `--jsonl` lines, json-c in strict
 * mode (RFC 8259: no single quotes, comments or trailing data; UTF-8 checked to RFC 3629). json-c
 * reads NaN and Infinity as numbers even so: fields that take numbers check them.
 *
 * Why json-c: strings keep their length, so "\u0000" is text (HF `tokenizers` drops U+0000 in
 * normalization; cJSON's NUL-terminated strings cut the text there), and it parses request
 * bodies 3-5x faster than jansson, the other Debian library that keeps NUL (bench/src/parse_bench.c,
 * dev notes in README "Request parsing"). */
#ifndef AKE_BASE_JSON_H
#define AKE_BASE_JSON_H

#include <stddef.h>

#include <json-c/json_types.h>

/* Parses s[0..n) as exactly one JSON value (white space around it allowed). On success returns
 * 0 and *out owns the tree (json_object_put; NULL is the JSON literal null). On failure returns
 * -1, *out is NULL, *err_off is the byte offset where reading stopped and *why a static reason.
 * An escape of half a UTF-16 surrogate pair ("\ud800" alone) is refused too: json-c would put
 * U+FFFD in its place, and a text must not change silently. Thread-safe (one reusable tokener
 * per thread). */
int ake_json_parse(const char *s, size_t n, json_object **out, size_t *err_off, const char **why);

/* Line and column (1-based, counted in bytes) of byte offset off in s, for messages. */
void ake_json_line_col(const char *s, size_t off, size_t *line, size_t *col);

#endif
