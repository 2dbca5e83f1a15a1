/* `akidb-embed quantize`: a float model folder in, an INT8 or FP8 (E4M3) W8A8 folder out,
 * calibrated on real text and refused when it fails the accuracy gate.
 *
 *   1. calibration texts: the first --samples of the file; the last --holdout are kept back
 *      for the gate and never calibrated on
 *   2. pass 1 over the calibration texts (fp32 CPU engine, observer on every linear input):
 *      channel absmax -> SmoothQuant factors (--smooth ALPHA)
 *   3. pass 2 (static activations): histograms of the smoothed inputs -> one scale per layer
 *      input (--method absmax | percentile | mse)
 *   4. every linear in 8 bits, checked on the held-back texts against the fp32 model; when the
 *      gate fails, a sensitivity pass measures each linear kept in float alone (leave one out)
 *      and keeps the costliest in float, one at a time, until the gate holds — refused when
 *      that would leave less than 80 % of the linear FLOPs in 8 bits
 *   5. the folder is written beside --out and renamed into place, with quantization_config.json
 *      saying how it was made and what it measured */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "base/fs.h"
#include "base/json.h"
#include "cli/cli.h"
#include "cli/device.h"
#include "cli/progress.h"
#include "quant/accuracy.h"
#include "quant/calibrate.h"
#include "quant/corpus.h"
#include "quant/quantize.h"

#define MIN_8BIT_SHARE 0.80 /* the floor: at least 80 % of the GEMM FLOPs in 8 bits */

static const char quantize_help[] =
    "usage: akidb-embed quantize --model DIR --calib FILE --out DIR [options]\n"
    "  Writes an 8-bit (W8A8) copy of a float model folder: weights with a scale per output channel,\n"
    "  the word-embedding table with a scale per row, activations with calibrated static scales\n"
    "  (or per-token scales at run time), SmoothQuant factors from the calibration text. The result\n"
    "  is checked on held-back calibration text against the float model and not written when it\n"
    "  fails the gate (layers are kept in float first, up to 20 % of the linear FLOPs).\n"
    "  --model DIR          the float model folder\n"
    "  --out DIR            the folder to write (must not exist)\n"
    "  --dtype T            int8 (default) or fp8 (E4M3)\n"
    "  --calib FILE         calibration texts, one per line (--jsonl: JSON string literals)\n"
    "  --samples N          calibrate on the first N texts (default: all but the held-back ones)\n"
    "  --holdout N          texts kept back from the end of FILE for the gate (default 400)\n"
    "  --method M           static activation scales: percentile (default), absmax or mse\n"
    "  --percentile P       for --method percentile (default 99.99)\n"
    "  --smooth ALPHA       SmoothQuant migration strength in 0..1 (default 0.5); 'off' for none\n"
    "  --rotate B           rotate layer inputs by Hadamard blocks of up to B (default 512); 'off'\n"
    "  --activations A      static (default: calibrated per-tensor scales) or dynamic (per token)\n"
    "  --gate SPEC          lowest passing values (default mean=0.995,min=0.98,recall=0.95)\n"
    "  --no-gate            write the folder even when it fails the gate (recorded in the config)\n"
    "  --device D           engine that checks the result (default cpu)\n"
    "  --batch-size N       texts per engine call (default 32)\n"
    "  --threads N          CPU threads (default: all cores)\n";

typedef struct {
    const char *model, *out, *calib, *device;
    bool jsonl, no_gate, dynamic;
    ake_dtype qdt;
    int32_t samples, holdout, batch, threads;
    ake_calib_method method;
    double percentile;
    float alpha; /* < 0: no smoothing */
    int32_t rotate; /* largest Hadamard block; <= 1: no rotation */
    ake_gate gate;
} quant_opts;

static const char *const KIND_NAMES[AKE_LINEAR_KINDS] = {"qkv", "out", "ffn1", "ffn2"};

static int parse(int argc, char **argv, quant_opts *o) {
    enum { O_MODEL = 1, O_OUT, O_DTYPE, O_CALIB, O_JSONL, O_SAMPLES, O_HOLDOUT, O_METHOD, O_PCT, O_SMOOTH, O_ACT,
           O_GATE, O_NOGATE, O_DEVICE, O_BATCH, O_THREADS, O_ROTATE, O_HELP };
    static const struct option longopts[] = {
        {"model", required_argument, 0, O_MODEL},     {"out", required_argument, 0, O_OUT},
        {"dtype", required_argument, 0, O_DTYPE},     {"calib", required_argument, 0, O_CALIB},
        {"jsonl", no_argument, 0, O_JSONL},           {"samples", required_argument, 0, O_SAMPLES},
        {"holdout", required_argument, 0, O_HOLDOUT}, {"method", required_argument, 0, O_METHOD},
        {"percentile", required_argument, 0, O_PCT},  {"smooth", required_argument, 0, O_SMOOTH},
        {"activations", required_argument, 0, O_ACT}, {"gate", required_argument, 0, O_GATE},
        {"no-gate", no_argument, 0, O_NOGATE},        {"device", required_argument, 0, O_DEVICE},
        {"batch-size", required_argument, 0, O_BATCH}, {"threads", required_argument, 0, O_THREADS},
        {"rotate", required_argument, 0, O_ROTATE},   {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0}};
    *o = (quant_opts){.device = "cpu", .qdt = AKE_DT_I8, .holdout = 400, .batch = 32, .method = AKE_CALIB_PERCENTILE,
                      .percentile = 99.99, .alpha = 0.5f, .rotate = AKE_HADAMARD_MAX_BLOCK, .gate = AKE_GATE_DEFAULT};
    char err[256], *end;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: o->model = optarg; break;
        case O_OUT: o->out = optarg; break;
        case O_DTYPE:
            if (!strcmp(optarg, "int8")) o->qdt = AKE_DT_I8;
            else if (!strcmp(optarg, "fp8") || !strcmp(optarg, "fp8_e4m3")) o->qdt = AKE_DT_F8_E4M3;
            else {
                ake_cli_error("quantize", "--dtype expects int8 or fp8, got '%s'", optarg);
                return 2;
            }
            break;
        case O_CALIB: o->calib = optarg; break;
        case O_JSONL: o->jsonl = true; break;
        case O_SAMPLES: if (!ake_cli_parse_int("--samples", optarg, 1, 1 << 30, &o->samples)) return 2; break;
        case O_HOLDOUT: if (!ake_cli_parse_int("--holdout", optarg, 20, 1 << 30, &o->holdout)) return 2; break;
        case O_METHOD:
            if (ake_calib_method_parse(optarg, &o->method)) {
                ake_cli_error("quantize", "--method expects mse, absmax or percentile, got '%s'", optarg);
                return 2;
            }
            break;
        case O_PCT:
            o->percentile = strtod(optarg, &end);
            if (end == optarg || *end || !(o->percentile > 50.0 && o->percentile <= 100.0)) {
                ake_cli_error("quantize", "--percentile expects a number in (50, 100], got '%s'", optarg);
                return 2;
            }
            break;
        case O_SMOOTH:
            o->alpha = !strcmp(optarg, "off") ? -1.0f : strtof(optarg, &end);
            if (strcmp(optarg, "off") && (end == optarg || *end || !(o->alpha >= 0.0f && o->alpha <= 1.0f))) {
                ake_cli_error("quantize", "--smooth expects a number in 0..1 or 'off', got '%s'", optarg);
                return 2;
            }
            break;
        case O_ROTATE:
            if (!strcmp(optarg, "off")) o->rotate = 1;
            else if (!ake_cli_parse_int("--rotate", optarg, 2, AKE_HADAMARD_MAX_BLOCK, &o->rotate)) return 2;
            else if (o->rotate & (o->rotate - 1)) {
                ake_cli_error("quantize", "--rotate %d: Hadamard blocks are powers of two (2 .. %d), or 'off'",
                              o->rotate, AKE_HADAMARD_MAX_BLOCK);
                return 2;
            }
            break;
        case O_ACT:
            if (strcmp(optarg, "static") && strcmp(optarg, "dynamic")) {
                ake_cli_error("quantize", "--activations expects static or dynamic, got '%s'", optarg);
                return 2;
            }
            o->dynamic = !strcmp(optarg, "dynamic");
            break;
        case O_GATE:
            if (!ake_gate_parse(optarg, &o->gate, err, sizeof err)) {
                ake_cli_error("quantize", "%s", err);
                return 2;
            }
            break;
        case O_NOGATE: o->no_gate = true; break;
        case O_DEVICE: o->device = optarg; break;
        case O_BATCH: if (!ake_cli_parse_int("--batch-size", optarg, 1, 4096, &o->batch)) return 2; break;
        case O_THREADS: if (!ake_cli_parse_int("--threads", optarg, 1, 1024, &o->threads)) return 2; break;
        case O_HELP: fputs(quantize_help, stdout); return 0;
        default:
            ake_cli_error("quantize", "unknown option or missing value: '%s'", argv[optind - 1]);
            fputs(quantize_help, stderr);
            return 2;
        }
    }
    if (optind < argc) {
        ake_cli_error("quantize", "unexpected argument '%s'", argv[optind]);
        return 2;
    }
    if (!o->model || !o->out || !o->calib) {
        ake_cli_error("quantize", "--model, --calib and --out are required");
        fputs(quantize_help, stderr);
        return 2;
    }
    return -1;
}

/* sha256 of a file as 64 hex digits (OpenSSL's EVP digest). */
static bool file_sha256(const char *path, char hex[65]) {
    FILE *f = fopen(path, "rb");
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = f && ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    unsigned char buf[1 << 16], md[32];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, f)) > 0) ok = EVP_DigestUpdate(ctx, buf, n);
    unsigned len = 0;
    ok = ok && !ferror(f) && EVP_DigestFinal_ex(ctx, md, &len) && len == 32;
    for (unsigned i = 0; ok && i < 32; i++) sprintf(hex + 2 * i, "%02x", md[i]);
    if (f) fclose(f);
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* Copies the files a model folder needs besides its weights: every regular file of the top
 * level and of the sentence-transformers module folders ("1_Pooling", "2_Normalize", ...),
 * except weights in any format and an earlier quantization_config.json. */
static int copy_folder_files(const char *src, const char *dst, int depth) {
    DIR *d = opendir(src);
    if (!d) {
        ake_cli_error("quantize", "cannot read folder '%s': %s", src, strerror(errno));
        return 1;
    }
    int rc = 0;
    struct dirent *ent;
    while (!rc && (ent = readdir(d))) {
        const char *n = ent->d_name;
        if (n[0] == '.' || !strcmp(n, "model.safetensors") || !strcmp(n, "quantization_config.json") ||
            strstr(n, ".bin") || strstr(n, ".onnx") || strstr(n, ".h5") || strstr(n, ".msgpack") ||
            strstr(n, ".ot") || strstr(n, ".safetensors"))
            continue;
        char *s = ake_path_join(src, n), *t = ake_path_join(dst, n);
        struct stat sb;
        if (!s || !t || stat(s, &sb) != 0) {
            rc = 1;
        } else if (S_ISDIR(sb.st_mode) && depth == 0 && n[0] >= '0' && n[0] <= '9' && strchr(n, '_')) {
            rc = (mkdir(t, 0755) != 0 && errno != EEXIST) || copy_folder_files(s, t, 1);
        } else if (S_ISREG(sb.st_mode)) {
            char *buf = NULL, err[256];
            size_t len = 0;
            FILE *f = NULL;
            rc = ake_read_file(s, (size_t)1 << 30, &buf, &len, err, sizeof err) != AKE_OK || !(f = fopen(t, "wb")) ||
                 fwrite(buf, 1, len, f) != len;
            if (f && fclose(f) != 0) rc = 1;
            free(buf);
        }
        if (rc) ake_cli_error("quantize", "cannot copy '%s' to '%s'", s ? s : n, dst);
        free(s);
        free(t);
    }
    closedir(d);
    return rc;
}

/* Recursively removes a folder of at most two levels (the temporary output). */
static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *ent;
    while (d && (ent = readdir(d))) {
        if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, "..")) continue;
        char *p = ake_path_join(dir, ent->d_name);
        struct stat sb;
        if (p && lstat(p, &sb) == 0) S_ISDIR(sb.st_mode) ? remove_tree(p) : (void)unlink(p);
        free(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

/* Removes "<out>.tmp-<pid>" folders left by quantize runs that were killed (their pid is
 * gone), so that a crash or kill -9 leaves no lasting debris beside --out. */
static void remove_stale_tmp(const char *out) {
    const char *slash = strrchr(out, '/');
    char *dir = slash ? strndup(out, (size_t)(slash - out + 1)) : strdup(".");
    const char *base = slash ? slash + 1 : out;
    DIR *d = dir ? opendir(dir) : NULL;
    struct dirent *ent;
    const size_t bl = strlen(base);
    while (d && (ent = readdir(d))) {
        char *end;
        if (strncmp(ent->d_name, base, bl) || strncmp(ent->d_name + bl, ".tmp-", 5)) continue;
        const long pid = strtol(ent->d_name + bl + 5, &end, 10);
        if (*end || pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
        char *p = ake_path_join(dir, ent->d_name);
        if (p) {
            fprintf(stderr, "akidb-embed quantize: removing '%s', left by a run that did not finish\n", p);
            remove_tree(p);
        }
        free(p);
    }
    if (d) closedir(d);
    free(dir);
}

/* What every candidate is checked with. */
typedef struct {
    const quant_opts *o;
    const ake_model *src;
    const ake_corpus *corpus;
    int32_t first;        /* the held-back texts are first..corpus->n-1 */
    const float *ref;     /* [corpus->n, d] fp32 reference vectors of every text */
    const char *tmp;      /* temporary output folder (config and tokenizer already copied) */
    char *weights;        /* tmp/model.safetensors */
    int32_t max_len;
} checker;

/* Writes the plan's weights into the temporary folder, loads it as any model, embeds texts
 * and measures them against the reference: cosines over the held-back texts, which are also
 * the recall queries, searched among every text of the file when `full` (the gate: a corpus
 * as dense as the file allows, where recall is harder), else among the held-back ones alone
 * (the sensitivity pass, which only ranks). 0 or the exit code. */
static int check_plan(checker *ck, const ake_quant_plan *plan, bool full, ake_accuracy *acc) {
    char err[512];
    ake_model *m = NULL;
    ake_engine *e = NULL;
    float *vec = NULL;
    int rc = 1;
    const int32_t from = full ? 0 : ck->first;
    const ake_precision prec = plan->qdtype == AKE_DT_I8 ? AKE_PREC_INT8 : AKE_PREC_FP8;
    const ake_engine_opts eo = {.device = ck->o->device, .max_tokens = ck->o->batch * ck->max_len,
                                .max_batch = ck->o->batch, .threads = ck->o->threads, .precision = prec,
                                .cuda = ake_cuda_tuning_from_env()};
    if (ake_quant_write_weights(ck->src, plan, ck->weights, err, sizeof err) != AKE_OK ||
        ake_model_load(ck->tmp, &m, err, sizeof err) != AKE_OK || ake_engine_create(m, &eo, &e, err, sizeof err) != AKE_OK ||
        !(vec = malloc((size_t)ck->corpus->n * ake_engine_dim(e) * sizeof *vec)) ||
        ake_corpus_embed(ck->corpus, from, ck->corpus->n - from, e, ck->o->batch, vec, NULL, NULL, NULL, err,
                         sizeof err) != AKE_OK ||
        ake_accuracy_measure(ck->ref + (size_t)from * ake_engine_dim(e), vec, ck->corpus->n - from,
                             ake_engine_dim(e), ck->first - from, ck->corpus->n, acc, err, sizeof err) != AKE_OK)
        ake_cli_error("quantize", "checking the quantized model: %s", err);
    else
        rc = 0;
    free(vec);
    ake_engine_free(e);
    ake_model_free(m);
    return rc;
}

static void print_acc(const char *what, const ake_accuracy *a, double share) {
    fprintf(stderr, "%-34s mean cosine %.5f  min %.5f  recall@10 %.4f  (%.1f %% of linear FLOPs in 8 bits)\n", what,
            a->mean_cos, a->min_cos, a->recall, 100.0 * share);
}

static int write_config(const quant_opts *o, const char *tmp, const ake_model *m, const ake_quant_plan *plan,
                        const char *sha, int32_t samples, int64_t tokens, const ake_accuracy *a, bool pass,
                        const char *why) {
    const char *q8 = o->qdt == AKE_DT_I8 ? "int8" : "fp8_e4m3";
    json_object *j = json_object_new_object(), *cal = json_object_new_object(), *layers = json_object_new_array();
    json_object *acc = a ? json_object_new_object() : NULL, *g = a ? json_object_new_object() : NULL;
    if (!j || !cal || !layers || (a && (!acc || !g))) {
        json_object_put(j);
        json_object_put(cal);
        json_object_put(layers);
        json_object_put(acc);
        json_object_put(g);
        ake_cli_error("quantize", "out of memory writing quantization_config.json");
        return 1;
    }
    json_object_object_add(j, "format", json_object_new_string("akidb-embed W8A8"));
    json_object_object_add(j, "format_version", json_object_new_int(1));
    json_object_object_add(j, "dtype", json_object_new_string(q8));
    json_object_object_add(j, "weights", json_object_new_string("symmetric, one scale per output channel"));
    json_object_object_add(j, "embeddings",
                           json_object_new_string("word table symmetric, one scale per row, dequantized on lookup"));
    json_object_object_add(j, "activations",
                           json_object_new_string(o->dynamic ? "dynamic: symmetric, one scale per token at run time"
                                                             : "static: symmetric, one calibrated scale per layer input"));
    json_object_object_add(j, "method",
                           json_object_new_string(o->dynamic ? "dynamic" : ake_calib_method_name(o->method)));
    if (!o->dynamic && o->method == AKE_CALIB_PERCENTILE)
        json_object_object_add(j, "percentile", ake_json_new_number(o->percentile));
    json_object_object_add(j, "smoothquant_alpha", o->alpha >= 0.0f ? ake_json_new_number(o->alpha) : NULL);
    json_object_object_add(j, "hadamard_max_block", o->rotate > 1 ? json_object_new_int(o->rotate) : NULL);
    json_object_object_add(cal, "file", json_object_new_string(o->calib));
    json_object_object_add(cal, "sha256", json_object_new_string(sha));
    json_object_object_add(cal, "samples", json_object_new_int(samples));
    json_object_object_add(cal, "tokens", json_object_new_int64(tokens));
    json_object_object_add(j, "calibration", cal);
    json_object_object_add(j, "source_model", json_object_new_string(m->dir));
    for (int32_t l = 0; l < m->cfg.layers; l++) {
        json_object *ly = json_object_new_object();
        for (int k = 0; ly && k < AKE_LINEAR_KINDS; k++)
            json_object_object_add(ly, KIND_NAMES[k],
                                   json_object_new_string(plan->linear[l * AKE_LINEAR_KINDS + k].q8 ? q8 : "float"));
        json_object_array_add(layers, ly);
    }
    json_object_object_add(j, "layers", layers);
    json_object_object_add(j, "gemm_flops_8bit_share", ake_json_new_number(ake_quant_8bit_share(m, plan)));
    if (!a) {
        json_object_object_add(j, "accuracy", json_object_new_string(why));
        json_object_object_add(j, "gate_forced", json_object_new_boolean(true));
    } else {
        json_object_object_add(acc, "against", json_object_new_string("the source model in fp32 on the CPU"));
        json_object_object_add(acc, "texts", json_object_new_string("the held-back end of the calibration file "
                                                                    "(recall searched among all its texts)"));
        json_object_object_add(acc, "count", json_object_new_int(a->n));
        json_object_object_add(acc, "mean_cosine", ake_json_new_number(a->mean_cos));
        json_object_object_add(acc, "min_cosine", ake_json_new_number(a->min_cos));
        json_object_object_add(acc, "recall_at_10", ake_json_new_number(a->recall));
        json_object_object_add(g, "mean_cosine", ake_json_new_number(o->gate.mean_cos));
        json_object_object_add(g, "min_cosine", ake_json_new_number(o->gate.min_cos));
        json_object_object_add(g, "recall_at_10", ake_json_new_number(o->gate.recall));
        json_object_object_add(acc, "gate", g);
        json_object_object_add(acc, "pass", json_object_new_boolean(pass));
        if (!pass) json_object_object_add(acc, "failed", json_object_new_string(why));
        json_object_object_add(j, "accuracy", acc);
        json_object_object_add(j, "gate_forced", json_object_new_boolean(!pass && o->no_gate));
    }
    const char *s =
        json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
    char *path = ake_path_join(tmp, "quantization_config.json");
    FILE *f = s && path ? fopen(path, "w") : NULL;
    int rc = !(f && fputs(s, f) >= 0 && fputc('\n', f) != EOF);
    if (f && fclose(f) != 0) rc = 1;
    if (rc) ake_cli_error("quantize", "cannot write %s", path ? path : "quantization_config.json");
    json_object_put(j);
    free(path);
    return rc;
}

/* SIGINT / SIGTERM during a run: the half-written "<out>.tmp-<pid>" is removed before the
 * process ends (kill -9 cannot be caught: the next run sweeps those, remove_stale_tmp). The
 * signals are blocked in every thread (OpenMP's inherit the mask: set before any exist) and
 * taken by one thread with sigwait, so the removal runs as ordinary code, not in a handler.
 * The main thread publishes the folder under the lock and clears it, under the lock, as it
 * renames the folder into place or removes it itself. */
static pthread_mutex_t g_tmp_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *g_tmp; /* the folder to remove on a signal, or NULL */

static void publish_tmp(const char *dir) {
    pthread_mutex_lock(&g_tmp_lock);
    g_tmp = dir;
    pthread_mutex_unlock(&g_tmp_lock);
}

static void *interrupt_watcher(void *arg) {
    const sigset_t *set = arg;
    int sig = 0;
    if (sigwait(set, &sig) != 0) return NULL;
    pthread_mutex_lock(&g_tmp_lock); /* held until exit: the main thread cannot rename past it */
    if (g_tmp) {
        remove_tree(g_tmp);
        fprintf(stderr, "akidb-embed quantize: interrupted (%s); removed %s\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
                g_tmp);
    }
    _exit(128 + sig);
}

static void watch_interrupts(void) {
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_t t;
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) == 0 && pthread_create(&t, NULL, interrupt_watcher, &set) == 0)
        pthread_detach(t);
}

int ake_cmd_quantize(int argc, char **argv) {
    quant_opts o;
    int rc = parse(argc, argv, &o);
    if (rc >= 0) return rc;
    watch_interrupts();
    char err[512], sha[65] = "", why[256] = "";
    struct stat sb;
    if (!ake_cli_can_create("quantize", "--out", o.out)) return 1;
    if (stat(o.out, &sb) == 0) {
        ake_cli_error("quantize", "--out '%s' exists; choose a new folder", o.out);
        return 1;
    }
    ake_engine_caps caps; /* the gate runs the result: fail now, not after calibrating, when it cannot */
    const ake_precision want = o.qdt == AKE_DT_I8 ? AKE_PREC_INT8 : AKE_PREC_FP8;
    if (ake_engine_caps_query(o.device, &caps, err, sizeof err) != AKE_OK) {
        ake_cli_error("quantize", "%s", err);
        return 1;
    }
    if (!(caps.precisions & (1u << want)) && !o.no_gate) {
        ake_cli_error("quantize", "the accuracy gate runs the %s model, and device '%s' (%s) cannot: use --device "
                      "cuda:N, or --no-gate to write it unchecked",
                      ake_precision_name(want), o.device, caps.hardware);
        return 1;
    }
    if (!file_sha256(o.calib, sha)) {
        ake_cli_error("quantize", "cannot read calibration file '%s'", o.calib);
        return 1;
    }
    ake_texts texts = {0};
    ake_pipeline p = {0};
    ake_corpus corpus = {0};
    ake_engine *ref = NULL;
    ake_calib *cal = NULL;
    float *smooth = NULL, *refvec = NULL, *colmax = NULL;
    ake_quant_linear *lin = NULL;
    char *tmp = NULL;
    checker ck = {0};
    rc = 1;
    if (ake_cli_read_texts("quantize", o.calib, o.jsonl, 0, &texts)) goto done;
    if (ake_pipeline_load(o.model, &p, err, sizeof err) != AKE_OK) {
        ake_cli_error("quantize", "%s", err);
        goto done;
    }
    const ake_model *m = p.model;
    const int32_t L = m->cfg.layers, d = m->cfg.hidden, inter = m->cfg.intermediate;
    if (m->qdtype != AKE_DT_F32) {
        ake_cli_error("quantize", "%s is quantized already (%s weights); start from the float model", o.model,
                      ake_dtype_name(m->qdtype));
        goto done;
    }
    if (texts.n < o.holdout + 50) {
        ake_cli_error("quantize", "%s holds %d texts; calibration needs at least 50 beyond the %d held back for "
                      "the gate (--holdout)", o.calib, texts.n, o.holdout);
        goto done;
    }
    const int32_t holdout = o.holdout, n_cal = o.samples && o.samples < texts.n - holdout ? o.samples
                                                                                           : texts.n - holdout;
    if (ake_corpus_tokenize(p.tok, (const char *const *)texts.text, texts.len, texts.n, p.max_seq_tokens, &corpus, err,
                            sizeof err) != AKE_OK) {
        ake_cli_error("quantize", "%s: %s", o.calib, err);
        goto done;
    }
    const ake_engine_opts eo = {.device = "cpu", .max_tokens = o.batch * corpus.max_len, .max_batch = o.batch,
                                .threads = o.threads, .precision = AKE_PREC_FP32};
    cal = ake_calib_create(m);
    smooth = calloc((size_t)L * AKE_LINEAR_KINDS * (inter > d ? inter : d), sizeof *smooth);
    colmax = malloc((size_t)(inter > d ? inter : d) * sizeof *colmax);
    lin = calloc((size_t)L * AKE_LINEAR_KINDS, sizeof *lin);
    refvec = malloc((size_t)texts.n * d * sizeof *refvec); /* every text: the gate's recall corpus */
    if (!cal || !smooth || !colmax || !lin || !refvec) {
        ake_cli_error("quantize", "out of memory");
        goto done;
    }
    if (ake_engine_create(m, &eo, &ref, err, sizeof err) != AKE_OK ||
        ake_engine_set_observer(ref, ake_calib_observe_channels, cal, err, sizeof err) != AKE_OK) {
        ake_cli_error("quantize", "%s", err);
        goto done;
    }
    ake_progress pr;
    ake_progress_start(&pr, "calibrating", n_cal);
    if (ake_corpus_embed(&corpus, 0, n_cal, ref, o.batch, refvec, NULL, ake_progress_cb, &pr, err, sizeof err)) {
        ake_cli_error("quantize", "%s", err);
        goto done;
    }
    ake_progress_end(&pr);
    /* SmoothQuant factors per linear, then (static) the activation scales of the smoothed inputs */
    const size_t stride = (size_t)(inter > d ? inter : d);
    for (int32_t l = 0; l < L; l++)
        for (int k = 0; k < AKE_LINEAR_KINDS; k++) {
            float *s = smooth + ((size_t)l * AKE_LINEAR_KINDS + k) * stride;
            const int32_t cols = k == AKE_LINEAR_FFN2 ? inter : d;
            const int32_t rot = o.rotate > 1 ? ake_hadamard_block(cols, o.rotate) : 1;
            if (o.alpha >= 0.0f) ake_quant_weight_colmax(m, l, (ake_linear_kind)k, colmax);
            ake_calib_set_smooth(cal, l, (ake_linear_kind)k, o.alpha >= 0.0f ? colmax : NULL,
                                 o.alpha >= 0.0f ? o.alpha : 0.0f, s);
            ake_calib_set_rotation(cal, l, (ake_linear_kind)k, rot);
            lin[l * AKE_LINEAR_KINDS + k] =
                (ake_quant_linear){.q8 = true, .smooth = o.alpha >= 0.0f ? s : NULL, .rotation = rot};
        }
    if (!o.dynamic) {
        ake_engine_set_observer(ref, ake_calib_observe_hist, cal, err, sizeof err);
        ake_progress_start(&pr, "histograms", n_cal);
        if (ake_corpus_embed(&corpus, 0, n_cal, ref, o.batch, refvec, NULL, ake_progress_cb, &pr, err, sizeof err)) {
            ake_cli_error("quantize", "%s", err);
            goto done;
        }
        ake_progress_end(&pr);
        for (int32_t l = 0; l < L; l++)
            for (int k = 0; k < AKE_LINEAR_KINDS; k++)
                lin[l * AKE_LINEAR_KINDS + k].in_scale =
                    ake_calib_static_scale(cal, l, (ake_linear_kind)k, o.method, o.percentile, o.qdt);
    }
    ake_engine_set_observer(ref, NULL, NULL, err, sizeof err);
    const int32_t first = texts.n - holdout;
    if (ake_corpus_embed(&corpus, 0, texts.n, ref, o.batch, refvec, NULL, NULL, NULL, err, sizeof err)) {
        ake_cli_error("quantize", "%s", err);
        goto done;
    }

    /* the output is assembled in a temporary folder beside --out and renamed at the end */
    if (!(tmp = malloc(strlen(o.out) + 32))) goto done;
    remove_stale_tmp(o.out);
    sprintf(tmp, "%s.tmp-%ld", o.out, (long)getpid());
    if (mkdir(tmp, 0755) != 0) {
        ake_cli_error("quantize", "cannot create '%s': %s", tmp, strerror(errno));
        free(tmp);
        tmp = NULL;
        goto done;
    }
    publish_tmp(tmp);
    if (copy_folder_files(o.model, tmp, 0)) goto done;
    ck = (checker){.o = &o, .src = m, .corpus = &corpus, .first = first, .ref = refvec, .tmp = tmp,
                   .weights = ake_path_join(tmp, "model.safetensors"), .max_len = corpus.max_len};
    ake_quant_plan plan = {.qdtype = o.qdt, .embeddings_8bit = true, .linear = lin};
    ake_accuracy acc = {0};
    bool pass = false;
    if (!ck.weights) goto done;
    if (!(caps.precisions & (1u << want))) { /* --no-gate on a device that cannot run it: unmeasured */
        if (ake_quant_write_weights(m, &plan, ck.weights, err, sizeof err) != AKE_OK) {
            ake_cli_error("quantize", "%s", err);
            goto done;
        }
        snprintf(why, sizeof why, "not measured: device '%s' cannot run %s", o.device, ake_precision_name(want));
        if (write_config(&o, tmp, m, &plan, sha, n_cal, ake_calib_tokens(cal), NULL, false, why)) goto done;
        goto finish;
    }
    if (check_plan(&ck, &plan, true, &acc)) goto done;
    print_acc("every linear in 8 bits:", &acc, ake_quant_8bit_share(m, &plan));
    pass = ake_gate_check(&o.gate, &acc, why, sizeof why);
    if (!pass) {
        /* sensitivity: what keeping each linear in float alone buys, then the costliest first */
        const int32_t G = L * AKE_LINEAR_KINDS;
        double *gain = calloc((size_t)G, sizeof *gain);
        int32_t *order = malloc((size_t)G * sizeof *order);
        if (!gain || !order) {
            free(gain);
            free(order);
            goto done;
        }
        ake_progress_start(&pr, "sensitivity", G);
        for (int32_t g = 0; g < G; g++) {
            ake_accuracy a;
            lin[g].q8 = false;
            if (check_plan(&ck, &plan, false, &a)) {
                free(gain);
                free(order);
                goto done;
            }
            lin[g].q8 = true;
            gain[g] = a.mean_cos - acc.mean_cos;
            order[g] = g;
            ake_progress_update(&pr, g + 1);
        }
        ake_progress_end(&pr);
        for (int32_t i = 0; i < G; i++) /* by gain, largest first (G is small) */
            for (int32_t j = i + 1; j < G; j++)
                if (gain[order[j]] > gain[order[i]]) {
                    int32_t t = order[i];
                    order[i] = order[j];
                    order[j] = t;
                }
        for (int32_t i = 0; i < G && !pass; i++) {
            const int32_t g = order[i];
            lin[g].q8 = false;
            const double share = ake_quant_8bit_share(m, &plan);
            if (share < MIN_8BIT_SHARE) {
                lin[g].q8 = true;
                break;
            }
            if (check_plan(&ck, &plan, true, &acc)) {
                free(gain);
                free(order);
                goto done;
            }
            char what[64];
            snprintf(what, sizeof what, "+ layer %d %s in float:", g / AKE_LINEAR_KINDS,
                     KIND_NAMES[g % AKE_LINEAR_KINDS]);
            print_acc(what, &acc, share);
            pass = ake_gate_check(&o.gate, &acc, why, sizeof why);
        }
        free(gain);
        free(order);
        if (!pass) { /* the last plan evaluated is the best allowed; acc holds its numbers */
            if (!o.no_gate) {
                ake_cli_error("quantize",
                              "the accuracy gate fails with %.1f %% of the linear FLOPs in 8 bits (at least %.0f %% "
                              "must be): %s; nothing written. Try --smooth, --method or more calibration text; "
                              "--no-gate writes it anyway",
                              100.0 * ake_quant_8bit_share(m, &plan), 100.0 * MIN_8BIT_SHARE, why);
                goto done;
            }
            if (check_plan(&ck, &plan, true, &acc)) goto done; /* re-write the weights of the plan kept */
        }
    }
    if (write_config(&o, tmp, m, &plan, sha, n_cal, ake_calib_tokens(cal), &acc, pass, why)) goto done;
finish:
    publish_tmp(NULL); /* waits for a signal's removal in progress (which then exits) */
    if (rename(tmp, o.out) != 0) {
        ake_cli_error("quantize", "cannot rename '%s' to '%s': %s", tmp, o.out, strerror(errno));
        goto done;
    }
    free(tmp);
    tmp = NULL;
    fprintf(stderr, "wrote %s (%s, %.1f %% of linear FLOPs in 8 bits)%s\n", o.out,
            o.qdt == AKE_DT_I8 ? "int8" : "fp8_e4m3", 100.0 * ake_quant_8bit_share(m, &plan),
            acc.n == 0 ? " WITHOUT an accuracy check (--no-gate)" : pass ? "" : " WITHOUT passing the gate (--no-gate)");
    rc = 0;
done:
    publish_tmp(NULL);
    if (tmp) remove_tree(tmp);
    free(tmp);
    free(ck.weights);
    ake_engine_free(ref);
    ake_calib_free(cal);
    free(smooth);
    free(colmax);
    free(lin);
    free(refvec);
    ake_corpus_release(&corpus);
    ake_pipeline_release(&p);
    ake_texts_release(&texts);
    return rc;
}
