/* `akidb-embed serve`: the HTTP embedding server (src/serve/server.h).
 *
 * Every flag has an environment variable (AKE_PORT for --port, ...); a flag on the
 * command line wins over its variable, which wins over the built-in default. SIGTERM
 * and SIGINT stop accepting, let every admitted request finish, and exit 0. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "cli/cli.h"
#include "serve/batcher.h"
#include "serve/server.h"

typedef enum { F_STR, F_INT, F_I64, F_MODEL } flag_kind; /* F_MODEL: repeatable, appends to o.models */

typedef struct {
    const char *name, *env, *arg;
    flag_kind kind;
    size_t off;        /* offset in serve_cfg */
    int64_t lo, hi;    /* F_INT / F_I64 */
    const char *help;
} flag;

typedef struct {
    ake_server_opts o;
    const char *log_level;
} serve_cfg;

#define OFF(field) offsetof(serve_cfg, field)
static const flag flags[] = {
    {"model", "AKE_MODEL", "[NAME=]DIR", F_MODEL, OFF(o.models), 0, 0,
     "a model folder to serve as NAME (default: the folder's name); repeat for several"},
    {"model-id", "AKE_MODEL_ID", "NAME", F_STR, OFF(o.model_id), 0, 0,
     "name of a lone --model given without NAME="},
    {"model-repository", "AKE_MODEL_REPOSITORY", "DIR", F_STR, OFF(o.repository), 0, 0,
     "serve every model of DIR/<name>/<version>/ (each its newest version, or as DIR/<name>/akidb-model.json says)"},
    {"default-model", "AKE_DEFAULT_MODEL", "NAME", F_STR, OFF(o.default_model), 0, 0,
     "model of requests that name none"},
    {"repository-poll-s", "AKE_REPOSITORY_POLL_S", "N", F_INT, OFF(o.repository_poll_s), 0, 86400,
     "rescan the repository every N s: load new versions, unload removed ones; 0 = only the admin API changes it"},
    {"state-file", "AKE_STATE_FILE", "PATH", F_STR, OFF(o.state_file), 0, 0,
     "where the serving versions are recorded across restarts"},
    {"model-root", "AKE_MODEL_ROOT", "DIR", F_STR, OFF(o.model_root), 0, 0,
     "folders the admin API may load by path lie under DIR (or the repository)"},
    {"experiments", "AKE_EXPERIMENTS", "FILE", F_STR, OFF(o.experiments), 0, 0,
     "A/B experiments to start (one, an array, or {\"experiments\": [...]}; README \"A/B experiments\")"},
    {"experiments-state", "AKE_EXPERIMENTS_STATE", "PATH", F_STR, OFF(o.experiments_state), 0, 0,
     "where experiments are recorded across restarts"},
    {"admin-host", "AKE_ADMIN_HOST", "ADDR", F_STR, OFF(o.admin_host), 0, 0, "address of the admin listener"},
    {"admin-port", "AKE_ADMIN_PORT", "N", F_INT, OFF(o.admin_port), -1, 65535,
     "port of the admin API (load / unload / list models); -1 = none, 0 = any free port (logged)"},
    {"admin-api-key", "AKE_ADMIN_API_KEY", "KEY", F_STR, OFF(o.admin_api_key), 0, 0,
     "require `Authorization: Bearer KEY` on the admin API; empty = open"},
    {"host", "AKE_HOST", "ADDR", F_STR, OFF(o.host), 0, 0, "address to listen on (0.0.0.0: every interface)"},
    {"port", "AKE_PORT", "N", F_INT, OFF(o.port), 0, 65535, "port to listen on; 0 picks a free one (logged)"},
    {"device", "AKE_DEVICE", "LIST", F_STR, OFF(o.device), 0, 0,
     "engine devices, comma-separated, one replica each (cpu; cuda:0,cuda:1 with the CUDA backend)"},
    {"dtype", "AKE_DTYPE", "TYPE", F_STR, OFF(o.dtype), 0, 0,
     "engine precision: fp32, fp16, bf16, int8, fp8, or default (fp32 on cpu, fp16 on GPUs; a quantized "
     "folder's own 8-bit type where the device computes in it)"},
    {"threads", "AKE_THREADS", "N", F_INT, OFF(o.threads), 0, 1024, "engine threads per replica; 0 = all cores"},
    {"http-threads", "AKE_HTTP_THREADS", "N", F_INT, OFF(o.http_threads), 1, 1024,
     "HTTP worker threads (parse, tokenize, serialize)"},
    {"max-batch-tokens", "AKE_MAX_BATCH_TOKENS", "N", F_INT, OFF(o.max_batch_tokens), 1, 1 << 24,
     "most tokens in one engine call"},
    {"max-batch-size", "AKE_MAX_BATCH_SIZE", "N", F_INT, OFF(o.max_batch_size), 1, 1 << 16,
     "most sequences in one engine call"},
    {"max-wait-ms", "AKE_MAX_WAIT_MS", "N", F_INT, OFF(o.max_wait_ms), 0, 60000,
     "longest a sequence waits for its batch to fill"},
    {"idle-spin-us", "AKE_IDLE_SPIN_US", "N", F_INT, OFF(o.idle_spin_us), 0, 10000000,
     "an idle batcher thread polls its queue this long before it sleeps (costs a core; cuts a lone request's wake-up)"},
    {"batch-policy", "AKE_BATCH_POLICY", "SPEC", F_STR, OFF(o.batch_policy), 0, 0,
     "queue depth -> target batch size, DEPTH:SIZE,..."},
    {"max-concurrent-requests", "AKE_MAX_CONCURRENT_REQUESTS", "N", F_INT, OFF(o.max_concurrent_requests), 1,
     1 << 20, "admitted requests in flight; beyond: 429 with Retry-After"},
    {"max-client-batch-size", "AKE_MAX_CLIENT_BATCH_SIZE", "N", F_INT, OFF(o.max_client_batch_size), 1, 1 << 20,
     "most inputs in one request; beyond: 422 (TEI's Validation; 400 on /v1/embeddings)"},
    {"max-payload-bytes", "AKE_MAX_PAYLOAD_BYTES", "N", F_I64, OFF(o.max_payload_bytes), 1, INT64_C(1) << 34,
     "largest request body; beyond: 413"},
    {"request-timeout-ms", "AKE_REQUEST_TIMEOUT_MS", "N", F_INT, OFF(o.request_timeout_ms), 0, 1 << 30,
     "longest a request waits in the batch queue before its first input runs, else 503; 0 = none"},
    {"max-request-tokens", "AKE_MAX_REQUEST_TOKENS", "N", F_I64, OFF(o.max_request_tokens), 0, INT64_C(1) << 40,
     "most tokens in one request, else 413 at once; 0 = what each model's engines embed within "
     "--request-timeout-ms (measured at load, logged, in /info)"},
    {"api-key", "AKE_API_KEY", "KEY", F_STR, OFF(o.api_key), 0, 0,
     "require `Authorization: Bearer KEY` (not on /health); empty = open"},
    {"connection-timeout-s", "AKE_CONNECTION_TIMEOUT_S", "N", F_INT, OFF(o.connection_timeout_s), 0, 86400,
     "close idle keep-alive connections after N s; 0 = never"},
    {"max-connections", "AKE_MAX_CONNECTIONS", "N", F_INT, OFF(o.max_connections), 1, 1 << 20,
     "open connections at most"},
    {"log-level", "AKE_LOG_LEVEL", "LEVEL", F_STR, OFF(log_level), 0, 0,
     "debug (one line per request), info, warn or error"},
};
#define N_FLAGS (sizeof flags / sizeof *flags)

static serve_cfg defaults(void) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return (serve_cfg){.o = {.model_id = "",
                             .repository = "",
                             .default_model = "",
                             .state_file = "",
                             .experiments = "",
                             .experiments_state = "",
                             .model_root = "",
                             .admin_host = "127.0.0.1",
                             .admin_port = -1,
                             .admin_api_key = "",
                             .host = "127.0.0.1",
                             .port = 8080,
                             .device = "cpu",
                             .dtype = "default",
                             .threads = 0,
                             .http_threads = cores > 0 ? (int32_t)cores : 2,
                             .max_batch_tokens = 16384,
                             .max_batch_size = 64,
                             .max_wait_ms = 10,
                             .batch_policy = AKE_DEFAULT_BATCH_POLICY,
                             .max_concurrent_requests = 512,
                             .max_client_batch_size = 2048,
                             .max_payload_bytes = 2 << 20,
                             .request_timeout_ms = 30000,
                             .api_key = "",
                             .connection_timeout_s = 60,
                             .max_connections = 4096,
                             .version = AKE_VERSION},
                       .log_level = "info"};
}

/* Current value of a flag as text, for --help. */
static void show(const serve_cfg *c, const flag *f, char *buf, size_t len) {
    const char *p = (const char *)c + f->off;
    switch (f->kind) {
    case F_STR: snprintf(buf, len, "%s", *(const char *const *)p); break;
    case F_INT: snprintf(buf, len, "%d", *(const int32_t *)p); break;
    case F_I64: snprintf(buf, len, "%" PRId64, *(const int64_t *)p); break;
    case F_MODEL: snprintf(buf, len, "%s (without --model-repository)", AKE_DEFAULT_MODEL); break;
    }
}

static void usage(FILE *out) {
    serve_cfg d = defaults();
    fputs("usage: akidb-embed serve [options]\n"
          "  Serves embeddings over HTTP: POST /embed (TEI), POST /v1/embeddings (OpenAI), POST /tokenize,\n"
          "  GET /health, /info, /v1/models, /metrics; \"model\": \"NAME\" or \"NAME@VERSION\" picks the model\n"
          "  (none: the default). With --admin-port: GET /admin/models, POST /admin/models/NAME/load\n"
          "  {\"version\":\"3\"} or {\"path\":\"DIR\"}, POST /admin/models/NAME/unload, POST /admin/repository/poll;\n"
          "  A/B experiments: GET|POST /admin/experiments, GET|PATCH|DELETE /admin/experiments/NAME,\n"
          "  POST /admin/experiments/NAME/rollback|promote, GET /admin/experiments/NAME/snapshot.\n"
          "  SIGTERM/SIGINT: stop accepting, finish, exit 0.\n"
          "  Each option also reads the environment variable shown; the command line wins.\n",
          out);
    for (size_t i = 0; i < N_FLAGS; i++) {
        char opt[64], def[256];
        snprintf(opt, sizeof opt, "--%s %s", flags[i].name, flags[i].arg);
        if (flags[i].off == OFF(o.model_id)) snprintf(def, sizeof def, "the folder's name");
        else if (flags[i].off == OFF(o.state_file)) snprintf(def, sizeof def, "DIR/.akidb-state.json of --model-repository");
        else if (flags[i].off == OFF(o.experiments_state))
            snprintf(def, sizeof def, "DIR/.akidb-experiments.json of --model-repository, else memory only");
        else if (flags[i].off == OFF(o.default_model)) snprintf(def, sizeof def, "the first model that serves at start");
        else show(&d, &flags[i], def, sizeof def);
        fprintf(out, "  %-34s %-28s %s (default: %s)\n", opt, flags[i].env, flags[i].help, *def ? def : "none");
    }
}

/* Stores text `v` into the flag's field; `from` names its source for errors. */
static bool set_flag(serve_cfg *c, const flag *f, const char *v, const char *from) {
    char *p = (char *)c + f->off;
    if (f->kind == F_STR) {
        *(const char **)p = v;
        return true;
    }
    if (f->kind == F_MODEL) {
        if (c->o.n_models == AKE_SERVER_MAX_MODELS) {
            fprintf(stderr, "akidb-embed serve: at most %d %s (use --model-repository for more)\n",
                    AKE_SERVER_MAX_MODELS, from);
            return false;
        }
        c->o.models[c->o.n_models++] = v;
        return true;
    }
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < f->lo || x > f->hi) {
        fprintf(stderr, "akidb-embed serve: %s expects an integer in %lld..%lld, got '%s'\n", from,
                (long long)f->lo, (long long)f->hi, v);
        return false;
    }
    if (f->kind == F_INT) *(int32_t *)p = (int32_t)x;
    else *(int64_t *)p = (int64_t)x;
    return true;
}

int ake_cmd_serve(int argc, char **argv) {
    serve_cfg c = defaults();
    for (size_t i = 0; i < N_FLAGS; i++) {
        const char *v = getenv(flags[i].env);
        if (v && *v && !set_flag(&c, &flags[i], v, flags[i].env)) return 2;
    }
    struct option longopts[N_FLAGS + 2];
    for (size_t i = 0; i < N_FLAGS; i++) longopts[i] = (struct option){flags[i].name, required_argument, 0, (int)i};
    longopts[N_FLAGS] = (struct option){"help", no_argument, 0, 'h'};
    longopts[N_FLAGS + 1] = (struct option){0, 0, 0, 0};
    optind = 1;
    opterr = 0;
    int opt;
    bool models_on_command_line = false;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return 0;
        }
        if (opt < 0 || opt >= (int)N_FLAGS) {
            ake_cli_error("serve", "unknown option or missing value: '%s'", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
        char from[64];
        snprintf(from, sizeof from, "--%s", flags[opt].name);
        if (flags[opt].kind == F_MODEL && !models_on_command_line) { /* the command line replaces AKE_MODEL */
            c.o.n_models = 0;
            models_on_command_line = true;
        }
        if (!set_flag(&c, &flags[opt], optarg, from)) return 2;
    }
    if (optind < argc) {
        ake_cli_error("serve", "unexpected argument '%s'", argv[optind]);
        return 2;
    }
    ake_log_level level;
    if (!ake_log_parse_level(c.log_level, &level)) {
        ake_cli_error("serve", "--log-level must be debug, info, warn or error, not '%s'", c.log_level);
        return 2;
    }
    ake_log_set_level(level);
    if (c.o.n_models == 0 && !*c.o.repository) c.o.models[c.o.n_models++] = AKE_DEFAULT_MODEL;

    /* Signals go to sigwait below: block them before any thread starts (threads inherit the mask). */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[512];
    ake_server *srv = NULL;
    c.o.cuda = ake_cuda_tuning_from_env();
    if (ake_server_create(&c.o, &srv, err, sizeof err) != AKE_OK) {
        ake_cli_error("serve", "%s", err);
        return 1;
    }
    int sig = 0;
    sigwait(&stop, &sig);
    ake_log(AKE_LOG_INFO, "%s: no longer accepting; finishing the admitted requests", sig == SIGINT ? "SIGINT" : "SIGTERM");
    ake_server_drain(srv);
    ake_server_free(srv);
    return 0;
}
