/* The HTTP side of the server: libmicrohttpd plumbing, routing, admission, and the life
 * of one request.
 *
 * libmicrohttpd runs `http_threads` worker threads, each with its own epoll loop
 * (MHD_USE_EPOLL_INTERNAL_THREAD + MHD_OPTION_THREAD_POOL_SIZE). The access handler is
 * called several times per request, with our http_req in *con_cls:
 *   1. headers read      → route, check the API key and admission (in-flight limit,
 *                          draining, Content-Length); a refusal is remembered in r->early
 *   2. body chunks       → appended up to --max-payload-bytes, discarded beyond (so the
 *                          413 can still be sent without resetting the connection)
 *   3. body complete     → answer GETs and errors at once; for embeddings parse, validate
 *                          and tokenize on this worker, suspend the connection and submit
 *                          the job to the batcher; the worker goes back to its loop
 *   4. resumed           → the batcher's done() callback resumed us: normalize, serialize
 *                          (JSON or base64) and queue the response
 * The completed-callback frees the request, whatever happened (client gone included).
 * A suspended request is never freed under the batcher: MHD reports completion only
 * after resume, and the batcher resumes only once it is done with the job. */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "base/log.h"
#include "serve/api.h"
#include "serve/batcher.h"
#include "serve/metrics.h"
#include "serve/pipeline.h"
#include "serve/server.h"

struct ake_server {
    ake_server_opts o;         /* strings below are owned copies */
    char *str[8];              /* the copies, freed at the end */
    char devices[256];         /* the replicas' devices as the engines resolved them, comma-separated */
    const char *dtype;         /* "float32", "float16", "bfloat16", "int8" or "float8_e4m3fn": replica 0's */
    ake_pipeline p;
    ake_model raw_model;       /* shallow copy of *p.model with cfg.normalize = false: the engines
                                  return pooled vectors and the APIs normalize per request */
    ake_api_limits lim;
    ake_batcher *batcher;
    struct MHD_Daemon *mhd;
    ake_metrics metrics;
    int32_t port;
    time_t started;
    _Atomic bool ready;        /* engines answered their warm-up */
    _Atomic bool draining;
    _Atomic int64_t admitted, answered, abandoned;
    pthread_mutex_t drain_mu;
    pthread_cond_t drain_cv;   /* signalled when an admitted request completes */
};

typedef enum { ST_BODY = 0, ST_WAITING, ST_ANSWERED } req_state;

typedef struct {
    ake_server *srv;
    struct MHD_Connection *conn;
    const char *method, *url; /* MHD's, valid for the whole request */
    ake_endpoint ep;
    bool openai;              /* errors in OpenAI's shape */
    bool admitted;            /* counted in metrics.in_flight */
    req_state state;
    ake_api_error early;      /* refusal decided before the body; status 0 if none */
    ake_buf body;
    uint64_t body_seen;
    double t_arrival;
    int fd;                   /* the connection's socket, peeked while suspended */
    ake_api_request req;
    ake_api_tokens toks;
    ake_job job;
    ake_seq *seqs;            /* [n] */
    float *vecs;              /* [n, dim] */
} http_req;

/* ---------------------------------------------------------------- responses */

static enum MHD_Result respond(http_req *r, int status, ake_buf *body, const char *ctype) {
    ake_server *s = r->srv;
    if (body->oom) {
        ake_buf_release(body);
        status = 500;
        ake_buf_puts(body, "{\"error\":\"out of memory writing the response\",\"error_type\":\"Backend\"}");
        ctype = "application/json";
    }
    size_t len;
    char *data = ake_buf_take(body, &len);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (status == 429) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (status == 405)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                                r->ep == AKE_EP_EMBED || r->ep == AKE_EP_OPENAI || r->ep == AKE_EP_TOKENIZE ? "POST"
                                                                                                         : "GET, HEAD");
    if (atomic_load(&s->draining)) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->state = ST_ANSWERED;
    double ms = (ake_now_s() - r->t_arrival) * 1e3;
    ake_metrics_request(&s->metrics, r->ep, status);
    ake_metrics_observe(&s->metrics, AKE_H_TOTAL, ms * 1e-3);
    if (ake_log_enabled(AKE_LOG_DEBUG))
        ake_log(AKE_LOG_DEBUG, "%s %s -> %d, %d inputs, %lld tokens, %.2f ms", r->method, r->url, status, r->req.n,
                (long long)r->toks.total, ms);
    return ok;
}

static enum MHD_Result respond_error(http_req *r, const ake_api_error *e) {
    ake_buf b = {0};
    ake_api_write_error(e, r->openai, &b);
    ake_log(e->status >= 500 ? AKE_LOG_ERROR : AKE_LOG_WARN, "%s %s -> %d: %s", r->method, r->url, e->status, e->msg);
    return respond(r, e->status, &b, "application/json");
}

static enum MHD_Result respond_fail(http_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum MHD_Result respond_fail(http_req *r, int status, const char *fmt, ...) {
    ake_api_error e = {.status = status};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    return respond_error(r, &e);
}

/* ---------------------------------------------------------------- step 1: route and admit */

/* Constant-time comparison, so that the key cannot be guessed byte by byte from timing. */
static bool same_secret(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < m; i++) diff |= (unsigned char)(a[i % (n ? n : 1)] ^ b[i]);
    return diff == 0 && n == m;
}

static void route(ake_server *s, http_req *r, struct MHD_Connection *c) {
    static const struct {
        const char *path;
        ake_endpoint ep;
        bool post;
    } routes[] = {
        {"/embed", AKE_EP_EMBED, true},         {"/v1/embeddings", AKE_EP_OPENAI, true},
        {"/tokenize", AKE_EP_TOKENIZE, true},   {"/health", AKE_EP_HEALTH, false},
        {"/info", AKE_EP_INFO, false},          {"/v1/models", AKE_EP_MODELS, false},
        {"/metrics", AKE_EP_METRICS, false},
    };
    ake_api_error *e = &r->early;
    r->ep = AKE_EP_OTHER;
    r->openai = !strncmp(r->url, "/v1/", 4);
    bool post = false;
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        if (!strcmp(r->url, routes[i].path)) {
            r->ep = routes[i].ep;
            post = routes[i].post;
        }
    if (r->ep == AKE_EP_OTHER) {
        ake_api_fail(e, 404, NULL, "no route %s %.200s", r->method, r->url);
        return;
    }
    bool method_ok = post ? !strcmp(r->method, "POST") : !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD");
    if (!method_ok) {
        ake_api_fail(e, 405, NULL, "%s is not allowed on %s; use %s", r->method, r->url, post ? "POST" : "GET");
        return;
    }
    if (s->o.api_key && *s->o.api_key && r->ep != AKE_EP_HEALTH) {
        const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (!auth || strncasecmp(auth, "Bearer ", 7) || !same_secret(auth + 7, s->o.api_key)) {
            e->code = "invalid_api_key";
            ake_api_fail(e, 401, NULL, "%s", auth ? "invalid API key" : "missing `Authorization: Bearer <key>` header");
            return;
        }
    }
    if (!post) return;
    if (atomic_load(&s->draining)) {
        ake_api_fail(e, 503, NULL, "the server is shutting down");
        return;
    }
    if (!atomic_load(&s->ready)) {
        ake_api_fail(e, 503, NULL, "the model is not ready yet");
        return;
    }
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > (unsigned long long)s->o.max_payload_bytes) {
        ake_api_fail(e, 413, NULL, "the body has %s bytes; the limit is %lld (--max-payload-bytes)", cl,
                     (long long)s->o.max_payload_bytes);
        return;
    }
    if (atomic_fetch_add(&s->metrics.in_flight, 1) >= s->o.max_concurrent_requests) {
        atomic_fetch_sub(&s->metrics.in_flight, 1);
        e->code = "rate_limit_exceeded";
        ake_api_fail(e, 429, NULL, "more than %d requests in flight (--max-concurrent-requests); retry later",
                     s->o.max_concurrent_requests);
        return;
    }
    r->admitted = true;
    atomic_fetch_add(&s->admitted, 1);
}

/* ---------------------------------------------------------------- step 3: answer or submit */

static enum MHD_Result answer_info(ake_server *s, http_req *r) {
    const ake_model_config *cfg = &s->p.model->cfg;
    ake_buf b = {0};
    ake_buf_puts(&b, "{\"model_id\":");
    ake_buf_json_string(&b, s->lim.model_id, strlen(s->lim.model_id));
    ake_buf_puts(&b, ",\"model_dir\":");
    ake_buf_json_string(&b, s->o.model_dir, strlen(s->o.model_dir));
    ake_buf_printf(&b,
                   ",\"model_type\":\"embedding\",\"model_dtype\":\"%s\",\"dtype\":\"%s\",\"dim\":%d,"
                   "\"max_input_length\":%d,\"pooling\":\"%s\",\"normalize\":%s,\"vocab_size\":%d,\"device\":",
                   s->dtype, s->dtype, cfg->hidden, s->lim.max_seq_tokens, ake_pooling_name(cfg->pooling),
                   cfg->normalize ? "true" : "false", cfg->vocab_size);
    ake_buf_json_string(&b, s->devices, strlen(s->devices));
    ake_buf_printf(&b, ",\"replicas\":%d,\"version\":", ake_batcher_replicas(s->batcher));
    ake_buf_json_string(&b, s->o.version, strlen(s->o.version));
    ake_buf_printf(&b,
                   ",\"max_concurrent_requests\":%d,\"max_batch_tokens\":%d,\"max_batch_requests\":%d,"
                   "\"max_batch_size\":%d,\"max_client_batch_size\":%d,\"max_payload_bytes\":%lld,"
                   "\"max_wait_ms\":%d,\"request_timeout_ms\":%d,\"tokenization_workers\":%d,\"batch_policy\":",
                   s->o.max_concurrent_requests, s->o.max_batch_tokens, s->o.max_batch_size, s->o.max_batch_size,
                   s->o.max_client_batch_size, (long long)s->o.max_payload_bytes, s->o.max_wait_ms,
                   s->o.request_timeout_ms, s->o.http_threads);
    ake_buf_json_string(&b, s->o.batch_policy, strlen(s->o.batch_policy));
    /* resident weights of one replica, and how a quantized folder was made (its
     * quantization_config.json, validated as a JSON object by the model loader) */
    ake_buf_printf(&b, ",\"weight_bytes\":%zu,\"quantization\":%s}", ake_batcher_weight_bytes(s->batcher, 0),
                   s->p.model->quant_config ? s->p.model->quant_config : "null");
    return respond(r, 200, &b, "application/json");
}

static enum MHD_Result answer_get(ake_server *s, http_req *r) {
    ake_buf b = {0};
    switch (r->ep) {
    case AKE_EP_HEALTH:
        if (!atomic_load(&s->ready)) return respond_fail(r, 503, "the model is not ready yet");
        ake_buf_puts(&b, "{\"status\":\"ok\"}");
        return respond(r, 200, &b, "application/json");
    case AKE_EP_INFO: return answer_info(s, r);
    case AKE_EP_MODELS:
        ake_buf_puts(&b, "{\"object\":\"list\",\"data\":[{\"id\":");
        ake_buf_json_string(&b, s->lim.model_id, strlen(s->lim.model_id));
        ake_buf_printf(&b, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"akidb-embed\"}]}",
                       (long long)s->started);
        return respond(r, 200, &b, "application/json");
    case AKE_EP_METRICS: {
        ake_metrics_info info = {.model_id = s->lim.model_id, .device = s->devices, .dtype = s->dtype,
                                 .pooling = ake_pooling_name(s->p.model->cfg.pooling), .version = s->o.version,
                                 .dim = s->lim.dim, .max_input_tokens = s->lim.max_seq_tokens,
                                 .replicas = ake_batcher_replicas(s->batcher)};
        ake_metrics_write(&s->metrics, &info, ake_batcher_depth(s->batcher), &b);
        return respond(r, 200, &b, "text/plain; version=0.0.4; charset=utf-8");
    }
    default: return respond_fail(r, 500, "no handler for %s", r->url);
    }
}

static void on_job_done(ake_job *job) {
    http_req *r = job->user;
    MHD_resume_connection(r->conn); /* r belongs to MHD again from here on */
}

/* Called by a batcher thread while the connection is suspended (MHD does not touch
 * the socket then): a peek that reads end-of-file or an error means the client left. */
static bool on_job_alive(ake_job *job) {
    http_req *r = job->user;
    if (r->fd < 0) return true;
    char c;
    ssize_t n = recv(r->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
}

static enum MHD_Result start_embed(ake_server *s, http_req *r) {
    ake_api_error e = {0};
    const char *body = r->body.data ? r->body.data : "";
    int rc = r->ep == AKE_EP_EMBED      ? ake_api_parse_tei_embed(body, r->body.len, &s->lim, &r->req, &e)
             : r->ep == AKE_EP_OPENAI   ? ake_api_parse_openai(body, r->body.len, &s->lim, &r->req, &e)
                                        : ake_api_parse_tei_tokenize(body, r->body.len, &s->lim, &r->req, &e);
    ake_buf_release(&r->body);
    if (rc) return respond_error(r, &e);
    double t0 = ake_now_s();
    rc = ake_api_encode(s->p.tok, &s->lim, &r->req, r->ep != AKE_EP_TOKENIZE, &r->toks, &e);
    ake_metrics_observe(&s->metrics, AKE_H_TOKENIZE, ake_now_s() - t0);
    if (rc) return respond_error(r, &e);
    if (r->ep == AKE_EP_TOKENIZE) {
        ake_buf b = {0};
        ake_api_write_tokens(&r->toks, &b);
        return respond(r, 200, &b, "application/json");
    }
    const int32_t n = r->req.n;
    r->seqs = calloc((size_t)n, sizeof *r->seqs);
    r->vecs = malloc((size_t)n * s->lim.dim * sizeof *r->vecs);
    if (!r->seqs || !r->vecs) return respond_fail(r, 500, "out of memory");
    for (int32_t i = 0; i < n; i++) {
        r->seqs[i].ids = r->toks.ids + r->toks.off[i];
        r->seqs[i].len = r->toks.off[i + 1] - r->toks.off[i];
    }
    r->job.n = n;
    r->job.seqs = r->seqs;
    r->job.out = r->vecs;
    r->job.done = on_job_done;
    r->job.alive = on_job_alive;
    r->job.user = r;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    r->fd = ci ? ci->connect_fd : -1;
    r->state = ST_WAITING;
    MHD_suspend_connection(r->conn); /* before submit: done() may run before we return */
    ake_batcher_submit(s->batcher, &r->job);
    return MHD_YES;
}

/* ---------------------------------------------------------------- step 4: resumed */

static enum MHD_Result finish_embed(ake_server *s, http_req *r) {
    switch ((ake_job_result)atomic_load(&r->job.result)) {
    case AKE_JOB_OK: break;
    case AKE_JOB_TIMEOUT:
        atomic_fetch_add(&s->metrics.timeouts, 1);
        return respond_fail(r, 503, "the request waited more than %d ms in the queue (--request-timeout-ms)",
                            s->o.request_timeout_ms);
    case AKE_JOB_CANCELLED:
        atomic_fetch_add(&s->metrics.cancelled, 1);
        ake_log(AKE_LOG_DEBUG, "%s %s: client went away; %d inputs dropped", r->method, r->url, r->req.n);
        return MHD_NO; /* close the connection; nobody is listening */
    case AKE_JOB_FAILED: return respond_fail(r, 500, "inference failed: %s", r->job.err);
    }
    ake_buf b = {0};
    if (r->ep == AKE_EP_OPENAI) ake_api_write_openai(&r->req, &s->lim, r->vecs, r->toks.total, &b);
    else ake_api_write_tei_embed(&r->req, &s->lim, r->vecs, &b);
    return respond(r, 200, &b, "application/json");
}

/* ---------------------------------------------------------------- MHD callbacks */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    ake_server *s = cls;
    http_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->srv = s;
        r->conn = c;
        r->method = method;
        r->url = url;
        r->fd = -1;
        r->t_arrival = ake_now_s();
        *con_cls = r;
        route(s, r, c);
        return MHD_YES;
    }
    if (r->state == ST_BODY && *upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        r->body_seen += n;
        if (r->early.status) {
            /* Read and drop the body of a refused request, so that the answer is not lost to a
             * reset; give up on absurd sizes. */
            uint64_t cap = (uint64_t)s->o.max_payload_bytes * 4 + (64u << 20);
            return r->body_seen > cap ? MHD_NO : MHD_YES;
        }
        if (r->body_seen > (uint64_t)s->o.max_payload_bytes) {
            ake_api_fail(&r->early, 413, NULL, "the body is longer than %lld bytes (--max-payload-bytes)",
                         (long long)s->o.max_payload_bytes);
            ake_buf_release(&r->body);
            return MHD_YES;
        }
        ake_buf_put(&r->body, upload, n);
        if (r->body.oom) ake_api_fail(&r->early, 500, NULL, "out of memory reading the body");
        return MHD_YES;
    }
    switch (r->state) {
    case ST_BODY:
        if (r->early.status) return respond_error(r, &r->early);
        if (r->ep == AKE_EP_EMBED || r->ep == AKE_EP_OPENAI || r->ep == AKE_EP_TOKENIZE) return start_embed(s, r);
        return answer_get(s, r);
    case ST_WAITING: return finish_embed(s, r);
    case ST_ANSWERED: break;
    }
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)c;
    ake_server *s = cls;
    http_req *r = *con_cls;
    if (!r) return;
    AKE_ASSERT(r->state != ST_WAITING || atomic_load(&r->job.pending) == 0);
    if (r->admitted) {
        if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && r->state == ST_ANSWERED) atomic_fetch_add(&s->answered, 1);
        else atomic_fetch_add(&s->abandoned, 1);
        pthread_mutex_lock(&s->drain_mu);
        atomic_fetch_sub(&s->metrics.in_flight, 1);
        pthread_cond_broadcast(&s->drain_cv);
        pthread_mutex_unlock(&s->drain_mu);
    }
    ake_buf_release(&r->body);
    ake_api_request_release(&r->req);
    ake_api_tokens_release(&r->toks);
    free(r->seqs);
    free(r->vecs);
    free(r);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = 0;
    ake_log(AKE_LOG_WARN, "libmicrohttpd: %s", msg);
}

/* ---------------------------------------------------------------- life cycle */

int32_t ake_server_port(const ake_server *s) { return s->port; }

static char *keep(ake_server *s, int slot, const char *v) {
    s->str[slot] = v ? strdup(v) : NULL;
    return s->str[slot];
}

ake_status ake_server_create(const ake_server_opts *opts, ake_server **out, char *err, size_t errlen) {
    *out = NULL;
    ake_server *s = calloc(1, sizeof *s);
    if (!s) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory");
    pthread_mutex_init(&s->drain_mu, NULL);
    pthread_cond_init(&s->drain_cv, NULL);
    ake_metrics_init(&s->metrics);
    s->o = *opts;
    s->o.model_dir = keep(s, 0, opts->model_dir);
    s->o.model_id = keep(s, 1, opts->model_id);
    s->o.host = keep(s, 2, opts->host ? opts->host : "127.0.0.1");
    s->o.device = keep(s, 3, opts->device && *opts->device ? opts->device : "cpu");
    s->o.batch_policy = keep(s, 4, opts->batch_policy ? opts->batch_policy : AKE_DEFAULT_BATCH_POLICY);
    s->o.api_key = keep(s, 5, opts->api_key);
    s->o.version = keep(s, 6, opts->version ? opts->version : "unknown");
    s->o.dtype = keep(s, 7, opts->dtype);
    ake_status st = AKE_OK;
    if (!s->o.model_dir || !s->o.host || !s->o.device || !s->o.batch_policy || !s->o.version ||
        (opts->api_key && !s->o.api_key) || (opts->dtype && !s->o.dtype)) {
        st = ake_errf(err, errlen, AKE_ENOMEM, "out of memory");
        goto fail;
    }
    if (s->o.http_threads < 1 || s->o.max_concurrent_requests < 1 || s->o.max_client_batch_size < 1 ||
        s->o.max_payload_bytes < 1 || s->o.max_connections < 1 || s->o.port < 0 || s->o.port > 65535) {
        st = ake_errf(err, errlen, AKE_EINVAL, "server limits must be positive");
        goto fail;
    }
    ake_batcher_opts bo = {.devices = s->o.device, .threads = s->o.threads, .max_batch_tokens = s->o.max_batch_tokens,
                           .max_batch_size = s->o.max_batch_size, .max_wait_ms = s->o.max_wait_ms,
                           .idle_spin_us = s->o.idle_spin_us, .request_timeout_ms = s->o.request_timeout_ms,
                           .cuda = s->o.cuda};
    if ((st = ake_batch_policy_parse(s->o.batch_policy, &bo.policy, err, errlen)) != AKE_OK) goto fail;
    if (s->o.dtype && *s->o.dtype && strcmp(s->o.dtype, "default") &&
        ake_precision_parse(s->o.dtype, &bo.precision) != 0) {
        st = ake_errf(err, errlen, AKE_EINVAL, "--dtype '%s': expected fp32, fp16, bf16, int8 or fp8", s->o.dtype);
        goto fail;
    }
    if ((st = ake_pipeline_load(s->o.model_dir, &s->p, err, errlen)) != AKE_OK) goto fail;
    if (s->o.max_batch_tokens < s->p.max_seq_tokens) {
        st = ake_errf(err, errlen, AKE_EINVAL,
                      "--max-batch-tokens %d is below the model's longest input (%d tokens); raise it",
                      s->o.max_batch_tokens, s->p.max_seq_tokens);
        goto fail;
    }
    s->raw_model = *s->p.model;
    s->raw_model.cfg.normalize = false;
    s->lim = (ake_api_limits){.max_client_batch_size = s->o.max_client_batch_size,
                              .max_seq_tokens = s->p.max_seq_tokens,
                              .vocab_size = s->p.model->cfg.vocab_size,
                              .dim = s->p.model->cfg.hidden,
                              .model_id = s->o.model_id && *s->o.model_id ? s->o.model_id : s->p.model->name,
                              .model_normalizes = s->p.model->cfg.normalize};
    if ((st = ake_batcher_create(&s->raw_model, &bo, &s->metrics, &s->batcher, err, errlen)) != AKE_OK) goto fail;
    for (int32_t i = 0; i < ake_batcher_replicas(s->batcher); i++) {
        size_t n = strlen(s->devices);
        snprintf(s->devices + n, sizeof s->devices - n, "%s%s", i ? "," : "", ake_batcher_device(s->batcher, i));
    }
    switch (ake_batcher_precision(s->batcher, 0)) {
    case AKE_PREC_FP16: s->dtype = "float16"; break;
    case AKE_PREC_BF16: s->dtype = "bfloat16"; break;
    case AKE_PREC_INT8: s->dtype = "int8"; break;       /* W8A8; torch's names for the 8-bit types */
    case AKE_PREC_FP8: s->dtype = "float8_e4m3fn"; break;
    default: s->dtype = "float32"; break;
    }
    atomic_store(&s->ready, true);

    struct addrinfo hints = {.ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", s->o.port);
    int gai = getaddrinfo(s->o.host, port, &hints, &ai);
    if (gai != 0) {
        st = ake_errf(err, errlen, AKE_EINVAL, "cannot resolve --host '%s': %s", s->o.host, gai_strerror(gai));
        goto fail;
    }
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)s->o.http_threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)s->o.connection_timeout_s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->o.max_connections,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->mhd) {
        st = ake_errf(err, errlen, AKE_EIO, "cannot listen on %s:%d (address in use, or not ours?)", s->o.host,
                      s->o.port);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->o.port;
    s->started = time(NULL);
    const ake_model_config *cfg = &s->p.model->cfg;
    ake_log(AKE_LOG_INFO,
            "serving %s (%s: dim %d, %d layers, max %d tokens, %s pooling%s) on http://%s:%d; device %s %s "
            "(%d replica%s, %d engine threads each), %d http threads; batches up to %d sequences / %d tokens, "
            "wait up to %d ms, policy %s; limits: %d in flight, %d inputs per request, %lld-byte bodies, "
            "%d ms queue timeout%s",
            s->lim.model_id, s->o.model_dir, cfg->hidden, cfg->layers, s->lim.max_seq_tokens,
            ake_pooling_name(cfg->pooling), cfg->normalize ? ", normalized" : "", s->o.host, s->port, s->devices, s->dtype,
            ake_batcher_replicas(s->batcher), ake_batcher_replicas(s->batcher) == 1 ? "" : "s",
            s->o.threads > 0 ? s->o.threads : (int)sysconf(_SC_NPROCESSORS_ONLN), s->o.http_threads, s->o.max_batch_size, s->o.max_batch_tokens, s->o.max_wait_ms,
            s->o.batch_policy, s->o.max_concurrent_requests, s->o.max_client_batch_size,
            (long long)s->o.max_payload_bytes, s->o.request_timeout_ms,
            s->o.api_key && *s->o.api_key ? "; API key required" : "");
    *out = s;
    return AKE_OK;
fail:
    ake_server_free(s);
    return st;
}

void ake_server_drain(ake_server *s) {
    atomic_store(&s->draining, true);
    MHD_socket fd = MHD_quiesce_daemon(s->mhd);
    if (fd != MHD_INVALID_SOCKET) close(fd);
    pthread_mutex_lock(&s->drain_mu);
    while (atomic_load(&s->metrics.in_flight) > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->drain_cv, &s->drain_mu, &ts);
    }
    pthread_mutex_unlock(&s->drain_mu);
}

void ake_server_free(ake_server *s) {
    if (!s) return;
    if (s->mhd) MHD_stop_daemon(s->mhd);
    ake_batcher_free(s->batcher);
    if (s->mhd)
        ake_log(AKE_LOG_INFO, "stopped: %lld requests admitted, %lld answered, %lld abandoned by their clients",
                (long long)atomic_load(&s->admitted), (long long)atomic_load(&s->answered),
                (long long)atomic_load(&s->abandoned));
    ake_pipeline_release(&s->p);
    for (size_t i = 0; i < sizeof s->str / sizeof *s->str; i++) free(s->str[i]);
    pthread_mutex_destroy(&s->drain_mu);
    pthread_cond_destroy(&s->drain_cv);
    free(s);
}
