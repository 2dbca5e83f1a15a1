#include "serve/metrics.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static const char *const ep_names[AKE_EP_COUNT] = {"embed",   "v1_embeddings", "tokenize",   "health",    "info",
                                                   "v1_models", "metrics",     "similarity", "root",      "embed_all",
                                                   "decode",    "openapi",       "docs",       "other"};

static const int status_codes[AKE_STATUS_SLOTS - 1] = {200, 400, 401, 404, 405, 413, 422, 429, 500, 503, 504};

const char *ake_endpoint_name(ake_endpoint ep) { return ep >= 0 && ep < AKE_EP_COUNT ? ep_names[ep] : "other"; }

static const double time_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                     0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};
static const double size_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
static const double token_bounds[] = {16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536};

static const struct {
    const char *name, *help;
    const double *bounds;
    int nb;
} hist_meta[AKE_H_COUNT] = {
    {"ake_queue_seconds", "Time a sequence waited in its replica's queue before its batch started.", time_bounds,
     (int)(sizeof time_bounds / sizeof *time_bounds)},
    {"ake_tokenize_seconds", "Time spent tokenizing the inputs of one request.", time_bounds,
     (int)(sizeof time_bounds / sizeof *time_bounds)},
    {"ake_inference_seconds", "Time of one engine call (one batch).", time_bounds,
     (int)(sizeof time_bounds / sizeof *time_bounds)},
    {"ake_request_seconds", "Time from a request's arrival to its response.", time_bounds,
     (int)(sizeof time_bounds / sizeof *time_bounds)},
    {"ake_batch_size", "Sequences per engine call.", size_bounds, (int)(sizeof size_bounds / sizeof *size_bounds)},
    {"ake_batch_tokens", "Tokens per engine call.", token_bounds, (int)(sizeof token_bounds / sizeof *token_bounds)},
};

void ake_metrics_init(ake_metrics *m, ake_metrics *parent) {
    memset(m, 0, sizeof *m);
    for (int h = 0; h < AKE_H_COUNT; h++) {
        m->hist[h].bounds = hist_meta[h].bounds;
        m->hist[h].nb = hist_meta[h].nb;
    }
    m->parent = parent;
}

void ake_metrics_request(ake_metrics *m, ake_endpoint ep, int http_status) {
    int slot = AKE_STATUS_SLOTS - 1;
    for (int i = 0; i < AKE_STATUS_SLOTS - 1; i++)
        if (status_codes[i] == http_status) slot = i;
    if (ep < 0 || ep >= AKE_EP_COUNT) ep = AKE_EP_OTHER;
    for (; m; m = m->parent) atomic_fetch_add_explicit(&m->requests[ep][slot], 1, memory_order_relaxed);
}

void ake_metrics_observe(ake_metrics *m, ake_hist_id id, double v) {
    for (; m; m = m->parent) ake_histogram_observe(&m->hist[id], v);
}

void ake_metrics_count(ake_metrics *m, ake_counter_id c, uint64_t n) {
    for (; m; m = m->parent) atomic_fetch_add_explicit(&m->counter[c], n, memory_order_relaxed);
}

/* Label values here are model names, versions and device names; quotes, backslashes and
 * newlines are escaped anyway, as the format requires. */
static void label_value(ake_buf *o, const char *s) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') ake_buf_put(o, "\\", 1);
        if (*s == '\n') {
            ake_buf_puts(o, "\\n");
            continue;
        }
        ake_buf_put(o, s, 1);
    }
}

/* `model="..",version=".."` of a version's series, or "" for the server's. */
static void model_labels(ake_buf *o, const ake_metrics_model *mm) {
    ake_buf_puts(o, "model=\"");
    label_value(o, mm->model);
    ake_buf_puts(o, "\",version=\"");
    label_value(o, mm->version);
    ake_buf_puts(o, "\"");
}

/* The series of one family: the server's (mm NULL) or a version's. */
static void write_requests(ake_buf *o, const char *name, const ake_metrics *m, const ake_metrics_model *mm) {
    for (int ep = 0; ep < AKE_EP_COUNT; ep++)
        for (int s = 0; s < AKE_STATUS_SLOTS; s++) {
            uint64_t n = atomic_load_explicit(&m->requests[ep][s], memory_order_relaxed);
            if (!n) continue;
            ake_buf_printf(o, "%s{", name);
            if (mm) {
                model_labels(o, mm);
                ake_buf_puts(o, ",");
            }
            if (s < AKE_STATUS_SLOTS - 1)
                ake_buf_printf(o, "endpoint=\"%s\",status=\"%d\"} %llu\n", ep_names[ep], status_codes[s],
                               (unsigned long long)n);
            else
                ake_buf_printf(o, "endpoint=\"%s\",status=\"other\"} %llu\n", ep_names[ep], (unsigned long long)n);
        }
}

void ake_histogram_write(ake_buf *o, const char *name, const ake_histogram *h, const char *labels) {
    const char *sep = labels && *labels ? "," : "";
    if (!labels) labels = "";
    uint64_t cum = 0;
    for (int b = 0; b <= h->nb; b++) {
        cum += atomic_load_explicit(&h->count[b], memory_order_relaxed);
        if (b < h->nb) ake_buf_printf(o, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, h->bounds[b],
                                      (unsigned long long)cum);
        else ake_buf_printf(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
    }
    const double sum = (double)atomic_load_explicit(&h->sum_micro, memory_order_relaxed) / 1e6;
    if (*labels)
        ake_buf_printf(o, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, labels, sum, name, labels,
                       (unsigned long long)cum);
    else
        ake_buf_printf(o, "%s_sum %.6f\n%s_count %llu\n", name, sum, name, (unsigned long long)cum);
}

void ake_histogram_observe(ake_histogram *h, double v) {
    int b = 0;
    while (b < h->nb && v > h->bounds[b]) b++;
    atomic_fetch_add_explicit(&h->count[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_micro, (uint64_t)llround(v * 1e6), memory_order_relaxed);
}

const double *ake_metrics_time_bounds(int *nb) {
    *nb = (int)(sizeof time_bounds / sizeof *time_bounds);
    return time_bounds;
}

void ake_metrics_label_value(ake_buf *o, const char *s) { label_value(o, s); }

static void write_hist(ake_buf *o, const char *name, const ake_histogram *h, const ake_metrics_model *mm) {
    ake_buf labels = {0};
    if (mm) model_labels(&labels, mm);
    ake_histogram_write(o, name, h, labels.data);
    ake_buf_release(&labels);
}

static const struct {
    const char *name, *help;
} counter_meta[AKE_C_COUNT] = {
    {"batches_total", "Engine calls."},
    {"sequences_total", "Sequences embedded."},
    {"tokens_total", "Tokens embedded."},
    {"cancelled_total", "Requests dropped because their client disconnected."},
    {"timeouts_total", "Requests that waited in the queue past --request-timeout-ms."},
};

void ake_metrics_write(const ake_metrics *m, const char *server_version, int64_t queue_depth,
                       const ake_metrics_model *models, int n_models, ake_buf *o) {
    /* the server's totals */
    ake_buf_puts(o, "# HELP ake_requests_total HTTP requests answered, by endpoint and status.\n"
                    "# TYPE ake_requests_total counter\n");
    write_requests(o, "ake_requests_total", m, NULL);
    for (int h = 0; h < AKE_H_COUNT; h++) {
        ake_buf_printf(o, "# HELP %s %s\n# TYPE %s histogram\n", hist_meta[h].name, hist_meta[h].help,
                       hist_meta[h].name);
        write_hist(o, hist_meta[h].name, &m->hist[h], NULL);
    }
    ake_buf_printf(o,
                   "# HELP ake_queue_depth Sequences waiting in the batcher queues.\n# TYPE ake_queue_depth gauge\n"
                   "ake_queue_depth %lld\n"
                   "# HELP ake_in_flight_requests Admitted requests not yet answered.\n"
                   "# TYPE ake_in_flight_requests gauge\nake_in_flight_requests %lld\n",
                   (long long)queue_depth, (long long)atomic_load(&m->in_flight));
    ake_buf_printf(o,
                   "# HELP ake_model_load_failures_total Model versions that failed to load (at start, by the "
                   "repository poll or the admin API).\n# TYPE ake_model_load_failures_total counter\n"
                   "ake_model_load_failures_total %llu\n",
                   (unsigned long long)atomic_load(&m->model_load_failures));
    for (int c = 0; c < AKE_C_COUNT; c++)
        ake_buf_printf(o, "# HELP ake_%s %s\n# TYPE ake_%s counter\nake_%s %llu\n", counter_meta[c].name,
                       counter_meta[c].help, counter_meta[c].name, counter_meta[c].name,
                       (unsigned long long)atomic_load(&m->counter[c]));
    ake_buf_puts(o, "# HELP ake_build_info The server's version.\n# TYPE ake_build_info gauge\nake_build_info{version=\"");
    label_value(o, server_version);
    ake_buf_puts(o, "\"} 1\n");
    /* per loaded model version */
    ake_buf_puts(o, "# HELP ake_model_info A loaded model version.\n# TYPE ake_model_info gauge\n");
    for (int i = 0; i < n_models; i++) {
        const ake_metrics_model *mm = &models[i];
        ake_buf_puts(o, "ake_model_info{");
        model_labels(o, mm);
        ake_buf_puts(o, ",device=\"");
        label_value(o, mm->device);
        ake_buf_printf(o, "\",dtype=\"%s\",pooling=\"%s\",dim=\"%d\",max_input_tokens=\"%d\",replicas=\"%d\","
                          "serving=\"%s\"} 1\n",
                       mm->dtype, mm->pooling, mm->dim, mm->max_input_tokens, mm->replicas,
                       mm->serving ? "true" : "false");
    }
    ake_buf_puts(o, "# HELP ake_model_requests_total HTTP requests answered by a model version.\n"
                    "# TYPE ake_model_requests_total counter\n");
    for (int i = 0; i < n_models; i++) write_requests(o, "ake_model_requests_total", models[i].m, &models[i]);
    for (int h = 0; h < AKE_H_COUNT; h++) {
        char name[64];
        snprintf(name, sizeof name, "ake_model_%s", hist_meta[h].name + 4);
        ake_buf_printf(o, "# HELP %s %s (per model version)\n# TYPE %s histogram\n", name, hist_meta[h].help, name);
        for (int i = 0; i < n_models; i++) write_hist(o, name, &models[i].m->hist[h], &models[i]);
    }
    ake_buf_puts(o, "# HELP ake_model_queue_depth Sequences waiting for a model version.\n"
                    "# TYPE ake_model_queue_depth gauge\n");
    for (int i = 0; i < n_models; i++) {
        ake_buf_puts(o, "ake_model_queue_depth{");
        model_labels(o, &models[i]);
        ake_buf_printf(o, "} %lld\n", (long long)models[i].queue_depth);
    }
    for (int c = 0; c < AKE_C_COUNT; c++) {
        ake_buf_printf(o, "# HELP ake_model_%s %s (per model version)\n# TYPE ake_model_%s counter\n",
                       counter_meta[c].name, counter_meta[c].help, counter_meta[c].name);
        for (int i = 0; i < n_models; i++) {
            ake_buf_printf(o, "ake_model_%s{", counter_meta[c].name);
            model_labels(o, &models[i]);
            ake_buf_printf(o, "} %llu\n", (unsigned long long)atomic_load(&models[i].m->counter[c]));
        }
    }
}
