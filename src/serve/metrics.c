#include "serve/metrics.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

static const char *const ep_names[AKE_EP_COUNT] = {"embed", "v1_embeddings", "tokenize", "health",
                                                   "info",  "v1_models",     "metrics",  "other"};

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

void ake_metrics_init(ake_metrics *m) {
    memset(m, 0, sizeof *m);
    for (int h = 0; h < AKE_H_COUNT; h++) {
        m->hist[h].bounds = hist_meta[h].bounds;
        m->hist[h].nb = hist_meta[h].nb;
    }
}

void ake_metrics_request(ake_metrics *m, ake_endpoint ep, int http_status) {
    int slot = AKE_STATUS_SLOTS - 1;
    for (int i = 0; i < AKE_STATUS_SLOTS - 1; i++)
        if (status_codes[i] == http_status) slot = i;
    if (ep < 0 || ep >= AKE_EP_COUNT) ep = AKE_EP_OTHER;
    atomic_fetch_add_explicit(&m->requests[ep][slot], 1, memory_order_relaxed);
}

void ake_metrics_observe(ake_metrics *m, ake_hist_id id, double v) {
    ake_histogram *h = &m->hist[id];
    int b = 0;
    while (b < h->nb && v > h->bounds[b]) b++;
    atomic_fetch_add_explicit(&h->count[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_micro, (uint64_t)llround(v * 1e6), memory_order_relaxed);
}

static void write_hist(const ake_histogram *h, const char *name, const char *help, ake_buf *o) {
    ake_buf_printf(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int b = 0; b <= h->nb; b++) {
        cum += atomic_load_explicit(&h->count[b], memory_order_relaxed);
        if (b < h->nb)
            ake_buf_printf(o, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[b], (unsigned long long)cum);
        else
            ake_buf_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    }
    ake_buf_printf(o, "%s_sum %.6f\n%s_count %llu\n", name,
                   (double)atomic_load_explicit(&h->sum_micro, memory_order_relaxed) / 1e6, name,
                   (unsigned long long)cum);
}

/* Label values here are model ids and device names from our own flags; quotes and
 * backslashes are escaped anyway, as the format requires. */
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

void ake_metrics_write(const ake_metrics *m, const ake_metrics_info *info, int64_t queue_depth, ake_buf *o) {
    ake_buf_puts(o, "# HELP ake_requests_total HTTP requests answered, by endpoint and status.\n"
                    "# TYPE ake_requests_total counter\n");
    for (int ep = 0; ep < AKE_EP_COUNT; ep++)
        for (int s = 0; s < AKE_STATUS_SLOTS; s++) {
            uint64_t n = atomic_load_explicit(&m->requests[ep][s], memory_order_relaxed);
            if (!n) continue;
            if (s < AKE_STATUS_SLOTS - 1)
                ake_buf_printf(o, "ake_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n", ep_names[ep],
                               status_codes[s], (unsigned long long)n);
            else
                ake_buf_printf(o, "ake_requests_total{endpoint=\"%s\",status=\"other\"} %llu\n", ep_names[ep],
                               (unsigned long long)n);
        }
    for (int h = 0; h < AKE_H_COUNT; h++) write_hist(&m->hist[h], hist_meta[h].name, hist_meta[h].help, o);
    ake_buf_printf(o,
                   "# HELP ake_queue_depth Sequences waiting in the batcher queues.\n# TYPE ake_queue_depth gauge\n"
                   "ake_queue_depth %lld\n"
                   "# HELP ake_in_flight_requests Admitted requests not yet answered.\n"
                   "# TYPE ake_in_flight_requests gauge\nake_in_flight_requests %lld\n",
                   (long long)queue_depth, (long long)atomic_load(&m->in_flight));
    static const struct {
        const char *name, *help;
        size_t off;
    } counters[] = {
        {"ake_batches_total", "Engine calls.", offsetof(ake_metrics, batches)},
        {"ake_sequences_total", "Sequences embedded.", offsetof(ake_metrics, sequences)},
        {"ake_tokens_total", "Tokens embedded.", offsetof(ake_metrics, tokens)},
        {"ake_cancelled_total", "Requests dropped because their client disconnected.",
         offsetof(ake_metrics, cancelled)},
        {"ake_timeouts_total", "Requests that waited in the queue past --request-timeout-ms.",
         offsetof(ake_metrics, timeouts)},
    };
    for (size_t i = 0; i < sizeof counters / sizeof *counters; i++) {
        const _Atomic uint64_t *c = (const _Atomic uint64_t *)((const char *)m + counters[i].off);
        ake_buf_printf(o, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", counters[i].name, counters[i].help,
                       counters[i].name, counters[i].name, (unsigned long long)atomic_load(c));
    }
    ake_buf_puts(o, "# HELP ake_model_info The model being served.\n# TYPE ake_model_info gauge\nake_model_info{model=\"");
    label_value(o, info->model_id);
    ake_buf_puts(o, "\",device=\"");
    label_value(o, info->device);
    ake_buf_printf(o, "\",dtype=\"%s\",pooling=\"%s\",dim=\"%d\",max_input_tokens=\"%d\",replicas=\"%d\",version=\"",
                   info->dtype, info->pooling, info->dim, info->max_input_tokens, info->replicas);
    label_value(o, info->version);
    ake_buf_puts(o, "\"} 1\n");
}
