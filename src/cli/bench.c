/* `akidb-embed bench`: engine-only latency and throughput over a (batch x seq) grid.
 *
 * Inputs are random token ids in [1000, 30000) (speed does not depend on the ids;
 * shared/bench/torch_baseline.py draws them the same way), plus one "mixed" row:
 * a batch whose sequence lengths are those of real texts (see --mixed). Each cell
 * is timed as the median of repeated calls after warm-up. */
#include <getopt.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/device.h"

/* Token lengths ([CLS]/[SEP] included) of the first 32 texts of
 * tests/golden/embeddings_all-MiniLM-L6-v2.jsonl, so that bench/cpu_peers.py can
 * time its peers on the very same shapes. */
static const char default_mixed[] = "3,12,256,173,4,39,2,7,3,13,12,13,3,3,3,8,256,39,4,35,2,9,3,5,27,22,3,3,5,11,256,117";

static const char bench_help[] =
    "usage: akidb-embed bench [options]\n"
    "  Times the engine alone (no tokenization) over every batch x seq cell, plus a mixed-length batch.\n"
    "  --model DIR       model folder (default " AKE_DEFAULT_MODEL ")\n"
    "  --threads N       CPU threads (default: all cores)\n"
    AKE_CLI_DEVICE_HELP
    "  --batch LIST      batch sizes, comma-separated (default 1,8,32)\n"
    "  --seq LIST        sequence lengths in tokens (default 32,128,256)\n"
    "  --mixed LIST      token lengths of the mixed batch (default: 32 real texts; 'none' to skip)\n"
    "  --iters N         timed calls per cell (default 20; fewer if a cell passes 10 s)\n"
    "  --json FILE       also write the rows as JSON (list of objects)\n";

#define MAX_LIST 256

/* Parses "a,b,c" of integers in lo..hi into v (at most MAX_LIST); returns the count or -1. */
static int parse_list(const char *flag, const char *s, int32_t lo, int32_t hi, int32_t *v) {
    char buf[4096];
    if (strlen(s) >= sizeof buf) return -1;
    strcpy(buf, s);
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == MAX_LIST || !ake_cli_parse_int(flag, tok, lo, hi, &v[n])) return -1;
        n++;
    }
    return n ? n : -1;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* First line of a command's output into buf, or "unknown". */
static void capture(const char *cmd, char *buf, size_t len) {
    snprintf(buf, len, "unknown");
    FILE *p = popen(cmd, "r");
    if (!p) return;
    if (fgets(buf, (int)len, p)) buf[strcspn(buf, "\n")] = 0;
    if (pclose(p) != 0 || !buf[0]) snprintf(buf, len, "unknown");
}

typedef struct {
    int32_t batch;
    int32_t seq; /* 0 for the mixed row */
    int32_t tokens;
    double ms;
} bench_row;

int ake_cmd_bench(int argc, char **argv) {
    enum { O_MODEL = 1, O_THREADS, O_BATCH, O_SEQ, O_MIXED, O_ITERS, O_JSON, O_DEVICE, O_DTYPE, O_HELP };
    static const struct option longopts[] = {
        {"model", required_argument, 0, O_MODEL}, {"threads", required_argument, 0, O_THREADS},
        {"batch", required_argument, 0, O_BATCH}, {"seq", required_argument, 0, O_SEQ},
        {"mixed", required_argument, 0, O_MIXED}, {"iters", required_argument, 0, O_ITERS},
        {"json", required_argument, 0, O_JSON},   {"help", no_argument, 0, O_HELP},
        {"device", required_argument, 0, O_DEVICE}, {"dtype", required_argument, 0, O_DTYPE},
        {0, 0, 0, 0}};
    const char *model_dir = AKE_DEFAULT_MODEL, *json = NULL, *mixed_arg = default_mixed;
    const char *batch_arg = "1,8,32", *seq_arg = "32,128,256";
    const char *device = "cpu";
    ake_precision precision = AKE_PREC_DEFAULT;
    int32_t threads = 0, iters = 20;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: model_dir = optarg; break;
        case O_THREADS: if (!ake_cli_parse_int("--threads", optarg, 1, 1024, &threads)) return 2; break;
        case O_BATCH: batch_arg = optarg; break;
        case O_SEQ: seq_arg = optarg; break;
        case O_MIXED: mixed_arg = optarg; break;
        case O_ITERS: if (!ake_cli_parse_int("--iters", optarg, 1, 100000, &iters)) return 2; break;
        case O_JSON: json = optarg; break;
        case O_DEVICE: device = optarg; break;
        case O_DTYPE: if (!ake_cli_parse_precision("bench", optarg, &precision)) return 2; break;
        case O_HELP: fputs(bench_help, stdout); return 0;
        default: fputs(bench_help, stderr); return 2;
        }
    }
    if (optind < argc) {
        ake_cli_error("bench", "unexpected argument '%s'", argv[optind]);
        return 2;
    }

    char err[512];
    ake_pipeline p;
    if (ake_pipeline_load(model_dir, &p, err, sizeof err) != AKE_OK) {
        ake_cli_error("bench", "%s", err);
        return 1;
    }
    const int32_t maxpos = p.model->cfg.max_position, d = p.model->cfg.hidden;
    int32_t batches[MAX_LIST], seqs[MAX_LIST], mixed[MAX_LIST];
    int nb = parse_list("--batch", batch_arg, 1, 4096, batches);
    int ns = parse_list("--seq", seq_arg, 1, maxpos, seqs);
    int nm = strcmp(mixed_arg, "none") ? parse_list("--mixed", mixed_arg, 1, maxpos, mixed) : 0;
    if (nb < 0 || ns < 0 || nm < 0) {
        ake_cli_error("bench", "bad --batch, --seq or --mixed list (integers, sequence lengths 1..%d)", maxpos);
        ake_pipeline_release(&p);
        return 2;
    }
    int32_t max_b = nm, max_tokens = 0;
    for (int i = 0; i < nm; i++) max_tokens += mixed[i];
    for (int i = 0; i < nb; i++)
        for (int j = 0; j < ns; j++) {
            if (batches[i] > max_b) max_b = batches[i];
            if (batches[i] * seqs[j] > max_tokens) max_tokens = batches[i] * seqs[j];
        }

    int rc = 0;
    ake_engine *engine = NULL;
    ake_engine_opts eo = {
        .device = device, .max_tokens = max_tokens, .max_batch = max_b, .threads = threads, .precision = precision,
        .cuda = ake_cuda_tuning_from_env()};
    int32_t *ids = malloc((size_t)max_tokens * sizeof *ids);   /* [max_tokens] */
    int32_t *cu = malloc(((size_t)max_b + 1) * sizeof *cu);   /* [max_b+1] */
    float *out = malloc((size_t)max_b * d * sizeof *out);      /* [max_b, d] */
    double *times = malloc((size_t)iters * sizeof *times);
    bench_row *rows = calloc((size_t)nb * ns + 1, sizeof *rows);
    int nrows = 0;
    if (!ids || !cu || !out || !times || !rows) {
        ake_cli_error("bench", "out of memory");
        rc = 1;
        goto done;
    }
    if (ake_engine_create(p.model, &eo, &engine, err, sizeof err) != AKE_OK) {
        ake_cli_error("bench", "%s", err);
        rc = 1;
        goto done;
    }
    ake_cli_note_device("bench", device, engine);
    const char *dev_name = ake_engine_device(engine), *prec_name = ake_precision_name(ake_engine_precision(engine));
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    for (int32_t t = 0; t < max_tokens; t++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        ids[t] = 1000 + (int32_t)(rng % 29000);
    }
    const int32_t used_threads = threads > 0 ? threads : omp_get_num_procs();
    printf("model %s, %s, %s (%s), %d host threads, weights %.1f MB resident\n%6s %6s %10s %14s\n", p.model->name,
           prec_name, dev_name, ake_engine_hardware(engine), used_threads, ake_engine_weight_bytes(engine) / 1e6,
           "batch", "seq", "ms", "tokens/s");
    for (int cell = 0; cell < nb * ns + (nm > 0); cell++) {
        bench_row *r = &rows[nrows++];
        int32_t n;
        cu[0] = 0;
        if (cell < nb * ns) {
            n = batches[cell / ns];
            r->seq = seqs[cell % ns];
            for (int32_t i = 0; i < n; i++) cu[i + 1] = cu[i] + r->seq;
        } else {
            n = nm;
            r->seq = 0;
            for (int32_t i = 0; i < n; i++) cu[i + 1] = cu[i] + mixed[i];
        }
        r->batch = n;
        r->tokens = cu[n];
        int done_iters = 0;
        double start = now_ms();
        for (int w = 0; w < 3 + iters; w++) {
            double t0 = now_ms();
            if (ake_engine_embed(engine, ids, cu, n, out, err, sizeof err) != AKE_OK) {
                ake_cli_error("bench", "%s", err);
                rc = 1;
                goto done;
            }
            if (w >= 3) times[done_iters++] = now_ms() - t0;
            if (done_iters >= 3 && now_ms() - start > 10000.0) break;
        }
        qsort(times, (size_t)done_iters, sizeof *times, cmp_double);
        r->ms = times[done_iters / 2];
        char seq_str[16];
        snprintf(seq_str, sizeof seq_str, r->seq ? "%d" : "mixed", r->seq);
        printf("%6d %6s %10.3f %14.0f\n", r->batch, seq_str, r->ms, r->tokens / r->ms * 1e3);
        fflush(stdout);
    }
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) {
            ake_cli_error("bench", "cannot write '%s'", json);
            rc = 1;
            goto done;
        }
        char cpu[256], commit[64], date[64];
        capture("sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1", cpu, sizeof cpu);
        capture("git rev-parse --short HEAD 2>/dev/null", commit, sizeof commit);
        time_t now = time(NULL);
        strftime(date, sizeof date, "%Y-%m-%d", gmtime(&now));
        fputs("[\n", f);
        for (int i = 0; i < nrows; i++) {
            const bench_row *r = &rows[i];
            char seq_json[16];
            snprintf(seq_json, sizeof seq_json, r->seq ? "%d" : "\"mixed\"", r->seq);
            fprintf(f,
                    " {\"impl\": \"akidb-embed\", \"model\": \"%s\", \"dtype\": \"%s\", \"device\": \"%s\", "
                    "\"batch\": %d, \"seq\": %s, \"tokens\": %d, \"ms\": %.4f, \"tokens_per_s\": %.0f, "
                    "\"threads\": %d, \"cpu\": \"%s\", \"card\": \"%s\", \"commit\": \"%s\", \"date\": \"%s\"}%s\n",
                    p.model->name, prec_name, dev_name, r->batch, seq_json, r->tokens, r->ms,
                    r->tokens / r->ms * 1e3, used_threads, cpu, ake_engine_hardware(engine), commit, date,
                    i + 1 < nrows ? "," : "");
        }
        fputs("]\n", f);
        if (fclose(f) != 0) {
            ake_cli_error("bench", "error writing '%s'", json);
            rc = 1;
        }
    }
done:
    ake_engine_free(engine);
    free(ids);
    free(cu);
    free(out);
    free(times);
    free(rows);
    ake_pipeline_release(&p);
    return rc;
}
