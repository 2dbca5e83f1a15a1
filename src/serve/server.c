/* The server's assembly: options, the model registry, the public and admin listeners, and
 * the graceful stop. The requests themselves live in http.c and admin.c. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "serve/server_impl.h"

int32_t ake_server_port(const ake_server *s) { return s->port; }
int32_t ake_server_admin_port(const ake_server *s) { return s->admin ? s->admin_port : -1; }

/* An owned copy of v (NULL stays NULL); *ok turns false when out of memory. */
static const char *keep(ake_server *s, const char *v, bool *ok) {
    if (!v) return NULL;
    char *c = strdup(v);
    if (!c || s->n_owned == (int)(sizeof s->owned / sizeof *s->owned)) {
        free(c);
        *ok = false;
        return NULL;
    }
    return s->owned[s->n_owned++] = c;
}

/* Starts a libmicrohttpd daemon on host:port; NULL with err filled on failure. No SO_REUSEPORT
 * (libmicrohttpd's LISTENING_ADDRESS_REUSE): a second server, or the admin listener, on a port
 * already taken must fail, not split the connections with it. */
static struct MHD_Daemon *listen_on(ake_server *s, const char *host, int32_t port, unsigned flags, unsigned threads,
                                    MHD_AccessHandlerCallback handler, MHD_RequestCompletedCallback completed,
                                    const char *what, int32_t *bound, char *err, size_t errlen) {
    struct addrinfo hints = {.ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", port);
    int gai = getaddrinfo(host, port_s, &hints, &ai);
    if (gai != 0) {
        ake_errf(err, errlen, AKE_EINVAL, "cannot resolve the %s host '%s': %s", what, host, gai_strerror(gai));
        return NULL;
    }
    flags |= MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    struct MHD_Daemon *d =
        threads ? MHD_start_daemon(flags, 0, NULL, NULL, handler, s, MHD_OPTION_EXTERNAL_LOGGER, ake_http_log, NULL,
                                   MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_THREAD_POOL_SIZE, threads,
                                   MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
                                   (unsigned)s->o.connection_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
                                   (unsigned)s->o.max_connections, MHD_OPTION_END)
                : MHD_start_daemon(flags, 0, NULL, NULL, handler, s, MHD_OPTION_EXTERNAL_LOGGER, ake_http_log, NULL,
                                   MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                                   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->o.connection_timeout_s, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!d) {
        ake_errf(err, errlen, AKE_EIO, "cannot listen on %s:%d for the %s (address in use, or not ours?)", host, port,
                 what);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *bound = di ? di->port : port;
    return d;
}

/* Registers each --model: "name=DIR", or "DIR" named by model_id (a lone one) or the folder. */
static ake_status add_models(ake_server *s, char *err, size_t errlen) {
    for (int32_t i = 0; i < s->o.n_models; i++) {
        const char *spec = s->o.models[i], *eq = strchr(spec, '=');
        char name[AKE_MODEL_NAME_MAX + 1];
        const char *dir = spec;
        if (eq == spec) return ake_errf(err, errlen, AKE_EINVAL, "--model '%s': the name before '=' is empty", spec);
        if (eq && (size_t)(eq - spec) < sizeof name) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - spec), spec);
            dir = eq + 1;
        } else if (s->o.n_models == 1 && s->o.model_id && *s->o.model_id) {
            snprintf(name, sizeof name, "%s", s->o.model_id);
        } else {
            size_t n = strlen(spec);
            while (n > 1 && spec[n - 1] == '/') n--;
            const char *b = spec + n;
            while (b > spec && b[-1] != '/') b--;
            snprintf(name, sizeof name, "%.*s", (int)(spec + n - b), b);
        }
        ake_status st = ake_registry_add(s->reg, name, dir, err, errlen);
        if (st != AKE_OK) return st;
    }
    return AKE_OK;
}

ake_status ake_server_create(const ake_server_opts *opts, ake_server **out, char *err, size_t errlen) {
    *out = NULL;
    ake_server *s = calloc(1, sizeof *s);
    if (!s) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory");
    pthread_mutex_init(&s->drain_mu, NULL);
    pthread_cond_init(&s->drain_cv, NULL);
    ake_metrics_init(&s->metrics, NULL);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->failure_log.per_s = AKE_FAILURE_LOG_PER_S;
    s->id_base = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ ((uint64_t)getpid() << 48);
    s->o = *opts;
    bool ok = true;
    for (int32_t i = 0; i < opts->n_models && i < AKE_SERVER_MAX_MODELS; i++) s->o.models[i] = keep(s, opts->models[i], &ok);
    s->o.model_id = keep(s, opts->model_id, &ok);
    s->o.repository = keep(s, opts->repository && *opts->repository ? opts->repository : NULL, &ok);
    s->o.state_file = keep(s, opts->state_file && *opts->state_file ? opts->state_file : NULL, &ok);
    s->o.model_root = keep(s, opts->model_root && *opts->model_root ? opts->model_root : NULL, &ok);
    s->o.default_model = keep(s, opts->default_model && *opts->default_model ? opts->default_model : NULL, &ok);
    s->o.admin_host = keep(s, opts->admin_host && *opts->admin_host ? opts->admin_host : "127.0.0.1", &ok);
    s->o.admin_api_key = keep(s, opts->admin_api_key, &ok);
    s->o.experiments = keep(s, opts->experiments && *opts->experiments ? opts->experiments : NULL, &ok);
    s->o.experiments_state = keep(s, opts->experiments_state && *opts->experiments_state ? opts->experiments_state : NULL, &ok);
    s->o.host = keep(s, opts->host ? opts->host : "127.0.0.1", &ok);
    s->o.device = keep(s, opts->device && *opts->device ? opts->device : "cpu", &ok);
    s->o.batch_policy = keep(s, opts->batch_policy ? opts->batch_policy : AKE_DEFAULT_BATCH_POLICY, &ok);
    s->o.api_key = keep(s, opts->api_key, &ok);
    s->o.version = keep(s, opts->version ? opts->version : "unknown", &ok);
    s->o.dtype = keep(s, opts->dtype, &ok);
    ake_status st = AKE_OK;
    if (!ok) {
        st = ake_errf(err, errlen, AKE_ENOMEM, "out of memory");
        goto fail;
    }
    if (opts->n_models > AKE_SERVER_MAX_MODELS) {
        st = ake_errf(err, errlen, AKE_EINVAL, "at most %d --model options (use a --model-repository for more)",
                      AKE_SERVER_MAX_MODELS);
        goto fail;
    }
    if (s->o.repository_poll_s > 0 && !s->o.repository) {
        st = ake_errf(err, errlen, AKE_EINVAL, "--repository-poll-s needs --model-repository");
        goto fail;
    }
    if (s->o.model_id && *s->o.model_id && (s->o.n_models != 1 || strchr(s->o.models[0], '='))) {
        st = ake_errf(err, errlen, AKE_EINVAL, "--model-id names a lone --model given without NAME=; use --model NAME=DIR");
        goto fail;
    }
    if (s->o.http_threads < 1 || s->o.max_concurrent_requests < 1 || s->o.max_client_batch_size < 1 ||
        s->o.max_payload_bytes < 1 || s->o.max_connections < 1 || s->o.port < 0 || s->o.port > 65535 ||
        s->o.admin_port > 65535) {
        st = ake_errf(err, errlen, AKE_EINVAL, "server limits must be positive");
        goto fail;
    }
    ake_registry_opts ro = {.repository = s->o.repository, .state_file = s->o.state_file,
                            .model_root = s->o.model_root, .default_model = s->o.default_model,
                            .poll_s = s->o.repository_poll_s, .metrics = &s->metrics,
                            .max_request_tokens = s->o.max_request_tokens,
                            .engine = {.devices = s->o.device, .threads = s->o.threads,
                                       .max_batch_tokens = s->o.max_batch_tokens,
                                       .max_batch_size = s->o.max_batch_size, .max_wait_ms = s->o.max_wait_ms,
                                       .idle_spin_us = s->o.idle_spin_us,
                                       .request_timeout_ms = s->o.request_timeout_ms, .cuda = s->o.cuda}};
    if ((st = ake_batch_policy_parse(s->o.batch_policy, &ro.engine.policy, err, errlen)) != AKE_OK) goto fail;
    if (s->o.dtype && *s->o.dtype && strcmp(s->o.dtype, "default") &&
        ake_precision_parse(s->o.dtype, &ro.engine.precision) != 0) {
        st = ake_errf(err, errlen, AKE_EINVAL, "--dtype '%s': expected fp32, fp16, bf16, int8 or fp8", s->o.dtype);
        goto fail;
    }
    if ((st = ake_registry_create(&ro, &s->reg, err, errlen)) != AKE_OK) goto fail;
    if ((st = add_models(s, err, errlen)) != AKE_OK) goto fail;
    if ((st = ake_registry_start(s->reg, err, errlen)) != AKE_OK) goto fail;
    char exp_state[4096] = "";
    if (s->o.experiments_state) snprintf(exp_state, sizeof exp_state, "%s", s->o.experiments_state);
    else if (s->o.repository) snprintf(exp_state, sizeof exp_state, "%s/.akidb-experiments.json", s->o.repository);
    if ((st = ake_router_create(s->reg, exp_state, &s->router, err, errlen)) != AKE_OK) goto fail;
    if ((st = ake_router_start(s->router, s->o.experiments, err, errlen)) != AKE_OK) goto fail;
    if (!exp_state[0] && s->o.experiments)
        ake_log(AKE_LOG_WARN, "experiments are kept in memory only: give --experiments-state (or --model-repository) "
                              "for them to survive a restart");
    s->lim = (ake_api_limits){.max_client_batch_size = s->o.max_client_batch_size};

    s->mhd = listen_on(s, s->o.host, s->o.port, MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME,
                       (unsigned)s->o.http_threads, ake_http_on_request, ake_http_on_completed, "API", &s->port, err,
                       errlen);
    if (!s->mhd) {
        st = AKE_EIO;
        goto fail;
    }
    /* Admin calls block for a whole model load: a thread per connection keeps listings
     * and other calls answering meanwhile. */
    if (s->o.admin_port >= 0 &&
        !(s->admin = listen_on(s, s->o.admin_host, s->o.admin_port,
                               MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0,
                               ake_admin_on_request, ake_admin_on_completed, "admin API", &s->admin_port, err,
                               errlen))) {
        st = AKE_EIO;
        goto fail;
    }
    s->started = time(NULL);
    if (s->admin && !(s->o.admin_api_key && *s->o.admin_api_key) && strcmp(s->o.admin_host, "127.0.0.1") &&
        strcmp(s->o.admin_host, "localhost") && strcmp(s->o.admin_host, "::1"))
        ake_log(AKE_LOG_WARN, "the admin API listens on %s without --admin-api-key: anyone who reaches it can load "
                              "and unload models", s->o.admin_host);
    char models[AKE_MODEL_NAME_MAX], admin[256] = "";
    ake_registry_default_name(s->reg, models, sizeof models);
    if (s->admin)
        snprintf(admin, sizeof admin, "; admin API on http://%s:%d%s", s->o.admin_host, s->admin_port,
                 s->o.admin_api_key && *s->o.admin_api_key ? " (key required)" : "");
    ake_log(AKE_LOG_INFO,
            "serving the models above on http://%s:%d; default model %s%s; %d http threads; batches up to %d sequences / %d tokens, "
            "wait up to %d ms, policy %s; limits: %d in flight, %d inputs per request, %lld-byte bodies, "
            "%d ms queue timeout%s; CPU engine threads wait %s (OMP_WAIT_POLICY)",
            s->o.host, s->port, models, admin, s->o.http_threads, s->o.max_batch_size,
            s->o.max_batch_tokens, s->o.max_wait_ms, s->o.batch_policy, s->o.max_concurrent_requests,
            s->o.max_client_batch_size, (long long)s->o.max_payload_bytes, s->o.request_timeout_ms,
            s->o.api_key && *s->o.api_key ? "; API key required" : "",
            getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "as libgomp's default (spin, then sleep)");
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
    /* wait for every request whose body has arrived; one still arriving (a slow or stalled client)
     * is cut when the daemon stops: its work never began */
    while (atomic_load(&s->metrics.in_flight) > atomic_load(&s->receiving)) {
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
    if (s->admin) MHD_stop_daemon(s->admin);
    if (s->mhd) MHD_stop_daemon(s->mhd);
    ake_router_free(s->router); /* waits for shadow jobs, which hold versions */
    ake_registry_free(s->reg);
    ake_log_limit_flush(&s->failure_log, "failed-request");
    if (s->mhd)
        ake_log(AKE_LOG_INFO, "stopped: %lld requests admitted, %lld answered, %lld abandoned by their clients",
                (long long)atomic_load(&s->admitted), (long long)atomic_load(&s->answered),
                (long long)atomic_load(&s->abandoned));
    for (int i = 0; i < s->n_owned; i++) free(s->owned[i]);
    pthread_mutex_destroy(&s->drain_mu);
    pthread_cond_destroy(&s->drain_cv);
    free(s);
}
