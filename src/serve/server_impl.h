/* What server.c, http.c and admin.c share: the server itself and the MHD callbacks of its
 * two listeners. */
#ifndef AKE_SERVE_SERVER_IMPL_H
#define AKE_SERVE_SERVER_IMPL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <time.h>

#include <microhttpd.h>

#include "serve/api.h"
#include "serve/metrics.h"
#include "serve/registry.h"
#include "serve/router.h"
#include "serve/server.h"

#define AKE_REQUEST_ID_MAX 129 /* X-Request-Id: at most 128 characters, and the NUL */

struct ake_server {
    ake_server_opts o;         /* strings are owned copies (freed through `owned`) */
    char *owned[AKE_SERVER_MAX_MODELS + 16];
    int n_owned;
    ake_registry *reg;
    ake_router *router;        /* A/B experiments over reg's versions */
    ake_api_limits lim;        /* server-wide request limits */
    struct MHD_Daemon *mhd, *admin;
    ake_metrics metrics;
    int32_t port, admin_port;
    time_t started;
    _Atomic bool draining;
    _Atomic int64_t admitted, answered, abandoned;
    _Atomic int64_t receiving;  /* admitted requests whose body is still arriving (a drain does not wait for them) */
    uint64_t id_base;          /* random start of the request ids made here (X-Request-Id) */
    _Atomic uint64_t id_next;
    ake_log_limit failure_log;  /* failed-request lines: at most AKE_FAILURE_LOG_PER_S a second */
    pthread_mutex_t drain_mu;
    pthread_cond_t drain_cv;   /* signalled when an admitted request completes */
};

#define AKE_FAILURE_LOG_PER_S 20

/* http.c: the public API's listener */
enum MHD_Result ake_http_on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                    const char *version, const char *upload, size_t *upload_size, void **con_cls);
void ake_http_on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe);
/* admin.c: the admin listener */
enum MHD_Result ake_admin_on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                     const char *version, const char *upload, size_t *upload_size, void **con_cls);
void ake_admin_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                            enum MHD_RequestTerminationCode toe);
/* libmicrohttpd's messages into our log */
void ake_http_log(void *cls, const char *fmt, va_list ap);
/* Constant-time comparison of a secret, so that it cannot be guessed byte by byte from timing. */
bool ake_same_secret(const char *a, const char *b);
/* Does the request carry `Authorization: Bearer <key>`? */
bool ake_http_authorized(struct MHD_Connection *c, const char *key);

#endif
