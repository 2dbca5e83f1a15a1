/* `akidb-embed validate`: a model's embeddings against a reference model's on a corpus —
 * cosine per text, recall@10 of the reference's neighbours, file size and speed — and the
 * accuracy gate (src/quant/accuracy.h) as the exit status. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "base/fs.h"
#include "base/json.h"
#include "cli/cli.h"
#include "cli/device.h"
#include "cli/progress.h"
#include "quant/accuracy.h"
#include "quant/corpus.h"

static const char validate_help[] =
    "usage: akidb-embed validate --model DIR --reference DIR --corpus FILE [options]\n"
    "  Embeds every text of FILE with both models and compares: mean and minimum cosine per text,\n"
    "  recall@10 of the reference's nearest neighbours (cosine, the query itself excluded), the\n"
    "  size of model.safetensors and the speed, both engines timed in this run. Exits 1 when the\n"
    "  gate fails, naming each failing measure.\n"
    "  --model DIR            the model under test (e.g. a quantized folder)\n"
    "  --reference DIR        the model it should agree with (e.g. the float original)\n"
    "  --corpus FILE          texts, one per line (empty lines count as texts)\n"
    "  --jsonl                each corpus line is a JSON string literal\n"
    "  --limit N              only the first N texts\n"
    "  --queries N            texts used as recall queries, evenly spaced (default 500)\n"
    "  --gate SPEC            lowest passing values, e.g. mean=0.995,min=0.98,recall=0.95 (the default)\n"
    "  --device D, --dtype P  engine of --model (default: cpu, the folder's own precision)\n"
    "  --reference-device D, --reference-dtype P   engine of --reference (default: cpu fp32)\n"
    "  --batch-size N         texts per engine call (default 32)\n"
    "  --threads N            CPU threads (default: all cores)\n"
    "  --json FILE            also write the report as JSON\n";

typedef struct {
    const char *model, *reference, *corpus, *json, *device, *ref_device;
    bool jsonl;
    int32_t limit, queries, batch, threads;
    ake_precision dtype, ref_dtype;
    ake_gate gate;
} validate_opts;

/* One side of the comparison: its model, corpus tokens, engine and results. */
typedef struct {
    const char *dir;
    ake_pipeline p;
    ake_corpus c;
    ake_engine *e;
    float *vec;       /* [n, d] */
    double seconds;   /* engine time over the corpus */
    long long bytes;  /* size of model.safetensors */
} side;

static long long file_size(const char *dir, const char *name) {
    char *path = ake_path_join(dir, name);
    struct stat sb;
    long long n = path && stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
    free(path);
    return n;
}

/* Loads, tokenizes, builds the engine and embeds the corpus; 0 or the exit code. */
static int run_side(side *s, const char *label, const ake_texts *texts, const char *corpus, const char *device,
                    ake_precision dtype, int32_t batch, int32_t threads) {
    char err[512];
    if (ake_pipeline_load(s->dir, &s->p, err, sizeof err) != AKE_OK) {
        ake_cli_error("validate", "%s: %s", s->dir, err);
        return 1;
    }
    if (ake_corpus_tokenize(s->p.tok, (const char *const *)texts->text, texts->len, texts->n, s->p.max_seq_tokens,
                            &s->c, err, sizeof err) != AKE_OK) {
        ake_cli_error("validate", "corpus %s: %s", corpus, err);
        return 1;
    }
    const ake_engine_opts eo = {.device = device, .max_tokens = batch * (s->c.max_len > 0 ? s->c.max_len : 1),
                                .max_batch = batch, .threads = threads, .precision = dtype,
                                .cuda = ake_cuda_tuning_from_env()};
    if (ake_engine_create(s->p.model, &eo, &s->e, err, sizeof err) != AKE_OK) {
        ake_cli_error("validate", "%s: %s", s->dir, err);
        return 1;
    }
    const int32_t d = ake_engine_dim(s->e);
    if (!(s->vec = malloc((size_t)texts->n * d * sizeof(float)))) {
        ake_cli_error("validate", "out of memory");
        return 1;
    }
    ake_progress pr;
    ake_progress_start(&pr, label, texts->n);
    if (ake_corpus_embed(&s->c, 0, texts->n, s->e, batch, s->vec, &s->seconds, ake_progress_cb, &pr, err,
                         sizeof err) != AKE_OK) {
        ake_cli_error("validate", "%s: %s", s->dir, err);
        return 1;
    }
    ake_progress_end(&pr);
    s->bytes = file_size(s->dir, "model.safetensors");
    return 0;
}

static void side_release(side *s) {
    ake_engine_free(s->e);
    ake_corpus_release(&s->c);
    ake_pipeline_release(&s->p);
    free(s->vec);
}

static int parse(int argc, char **argv, validate_opts *o) {
    enum { O_MODEL = 1, O_REF, O_CORPUS, O_JSONL, O_LIMIT, O_QUERIES, O_GATE, O_DEVICE, O_DTYPE, O_RDEVICE,
           O_RDTYPE, O_BATCH, O_THREADS, O_JSON, O_HELP };
    static const struct option longopts[] = {
        {"model", required_argument, 0, O_MODEL},   {"reference", required_argument, 0, O_REF},
        {"corpus", required_argument, 0, O_CORPUS}, {"jsonl", no_argument, 0, O_JSONL},
        {"limit", required_argument, 0, O_LIMIT},   {"queries", required_argument, 0, O_QUERIES},
        {"gate", required_argument, 0, O_GATE},     {"device", required_argument, 0, O_DEVICE},
        {"dtype", required_argument, 0, O_DTYPE},   {"reference-device", required_argument, 0, O_RDEVICE},
        {"reference-dtype", required_argument, 0, O_RDTYPE}, {"batch-size", required_argument, 0, O_BATCH},
        {"threads", required_argument, 0, O_THREADS}, {"json", required_argument, 0, O_JSON},
        {"help", no_argument, 0, O_HELP},           {0, 0, 0, 0}};
    *o = (validate_opts){.device = "cpu", .ref_device = "cpu", .queries = 500, .batch = 32,
                         .ref_dtype = AKE_PREC_FP32, .gate = AKE_GATE_DEFAULT};
    char err[256];
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: o->model = optarg; break;
        case O_REF: o->reference = optarg; break;
        case O_CORPUS: o->corpus = optarg; break;
        case O_JSONL: o->jsonl = true; break;
        case O_LIMIT: if (!ake_cli_parse_int("--limit", optarg, 1, 1 << 30, &o->limit)) return 2; break;
        case O_QUERIES: if (!ake_cli_parse_int("--queries", optarg, 1, 1 << 30, &o->queries)) return 2; break;
        case O_GATE:
            if (!ake_gate_parse(optarg, &o->gate, err, sizeof err)) {
                ake_cli_error("validate", "%s", err);
                return 2;
            }
            break;
        case O_DEVICE: o->device = optarg; break;
        case O_DTYPE: if (!ake_cli_parse_precision("validate", optarg, &o->dtype)) return 2; break;
        case O_RDEVICE: o->ref_device = optarg; break;
        case O_RDTYPE: if (!ake_cli_parse_precision("validate", optarg, &o->ref_dtype)) return 2; break;
        case O_BATCH: if (!ake_cli_parse_int("--batch-size", optarg, 1, 4096, &o->batch)) return 2; break;
        case O_THREADS: if (!ake_cli_parse_int("--threads", optarg, 1, 1024, &o->threads)) return 2; break;
        case O_JSON: o->json = optarg; break;
        case O_HELP: fputs(validate_help, stdout); return 0;
        default:
            ake_cli_error("validate", "unknown option or missing value: '%s'", argv[optind - 1]);
            fputs(validate_help, stderr);
            return 2;
        }
    }
    if (optind < argc) {
        ake_cli_error("validate", "unexpected argument '%s'", argv[optind]);
        return 2;
    }
    if (!o->model || !o->reference || !o->corpus) {
        ake_cli_error("validate", "--model, --reference and --corpus are required");
        fputs(validate_help, stderr);
        return 2;
    }
    return -1;
}

static int write_json(const char *path, const validate_opts *o, const side *m, const side *r, const ake_accuracy *a,
                      bool pass, const char *why) {
    json_object *j = json_object_new_object(), *g = json_object_new_object();
    if (!j || !g) {
        json_object_put(j);
        json_object_put(g);
        ake_cli_error("validate", "out of memory writing '%s'", path);
        return 1;
    }
    json_object_object_add(j, "model", json_object_new_string(o->model));
    json_object_object_add(j, "reference", json_object_new_string(o->reference));
    json_object_object_add(j, "corpus", json_object_new_string(o->corpus));
    json_object_object_add(j, "texts", json_object_new_int(a->n));
    json_object_object_add(j, "queries", json_object_new_int(a->queries));
    json_object_object_add(j, "device", json_object_new_string(ake_engine_device(m->e)));
    json_object_object_add(j, "dtype", json_object_new_string(ake_precision_name(ake_engine_precision(m->e))));
    json_object_object_add(j, "hardware", json_object_new_string(ake_engine_hardware(m->e)));
    json_object_object_add(j, "reference_device", json_object_new_string(ake_engine_device(r->e)));
    json_object_object_add(j, "reference_dtype", json_object_new_string(ake_precision_name(ake_engine_precision(r->e))));
    json_object_object_add(j, "mean_cosine", ake_json_new_number(a->mean_cos));
    json_object_object_add(j, "min_cosine", ake_json_new_number(a->min_cos));
    json_object_object_add(j, "min_cosine_text", json_object_new_int(a->min_index + 1));
    json_object_object_add(j, "recall_at_10", ake_json_new_number(a->recall));
    json_object_object_add(j, "file_bytes", json_object_new_int64((int64_t)m->bytes));
    json_object_object_add(j, "reference_file_bytes", json_object_new_int64((int64_t)r->bytes));
    json_object_object_add(j, "file_size_ratio", ake_json_new_number(r->bytes > 0 ? (double)m->bytes / r->bytes : 0.0));
    json_object_object_add(j, "seconds", ake_json_new_number(m->seconds));
    json_object_object_add(j, "reference_seconds", ake_json_new_number(r->seconds));
    json_object_object_add(j, "speedup", ake_json_new_number(m->seconds > 0 ? r->seconds / m->seconds : 0.0));
    json_object_object_add(g, "mean_cosine", ake_json_new_number(o->gate.mean_cos));
    json_object_object_add(g, "min_cosine", ake_json_new_number(o->gate.min_cos));
    json_object_object_add(g, "recall_at_10", ake_json_new_number(o->gate.recall));
    json_object_object_add(j, "gate", g);
    json_object_object_add(j, "pass", json_object_new_boolean(pass));
    json_object_object_add(j, "failed", json_object_new_string(why));
    const char *s =
        json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
    FILE *f = s ? fopen(path, "w") : NULL;
    int rc = f && fputs(s, f) >= 0 && fputc('\n', f) != EOF ? 0 : 1;
    if (f && fclose(f) != 0) rc = 1;
    json_object_put(j);
    if (rc) ake_cli_error("validate", "cannot write '%s'", path);
    return rc;
}

int ake_cmd_validate(int argc, char **argv) {
    validate_opts o;
    int rc = parse(argc, argv, &o);
    if (rc >= 0) return rc;
    ake_texts texts;
    if (o.json && !ake_cli_can_create("validate", "--json", o.json)) return 1;
    if (ake_cli_read_texts("validate", o.corpus, o.jsonl, o.limit, &texts)) return 1;
    if (texts.n == 0) {
        ake_cli_error("validate", "corpus '%s' holds no texts", o.corpus);
        ake_texts_release(&texts);
        return 1;
    }
    side m = {.dir = o.model}, r = {.dir = o.reference};
    rc = run_side(&r, "reference", &texts, o.corpus, o.ref_device, o.ref_dtype, o.batch, o.threads);
    if (!rc) rc = run_side(&m, "model", &texts, o.corpus, o.device, o.dtype, o.batch, o.threads);
    if (!rc && ake_engine_dim(m.e) != ake_engine_dim(r.e)) {
        ake_cli_error("validate", "the models' dimensions differ (%d and %d)", ake_engine_dim(m.e),
                      ake_engine_dim(r.e));
        rc = 1;
    }
    ake_accuracy a;
    char err[256], why[256] = "";
    if (!rc && ake_accuracy_measure(r.vec, m.vec, texts.n, ake_engine_dim(m.e), 0, o.queries, &a, err, sizeof err)) {
        ake_cli_error("validate", "%s", err);
        rc = 1;
    }
    if (!rc) {
        const bool pass = ake_gate_check(&o.gate, &a, why, sizeof why);
        const long long tok_m = m.c.cu[m.c.n], tok_r = r.c.cu[r.c.n];
        printf("model      %s  (%s %s, %s)\n", o.model, ake_engine_device(m.e),
               ake_precision_name(ake_engine_precision(m.e)), ake_engine_hardware(m.e));
        printf("reference  %s  (%s %s)\n", o.reference, ake_engine_device(r.e),
               ake_precision_name(ake_engine_precision(r.e)));
        printf("corpus     %s: %d texts, %d recall queries\n", o.corpus, a.n, a.queries);
        printf("cosine     mean %.5f  min %.5f (text %d)   gate: mean >= %g, min >= %g\n", a.mean_cos, a.min_cos,
               a.min_index + 1, o.gate.mean_cos, o.gate.min_cos);
        printf("recall@10  %.4f   gate: >= %g\n", a.recall, o.gate.recall);
        if (m.bytes > 0 && r.bytes > 0)
            printf("file       %.1f MB vs %.1f MB (%.1f %%)\n", m.bytes / 1e6, r.bytes / 1e6, 100.0 * m.bytes / r.bytes);
        printf("speed      %.0f vs %.0f tokens/s (%.2fx)\n", m.seconds > 0 ? tok_m / m.seconds : 0.0,
               r.seconds > 0 ? tok_r / r.seconds : 0.0, m.seconds > 0 ? r.seconds / m.seconds : 0.0);
        printf("gate       %s%s%s\n", pass ? "PASS" : "FAIL: ", pass ? "" : why, "");
        if (o.json) rc = write_json(o.json, &o, &m, &r, &a, pass, why);
        if (!pass) {
            ake_cli_error("validate", "accuracy gate failed: %s", why);
            rc = 1;
        }
    }
    side_release(&m);
    side_release(&r);
    ake_texts_release(&texts);
    return rc;
}
