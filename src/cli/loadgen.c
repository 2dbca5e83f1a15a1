/* `akidb-embed loadgen`: drives an embedding server open-loop at a fixed arrival rate
 * and reports the achieved QPS, latency percentiles and how late requests left.
 *
 * Open loop: request i is due at start + i/rate whatever happened to the earlier ones,
 * and its latency runs from that due time (not from when it could be sent) to the end
 * of its response, so a server that falls behind shows it in the percentiles instead
 * of slowing the generator down (no coordinated omission).
 *
 * One process has to offer more than one thread of libcurl can send (one thread fell
 * to 12,700 of 20,000 requests/s on a 16-core machine), so --threads N workers split the
 * schedule: request i belongs to worker i mod N and keeps its global due time i/rate.
 * Each worker owns a curl multi handle driven by its own epoll (curl_multi_socket_action:
 * work per wake-up follows the sockets that are ready, not the number of transfers in
 * flight), a timerfd that wakes it at the next due time to the nanosecond, its share of
 * --max-connections and its easy handles, which are kept with their options set and
 * only given the next prebuilt body. A worker hands curl no more requests than it has
 * connections: the ones due while all are busy wait in the worker, in order (their
 * latency still runs from their due times), because curl's own queue of pending
 * transfers makes every removal cost as much as that queue is long, and a generator
 * behind a saturated server then spent its time there and collapsed. Latency and
 * send-lag samples stay per worker and are merged at the end, so the percentiles are
 * exact. Send lag is how late the worker noticed a request fell due: its own delay,
 * not the wait for a connection, which is the server's and shows in the latency. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cli/cli.h"
#include "serve/jsonw.h"

static const char loadgen_help[] =
    "usage: akidb-embed loadgen --url URL --rate R --duration S [options]\n"
    "  Sends requests at a fixed rate (open loop) and prints achieved QPS (successful responses per second\n"
    "  answered within the measured seconds), P50/P95/P99/max latency of the requests due in them,\n"
    "  errors and how late requests left against their due times (send lag, mean and P99). When half the requests\n"
    "  due in the last tenth of the run left more than 1 ms late, the generator could not keep up: it says\n"
    "  so, and the numbers are loadgen's, not the server's (give it more --threads).\n"
    "  --url URL                server base URL or endpoint (default http://127.0.0.1:8080; a bare base URL\n"
    "                           gets /embed or /v1/embeddings by --api)\n"
    "  --rate R                 requests per second (default 50)\n"
    "  --duration S             measured seconds (default 10)\n"
    "  --warmup S               seconds sent first at the same rate and not measured (default 1)\n"
    "  --threads N              sending threads; request i goes to thread i mod N (default: online cores / 2,\n"
    "                           at least 1, at most --max-connections)\n"
    "  --inputs-per-request K   texts per request (default 1)\n"
    "  --text-len L             words per text, about L+2 tokens (default 8)\n"
    "  --api tei|openai         request shape (default tei)\n"
    "  --model NAME             \"model\" of OpenAI requests (default all-MiniLM-L6-v2)\n"
    "  --api-key KEY            send `Authorization: Bearer KEY`\n"
    "  --timeout-ms N           give up on a request after N ms (default 30000)\n"
    "  --max-connections N      open connections at most, split evenly over the threads (default 256)\n"
    "  --seed N                 seed of the random texts (default 1)\n"
    "  --json FILE              also write the result as JSON\n"
    "  --print-body             print the first request's body and exit (to give other load tools the same)\n";

static const char *const words[] = {
    "the",    "quick",   "brown",   "fox",      "jumps",   "over",     "lazy",    "dog",     "vector",  "search",
    "engine", "returns", "similar", "document", "query",   "embedding", "model",  "server",  "batch",   "latency",
    "fast",   "small",   "large",   "language", "sentence", "meaning", "close",   "far",     "distance", "space",
    "data",   "store",   "index",   "memory",   "compute", "request",  "answer",  "people",  "city",    "river",
    "music",  "coffee",  "morning", "evening",  "weather", "forecast", "travel",  "ticket",  "price",   "market",
    "garden", "flower",  "winter",  "summer",   "mountain", "ocean",   "history", "science", "friend",  "story"};

enum { N_BODIES = 512 };

/* A median send lag above this over the requests due in the last tenth of the schedule means
 * the generator fell behind: one that keeps up sends within tens of µs, and 1 ms is the
 * scale of the latencies it measures on a GPU server. The median of the tail, not the mean
 * of the run: falling behind makes the lag grow to the end, whereas a moment without a CPU
 * (a shared machine) makes a few requests late and is no reason to distrust the rest. */
static const double BEHIND_MS = 1.0;

/* What the workers share and only read once they run: the schedule and the prebuilt
 * requests. */
typedef struct {
    const char *url; /* full endpoint */
    struct curl_slist *headers;
    char *bodies[N_BODIES];
    size_t body_len[N_BODIES];
    int32_t rate, threads, timeout_ms;
    int64_t total;      /* requests in the schedule, warm-up included */
    int64_t first_measured; /* index of the first request due after the warm-up */
    double warm, dur;   /* s: the measured window is [warm, warm + dur) */
    int64_t tail_from;  /* index of the first request of the last tenth of the measured part */
    /* the start gate: workers report ready, then wait for go (t0 set) or abort */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int32_t n_ready;
    int state; /* 0 wait, 1 go, -1 abort */
    double t0; /* CLOCK_MONOTONIC seconds at which request 0 is due */
} plan;

/* One request slot: an easy handle that keeps its options between transfers. */
typedef struct req {
    CURL *e;
    int64_t i;        /* index in the schedule of the request it carries */
    struct req *next; /* next free slot */
    struct req *all;  /* next slot owned by the worker (for freeing) */
} req;

typedef struct {
    plan *p;
    int32_t id;
    int32_t max_conn; /* this worker's share of --max-connections */
    CURLM *m;
    int ep, tfd;
    double armed;     /* when tfd fires, s since t0; NAN: disarmed or already fired */
    /* per socket fd: the events it is registered for in ep (0: none), and whether curl
     * still watches it; grown as curl hands over higher fds */
    uint32_t *fd_events;
    bool *fd_watched;
    int n_fds;
    double t0;
    double curl_due;  /* when curl wants socket_action(CURL_SOCKET_TIMEOUT), s since t0; < 0: never */
    req *free_reqs, *all_reqs;
    int64_t in_flight, sent;
    double *lat;      /* [cap] ms from due time to the end of the response, measured successes */
    double *lag;      /* [cap] ms from due time to the moment the worker took it up, measured requests */
    int64_t cap, n_lat, n_lag;
    int64_t ok, http_err, net_err, status_count[6];
    int64_t tail_n;      /* how many of the lag samples, the last ones, are of plan.tail_from on */
    int64_t ok_window;   /* successes answered in the measured window, whichever request */
    char err[200];       /* why the worker stopped early; empty when it did not */
} worker;

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

/* Body of one request: K random texts of L words. Returns NULL when out of memory;
 * the caller frees the body. */
static char *make_body(bool openai, const char *model, int32_t k, int32_t l, uint64_t *seed, size_t *len) {
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
    return b.oom ? (ake_buf_release(&b), NULL) : ake_buf_take(&b, len);
}

/* curl's CURLMOPT_SOCKETFUNCTION: mirrors the sockets curl waits on into the worker's epoll.
 * curl lets go of a kept-alive socket after every response and takes it up again with the
 * next request; leaving it registered meanwhile saves two of the four epoll_ctl calls that
 * each request otherwise costs. An event on a socket curl does not watch (the server closed
 * an idle connection) unregisters it (see worker_run); a socket that curl closed leaves the
 * epoll by itself, and a new one that gets its number is added when MOD finds it absent. */
static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
    (void)e;
    (void)socketp;
    worker *w = userp;
    if (s < 0) return -1;
    if (s >= w->n_fds) {
        const int n = s + 64;
        uint32_t *ev = realloc(w->fd_events, (size_t)n * sizeof *ev);
        if (ev) w->fd_events = ev;
        bool *wa = realloc(w->fd_watched, (size_t)n * sizeof *wa);
        if (wa) w->fd_watched = wa;
        if (!ev || !wa) return -1;
        memset(ev + w->n_fds, 0, (size_t)(n - w->n_fds) * sizeof *ev);
        memset(wa + w->n_fds, 0, (size_t)(n - w->n_fds) * sizeof *wa);
        w->n_fds = n;
    }
    if (what == CURL_POLL_REMOVE) {
        w->fd_watched[s] = false;
        return 0;
    }
    struct epoll_event ev = {.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u),
                             .data.fd = s};
    /* the same events on a socket curl watched all along are registered already */
    if (w->fd_watched[s] && w->fd_events[s] == ev.events) return 0;
    if (w->fd_events[s] ? epoll_ctl(w->ep, EPOLL_CTL_MOD, s, &ev) && (errno != ENOENT || epoll_ctl(w->ep, EPOLL_CTL_ADD, s, &ev))
                        : epoll_ctl(w->ep, EPOLL_CTL_ADD, s, &ev) && (errno != EEXIST || epoll_ctl(w->ep, EPOLL_CTL_MOD, s, &ev))) {
        w->fd_events[s] = 0;
        return -1;
    }
    w->fd_events[s] = ev.events;
    w->fd_watched[s] = true;
    return 0;
}

/* curl's CURLMOPT_TIMERFUNCTION: when curl next wants socket_action(CURL_SOCKET_TIMEOUT). */
static int on_timer(CURLM *m, long timeout_ms, void *userp) {
    (void)m;
    worker *w = userp;
    w->curl_due = timeout_ms < 0 ? -1 : mono() - w->t0 + (double)timeout_ms * 1e-3;
    return 0;
}

/* A new slot with its easy handle configured once. Returns NULL when out of memory. */
static req *new_req(worker *w) {
    req *r = calloc(1, sizeof *r);
    if (!r || !(r->e = curl_easy_init())) {
        free(r);
        return NULL;
    }
    const plan *p = w->p;
    curl_easy_setopt(r->e, CURLOPT_URL, p->url);
    curl_easy_setopt(r->e, CURLOPT_HTTPHEADER, p->headers);
    curl_easy_setopt(r->e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(r->e, CURLOPT_TIMEOUT_MS, (long)p->timeout_ms);
    curl_easy_setopt(r->e, CURLOPT_NOSIGNAL, 1L);
    /* no proxy, from the environment or otherwise: the server is what is measured, and curl
     * would read the proxy variables again for every request */
    curl_easy_setopt(r->e, CURLOPT_PROXY, "");
    curl_easy_setopt(r->e, CURLOPT_PRIVATE, (void *)r);
    r->all = w->all_reqs;
    w->all_reqs = r;
    return r;
}

/* Request i fell due and the worker sees it at `now` (s since t0): records how late. */
static void note_due(worker *w, int64_t i, double now) {
    const plan *p = w->p;
    if (i < p->first_measured) return;
    const double lag = (now - (double)i / p->rate) * 1e3;
    w->lag[w->n_lag++] = lag;
    w->tail_n += i >= p->tail_from;
}

/* Hands request i to curl. Returns false when no slot can be had (out of memory) or curl
 * refuses it; w->err says which. */
static bool send_one(worker *w, int64_t i) {
    const plan *p = w->p;
    req *r = w->free_reqs;
    if (r) {
        w->free_reqs = r->next;
    } else if (!(r = new_req(w))) {
        snprintf(w->err, sizeof w->err, "out of memory for request slots");
        return false;
    }
    const int b = (int)(i % N_BODIES);
    /* the size first: set after the body, curl would take it as a reason to forget the body */
    curl_easy_setopt(r->e, CURLOPT_POSTFIELDSIZE, (long)p->body_len[b]);
    curl_easy_setopt(r->e, CURLOPT_POSTFIELDS, p->bodies[b]);
    r->i = i;
    if (curl_multi_add_handle(w->m, r->e) != CURLM_OK) {
        r->next = w->free_reqs;
        w->free_reqs = r;
        snprintf(w->err, sizeof w->err, "curl_multi_add_handle failed");
        return false;
    }
    w->in_flight++;
    w->sent++;
    return true;
}

/* Collects finished transfers: counts them, keeps the latency of measured successes and
 * frees their slots. */
static void harvest(worker *w) {
    const plan *p = w->p;
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(w->m, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURL *e = msg->easy_handle;
        const CURLcode res = msg->data.result; /* msg is gone once the handle is removed */
        req *r;
        long code = 0;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
        const double done = mono() - w->t0;
        w->ok_window += res == CURLE_OK && code == 200 && done >= p->warm && done < p->warm + p->dur;
        if (r->i >= p->first_measured) {
            if (res != CURLE_OK) {
                w->net_err++;
            } else if (code != 200) {
                w->http_err++;
                w->status_count[code / 100 < 6 ? code / 100 : 0]++;
            } else {
                w->ok++;
                w->lat[w->n_lat++] = (done - (double)r->i / p->rate) * 1e3;
            }
        }
        curl_multi_remove_handle(w->m, e);
        r->next = w->free_reqs;
        w->free_reqs = r;
        w->in_flight--;
    }
}

static void kick(worker *w, curl_socket_t s, int flags) {
    int running;
    curl_multi_socket_action(w->m, s, flags, &running);
}

/* Sleeps until `due` (s since t0) with nothing in flight. Sleeping alone overshoots by about
 * 0.1 ms, and a lone request's lateness counts in its latency (loadgen's, not the server's),
 * so the last SPIN_S are spun. */
static const double SPIN_S = 2e-4;
static void sleep_until(const worker *w, double due) {
    const double wait = due - (mono() - w->t0);
    if (wait > SPIN_S) {
        struct timespec ts = {(time_t)(wait - SPIN_S), (long)(fmod(wait - SPIN_S, 1.0) * 1e9)};
        nanosleep(&ts, NULL);
    }
    while (mono() - w->t0 < due) {
    }
}

/* Arms the worker's timerfd to fire at `at` (s since t0), or disarms it when `at` is infinite.
 * Either clears an expiry already pending, which would otherwise wake every epoll_wait; a
 * timer still pending for that very time is left as it is. */
static void arm(worker *w, double at) {
    if (at == w->armed) return;
    w->armed = isfinite(at) ? at : NAN;
    struct itimerspec its = {0};
    if (isfinite(at)) {
        const double abs_t = w->t0 + at;
        its.it_value = (struct timespec){(time_t)abs_t, (long)(fmod(abs_t, 1.0) * 1e9)};
    }
    timerfd_settime(w->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* Sets up the worker's curl multi handle, epoll and timerfd. Returns false (w->err set)
 * on failure. */
static bool worker_open(worker *w) {
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    w->m = curl_multi_init();
    w->curl_due = -1;
    w->armed = NAN;
    if (w->ep < 0 || w->tfd < 0 || !w->m) {
        snprintf(w->err, sizeof w->err, "cannot create epoll, timerfd or curl multi handle");
        return false;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = w->tfd};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->tfd, &ev)) {
        snprintf(w->err, sizeof w->err, "epoll_ctl: %s", strerror(errno));
        return false;
    }
    curl_multi_setopt(w->m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)w->max_conn);
    curl_multi_setopt(w->m, CURLMOPT_MAXCONNECTS, (long)w->max_conn);
    curl_multi_setopt(w->m, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(w->m, CURLMOPT_SOCKETDATA, (void *)w);
    curl_multi_setopt(w->m, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(w->m, CURLMOPT_TIMERDATA, (void *)w);
    return true;
}

/* Releases what worker_open and the run allocated (not the sample arrays); the run ends with
 * no transfer in flight, so no easy handle is still in the multi handle. */
static void worker_close(worker *w) {
    for (req *r = w->all_reqs, *nx; r; r = nx) {
        nx = r->all;
        curl_easy_cleanup(r->e);
        free(r);
    }
    if (w->m) curl_multi_cleanup(w->m);
    if (w->ep >= 0) close(w->ep);
    if (w->tfd >= 0) close(w->tfd);
    free(w->fd_events);
    free(w->fd_watched);
}

/* The open loop of one worker over requests id, id+N, id+2N, ... */
static void *worker_run(void *arg) {
    worker *w = arg;
    plan *p = w->p;
    const bool opened = worker_open(w);
    pthread_mutex_lock(&p->mu);
    p->n_ready++;
    pthread_cond_broadcast(&p->cv);
    while (p->state == 0) pthread_cond_wait(&p->cv, &p->mu);
    const bool go = p->state > 0;
    w->t0 = p->t0;
    pthread_mutex_unlock(&p->mu);
    if (!opened || !go) return NULL;

    const int64_t total = p->total, step = p->threads;
    int64_t due_next = w->id;  /* this worker's first request not yet due */
    int64_t send_next = w->id; /* its first request not yet handed to curl (<= due_next) */
    /* Spinning before lone requests costs up to SPIN_S of every gap between this worker's
     * requests; it is done only where that is at most a fifth of a core. */
    const bool spin = (double)step / p->rate >= 5 * SPIN_S;
    struct epoll_event evs[64];
    while (send_next < total || w->in_flight > 0) {
        const double now = mono() - w->t0;
        for (; due_next < total && (double)due_next / p->rate <= now; due_next += step) note_due(w, due_next, now);
        bool added = false;
        for (; send_next < due_next && w->in_flight < w->max_conn; send_next += step) {
            if (!send_one(w, send_next)) {
                due_next = send_next = total; /* give up the rest of the schedule; finish what is in flight */
                break;
            }
            added = true;
        }
        if (added || (w->curl_due >= 0 && w->curl_due <= mono() - w->t0)) {
            w->curl_due = -1; /* the call may set a new timer */
            kick(w, CURL_SOCKET_TIMEOUT, 0);
            harvest(w);
        }
        if (send_next >= total && w->in_flight == 0) break;
        if (send_next < due_next && w->in_flight < w->max_conn) continue; /* harvest freed connections */
        const double due = due_next < total ? (double)due_next / p->rate : INFINITY;
        if (spin && w->in_flight == 0 && due - (mono() - w->t0) < 0.05) {
            sleep_until(w, due);
            continue;
        }
        double wake = due;
        if (w->curl_due >= 0 && w->curl_due < wake) wake = w->curl_due;
        arm(w, wake);
        /* curl keeps a timer while transfers run, so the 1 s bound is only a safety net */
        const int n = epoll_wait(w->ep, evs, 64, isfinite(wake) ? -1 : 1000);
        for (int k = 0; k < n; k++) {
            const int fd = evs[k].data.fd;
            if (fd == w->tfd) {
                w->armed = NAN; /* fired: the next arm() re-arms or disarms, which clears it */
                continue;
            }
            if (!w->fd_watched[fd]) {
                epoll_ctl(w->ep, EPOLL_CTL_DEL, fd, NULL);
                w->fd_events[fd] = 0;
                continue;
            }
            const uint32_t e = evs[k].events;
            kick(w, fd,
                 (e & EPOLLIN ? CURL_CSELECT_IN : 0) | (e & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                     (e & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0));
        }
        if (n > 0) harvest(w);
    }
    return NULL;
}

int ake_cmd_loadgen(int argc, char **argv) {
    enum { O_URL = 1, O_RATE, O_DUR, O_WARM, O_THREADS, O_K, O_L, O_API, O_MODEL, O_KEY, O_TIMEOUT, O_MAXCONN, O_SEED,
           O_JSON, O_PRINT_BODY, O_HELP };
    static const struct option longopts[] = {
        {"url", required_argument, 0, O_URL},           {"rate", required_argument, 0, O_RATE},
        {"duration", required_argument, 0, O_DUR},      {"warmup", required_argument, 0, O_WARM},
        {"threads", required_argument, 0, O_THREADS},
        {"inputs-per-request", required_argument, 0, O_K}, {"text-len", required_argument, 0, O_L},
        {"api", required_argument, 0, O_API},           {"model", required_argument, 0, O_MODEL},
        {"api-key", required_argument, 0, O_KEY},       {"timeout-ms", required_argument, 0, O_TIMEOUT},
        {"max-connections", required_argument, 0, O_MAXCONN}, {"seed", required_argument, 0, O_SEED},
        {"json", required_argument, 0, O_JSON},         {"print-body", no_argument, 0, O_PRINT_BODY},
        {"help", no_argument, 0, O_HELP},               {0, 0, 0, 0}};
    const char *url = "http://127.0.0.1:8080", *api = "tei", *model = "all-MiniLM-L6-v2", *key = NULL, *json = NULL;
    int32_t rate = 50, dur = 10, warm = 1, threads = 0, k = 1, l = 8, timeout_ms = 30000, maxconn = 256, seed = 1;
    bool print_body = false;
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
        case O_THREADS: ok = ake_cli_parse_int("--threads", optarg, 1, 1024, &threads); break;
        case O_K: ok = ake_cli_parse_int("--inputs-per-request", optarg, 1, 1 << 20, &k); break;
        case O_L: ok = ake_cli_parse_int("--text-len", optarg, 1, 1 << 20, &l); break;
        case O_API: api = optarg; break;
        case O_MODEL: model = optarg; break;
        case O_KEY: key = optarg; break;
        case O_TIMEOUT: ok = ake_cli_parse_int("--timeout-ms", optarg, 1, 1 << 30, &timeout_ms); break;
        case O_MAXCONN: ok = ake_cli_parse_int("--max-connections", optarg, 1, 100000, &maxconn); break;
        case O_SEED: ok = ake_cli_parse_int("--seed", optarg, 0, 1 << 30, &seed); break;
        case O_JSON: json = optarg; break;
        case O_PRINT_BODY: print_body = true; break;
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
    if (threads > maxconn) {
        ake_cli_error("loadgen", "--threads %d needs --max-connections of at least %d (each thread has its own)",
                      threads, threads);
        return 2;
    }
    if (threads == 0) {
        const long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores >= 2 ? (int32_t)(cores / 2) : 1;
        if (threads > maxconn) threads = maxconn;
    }
    if (json && !ake_cli_can_create("loadgen", "--json", json)) return 2;
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

    int rc = 1;
    plan *p = calloc(1, sizeof *p);
    worker *ws = calloc((size_t)threads, sizeof *ws);
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    double *lat = NULL, *lag = NULL, *tail = NULL;
    int32_t started = 0;
    bool curl_up = false;
    if (!p || !ws || !tids) goto oom;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    uint64_t s = (uint64_t)seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < N_BODIES; i++)
        if (!(p->bodies[i] = make_body(openai, model, k, l, &s, &p->body_len[i]))) goto oom;
    if (print_body) {
        printf("%s\n", p->bodies[0]);
        rc = 0;
        goto done;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        ake_cli_error("loadgen", "libcurl failed to initialize");
        goto done;
    }
    curl_up = true;
    p->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (p->headers) p->headers = curl_slist_append(p->headers, "Expect:"); /* no 100-continue round trip */
    char auth[1024];
    if (key && p->headers) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        p->headers = curl_slist_append(p->headers, auth);
    }
    if (!p->headers) goto oom;
    p->url = full;
    p->rate = rate;
    p->threads = threads;
    p->timeout_ms = timeout_ms;
    p->total = (int64_t)rate * (warm + dur);
    p->first_measured = (int64_t)rate * warm;
    p->warm = warm;
    p->dur = dur;
    p->tail_from = p->total - (p->total - p->first_measured) / 10;
    for (int32_t t = 0; t < threads; t++) {
        worker *w = &ws[t];
        w->p = p;
        w->id = t;
        w->max_conn = maxconn / threads + (t < maxconn % threads);
        w->ep = w->tfd = -1;
        w->cap = (p->total - t + threads - 1) / threads;
        w->lat = malloc((size_t)(w->cap > 0 ? w->cap : 1) * sizeof *w->lat);
        w->lag = malloc((size_t)(w->cap > 0 ? w->cap : 1) * sizeof *w->lag);
        if (!w->lat || !w->lag) goto oom;
    }
    for (; started < threads; started++)
        if (pthread_create(&tids[started], NULL, worker_run, &ws[started])) break;
    /* Request 0 is due once every worker has its curl handle and epoll: creating them is not
     * the server's time. */
    pthread_mutex_lock(&p->mu);
    while (p->n_ready < started) pthread_cond_wait(&p->cv, &p->mu);
    p->state = started == threads ? 1 : -1;
    p->t0 = mono();
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int32_t t = 0; t < started; t++) pthread_join(tids[t], NULL);
    if (started < threads) {
        ake_cli_error("loadgen", "cannot start thread %d of %d", started + 1, threads);
        goto done;
    }

    /* Merge the workers: counts add up, samples are pooled, so percentiles are exact. */
    int64_t n_lat = 0, n_lag = 0, sent = 0, ok = 0, ok_window = 0, http_err = 0, net_err = 0, status_count[6] = {0}, tail_n = 0;
    for (int32_t t = 0; t < threads; t++) {
        n_lat += ws[t].n_lat;
        n_lag += ws[t].n_lag;
        tail_n += ws[t].tail_n;
        if (ws[t].err[0]) ake_cli_error("loadgen", "thread %d stopped sending: %s", t, ws[t].err);
    }
    lat = malloc((size_t)(n_lat ? n_lat : 1) * sizeof *lat);
    lag = malloc((size_t)(n_lag ? n_lag : 1) * sizeof *lag);
    tail = malloc((size_t)(tail_n ? tail_n : 1) * sizeof *tail);
    if (!lat || !lag || !tail) goto oom;
    n_lat = n_lag = tail_n = 0;
    for (int32_t t = 0; t < threads; t++) {
        const worker *w = &ws[t];
        memcpy(lat + n_lat, w->lat, (size_t)w->n_lat * sizeof *lat);
        memcpy(lag + n_lag, w->lag, (size_t)w->n_lag * sizeof *lag);
        memcpy(tail + tail_n, w->lag + w->n_lag - w->tail_n, (size_t)w->tail_n * sizeof *tail);
        n_lat += w->n_lat;
        n_lag += w->n_lag;
        sent += w->sent;
        ok += w->ok;
        ok_window += w->ok_window;
        http_err += w->http_err;
        net_err += w->net_err;
        for (int i = 0; i < 6; i++) status_count[i] += w->status_count[i];
        tail_n += w->tail_n;
    }
    qsort(lat, (size_t)n_lat, sizeof *lat, cmp_double);
    qsort(lag, (size_t)n_lag, sizeof *lag, cmp_double);
    qsort(tail, (size_t)tail_n, sizeof *tail, cmp_double);
    const int64_t measured = sent - (sent < p->first_measured ? sent : p->first_measured);
    /* The server's rate of successes within the measured window, whichever request they
     * answer, as wrk counts its run. Behind a saturated server, counting the measured requests
     * instead, up to the last answer, charged the server the backlog of the warm-up (answered
     * inside the window, not counted) and the drain after the window, when fewer and fewer
     * requests are left to batch. */
    const double qps = (double)ok_window / dur;
    const double p50 = pct(lat, n_lat, 50), p95 = pct(lat, n_lat, 95), p99 = pct(lat, n_lat, 99),
                 pmax = n_lat ? lat[n_lat - 1] : NAN;
    double lag_sum = 0;
    for (int64_t i = 0; i < n_lag; i++) lag_sum += lag[i];
    const double lag_mean = n_lag ? lag_sum / (double)n_lag : NAN, lag_p99 = pct(lag, n_lag, 99),
                 lag_max = n_lag ? lag[n_lag - 1] : NAN, tail_p50 = pct(tail, tail_n, 50);
    const bool behind = tail_n && tail_p50 > BEHIND_MS;
    printf("%8s %7s %8s %8s %8s %8s %9s %9s %9s %9s %9s %11s %11s\n", "rate", "threads", "sent", "ok", "http_err",
           "net_err", "qps", "p50_ms", "p95_ms", "p99_ms", "max_ms", "lag_mean_ms", "lag_p99_ms");
    printf("%8d %7d %8lld %8lld %8lld %8lld %9.1f %9.2f %9.2f %9.2f %9.2f %11.3f %11.3f\n", rate, threads,
           (long long)measured, (long long)ok, (long long)http_err, (long long)net_err, qps, p50, p95, p99, pmax,
           lag_mean, lag_p99);
    fflush(stdout);
    if (behind)
        fprintf(stderr,
                "loadgen: the generator fell behind its schedule: half the requests due in the last tenth of the run "
                "left more than %.3f ms late (max %.3f ms), so the achieved rate and the latencies are loadgen's, not "
                "the server's; try more --threads (now %d)\n",
                tail_p50, lag_max, threads);
    rc = 0;
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) {
            ake_cli_error("loadgen", "cannot write '%s'", json);
            rc = 1;
        } else {
            fprintf(f,
                    "{\"url\": \"%s\", \"api\": \"%s\", \"rate\": %d, \"duration_s\": %d, \"warmup_s\": %d, "
                    "\"threads\": %d, \"max_connections\": %d, "
                    "\"inputs_per_request\": %d, \"text_words\": %d, \"sent\": %lld, \"ok\": %lld, "
                    "\"http_errors\": %lld, \"http_4xx\": %lld, \"http_5xx\": %lld, \"network_errors\": %lld, "
                    "\"achieved_qps\": %.2f, \"p50_ms\": %.3f, \"p95_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, "
                    "\"send_lag_mean_ms\": %.4f, \"send_lag_p99_ms\": %.4f, \"send_lag_max_ms\": %.4f, "
                    "\"send_lag_tail_p50_ms\": %.4f, \"generator_behind\": %s}\n",
                    full, api, rate, dur, warm, threads, maxconn, k, l, (long long)measured, (long long)ok,
                    (long long)http_err, (long long)status_count[4], (long long)status_count[5], (long long)net_err,
                    qps, n_lat ? p50 : -1, n_lat ? p95 : -1, n_lat ? p99 : -1, n_lat ? pmax : -1,
                    n_lag ? lag_mean : -1, n_lag ? lag_p99 : -1, n_lag ? lag_max : -1, tail_n ? tail_p50 : -1,
                    behind ? "true" : "false");
            if (fclose(f)) {
                ake_cli_error("loadgen", "cannot write '%s'", json);
                rc = 1;
            }
        }
    }
    goto done;
oom:
    ake_cli_error("loadgen", "out of memory");
    rc = 1;
done:
    if (ws)
        for (int32_t t = 0; t < threads; t++) {
            if (t < started) worker_close(&ws[t]);
            free(ws[t].lat);
            free(ws[t].lag);
        }
    if (p) {
        curl_slist_free_all(p->headers);
        for (int i = 0; i < N_BODIES; i++) free(p->bodies[i]);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
    }
    if (curl_up) curl_global_cleanup();
    free(p);
    free(ws);
    free(tids);
    free(lat);
    free(lag);
    free(tail);
    return rc;
}
