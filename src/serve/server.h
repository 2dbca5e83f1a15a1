/* The HTTP embedding server: TEI- and OpenAI-compatible endpoints over libmicrohttpd,
 * in front of the model registry (registry.h) and its dynamic batchers.
 *
 *   POST /embed  POST /v1/embeddings  POST /tokenize
 *   GET  /health /info /v1/models /metrics
 * and, on its own listener when admin_port >= 0 (admin.c):
 *   GET  /admin/models   POST /admin/models/{name}/load   POST /admin/models/{name}/unload
 *   POST /admin/repository/poll
 *
 * Threads: libmicrohttpd's pool of `http_threads` epoll workers parse, tokenize and
 * serialize; each engine replica has one batcher thread (batcher.h). A request waiting
 * for its vectors is suspended (MHD_suspend_connection) and holds no thread; the
 * batcher thread that embeds its last sequence resumes it. */
#ifndef AKE_SERVE_SERVER_H
#define AKE_SERVE_SERVER_H

#include <stdint.h>

#include "base/status.h"
#include "engine/engine.h"

#define AKE_SERVER_MAX_MODELS 32

typedef struct {
    const char *models[AKE_SERVER_MAX_MODELS]; /* "name=DIR" or "DIR" (named after the folder) */
    int32_t n_models;
    const char *model_id;           /* the name of a lone unnamed --model; NULL: the folder's name */
    const char *repository;         /* model repository (registry.h); NULL: none */
    const char *state_file;         /* NULL: <repository>/.akidb-state.json */
    const char *model_root;         /* admin loads of folder paths must lie under it (or the repository) */
    const char *default_model;      /* NULL: the only model, else the first */
    int32_t repository_poll_s;      /* > 0: rescan the repository this often */
    const char *admin_host;         /* NULL: 127.0.0.1 */
    int32_t admin_port;             /* < 0: no admin listener; 0: any free port (ake_server_admin_port) */
    const char *admin_api_key;      /* NULL or "": none */
    const char *experiments;        /* A/B experiments to start (router.h), NULL: none */
    const char *experiments_state;  /* NULL: <repository>/.akidb-experiments.json, or in memory without one */
    const char *host;               /* address to bind, numeric or a name ("0.0.0.0", "::1", "localhost") */
    int32_t port;                   /* 0: any free port (see ake_server_port) */
    const char *device;             /* comma-separated, one engine replica each */
    int32_t threads;                /* engine threads per replica; 0: all cores */
    /* device, threads, dtype and the batch limits are every model's unless its
       akidb-model.json says otherwise */
    const char *dtype;              /* fp32 | fp16 | bf16 | int8 | fp8; NULL, "" or "default": the
                                       backend's own (a quantized folder's own 8-bit type where the
                                       device computes in it) */
    int32_t http_threads;           /* libmicrohttpd worker threads */
    int32_t max_batch_tokens;
    int32_t max_batch_size;
    int32_t max_wait_ms;
    int32_t idle_spin_us;           /* an idle replica thread polls this long before it sleeps */
    const char *batch_policy;       /* "DEPTH:SIZE,..."; NULL: the default */
    int32_t max_concurrent_requests;
    int32_t max_client_batch_size;
    int64_t max_payload_bytes;
    int32_t request_timeout_ms;     /* longest wait in a queue before 503; 0: none */
    int64_t max_request_tokens;     /* most tokens per request (413 beyond); 0: each model's measured
                                       speed x request_timeout_ms */
    const char *api_key;            /* NULL or "": no authentication */
    int32_t connection_timeout_s;   /* idle keep-alive connections are closed after this */
    int32_t max_connections;
    const char *version;            /* shown by /info */
    ake_cuda_tuning cuda;           /* CUDA engine knobs (engine.h); zero: the defaults */
} ake_server_opts;

typedef struct ake_server ake_server;

/* Loads the models, creates and warms up their engines and starts listening. Every string
 * in opts is copied. Free with ake_server_free. */
ake_status ake_server_create(const ake_server_opts *opts, ake_server **out, char *err, size_t errlen);

/* The ports actually bound (admin: -1 without an admin listener). */
int32_t ake_server_port(const ake_server *s);
int32_t ake_server_admin_port(const ake_server *s);

/* Stops accepting (closes the listening socket, answers new requests on open
 * connections with 503), then waits until every admitted request has been answered. */
void ake_server_drain(ake_server *s);

/* Stops the HTTP threads and the batcher and frees everything. Call ake_server_drain
 * first for a graceful stop. Logs how many requests were admitted and answered. */
void ake_server_free(ake_server *s);

#endif
