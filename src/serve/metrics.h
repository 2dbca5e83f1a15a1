/* Server metrics, written in the Prometheus text format (version 0.0.4).
 *
 * Everything is a fixed array of atomics, updated lock-free from the HTTP workers and
 * the batcher threads; /metrics reads them without stopping anyone (a scrape may see
 * a histogram's count and sum from slightly different instants, as Prometheus allows).
 *
 * Two levels: the server's own ake_metrics (the ake_* families: every request, every
 * batch) and one per loaded model version (the ake_model_* families, labelled model and
 * version), whose `parent` is the server's: an update of a version's metrics is made in
 * both, so the server's families stay the totals when versions come and go. */
#ifndef AKE_SERVE_METRICS_H
#define AKE_SERVE_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "serve/jsonw.h"

typedef enum {
    AKE_EP_EMBED = 0,      /* POST /embed */
    AKE_EP_OPENAI,         /* POST /v1/embeddings */
    AKE_EP_TOKENIZE,       /* POST /tokenize */
    AKE_EP_HEALTH,         /* GET /health */
    AKE_EP_INFO,           /* GET /info */
    AKE_EP_MODELS,         /* GET /v1/models */
    AKE_EP_METRICS,        /* GET /metrics */
    AKE_EP_SIMILARITY,     /* POST /similarity */
    AKE_EP_ROOT,           /* POST / (TEI's route of the Hugging Face client) */
    AKE_EP_EMBED_ALL,      /* POST /embed_all */
    AKE_EP_DECODE,         /* POST /decode */
    AKE_EP_OPENAPI,        /* GET /openapi.json */
    AKE_EP_DOCS,           /* GET /docs */
    AKE_EP_OTHER,          /* anything else (404 / 405) */
    AKE_EP_COUNT
} ake_endpoint;

const char *ake_endpoint_name(ake_endpoint ep);

typedef enum {
    AKE_H_QUEUE = 0,   /* seconds a sequence waited in its replica's queue */
    AKE_H_TOKENIZE,    /* seconds spent tokenizing one request */
    AKE_H_INFERENCE,   /* seconds of one engine call (one batch) */
    AKE_H_TOTAL,       /* seconds from a request's arrival to its response being queued */
    AKE_H_BATCH_SIZE,  /* sequences per batch */
    AKE_H_BATCH_TOKENS,/* tokens per batch */
    AKE_H_COUNT
} ake_hist_id;

#define AKE_HIST_MAX_BUCKETS 16
#define AKE_STATUS_SLOTS 12 /* 200 400 401 404 405 413 422 429 500 503 504 other */

typedef struct {
    const double *bounds; /* [nb] upper bounds, increasing; +Inf is implicit */
    int nb;
    _Atomic uint64_t count[AKE_HIST_MAX_BUCKETS + 1]; /* per bucket (not cumulative); last = +Inf */
    _Atomic uint64_t sum_micro;                       /* sum of observations x 1e6, rounded */
} ake_histogram;

typedef enum {
    AKE_C_BATCHES = 0, /* engine calls */
    AKE_C_SEQUENCES,   /* sequences embedded */
    AKE_C_TOKENS,      /* tokens embedded */
    AKE_C_CANCELLED,   /* requests dropped because their client went away */
    AKE_C_TIMEOUTS,    /* requests that waited past --request-timeout-ms */
    AKE_C_COUNT
} ake_counter_id;

typedef struct ake_metrics {
    _Atomic uint64_t requests[AKE_EP_COUNT][AKE_STATUS_SLOTS];
    ake_histogram hist[AKE_H_COUNT];
    _Atomic uint64_t counter[AKE_C_COUNT];
    _Atomic int64_t in_flight;  /* admitted requests not yet answered (the server's only) */
    _Atomic uint64_t model_load_failures; /* model versions that failed to load (the server's only) */
    struct ake_metrics *parent; /* every update is also made there; NULL for the server's */
} ake_metrics;

/* parent: the server's metrics for a model version's, else NULL. */
void ake_metrics_init(ake_metrics *m, ake_metrics *parent);
void ake_metrics_request(ake_metrics *m, ake_endpoint ep, int http_status);
void ake_metrics_observe(ake_metrics *m, ake_hist_id h, double value);
void ake_metrics_count(ake_metrics *m, ake_counter_id c, uint64_t n);

/* A histogram of one's own (the experiments' per-arm families): observe one value; write the
 * family's _bucket, _sum and _count series with `labels` (`k="v",...` already escaped, or NULL). */
void ake_histogram_observe(ake_histogram *h, double v);
void ake_histogram_write(ake_buf *o, const char *name, const ake_histogram *h, const char *labels);
/* The bounds of the *_seconds histograms (0.5 ms .. 10 s); *nb gets their count. */
const double *ake_metrics_time_bounds(int *nb);
/* A label value escaped as the text format requires (quotes, backslashes, newlines). */
void ake_metrics_label_value(ake_buf *o, const char *s);

/* One loaded model version for the exposition: its metrics and facts (ake_model_info). */
typedef struct {
    const ake_metrics *m;
    const char *model, *version, *device, *dtype, *pooling;
    int32_t dim, max_input_tokens, replicas;
    bool serving;              /* the version that answers requests naming only the model */
    int64_t queue_depth;       /* its batcher's */
} ake_metrics_model;

/* Appends the whole exposition: the server's totals (ake_*), ake_build_info{version}, and per
 * version ake_model_info and the ake_model_* families. queue_depth: every batcher's. */
void ake_metrics_write(const ake_metrics *server, const char *server_version, int64_t queue_depth,
                       const ake_metrics_model *models, int n_models, ake_buf *out);

#endif
