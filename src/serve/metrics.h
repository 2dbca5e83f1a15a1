/* Server metrics, written in the Prometheus text format (version 0.0.4).
 *
 * Everything is a fixed array of atomics, updated lock-free from the HTTP workers and
 * the batcher threads; /metrics reads them without stopping anyone (a scrape may see
 * a histogram's count and sum from slightly different instants, as Prometheus allows). */
#ifndef AKE_SERVE_METRICS_H
#define AKE_SERVE_METRICS_H

#include <stdatomic.h>
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

typedef struct {
    _Atomic uint64_t requests[AKE_EP_COUNT][AKE_STATUS_SLOTS];
    ake_histogram hist[AKE_H_COUNT];
    _Atomic int64_t in_flight;  /* admitted requests not yet answered */
    _Atomic uint64_t batches;   /* engine calls */
    _Atomic uint64_t sequences; /* sequences embedded */
    _Atomic uint64_t tokens;    /* tokens embedded */
    _Atomic uint64_t cancelled; /* requests dropped because their client went away */
    _Atomic uint64_t timeouts;  /* requests that waited past --request-timeout-ms */
} ake_metrics;

void ake_metrics_init(ake_metrics *m);
void ake_metrics_request(ake_metrics *m, ake_endpoint ep, int http_status);
void ake_metrics_observe(ake_metrics *m, ake_hist_id h, double value);

/* Static facts shown as ake_model_info{...} 1. */
typedef struct {
    const char *model_id, *device, *dtype, *pooling, *version;
    int32_t dim, max_input_tokens, replicas;
} ake_metrics_info;

/* Appends the whole exposition; queue_depth is read by the caller from the batcher. */
void ake_metrics_write(const ake_metrics *m, const ake_metrics_info *info, int64_t queue_depth, ake_buf *out);

#endif
