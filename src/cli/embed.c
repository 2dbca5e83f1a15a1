/* `akidb-embed embed` and `akidb-embed tokenize`: texts in, one JSON array per text out. */
#include <getopt.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "cli/cli.h"
#include "cli/device.h"
#include "serve/jsonw.h"

typedef struct {
    const char *model_dir, *input, *output, *device;
    bool jsonl;
    int32_t batch_size, threads, max_tokens; /* max_tokens: -1 = the model's limit, 0 = none */
    ake_precision precision;
    const char *prompt_name; /* embed only: a sentence-transformers prompt of the model (NULL: its default) */
    /* tokenize only, for the differential tests against HF (tests/py/test_tokenizer_spans.py) */
    ake_truncation_dir dir;
    bool spans, decode, skip_special;
} io_opts;

static const char embed_help[] =
    "usage: akidb-embed embed [options] < texts\n"
    "  Embeds each input text and prints one JSON array of floats per text, in input order.\n"
    "  Texts longer than the model's max sequence length are truncated (as sentence-transformers does).\n"
    "  --model DIR       model folder (default " AKE_DEFAULT_MODEL ")\n"
    "  --input FILE      read texts from FILE (default stdin); one text per line, empty lines included\n"
    "  --output FILE     write vectors to FILE (default stdout)\n"
    "  --jsonl           each input line is a JSON string literal (texts with newlines, any code point)\n"
    "  --batch-size N    sequences per engine call (default 32)\n"
    "  --prompt-name P   put the model's prompt P before every text (config_sentence_transformers.json);\n"
    "                    without it the model's default_prompt_name applies, as in sentence-transformers\n"
    "  --threads N       CPU threads (default: all cores)\n"
    AKE_CLI_DEVICE_HELP
    "Invalid UTF-8 in a text is an error: the command stops with a message naming the line.\n";

static const char tokenize_help[] =
    "usage: akidb-embed tokenize [options] < texts\n"
    "  Prints the token ids of each text ([CLS] ... [SEP]) as one JSON array per text.\n"
    "  --model DIR       model folder (default " AKE_DEFAULT_MODEL ")\n"
    "  --input FILE      read texts from FILE (default stdin); one text per line, empty lines included\n"
    "  --output FILE     write ids to FILE (default stdout)\n"
    "  --jsonl           each input line is a JSON string literal\n"
    "  --max-tokens N    truncate to N tokens incl. [CLS]/[SEP]; 0 = no truncation\n"
    "                    (default: the model's max sequence length)\n"
    "Developer flags (for the differential tests against HF tokenizers):\n"
    "  --truncate-left   drop tokens from the start instead of the end\n"
    "  --spans           print {\"ids\": [...], \"spans\": [[start, stop, special], ...]} per text:\n"
    "                    byte offsets into the text ([0, 0, 1] for [CLS]/[SEP])\n"
    "  --decode          the other way: each input line is a JSON array of token ids, and\n"
    "                    each output line the decoded text as a JSON string\n"
    "  --skip-special-tokens   with --decode, leave special tokens out\n";

/* Parses the shared flags; returns -1 to go on, else the exit code. */
static int parse_io(const char *cmd, int argc, char **argv, io_opts *o, const char *help) {
    enum { O_MODEL = 1, O_INPUT, O_OUTPUT, O_JSONL, O_BATCH, O_THREADS, O_MAXTOK, O_DEVICE, O_DTYPE, O_HELP,
           O_LEFT, O_SPANS, O_DECODE, O_SKIP, O_PROMPT };
    static const struct option longopts[] = {
        {"model", required_argument, 0, O_MODEL},     {"input", required_argument, 0, O_INPUT},
        {"output", required_argument, 0, O_OUTPUT},   {"jsonl", no_argument, 0, O_JSONL},
        {"batch-size", required_argument, 0, O_BATCH}, {"threads", required_argument, 0, O_THREADS},
        {"max-tokens", required_argument, 0, O_MAXTOK}, {"device", required_argument, 0, O_DEVICE},
        {"dtype", required_argument, 0, O_DTYPE},     {"help", no_argument, 0, O_HELP},
        {"truncate-left", no_argument, 0, O_LEFT},    {"spans", no_argument, 0, O_SPANS},
        {"decode", no_argument, 0, O_DECODE},         {"skip-special-tokens", no_argument, 0, O_SKIP},
        {"prompt-name", required_argument, 0, O_PROMPT},
        {0, 0, 0, 0}};
    *o = (io_opts){.model_dir = AKE_DEFAULT_MODEL, .device = "cpu", .batch_size = 32, .max_tokens = -1,
                   .precision = AKE_PREC_DEFAULT, .dir = AKE_TRUNCATE_RIGHT};
    bool is_embed = !strcmp(cmd, "embed");
    int c;
    optind = 1;
    opterr = 0; /* unknown flags are reported below, as "akidb-embed <cmd>: ..." */
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: o->model_dir = optarg; break;
        case O_INPUT: o->input = optarg; break;
        case O_OUTPUT: o->output = optarg; break;
        case O_JSONL: o->jsonl = true; break;
        case O_BATCH:
            if (!is_embed || !ake_cli_parse_int("--batch-size", optarg, 1, 4096, &o->batch_size)) return 2;
            break;
        case O_THREADS:
            if (!is_embed || !ake_cli_parse_int("--threads", optarg, 1, 1024, &o->threads)) return 2;
            break;
        case O_DEVICE:
            if (!is_embed) return 2;
            o->device = optarg;
            break;
        case O_DTYPE:
            if (!is_embed || !ake_cli_parse_precision(cmd, optarg, &o->precision)) return 2;
            break;
        case O_MAXTOK:
            if (is_embed || !ake_cli_parse_int("--max-tokens", optarg, 0, 1 << 30, &o->max_tokens)) return 2;
            break;
        case O_LEFT:
        case O_SPANS:
        case O_DECODE:
        case O_SKIP:
            if (is_embed) {
                ake_cli_error(cmd, "'%s' is a flag of tokenize", argv[optind - 1]);
                return 2;
            }
            if (c == O_LEFT) o->dir = AKE_TRUNCATE_LEFT;
            else if (c == O_SPANS) o->spans = true;
            else if (c == O_DECODE) o->decode = true;
            else o->skip_special = true;
            break;
        case O_PROMPT:
            if (!is_embed) {
                ake_cli_error(cmd, "'--prompt-name' is a flag of embed");
                return 2;
            }
            o->prompt_name = optarg;
            break;
        case O_HELP: fputs(help, stdout); return 0;
        default:
            ake_cli_error(cmd, "unknown option or missing value: '%s'", argv[optind - 1]);
            fputs(help, stderr);
            return 2;
        }
    }
    if (optind < argc) {
        ake_cli_error(cmd, "unexpected argument '%s'", argv[optind]);
        return 2;
    }
    if (o->skip_special && !o->decode) {
        ake_cli_error(cmd, "--skip-special-tokens goes with --decode");
        return 2;
    }
    if (o->decode && (o->spans || o->jsonl)) {
        ake_cli_error(cmd, "--decode reads JSON arrays of ids: it takes neither --spans nor --jsonl");
        return 2;
    }
    return -1;
}

typedef struct {
    ake_text_reader in;
    FILE *out;
    ake_pipeline p;
    const char *prompt; /* embed: put before every text (the model's), or NULL */
    char *joined;       /* owned: prompt + text */
    size_t joined_cap;
} io_ctx;

static int open_io(const char *cmd, const io_opts *o, io_ctx *io) {
    char err[512];
    memset(io, 0, sizeof *io);
    io->in.jsonl = o->jsonl;
    io->in.f = o->input ? fopen(o->input, "rb") : stdin;
    if (!io->in.f) {
        ake_cli_error(cmd, "cannot open input file '%s'", o->input);
        return 1;
    }
    if (ake_pipeline_load(o->model_dir, &io->p, err, sizeof err) != AKE_OK) {
        ake_cli_error(cmd, "%s", err);
        return 1;
    }
    io->out = o->output ? fopen(o->output, "wb") : stdout;
    if (!io->out) {
        ake_cli_error(cmd, "cannot open output file '%s'", o->output);
        return 1;
    }
    return 0;
}

static int close_io(const char *cmd, io_ctx *io, int rc) {
    if (io->in.f && io->in.f != stdin) fclose(io->in.f);
    ake_text_reader_release(&io->in);
    if (io->out && (fflush(io->out) != 0 || ferror(io->out)) && rc == 0) {
        ake_cli_error(cmd, "error writing output");
        rc = 1;
    }
    if (io->out && io->out != stdout) fclose(io->out);
    ake_pipeline_release(&io->p);
    free(io->joined);
    return rc;
}

/* Reads the next text and tokenizes it into toks: 1 on success, 0 at end of input,
 * -1 on bad input (already reported on stderr). */
static int next_tokens(const char *cmd, io_ctx *io, int32_t max_tokens, ake_truncation_dir dir, bool spans,
                       ake_tokens *toks) {
    char err[512];
    const char *text;
    size_t len;
    int r = ake_text_reader_next(&io->in, &text, &len, err, sizeof err);
    if (r < 0) {
        ake_cli_error(cmd, "input line %lld: %s", (long long)io->in.line_no, err);
        return -1;
    }
    if (r == 0) return 0;
    if (io->prompt) { /* what sentence-transformers tokenizes: the prompt, then the text */
        const size_t plen = strlen(io->prompt);
        if (plen + len > io->joined_cap) {
            char *j = realloc(io->joined, plen + len);
            if (!j) {
                ake_cli_error(cmd, "out of memory");
                return -1;
            }
            io->joined = j;
            io->joined_cap = plen + len;
        }
        memcpy(io->joined, io->prompt, plen);
        memcpy(io->joined + plen, text, len);
        text = io->joined;
        len += plen;
    }
    ake_status st = spans ? ake_tokenizer_encode_spans(io->p.tok, text, len, max_tokens, dir, toks, err, sizeof err)
                          : ake_tokenizer_encode(io->p.tok, text, len, max_tokens, dir, toks, err, sizeof err);
    if (st != AKE_OK) {
        ake_cli_error(cmd, "input line %lld: %s", (long long)io->in.line_no, err);
        return -1;
    }
    return 1;
}

/* tokenize --decode: each line a JSON array of ids, each output line the decoded text as a
 * JSON string. 0 or the exit code. */
static int decode_lines(io_ctx *io, bool skip_special) {
    char err[512];
    const char *line;
    size_t len;
    int r;
    int32_t *ids = NULL;
    size_t cap = 0;
    ake_buf b = {0};
    int rc = 0;
    while (rc == 0 && (r = ake_text_reader_next(&io->in, &line, &len, err, sizeof err)) == 1) {
        json_object *arr;
        size_t n = 0, at;
        const char *why;
        if (ake_json_parse(line, len, &arr, &at, &why) || !json_object_is_type(arr, json_type_array)) rc = 1;
        const size_t count = rc ? 0 : json_object_array_length(arr);
        for (size_t k = 0; k < count; k++) {
            double d;
            if (!ake_json_number(json_object_array_get_idx(arr, k), &d) || !(d >= INT32_MIN && d <= INT32_MAX) ||
                d != (double)(int32_t)d) {
                rc = 1;
                break;
            }
            if (n == cap) {
                cap = cap ? 2 * cap : 256;
                int32_t *p = realloc(ids, cap * sizeof *p);
                if (!p) {
                    ake_cli_error("tokenize", "out of memory");
                    rc = 1;
                    break;
                }
                ids = p;
            }
            ids[n++] = (int32_t)d;
        }
        json_object_put(arr);
        if (rc) {
            ake_cli_error("tokenize", "input line %lld: not a JSON array of integer token ids", (long long)io->in.line_no);
            break;
        }
        char *text = NULL;
        size_t tlen = 0;
        if (ake_tokenizer_decode(io->p.tok, ids, n, skip_special, &text, &tlen, err, sizeof err) != AKE_OK) {
            ake_cli_error("tokenize", "input line %lld: %s", (long long)io->in.line_no, err);
            rc = 1;
            break;
        }
        b.len = 0;
        ake_buf_json_string(&b, text, tlen);
        free(text);
        if (b.oom) {
            ake_cli_error("tokenize", "out of memory");
            rc = 1;
            break;
        }
        fwrite(b.data, 1, b.len, io->out);
        fputc('\n', io->out);
    }
    if (rc == 0 && r < 0) {
        ake_cli_error("tokenize", "input line %lld: %s", (long long)io->in.line_no, err);
        rc = 1;
    }
    ake_buf_release(&b);
    free(ids);
    return rc;
}

int ake_cmd_tokenize(int argc, char **argv) {
    io_opts o;
    io_ctx io;
    int rc = parse_io("tokenize", argc, argv, &o, tokenize_help);
    if (rc >= 0) return rc;
    rc = open_io("tokenize", &o, &io);
    if (rc) return close_io("tokenize", &io, rc);
    if (o.decode) return close_io("tokenize", &io, decode_lines(&io, o.skip_special));
    int32_t max_tokens = o.max_tokens < 0 ? io.p.max_seq_tokens : o.max_tokens;
    ake_tokens toks = {0};
    int r;
    while ((r = next_tokens("tokenize", &io, max_tokens, o.dir, o.spans, &toks)) == 1) {
        fputs(o.spans ? "{\"ids\": [" : "[", io.out);
        for (int32_t i = 0; i < toks.n; i++) fprintf(io.out, i ? ",%d" : "%d", toks.ids[i]);
        if (o.spans) {
            fputs("], \"spans\": [", io.out);
            for (int32_t i = 0; i < toks.n_spans; i++)
                fprintf(io.out, "%s[%u,%u,%u]", i ? "," : "", toks.spans[i].start, toks.spans[i].stop,
                        (unsigned)toks.spans[i].special);
        }
        fputs(o.spans ? "]}\n" : "]\n", io.out);
    }
    ake_tokens_release(&toks);
    return close_io("tokenize", &io, r < 0 ? 1 : 0);
}

int ake_cmd_embed(int argc, char **argv) {
    io_opts o;
    io_ctx io;
    char err[512];
    int rc = parse_io("embed", argc, argv, &o, embed_help);
    if (rc >= 0) return rc;
    rc = open_io("embed", &o, &io);
    if (rc) return close_io("embed", &io, rc);
    const ake_model *model = io.p.model;
    if (o.prompt_name) {
        for (int32_t i = 0; i < model->n_prompts && !io.prompt; i++)
            if (!strcmp(model->prompt_name[i], o.prompt_name)) io.prompt = model->prompt_text[i];
        if (!io.prompt) {
            ake_cli_error("embed", "--prompt-name '%s': %s has %s", o.prompt_name, o.model_dir,
                          model->n_prompts ? "other prompts (config_sentence_transformers.json)" : "no prompts");
            return close_io("embed", &io, 2);
        }
    } else if (model->default_prompt >= 0 && model->default_prompt < model->n_prompts) {
        io.prompt = model->prompt_text[model->default_prompt];
    }

    const int32_t B = o.batch_size, S = io.p.max_seq_tokens, d = io.p.model->cfg.hidden;
    ake_engine_opts eo = {
        .device = o.device, .max_tokens = B * S, .max_batch = B, .threads = o.threads, .precision = o.precision,
        .cuda = ake_cuda_tuning_from_env()};
    ake_engine *engine = NULL;
    int32_t *ids = malloc((size_t)B * S * sizeof *ids);      /* [B*S] packed batch */
    int32_t *cu = malloc(((size_t)B + 1) * sizeof *cu);     /* [B+1] */
    float *vecs = malloc((size_t)B * d * sizeof *vecs);      /* [B, d] */
    ake_tokens toks = {0};
    if (!ids || !cu || !vecs) {
        ake_cli_error("embed", "out of memory");
        rc = 1;
        goto done;
    }
    if (ake_engine_create(io.p.model, &eo, &engine, err, sizeof err) != AKE_OK) {
        ake_cli_error("embed", "%s", err);
        rc = 1;
        goto done;
    }
    ake_cli_note_device("embed", o.device, engine);
    /* Texts are read, packed B at a time and embedded; a batch is flushed before the next text is read. */
    for (bool eof = false; !eof;) {
        int32_t n = 0;
        cu[0] = 0;
        while (n < B) {
            int r = next_tokens("embed", &io, S, AKE_TRUNCATE_RIGHT, false, &toks);
            if (r < 0) { rc = 1; goto done; }
            if (r == 0) { eof = true; break; }
            memcpy(ids + cu[n], toks.ids, (size_t)toks.n * sizeof *ids);
            cu[n + 1] = cu[n] + toks.n;
            n++;
        }
        if (n == 0) break;
        if (ake_engine_embed(engine, ids, cu, n, vecs, err, sizeof err) != AKE_OK) {
            ake_cli_error("embed", "%s", err);
            rc = 1;
            goto done;
        }
        for (int32_t i = 0; i < n; i++) ake_write_float_array(io.out, vecs + (size_t)i * d, d);
    }
done:
    ake_tokens_release(&toks);
    ake_engine_free(engine);
    free(ids);
    free(cu);
    free(vecs);
    return close_io("embed", &io, rc);
}
