/* `akidb-embed distill`: trains a smaller student from a teacher model folder on a text corpus
 * (src/train/distill.h says what it writes), with a progress line, validation every K steps,
 * checkpoints every N steps and on SIGINT/SIGTERM, and the loss curve as a PNG (gnuplot). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/fs.h"
#include "cli/cli.h"
#include "train/distill.h"

static const char distill_help[] =
    "usage: akidb-embed distill --teacher DIR --layers LIST --corpus FILE --out DIR [options]\n"
    "       akidb-embed distill --assemble TRAINED --teacher DIR --out DIR\n"
    "       akidb-embed distill --plot DIR\n"
    "  Distils a teacher into a student that keeps some of its layers (sentence-transformers' recipe):\n"
    "  the student starts from the teacher's embeddings and the listed layers and learns to reproduce\n"
    "  the teacher's pooled, normalized sentence embedding (MSE), with AdamW. The word-embedding table\n"
    "  stays the teacher's. Writes an ordinary model folder into --out, with distillation.json,\n"
    "  curve.tsv, curve.png (when gnuplot is installed) and trained-f16.safetensors (what training changed).\n"
    "  --teacher DIR          the teacher model folder (float)\n"
    "  --layers LIST          teacher layers the student keeps, increasing, e.g. 0,2,4\n"
    "  --corpus FILE          training sentences, one per line (tokenized once into DIR/checkpoint/tokens.bin)\n"
    "  --out DIR              output folder; its checkpoint/ holds the state of the run\n"
    "  --resume DIR           continue the run whose checkpoint folder is DIR (give the same settings)\n"
    "  --valid FILE           validation sentences (default: the corpus's last --valid-size lines, held back)\n"
    "  --valid-size N         sentences held back when there is no --valid (default 1000)\n"
    "  --valid-every K        recall@10 and mean cosine against the teacher every K steps (default 1000;\n"
    "                         0: at the end only)\n"
    "  --steps N              updates (default 20000)\n"
    "  --batch N              sentences per update (default 128)\n"
    "  --max-len N            tokens per sentence at most, [CLS] and [SEP] included (default 128)\n"
    "  --lr X                 peak learning rate (default 1e-4)\n"
    "  --warmup N             warm-up updates (default: a tenth of --steps)\n"
    "  --schedule S           decay after warm-up: linear (default), cosine or constant\n"
    "  --weight-decay X       AdamW's decoupled weight decay on the matrices (default 0.01)\n"
    "  --clip X               clip the global gradient norm to X (default 1.0; 0: off)\n"
    "  --hidden-loss W        add W x the MSE of the matched layers' hidden states (default 0: off)\n"
    "  --contrastive W        add W x in-batch contrastive distillation: each student embedding must pick its\n"
    "                         own teacher embedding out of the batch's (InfoNCE, DistilCSE; default 0: off)\n"
    "  --temperature T        the contrastive term's softmax temperature (default 0.05)\n"
    "  --seed N               batch order (default 42)\n"
    "  --checkpoint-every N   write the checkpoint every N updates (default 1000; also at the end and on stop)\n"
    "  --device D             cpu (default), cuda or cuda:N (the teacher runs there too)\n"
    "  --teacher-device D     run the teacher elsewhere (e.g. cpu: a teacher the CUDA engine does not take)\n"
    "  --precision P          on a GPU: bf16 (default: BF16 GEMMs, FP32 master weights, no loss scaling)\n"
    "                         or fp32; the CPU computes in fp32\n"
    "  --threads N            CPU threads (default: all cores)\n"
    "  --stop-after N         stop after N updates as if interrupted (checkpoint written; for tests)\n"
    "  --no-plot              no curve.png\n"
    "  --assemble TRAINED     instead of training: write the model folder of a student from its trained tensors\n"
    "                         (a trained-f16.safetensors) and the teacher's word table, configuration and tokenizer;\n"
    "                         a distillation.json beside TRAINED is copied in\n"
    "  --plot DIR             instead of training: draw DIR/curve.png from DIR/curve.tsv (a run made with --no-plot,\n"
    "                         e.g. on a GPU machine without gnuplot)\n"
    "Exit status: 0 done (or --stop-after), 1 error, 2 usage, 130 / 143 stopped by SIGINT / SIGTERM\n"
    "(the checkpoint holds the run: --resume continues it bit-exactly on the same device and threads).\n";

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) {
    stop_signal = sig;
    signal(sig, SIG_DFL); /* a second one ends the process at once */
}

typedef struct {
    bool tty;
    double t0, last_print;
} progress;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void fmt_duration(double s, char *buf, size_t cap) {
    if (!(s >= 0) || s > 1e7) {
        snprintf(buf, cap, "?");
        return;
    }
    const long t = lround(s);
    if (t >= 3600)
        snprintf(buf, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else
        snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
}

static void on_step(void *ctx, int64_t done, int64_t total, const ake_step_stats *st, double tokens_per_s) {
    progress *p = ctx;
    const double t = now_s();
    const bool due = p->tty ? t - p->last_print >= 0.2 : t - p->last_print >= 10;
    if (!due && done != total && done != 1) return;
    p->last_print = t;
    char eta[32];
    const double per_step = (t - p->t0) / (double)done;
    fmt_duration(per_step * (double)(total - done), eta, sizeof eta);
    fprintf(stderr, "%sstep %" PRId64 "/%" PRId64 " (%.0f%%)  loss %.6g  lr %.3g  %.0f tokens/s  ETA %s%s",
            p->tty ? "\r\033[K" : "", done, total, 100.0 * (double)done / (double)total, st->loss, st->lr,
            tokens_per_s, eta, p->tty ? "" : "\n");
}

static void on_valid(void *ctx, int64_t done, const ake_accuracy *a) {
    progress *p = ctx;
    fprintf(stderr, "%svalidation at step %" PRId64 ": recall@10 %.4f, mean cosine %.4f (min %.4f) over %d sentences\n",
            p->tty ? "\r\033[K" : "", done, a->recall, a->mean_cos, a->min_cos, a->n);
}

static void on_note(void *ctx, const char *msg) {
    progress *p = ctx;
    fprintf(stderr, "%sdistill: %s\n", p->tty ? "\r\033[K" : "", msg);
}

static bool should_stop(void *ctx) {
    (void)ctx;
    return stop_signal != 0;
}

static bool parse_layers(const char *s, ake_distill_opts *o) {
    o->n_layers = 0;
    for (const char *p = s; *p;) {
        char *end;
        errno = 0;
        const long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > 1000 || o->n_layers == AKE_STUDENT_MAX_LAYERS || (*end && *end != ','))
            return false;
        o->layers[o->n_layers++] = (int32_t)v;
        p = *end ? end + 1 : end;
        if (*end && !*p) return false;
    }
    return o->n_layers > 0;
}

static bool parse_double(const char *flag, const char *s, double lo, double *out) {
    char *end;
    errno = 0;
    const double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v) || v < lo) {
        fprintf(stderr, "akidb-embed distill: %s must be a number >= %g, not '%s'\n", flag, lo, s);
        return false;
    }
    *out = v;
    return true;
}

static bool parse_i64(const char *flag, const char *s, int64_t lo, int64_t *out) {
    char *end;
    errno = 0;
    const long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno || v < lo) {
        fprintf(stderr, "akidb-embed distill: %s must be an integer >= %lld, not '%s'\n", flag, (long long)lo, s);
        return false;
    }
    *out = v;
    return true;
}

/* curve.png from curve.tsv: the loss (log scale) over steps, and recall@10 and mean cosine at
 * each validation. gnuplot from Debian (gnuplot-nox). Returns false (said on stderr) when there
 * is no PNG. */
static bool plot(const char *out) {
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
        fprintf(stderr, "distill: gnuplot is not installed: no curve.png (apt-get install gnuplot-nox)\n");
        return false;
    }
    if (strchr(out, '\'') || strchr(out, '\n')) { /* the path goes into gnuplot's quotes */
        fprintf(stderr, "distill: no curve.png: the folder name has a quote or a newline\n");
        return false;
    }
    FILE *g = popen("gnuplot", "w");
    if (!g) return false;
    fprintf(g,
            "set terminal pngcairo size 1000,700 noenhanced\n"
            "set output '%s/curve.png'\n"
            "set datafile separator tab\n"
            "set multiplot layout 2,1 title 'akidb-embed distill: %s'\n"
            "set logscale y\nset grid\nset xlabel 'step'\nset ylabel 'loss'\n"
            "plot '%s/curve.tsv' using 1:2 with lines title 'training loss'\n"
            "unset logscale y\nset ylabel 'validation'\nset yrange [0:1]\nset key bottom right\n"
            "plot '%s/curve.tsv' using 1:5 with linespoints title 'recall@10 of the teacher''s neighbours', "
            "'' using 1:6 with linespoints title 'mean cosine to the teacher'\n"
            "unset multiplot\n",
            out, out, out, out);
    const int rc = pclose(g);
    if (rc != 0) fprintf(stderr, "distill: gnuplot failed (status %d): no curve.png\n", rc);
    return rc == 0;
}

/* The run's record travels with the model: distillation.json beside TRAINED (as `distill`
 * writes it, and as scripts/models keeps it under weights/) is copied into the assembled folder. */
static ake_status copy_record(const char *trained, const char *out, char *err, size_t errlen) {
    const char *slash = strrchr(trained, '/');
    char *dir = slash ? strndup(trained, slash == trained ? 1 : (size_t)(slash - trained)) : strdup(".");
    char *src = dir ? ake_path_join(dir, "distillation.json") : NULL, *dst = ake_path_join(out, "distillation.json");
    char *buf = NULL;
    size_t len = 0;
    ake_status rc = AKE_OK;
    if (!src || !dst) rc = ake_errf(err, errlen, AKE_ENOMEM, "out of memory");
    else if (ake_file_exists(src) && (rc = ake_read_file(src, 1 << 20, &buf, &len, err, errlen)) == AKE_OK)
        rc = ake_write_file_atomic(dst, buf, len, err, errlen);
    free(buf);
    free(dst);
    free(src);
    free(dir);
    return rc;
}

int ake_cmd_distill(int argc, char **argv) {
    enum { O_TEACHER = 1, O_LAYERS, O_CORPUS, O_OUT, O_RESUME, O_VALID, O_VALID_SIZE, O_VALID_EVERY, O_STEPS,
           O_BATCH, O_MAXLEN, O_LR, O_WARMUP, O_SCHEDULE, O_WD, O_CLIP, O_HIDDEN, O_SEED, O_CKPT, O_DEVICE,
           O_THREADS, O_STOP_AFTER, O_NO_PLOT, O_PRECISION, O_TEACHER_DEVICE, O_ASSEMBLE, O_CONTRASTIVE, O_TEMPERATURE, O_PLOT, O_HELP };
    static const struct option longopts[] = {
        {"teacher", required_argument, 0, O_TEACHER},       {"layers", required_argument, 0, O_LAYERS},
        {"corpus", required_argument, 0, O_CORPUS},         {"out", required_argument, 0, O_OUT},
        {"resume", required_argument, 0, O_RESUME},         {"valid", required_argument, 0, O_VALID},
        {"valid-size", required_argument, 0, O_VALID_SIZE}, {"valid-every", required_argument, 0, O_VALID_EVERY},
        {"steps", required_argument, 0, O_STEPS},           {"batch", required_argument, 0, O_BATCH},
        {"max-len", required_argument, 0, O_MAXLEN},        {"lr", required_argument, 0, O_LR},
        {"warmup", required_argument, 0, O_WARMUP},         {"schedule", required_argument, 0, O_SCHEDULE},
        {"weight-decay", required_argument, 0, O_WD},       {"clip", required_argument, 0, O_CLIP},
        {"hidden-loss", required_argument, 0, O_HIDDEN},    {"seed", required_argument, 0, O_SEED},
        {"checkpoint-every", required_argument, 0, O_CKPT}, {"device", required_argument, 0, O_DEVICE},
        {"threads", required_argument, 0, O_THREADS},       {"stop-after", required_argument, 0, O_STOP_AFTER},
        {"no-plot", no_argument, 0, O_NO_PLOT},             {"help", no_argument, 0, O_HELP},
        {"precision", required_argument, 0, O_PRECISION},   {"teacher-device", required_argument, 0, O_TEACHER_DEVICE},
        {"assemble", required_argument, 0, O_ASSEMBLE},     {"plot", required_argument, 0, O_PLOT},     {"contrastive", required_argument, 0, O_CONTRASTIVE},
        {"temperature", required_argument, 0, O_TEMPERATURE},
        {0, 0, 0, 0}};
    ake_distill_opts o = {.device = "cpu", .batch = 128, .max_len = 128, .seed = 42, .valid_every = 1000,
                          .checkpoint_every = 1000, .valid_size = 1000, .loss = {.temperature = 0.05}};
    o.optim = ake_optim_defaults(1e-4, 20000);
    int64_t warmup = -1, seed = 42;
    bool no_plot = false, have_layers = false;
    const char *assemble = NULL, *plot_dir = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_TEACHER: o.teacher = optarg; break;
        case O_LAYERS:
            if (!parse_layers(optarg, &o)) {
                fprintf(stderr, "akidb-embed distill: --layers takes teacher layer numbers separated by commas "
                                "(e.g. 0,2,4), not '%s'\n", optarg);
                return 2;
            }
            have_layers = true;
            break;
        case O_CORPUS: o.corpus = optarg; break;
        case O_OUT: o.out = optarg; break;
        case O_RESUME: o.resume = optarg; break;
        case O_VALID: o.valid = optarg; break;
        case O_VALID_SIZE:
            if (!ake_cli_parse_int("--valid-size", optarg, AKE_RECALL_K + 1, INT32_MAX, &o.valid_size)) return 2;
            break;
        case O_VALID_EVERY:
            if (!parse_i64("--valid-every", optarg, 0, &o.valid_every)) return 2;
            break;
        case O_STEPS:
            if (!parse_i64("--steps", optarg, 1, &o.optim.total_steps)) return 2;
            break;
        case O_BATCH:
            if (!ake_cli_parse_int("--batch", optarg, 1, 1 << 16, &o.batch)) return 2;
            break;
        case O_MAXLEN:
            if (!ake_cli_parse_int("--max-len", optarg, 2, 1 << 16, &o.max_len)) return 2;
            break;
        case O_LR:
            if (!parse_double("--lr", optarg, 1e-30, &o.optim.lr)) return 2;
            break;
        case O_WARMUP:
            if (!parse_i64("--warmup", optarg, 0, &warmup)) return 2;
            break;
        case O_SCHEDULE:
            if (ake_lr_schedule_parse(optarg, &o.optim.schedule) != 0) {
                fprintf(stderr, "akidb-embed distill: --schedule is linear, cosine or constant, not '%s'\n", optarg);
                return 2;
            }
            break;
        case O_WD:
            if (!parse_double("--weight-decay", optarg, 0, &o.optim.weight_decay)) return 2;
            break;
        case O_CLIP:
            if (!parse_double("--clip", optarg, 0, &o.optim.max_grad_norm)) return 2;
            break;
        case O_HIDDEN:
            if (!parse_double("--hidden-loss", optarg, 0, &o.loss.hidden)) return 2;
            break;
        case O_SEED:
            if (!parse_i64("--seed", optarg, 0, &seed)) return 2;
            break;
        case O_CKPT:
            if (!parse_i64("--checkpoint-every", optarg, 0, &o.checkpoint_every)) return 2;
            break;
        case O_DEVICE: o.device = optarg; break;
        case O_TEACHER_DEVICE: o.teacher_device = optarg; break;
        case O_ASSEMBLE: assemble = optarg; break;
        case O_PLOT: plot_dir = optarg; break;
        case O_CONTRASTIVE:
            if (!parse_double("--contrastive", optarg, 0, &o.loss.contrastive)) return 2;
            break;
        case O_TEMPERATURE:
            if (!parse_double("--temperature", optarg, 1e-6, &o.loss.temperature)) return 2;
            break;
        case O_THREADS:
            if (!ake_cli_parse_int("--threads", optarg, 1, 4096, &o.threads)) return 2;
            break;
        case O_STOP_AFTER:
            if (!parse_i64("--stop-after", optarg, 1, &o.stop_after)) return 2;
            break;
        case O_NO_PLOT: no_plot = true; break;
        case O_PRECISION:
            if (strcmp(optarg, "bf16") != 0 && strcmp(optarg, "fp32") != 0) {
                fprintf(stderr, "akidb-embed distill: --precision is bf16 or fp32, not '%s'\n", optarg);
                return 2;
            }
            o.compute_f32 = strcmp(optarg, "fp32") == 0;
            break;
        case O_HELP: fputs(distill_help, stdout); return 0;
        default: fputs(distill_help, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "akidb-embed distill: unexpected argument '%s'\n\n%s", argv[optind], distill_help);
        return 2;
    }
    if (plot_dir) {
        char *tsv = ake_path_join(plot_dir, "curve.tsv");
        const bool readable = tsv && access(tsv, R_OK) == 0;
        if (!readable) fprintf(stderr, "akidb-embed distill: cannot read %s/curve.tsv: %s\n", plot_dir, strerror(errno));
        free(tsv);
        return readable && plot(plot_dir) ? 0 : 1;
    }
    if (assemble) {
        if (!o.teacher || !o.out) {
            fprintf(stderr, "akidb-embed distill: --assemble needs --teacher and --out\n");
            return 2;
        }
        char err[1024];
        ake_model *teacher = NULL;
        ake_status rc = ake_model_load(o.teacher, &teacher, err, sizeof err);
        if (rc == AKE_OK) rc = ake_student_assemble(teacher, assemble, o.out, err, sizeof err);
        if (rc == AKE_OK) rc = copy_record(assemble, o.out, err, sizeof err);
        ake_model_free(teacher);
        if (rc != AKE_OK) {
            fprintf(stderr, "akidb-embed distill: %s\n", err);
            return 1;
        }
        fprintf(stderr, "distill: %s assembled from %s and %s\n", o.out, assemble, o.teacher);
        return 0;
    }
    if (!o.teacher || !have_layers || !o.corpus || !o.out) {
        fprintf(stderr, "akidb-embed distill: --teacher, --layers, --corpus and --out are required\n\n%s",
                distill_help);
        return 2;
    }
    o.seed = (uint64_t)seed;
    o.optim.warmup_steps = warmup >= 0 ? warmup : o.optim.total_steps / 10;

    progress p = {.tty = isatty(2), .t0 = now_s()};
    ake_distill_hooks h = {&p, on_step, on_valid, on_note, should_stop};
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    ake_distill_result r;
    char err[1024];
    const ake_status rc = ake_distill_run(&o, &h, &r, err, sizeof err);
    if (p.tty) fputc('\n', stderr);
    if (rc != AKE_OK) {
        fprintf(stderr, "akidb-embed distill: %s\n", err);
        return 1;
    }
    if (r.stopped) {
        fprintf(stderr, "distill: stopped at step %" PRId64 " of %" PRId64 "; continue with --resume %s%s\n",
                r.steps_done, o.optim.total_steps, o.resume ? o.resume : o.out, o.resume ? "" : "/checkpoint");
        return stop_signal ? 128 + stop_signal : 0;
    }
    if (!no_plot) plot(o.out);
    fprintf(stderr, "distill: %s written: %" PRId64 " steps, recall@10 %.4f and mean cosine %.4f against the teacher on "
                    "the validation sentences\n",
            o.out, r.steps_done, r.valid.recall, r.valid.mean_cos);
    return 0;
}
