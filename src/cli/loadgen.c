/* `akidb-embed loadgen`: drives an embedding server open-loop at a fixed arrival rate
 * and reports the achieved QPS and latency percentiles.
 *
 * Open loop: request i is due at start + i/rate whatever happened to the earlier ones,
 * and its latency runs from that due time (not from when it could be sent) to the end
 * of its response, so a server that falls behind shows it in the percentiles instead
 * of slowing the generator down (no coordinated omission). HTTP is libcurl's multi
 * interface on one thread, with keep-alive connections from its pool. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "cli/cli.h"
#include "serve/jsonw.h"

static const char loadgen_help[] =
    "usage: akidb-embed loadgen --url URL --rate R --duration S [options]\n"
    "  Sends requests at a fixed rate (open loop) and prints achieved QPS, P50/P95/P99/max latency and errors.\n"
    "  --url URL                server base URL or endpoint (default http://127.0.0.1:8080; a bare base URL\n"
    "                           gets /embed or /v1/embeddings by --api)\n"
    "  --rate R                 requests per second (default 50)\n"
    "  --duration S             measured seconds (default 10)\n"
    "  --warmup S               seconds sent first at the same rate and not measured (default 1)\n"
    "  --inputs-per-request K   texts per request (default 1)\n"
    "  --text-len L             words per text, about L+2 tokens (default 8)\n"
    "  --api tei|openai         request shape (default tei)\n"
    "  --model NAME             \"model\" of OpenAI requests (default all-MiniLM-L6-v2)\n"
    "  --api-key KEY            send `Authorization: Bearer KEY`\n"
    "  --timeout-ms N           give up on a request after N ms (default 30000)\n"
    "  --max-connections N      open connections at most (default 256)\n"
    "  --seed N                 seed of the random texts (default 1)\n"
    "  --json FILE              also write the result as JSON\n";

static const char *const words[] = {
    "the",    "quick",   "brown",   "fox",      "jumps",   "over",     "lazy",    "dog",     "vector",  "search",
    "engine", "returns", "similar", "document", "query",   "embedding", "model",  "server",  "batch",   "latency",
    "fast",   "small",   "large",   "language", "sentence", "meaning", "close",   "far",     "distance", "space",
    "data",   "store",   "index",   "memory",   "compute", "request",  "answer",  "people",  "city",    "river",
    "music",  "coffee",  "morning", "evening",  "weather", "forecast", "travel",  "ticket",  "price",   "market",
    "garden", "flower",  "winter",  "summer",   "mountain", "ocean",   "history", "science", "friend",  "story"};

typedef struct {
    double due;       /* scheduled start, seconds since the run started */
    bool measured;
    struct curl_slist *headers;
} slot;

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static size_t discard(char *p, size_t size, size_t n, void *u) {
    (void)p;
    (void)u;
    return size * n;
}

static uint64_t rng(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *v, int64_t n, double p) {
    if (n == 0) return NAN;
    int64_t i = (int64_t)ceil(p / 100.0 * (double)n) - 1;
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

/* Body of one request: K random texts of L words. */
static char *make_body(bool openai, const char *model, int32_t k, int32_t l, uint64_t *seed) {
    ake_buf b = {0};
    ake_buf_puts(&b, openai ? "{\"model\":" : "{\"inputs\":[");
    if (openai) {
        ake_buf_json_string(&b, model, strlen(model));
        ake_buf_puts(&b, ",\"input\":[");
    }
    for (int32_t i = 0; i < k; i++) {
        ake_buf_puts(&b, i ? ",\"" : "\"");
        for (int32_t w = 0; w < l; w++) {
            if (w) ake_buf_puts(&b, " ");
            ake_buf_puts(&b, words[rng(seed) % (sizeof words / sizeof *words)]);
        }
        ake_buf_puts(&b, "\"");
    }
    ake_buf_puts(&b, "]}");
    return b.oom ? (ake_buf_release(&b), NULL) : ake_buf_take(&b, NULL);
}

int ake_cmd_loadgen(int argc, char **argv) {
    enum { O_URL = 1, O_RATE, O_DUR, O_WARM, O_K, O_L, O_API, O_MODEL, O_KEY, O_TIMEOUT, O_MAXCONN, O_SEED, O_JSON,
           O_HELP };
    static const struct option longopts[] = {
        {"url", required_argument, 0, O_URL},           {"rate", required_argument, 0, O_RATE},
        {"duration", required_argument, 0, O_DUR},      {"warmup", required_argument, 0, O_WARM},
        {"inputs-per-request", required_argument, 0, O_K}, {"text-len", required_argument, 0, O_L},
        {"api", required_argument, 0, O_API},           {"model", required_argument, 0, O_MODEL},
        {"api-key", required_argument, 0, O_KEY},       {"timeout-ms", required_argument, 0, O_TIMEOUT},
        {"max-connections", required_argument, 0, O_MAXCONN}, {"seed", required_argument, 0, O_SEED},
        {"json", required_argument, 0, O_JSON},         {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0}};
    const char *url = "http://127.0.0.1:8080", *api = "tei", *model = "all-MiniLM-L6-v2", *key = NULL, *json = NULL;
    int32_t rate = 50, dur = 10, warm = 1, k = 1, l = 8, timeout_ms = 30000, maxconn = 256, seed = 1;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case O_URL: url = optarg; break;
        case O_RATE: ok = ake_cli_parse_int("--rate", optarg, 1, 1000000, &rate); break;
        case O_DUR: ok = ake_cli_parse_int("--duration", optarg, 1, 86400, &dur); break;
        case O_WARM: ok = ake_cli_parse_int("--warmup", optarg, 0, 3600, &warm); break;
        case O_K: ok = ake_cli_parse_int("--inputs-per-request", optarg, 1, 1 << 20, &k); break;
        case O_L: ok = ake_cli_parse_int("--text-len", optarg, 1, 1 << 20, &l); break;
        case O_API: api = optarg; break;
        case O_MODEL: model = optarg; break;
        case O_KEY: key = optarg; break;
        case O_TIMEOUT: ok = ake_cli_parse_int("--timeout-ms", optarg, 1, 1 << 30, &timeout_ms); break;
        case O_MAXCONN: ok = ake_cli_parse_int("--max-connections", optarg, 1, 100000, &maxconn); break;
        case O_SEED: ok = ake_cli_parse_int("--seed", optarg, 0, 1 << 30, &seed); break;
        case O_JSON: json = optarg; break;
        case O_HELP: fputs(loadgen_help, stdout); return 0;
        default:
            ake_cli_error("loadgen", "unknown option or missing value: '%s'", argv[optind - 1]);
            fputs(loadgen_help, stderr);
            return 2;
        }
        if (!ok) return 2;
    }
    if (optind < argc || (strcmp(api, "tei") && strcmp(api, "openai"))) {
        ake_cli_error("loadgen", "bad arguments (--api is tei or openai)");
        return 2;
    }
    const bool openai = !strcmp(api, "openai");
    /* A base URL (no path, or "/") gets the endpoint of --api. */
    char full[2048];
    const char *scheme = strstr(url, "://");
    const char *path = scheme ? strchr(scheme + 3, '/') : NULL;
    if (!path || !strcmp(path, "/"))
        snprintf(full, sizeof full, "%.*s%s", (int)(path ? (size_t)(path - url) : strlen(url)), url,
                 openai ? "/v1/embeddings" : "/embed");
    else
        snprintf(full, sizeof full, "%s", url);

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        ake_cli_error("loadgen", "libcurl failed to initialize");
        return 1;
    }
    const int64_t total = (int64_t)rate * (warm + dur);
    const int n_bodies = 512;
    uint64_t s = (uint64_t)seed * 0x9E3779B97F4A7C15ull + 1;
    char **bodies = calloc(n_bodies, sizeof *bodies);
    slot *slots = calloc((size_t)total, sizeof *slots);
    double *lat = malloc((size_t)total * sizeof *lat);
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Expect:"); /* no 100-continue round trip */
    char auth[1024];
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        headers = curl_slist_append(headers, auth);
    }
    if (!bodies || !slots || !lat || !headers) {
        ake_cli_error("loadgen", "out of memory");
        return 1;
    }
    for (int i = 0; i < n_bodies; i++)
        if (!(bodies[i] = make_body(openai, model, k, l, &s))) {
            ake_cli_error("loadgen", "out of memory");
            return 1;
        }

    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)maxconn);
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)maxconn);
    CURL **free_easy = malloc((size_t)maxconn * 4 * sizeof *free_easy);
    int n_free = 0;
    int64_t next = 0, n_lat = 0, sent = 0, ok = 0, http_err = 0, net_err = 0, status_count[6] = {0};
    int running = 0;
    double last_done = 0, lag_sum = 0, lag_max = 0; /* how late requests left against their due times */
    const double t0 = mono();
    while (next < total || running > 0) {
        double now = mono() - t0;
        while (next < total && (double)next / rate <= now) {
            CURL *e = n_free ? free_easy[--n_free] : curl_easy_init();
            if (!e) break;
            slots[next].due = (double)next / rate;
            slots[next].measured = slots[next].due >= warm;
            curl_easy_setopt(e, CURLOPT_URL, full);
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, bodies[next % n_bodies]);
            curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
            curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
            curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
            curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
            curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)&slots[next]);
            curl_multi_add_handle(m, e);
            if (slots[next].measured) {
                const double lag = mono() - t0 - slots[next].due;
                lag_sum += lag;
                if (lag > lag_max) lag_max = lag;
            }
            next++;
            sent++;
        }
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            CURL *e = msg->easy_handle;
            slot *sl;
            long code = 0;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&sl);
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
            double done = mono() - t0;
            if (sl->measured) {
                if (msg->data.result != CURLE_OK) net_err++;
                else if (code != 200) {
                    http_err++;
                    status_count[code / 100 < 6 ? code / 100 : 0]++;
                } else {
                    ok++;
                    lat[n_lat++] = (done - sl->due) * 1e3;
                    last_done = done;
                }
            }
            curl_multi_remove_handle(m, e);
            if (n_free < maxconn * 4) {
                curl_easy_reset(e);
                free_easy[n_free++] = e;
            } else {
                curl_easy_cleanup(e);
            }
        }
        if (next < total || running > 0) {
            double wait = next < total ? (double)next / rate - (mono() - t0) : 0.05;
            if (wait > 0 && wait < 0.05 && running == 0) {
                /* Nothing in flight: sleep to the due time itself. Polling in whole ms, rounded
                 * up, sent a lone request up to 1 ms late, and that lateness counts in its
                 * latency (loadgen's, not the server's). The last 0.2 ms is spun: sleeps
                 * overshoot by about 0.1 ms. */
                if (wait > 2e-4) {
                    struct timespec ts = {0, (long)((wait - 2e-4) * 1e9)};
                    nanosleep(&ts, NULL);
                }
                const double due = (double)next / rate;
                while (mono() - t0 < due) {
                }
            } else {
                /* Transfers in flight: wake on their sockets or after whole ms (rounded up, so
                 * that a busy loop does not starve them; sends then leave in small bursts). */
                int ms = wait <= 0 ? 0 : (int)(wait * 1e3) + 1;
                if (ms > 50) ms = 50;
                if (ms > 0 || running) curl_multi_poll(m, NULL, 0, ms, NULL);
            }
        }
    }
    const double wall = (last_done > warm ? last_done : (mono() - t0)) - warm;
    qsort(lat, (size_t)n_lat, sizeof *lat, cmp_double);
    const int64_t measured = sent - (int64_t)rate * warm;
    const double qps = wall > 0 ? (double)ok / wall : 0;
    const double p50 = pct(lat, n_lat, 50), p95 = pct(lat, n_lat, 95), p99 = pct(lat, n_lat, 99),
                 pmax = n_lat ? lat[n_lat - 1] : NAN;
    printf("%8s %8s %8s %8s %8s %8s %9s %9s %9s %9s\n", "rate", "sent", "ok", "http_err", "net_err", "qps", "p50_ms",
           "p95_ms", "p99_ms", "max_ms");
    printf("%8d %8lld %8lld %8lld %8lld %8.1f %9.2f %9.2f %9.2f %9.2f\n", rate, (long long)measured, (long long)ok,
           (long long)http_err, (long long)net_err, qps, p50, p95, p99, pmax);
    int rc = 0;
    fflush(stdout);
    if (measured > 0)
        fprintf(stderr, "loadgen: requests left %.3f ms after their due times on average (max %.3f ms)\n",
                lag_sum * 1e3 / (double)measured, lag_max * 1e3);
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) {
            ake_cli_error("loadgen", "cannot write '%s'", json);
            rc = 1;
        } else {
            fprintf(f,
                    "{\"url\": \"%s\", \"api\": \"%s\", \"rate\": %d, \"duration_s\": %d, \"warmup_s\": %d, "
                    "\"inputs_per_request\": %d, \"text_words\": %d, \"sent\": %lld, \"ok\": %lld, "
                    "\"http_errors\": %lld, \"http_4xx\": %lld, \"http_5xx\": %lld, \"network_errors\": %lld, "
                    "\"achieved_qps\": %.2f, \"p50_ms\": %.3f, \"p95_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f}\n",
                    full, api, rate, dur, warm, k, l, (long long)measured, (long long)ok, (long long)http_err,
                    (long long)status_count[4], (long long)status_count[5], (long long)net_err, qps,
                    n_lat ? p50 : -1, n_lat ? p95 : -1, n_lat ? p99 : -1, n_lat ? pmax : -1);
            fclose(f);
        }
    }
    for (int i = 0; i < n_free; i++) curl_easy_cleanup(free_easy[i]);
    curl_multi_cleanup(m);
    curl_slist_free_all(headers);
    curl_global_cleanup();
    for (int i = 0; i < n_bodies; i++) free(bodies[i]);
    free(bodies);
    free(slots);
    free(lat);
    free(free_easy);
    return rc;
}
