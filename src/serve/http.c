/* The public API's listener: libmicrohttpd plumbing, routing, admission, and the life
 * of one request. (server.c assembles the server; admin.c is the admin listener.)
 *
 * libmicrohttpd runs `http_threads` worker threads, each with its own epoll loop
 * (MHD_USE_EPOLL_INTERNAL_THREAD + MHD_OPTION_THREAD_POOL_SIZE). The access handler is
 * called several times per request, with our http_req in *con_cls:
 *   1. headers read      → route, check the API key and admission (in-flight limit,
 *                          draining, Content-Length); a refusal is remembered in r->early
 *   2. body chunks       → appended up to --max-payload-bytes, discarded beyond (so the
 *                          413 can still be sent without resetting the connection)
 *   3. body complete     → answer GETs and errors at once; for embeddings parse, pin the
 *                          model version the request names (registry.h; it answers the
 *                          whole request, whatever is swapped meanwhile), validate and
 *                          tokenize on this worker, suspend the connection and submit the
 *                          job to that version's batcher; the worker goes back to its loop
 *   4. resumed           → the batcher's done() callback resumed us: normalize, serialize
 *                          (JSON or base64) and queue the response
 * The completed-callback frees the request and gives its version back, whatever happened
 * (client gone included).
 * A suspended request is never freed under the batcher: MHD reports completion only
 * after resume, and the batcher resumes only once it is done with the job. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "base/log.h"
#include "serve/assets.h"
#include "serve/batcher.h"
#include "serve/server_impl.h"

typedef enum { ST_BODY = 0, ST_WAITING, ST_ANSWERED } req_state;

typedef struct {
    ake_server *srv;
    struct MHD_Connection *conn;
    const char *method, *url; /* MHD's, valid for the whole request */
    ake_endpoint ep;
    bool openai;              /* errors in OpenAI's shape */
    bool admitted;            /* counted in metrics.in_flight */
    bool receiving;           /* admitted, its body not yet complete: counted in srv->receiving */
    req_state state;
    ake_api_error early;      /* refusal decided before the body; status 0 if none */
    ake_buf body;
    uint64_t body_seen;
    double t_arrival;
    int fd;                   /* the connection's socket, peeked while suspended */
    ake_model_version *mv;    /* the version answering this request (a reference), or NULL */
    ake_route route;          /* its A/B experiment arm, when one answers it */
    char id[AKE_REQUEST_ID_MAX]; /* X-Request-Id: the client's, or one we make; in every log line */
    ake_api_request req;
    ake_api_tokens toks;
    ake_job job;
    ake_seq *seqs;            /* [n] */
    float *vecs;              /* [n, dim] */
} http_req;

/* ---------------------------------------------------------------- responses */

static bool is_post_endpoint(ake_endpoint ep) {
    return ep == AKE_EP_EMBED || ep == AKE_EP_OPENAI || ep == AKE_EP_TOKENIZE || ep == AKE_EP_SIMILARITY ||
           ep == AKE_EP_ROOT || ep == AKE_EP_EMBED_ALL || ep == AKE_EP_DECODE;
}

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
                                is_post_endpoint(r->ep) ? "POST" : "GET, HEAD");
    if (atomic_load(&s->draining)) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (r->mv) MHD_add_response_header(resp, "X-Model-Version", r->mv->version);
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->state = ST_ANSWERED;
    double ms = (ake_now_s() - r->t_arrival) * 1e3;
    if (r->route.exp)
        ake_router_record(s->router, &r->route, r->ep != AKE_EP_TOKENIZE && r->ep != AKE_EP_DECODE, status, ms * 1e-3);
    ake_metrics *m = r->mv ? &r->mv->metrics : &s->metrics; /* a version's count in the server's too */
    ake_metrics_request(m, r->ep, status);
    ake_metrics_observe(m, AKE_H_TOTAL, ms * 1e-3);
    if (ake_log_enabled(AKE_LOG_DEBUG))
        ake_log(AKE_LOG_DEBUG, "[%s] %s %s -> %d, %s@%s, %d inputs, %lld tokens, %.2f ms", r->id, r->method, r->url, status,
                r->mv ? r->mv->name : "-", r->mv ? r->mv->version : "-", r->req.n, (long long)r->toks.total, ms);
    return ok;
}

static enum MHD_Result respond_error(http_req *r, const ake_api_error *e) {
    ake_buf b = {0};
    ake_api_write_error(e, r->openai, &b);
    const int status = ake_api_http_status(e, r->openai);
    if (ake_log_limit_pass(&r->srv->failure_log, "failed-request"))
        ake_log(status >= 500 ? AKE_LOG_ERROR : AKE_LOG_WARN, "[%s] %s %s -> %d: %s", r->id, r->method, r->url, status,
                e->msg);
    return respond(r, status, &b, "application/json");
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

/* The client's X-Request-Id when it is 1..AKE_REQUEST_ID_MAX-1 printable ASCII characters
 * (anything else could forge log lines or headers), else one made here: splitmix64 of the
 * server's random start plus a counter, a bijection, so ids do not repeat within a run. */
static void request_id(ake_server *s, struct MHD_Connection *c, char *out) {
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
    size_t n = v ? strlen(v) : 0;
    bool ok = n > 0 && n < AKE_REQUEST_ID_MAX;
    for (size_t i = 0; ok && i < n; i++) ok = v[i] > 0x20 && v[i] < 0x7f;
    if (ok) {
        memcpy(out, v, n + 1);
        return;
    }
    uint64_t z = s->id_base + atomic_fetch_add(&s->id_next, 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    snprintf(out, AKE_REQUEST_ID_MAX, "%016llx", (unsigned long long)(z ^ (z >> 31)));
}

bool ake_same_secret(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < m; i++) diff |= (unsigned char)(a[i % (n ? n : 1)] ^ b[i]);
    return diff == 0 && n == m;
}

bool ake_http_authorized(struct MHD_Connection *c, const char *key) {
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    return auth && !strncasecmp(auth, "Bearer ", 7) && ake_same_secret(auth + 7, key);
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
        {"/metrics", AKE_EP_METRICS, false},    {"/similarity", AKE_EP_SIMILARITY, true},
        {"/", AKE_EP_ROOT, true},               {"/embed_all", AKE_EP_EMBED_ALL, true},
        {"/decode", AKE_EP_DECODE, true},       {"/openapi.json", AKE_EP_OPENAPI, false},
        {"/docs", AKE_EP_DOCS, false},
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
    if (s->o.api_key && *s->o.api_key && r->ep != AKE_EP_HEALTH && r->ep != AKE_EP_OPENAPI && r->ep != AKE_EP_DOCS) {
        const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (!ake_http_authorized(c, s->o.api_key)) {
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
    if (!ake_registry_started(s->reg)) {
        ake_api_fail(e, 503, NULL, "the models are not ready yet");
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
    r->receiving = true;
    atomic_fetch_add(&s->receiving, 1);
    atomic_fetch_add(&s->admitted, 1);
}

/* The body is complete (or the request ends before it is): a drain waits for this request. */
static void body_done(http_req *r) {
    if (!r->receiving) return;
    r->receiving = false;
    atomic_fetch_sub(&r->srv->receiving, 1);
}

/* ---------------------------------------------------------------- step 3: answer or submit */

/* TEI's /info fields for the default model (its serving version), the server's limits, and
 * "models": every name's serving version. */
static enum MHD_Result answer_info(ake_server *s, http_req *r) {
    ake_buf b = {0};
    ake_api_error e = {0};
    ake_model_version *v = NULL;
    ake_buf_puts(&b, "{");
    if (ake_registry_acquire(s->reg, NULL, &v, &e) == 0) {
        ake_registry_write_version(v, false, &b);
        ake_registry_release(s->reg, v);
        ake_buf_puts(&b, ",");
    }
    ake_buf_puts(&b, "\"version\":");
    ake_buf_json_string(&b, s->o.version, strlen(s->o.version));
    ake_buf_printf(&b,
                   ",\"sha\":null,\"docker_label\":null,\"auto_truncate\":false"
                   ",\"max_concurrent_requests\":%d,\"max_batch_tokens\":%d,\"max_batch_requests\":%d,"
                   "\"max_batch_size\":%d,\"max_client_batch_size\":%d,\"max_payload_bytes\":%lld,"
                   "\"max_wait_ms\":%d,\"request_timeout_ms\":%d,\"tokenization_workers\":%d,\"batch_policy\":",
                   s->o.max_concurrent_requests, s->o.max_batch_tokens, s->o.max_batch_size, s->o.max_batch_size,
                   s->o.max_client_batch_size, (long long)s->o.max_payload_bytes, s->o.max_wait_ms,
                   s->o.request_timeout_ms, s->o.http_threads);
    ake_buf_json_string(&b, s->o.batch_policy, strlen(s->o.batch_policy));
    ake_buf_puts(&b, ",\"models\":");
    ake_registry_write_info(s->reg, false, &b);
    ake_buf_puts(&b, "}");
    return respond(r, 200, &b, "application/json");
}

static enum MHD_Result answer_get(ake_server *s, http_req *r) {
    ake_buf b = {0};
    switch (r->ep) {
    case AKE_EP_HEALTH:
        if (!ake_registry_started(s->reg)) return respond_fail(r, 503, "the models are not ready yet");
        ake_buf_puts(&b, "{\"status\":\"ok\"}");
        return respond(r, 200, &b, "application/json");
    case AKE_EP_INFO: return answer_info(s, r);
    case AKE_EP_MODELS:
        ake_registry_write_models(s->reg, s->started, &b);
        return respond(r, 200, &b, "application/json");
    case AKE_EP_METRICS:
        ake_registry_write_metrics(s->reg, &s->metrics, s->o.version, &b);
        ake_router_write_metrics(s->router, &b);
        return respond(r, 200, &b, "text/plain; version=0.0.4; charset=utf-8");
    case AKE_EP_OPENAPI:
        ake_buf_put(&b, ake_asset_openapi_json, (size_t)(ake_asset_openapi_json_end - ake_asset_openapi_json));
        return respond(r, 200, &b, "application/json");
    case AKE_EP_DOCS:
        ake_buf_put(&b, ake_asset_docs_html, (size_t)(ake_asset_docs_html_end - ake_asset_docs_html));
        return respond(r, 200, &b, "text/html; charset=utf-8");
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
    int rc = r->ep == AKE_EP_EMBED        ? ake_api_parse_tei_embed(body, r->body.len, &s->lim, &r->req, &e)
             : r->ep == AKE_EP_OPENAI     ? ake_api_parse_openai(body, r->body.len, &s->lim, &r->req, &e)
             : r->ep == AKE_EP_SIMILARITY ? ake_api_parse_tei_similarity(body, r->body.len, &s->lim, &r->req, &e)
             : r->ep == AKE_EP_ROOT       ? ake_api_parse_tei_root(body, r->body.len, &s->lim, &r->req, &e)
             : r->ep == AKE_EP_EMBED_ALL  ? ake_api_parse_tei_embed_all(body, r->body.len, &s->lim, &r->req, &e)
             : r->ep == AKE_EP_DECODE     ? ake_api_parse_tei_decode(body, r->body.len, &s->lim, &r->req, &e)
                                          : ake_api_parse_tei_tokenize(body, r->body.len, &s->lim, &r->req, &e);
    ake_buf_release(&r->body);
    if (rc) return respond_error(r, &e);
    /* the version pinned here answers the whole request; on_completed gives it back. An experiment
     * on the model picks the arm: by the OpenAI `user`, else X-User, else at random. */
    const char *user = r->req.user ? r->req.user : MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-User");
    if ((rc = ake_router_acquire(s->router, r->req.model, user, &r->mv, &r->route, &e))) return respond_error(r, &e);
    if ((rc = ake_api_bind_model(&r->req, &r->mv->facts, &e))) return respond_error(r, &e);
    if (!r->req.model) r->req.model = r->mv->name; /* the OpenAI body names the model that answered */
    if (r->ep == AKE_EP_TOKENIZE || r->ep == AKE_EP_DECODE) { /* answered here: no engine */
        ake_buf b = {0};
        const double t0 = ake_now_s();
        rc = r->ep == AKE_EP_TOKENIZE ? ake_api_write_tokenize(r->mv->p.tok, &r->req, &b, &e)
                                      : ake_api_write_decode(r->mv->p.tok, &r->req, &b, &e);
        ake_metrics_observe(&r->mv->metrics, AKE_H_TOKENIZE, ake_now_s() - t0);
        if (rc) {
            ake_buf_release(&b);
            return respond_error(r, &e);
        }
        return respond(r, 200, &b, "application/json");
    }
    double t0 = ake_now_s();
    rc = ake_api_encode(r->mv->p.tok, &r->mv->facts, &r->req, true, &r->toks, &e);
    ake_metrics_observe(&r->mv->metrics, AKE_H_TOKENIZE, ake_now_s() - t0);
    if (rc) return respond_error(r, &e);
    const int32_t n = r->req.n;
    /* token states: one row per token, at most one engine batch of them (the answer's JSON is
     * about 13 bytes a number: --max-batch-tokens bounds it) */
    const bool states = r->req.token_states;
    if (states && r->toks.total > s->o.max_batch_tokens) {
        e = (ake_api_error){0};
        ake_api_fail(&e, 413, NULL, "/embed_all returns a vector per token: the request has %lld tokens; the limit is "
                     "%d (--max-batch-tokens)", (long long)r->toks.total, s->o.max_batch_tokens);
        return respond_error(r, &e);
    }
    const size_t rows = states ? (size_t)r->toks.total : (size_t)n;
    r->seqs = calloc((size_t)n, sizeof *r->seqs);
    r->vecs = malloc(rows * r->mv->facts.dim * sizeof *r->vecs);
    if (!r->seqs || !r->vecs) return respond_fail(r, 500, "out of memory");
    for (int32_t i = 0; i < n; i++) {
        r->seqs[i].ids = r->toks.ids + r->toks.off[i];
        r->seqs[i].len = r->toks.off[i + 1] - r->toks.off[i];
        r->seqs[i].row = r->toks.off[i];
    }
    r->job.token_states = states;
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
    ake_batcher_submit(r->mv->batcher, &r->job);
    return MHD_YES;
}

/* ---------------------------------------------------------------- step 4: resumed */

static enum MHD_Result finish_embed(ake_server *s, http_req *r) {
    switch ((ake_job_result)atomic_load(&r->job.result)) {
    case AKE_JOB_OK: break;
    case AKE_JOB_TIMEOUT:
        ake_metrics_count(&r->mv->metrics, AKE_C_TIMEOUTS, 1);
        return respond_fail(r, 503, "the request waited more than %d ms in the queue (--request-timeout-ms)",
                            s->o.request_timeout_ms);
    case AKE_JOB_CANCELLED:
        ake_metrics_count(&r->mv->metrics, AKE_C_CANCELLED, 1);
        ake_log(AKE_LOG_DEBUG, "[%s] %s %s: client went away; %d inputs dropped", r->id, r->method, r->url, r->req.n);
        return MHD_NO; /* close the connection; nobody is listening */
    case AKE_JOB_FAILED: {
        ake_api_error e = {.status = 424, .kind = AKE_API_ERR_BACKEND}; /* TEI's Backend; OpenAI: 500 */
        snprintf(e.msg, sizeof e.msg, "inference failed: %s", r->job.err);
        return respond_error(r, &e);
    }
    }
    if (r->route.shadow && !r->req.token_states) /* before the writers normalize the vectors in place */
        ake_router_shadow(s->router, &r->route, &r->req, r->vecs, r->mv->facts.dim);
    ake_buf b = {0};
    if (r->ep == AKE_EP_OPENAI) ake_api_write_openai(&r->req, &r->mv->facts, r->vecs, r->toks.total, &b);
    else if (r->req.token_states) ake_api_write_tei_embed_all(&r->toks, &r->mv->facts, r->vecs, &b);
    else if (r->req.similarity) ake_api_write_tei_similarity(&r->req, &r->mv->facts, r->vecs, &b);
    else ake_api_write_tei_embed(&r->req, &r->mv->facts, r->vecs, &b);
    return respond(r, 200, &b, "application/json");
}

/* ---------------------------------------------------------------- MHD callbacks */

enum MHD_Result ake_http_on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
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
        request_id(s, c, r->id);
        *con_cls = r;
        route(s, r, c);
        /* a declared body over the limit is refused before it is sent (no 100 Continue either);
         * the connection closes after the answer */
        if (r->early.status == 413) return respond_error(r, &r->early);
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
        body_done(r);
        if (r->early.status) return respond_error(r, &r->early);
        if (is_post_endpoint(r->ep)) return start_embed(s, r);
        return answer_get(s, r);
    case ST_WAITING: return finish_embed(s, r);
    case ST_ANSWERED: break;
    }
    return MHD_YES;
}

void ake_http_on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)c;
    ake_server *s = cls;
    http_req *r = *con_cls;
    if (!r) return;
    AKE_ASSERT(r->state != ST_WAITING || atomic_load(&r->job.pending) == 0);
    body_done(r);
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
    ake_router_done(s->router, &r->route);
    ake_registry_release(s->reg, r->mv);
    free(r->seqs);
    free(r->vecs);
    free(r);
    *con_cls = NULL;
}

void ake_http_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    /* libmicrohttpd writes a line per broken connection: a flood of them is an overload too */
    static ake_log_limit limit = {.per_s = AKE_FAILURE_LOG_PER_S};
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = 0;
    if (ake_log_limit_pass(&limit, "libmicrohttpd")) ake_log(AKE_LOG_WARN, "libmicrohttpd: %s", msg);
}
