/* Shared pieces of the akidb-embed subcommands. */
#ifndef AKE_CLI_CLI_H
#define AKE_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/engine.h"
#include "model/model.h"
#include "serve/pipeline.h"
#include "text/tokenizer.h"

#define AKE_VERSION "0.1.0"
#define AKE_DEFAULT_MODEL "models/all-MiniLM-L6-v2"

/* Subcommands: each takes argv after the subcommand name (argv[0] = name) and returns the exit code. */
int ake_cmd_embed(int argc, char **argv);
int ake_cmd_tokenize(int argc, char **argv);
int ake_cmd_synth(int argc, char **argv);
int ake_cmd_bench(int argc, char **argv);
int ake_cmd_serve(int argc, char **argv);
int ake_cmd_loadgen(int argc, char **argv);
int ake_cmd_validate(int argc, char **argv);
int ake_cmd_quantize(int argc, char **argv);
int ake_cmd_import_onnx(int argc, char **argv);
int ake_cmd_ab(int argc, char **argv);
int ake_cmd_distill(int argc, char **argv);

/* Parses a positive int flag value; prints an error naming the flag and returns false if bad. */
bool ake_cli_parse_int(const char *flag, const char *s, int32_t lo, int32_t hi, int32_t *out);

/* Where texts come from: one per line, raw (plain) or as JSON string literals (jsonl,
 * which can carry newlines and any code point, U+0000 included). */
typedef struct {
    FILE *f;
    bool jsonl;
    char *line;      /* owned getline buffer */
    size_t line_cap;
    char *text;      /* owned decoded text (jsonl) */
    size_t text_cap;
    int64_t line_no; /* 1-based number of the line last read */
} ake_text_reader;

/* Reads the next text. Returns 1 and sets *text and *len (valid until the next call) on
 * success, 0 at end of input, -1 on a malformed jsonl line (message in err). */
int ake_text_reader_next(ake_text_reader *r, const char **text, size_t *len, char *err, size_t errlen);
void ake_text_reader_release(ake_text_reader *r);

/* A text file read whole: one text per line (or per JSON string literal with jsonl). */
typedef struct {
    int32_t n;
    char **text;   /* owned [n], NUL-terminated (a text may hold U+0000 with jsonl: use len) */
    size_t *len;   /* owned [n] */
} ake_texts;

/* Reads at most `limit` texts (<= 0: all) of `path`; on failure prints "akidb-embed <cmd>:
 * ..." naming the file and line, and returns 1 (0 on success). Release with ake_texts_release. */
int ake_cli_read_texts(const char *cmd, const char *path, bool jsonl, int32_t limit, ake_texts *out);
void ake_texts_release(ake_texts *t);

/* Writes a JSON array of floats, each as printf's %.9g (round-trip exact; the server's
 * ake_format_float, so CLI and HTTP print the same bytes), then '\n'. */
void ake_write_float_array(FILE *f, const float *v, int32_t n);

/* Whether `path` can be created later (its parent folder exists and is writable), checked
 * before a long run that would write it at the end; prints "akidb-embed <cmd>: <flag> ..."
 * and returns false when not. */
bool ake_cli_can_create(const char *cmd, const char *flag, const char *path);

/* Prints "akidb-embed <cmd>: <message>" to stderr. */
void ake_cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
