/* JSON: json-c is the project's one JSON library. ake_json_parse is the one reader of JSON text
 * (request bodies, `--jsonl` lines, every JSON file: model configs, tokenizer files, safetensors
 * headers, the registry's settings and state), json-c in strict mode (RFC 8259: no single quotes,
 * comments or trailing data; UTF-8 checked to RFC 3629; NaN, Infinity and raw control characters
 * in strings, which json-c would take even so, refused before it reads).
 *
 * Why json-c: strings keep their length, so "\u0000" is text (HF `tokenizers` drops U+0000 in
 * normalization; a NUL-terminated string would cut the text there), and it parses request
 * bodies 3-5x faster than jansson, the other Debian library that keeps NUL (measured with
 * bench/src/parse_bench.c on this box). Against cJSON, which cannot hold NUL, on the H200 host
 * (bench/results/parse-2026-11-29-h200-host-458dc58.txt): a one-text body 0.58 -> 2.2 us, 2,048
 * texts (1.6 MB) 8.3 -> 10.0 ms, 64 x 256 token ids 3.1 -> 3.0 ms.
 *
 * What json-c does that a reader must know: JSON null is a NULL json_object * (json_object_object_get_ex
 * tells an absent key from null); object keys are C strings (an escaped U+0000 ends a key); of two
 * equal keys in one object the last is kept; integers past int64 (positive: past uint64) saturate. */
#ifndef AKE_BASE_JSON_H
#define AKE_BASE_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json_types.h>

#include "base/status.h"

/* Parses s[0..n) as exactly one JSON value (white space around it allowed). On success returns
 * 0 and *out owns the tree (json_object_put; NULL is the JSON literal null). On failure returns
 * -1, *out is NULL, *err_off is the byte offset where reading stopped and *why a static reason.
 * An escape of half a UTF-16 surrogate pair ("\ud800" alone) is refused too: json-c would put
 * U+FFFD in its place, and a text must not change silently. Thread-safe (one reusable tokener
 * per thread). */
int ake_json_parse(const char *s, size_t n, json_object **out, size_t *err_off, const char **why);

/* Reads the file at path (at most max_bytes) and parses it as above. On success *out owns the
 * tree (NULL for the JSON literal null). AKE_ENOTFOUND (err filled) when the file does not exist,
 * so that a caller decides whether that is an error; AKE_EFORMAT with "path:line:column: why"
 * when it is not JSON; ake_read_file's codes otherwise. */
ake_status ake_json_read_file(const char *path, size_t max_bytes, json_object **out, char *err, size_t errlen);
/* Line and column (1-based, counted in bytes) of byte offset off in s, for messages. */
void ake_json_line_col(const char *s, size_t off, size_t *line, size_t *col);

/* True when v is a number (json-c's int or double type), its value in *out: integers past 2^53
 * rounded to the nearest double, so range checks on *out hold for every integer. */
bool ake_json_number(const json_object *v, double *out);

/* A number for the writers (json_object_to_json_string_ext): the shortest of %.15g and %.17g
 * that reads back as v, so 0.1 is written 0.1 (json-c's own %.17g writes 0.10000000000000001);
 * NULL, which json-c writes as null, for NaN and infinities, which JSON lacks. */
json_object *ake_json_new_number(double v);

#endif
