/* `akidb-embed loadgen`: drives an embedding server open-loop at a fixed arrival rate
 * and reports the achieved QPS, latency percentiles and how late requests left.
 *
 * Open loop: request i is due at start + i/rate whatever happened to the earlier ones,
 * and its latency runs from that due time (not from when it could be sent) to the end
 * of its response, so a server that falls behind shows it in the percentiles instead
 * of slowing the generator down (no coordinated omission).
 *
 * One process has to offer more than one thread can send, so --threads N workers split the
 * schedule: request i belongs to worker i mod N and keeps its global due time i/rate. Each
 * worker owns an epoll, a timerfd that wakes it at the next due time to the nanosecond, and
 * its share of --max-connections: plain HTTP/1.1 keep-alive connections of its own client,
 * opened when a request finds no idle one. A request is one prebuilt byte string written with
 * send(); the response is read with recv() into one buffer and run through an incremental
 * parser (base/http_response.h) that skips the body. A connection stays registered for input
 * from its opening to its closing, and for output only while connecting or after a send that
 * did not take the whole request, so a request costs a send, a recv and its share of an
 * epoll_wait: libcurl, which this replaced, cost about four times wrk's CPU per request, and a
 * generator that shares the machine with the server takes that CPU from the server.
 * A worker sends no more requests than it has connections: the ones due while all are busy
 * wait in the worker, in order (their latency still runs from their due times). Latency and
 * send-lag samples stay per worker and are merged at the end, so the percentiles are exact.
 * Send lag is how late the worker noticed a request fell due: its own delay, not the wait for
 * a connection, which is the server's and shows in the latency. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "base/http_response.h"
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
    "                           gets /embed or /v1/embeddings by --api); http only, HTTP/1.1 keep-alive\n"
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

/* Bytes one recv() takes: a response of the server (one short text's vector, ~5 KB) or a
 * few, whole. */
enum { RECV_BYTES = 64 * 1024 };

/* What the workers share and only read once they run: the server's address, the schedule and
 * the prebuilt requests. */
typedef struct {
    struct sockaddr_storage addr; /* the server, resolved and tried once */
    socklen_t addr_len;
    char *bodies[N_BODIES];    /* the JSON bodies alone */
    size_t body_len[N_BODIES];
    char *reqs[N_BODIES];      /* whole requests: request line, headers, body */
    size_t req_len[N_BODIES];
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

/* One connection slot of a worker: closed, idle (open, no request) or carrying one request. */
typedef struct {
    int fd;             /* -1: closed */
    bool connecting;    /* connect() under way: the next EPOLLOUT says how it went */
    bool out_watched;   /* registered for EPOLLOUT as well as EPOLLIN */
    bool reused;        /* it has answered a request: see fail() */
    bool got_bytes;     /* bytes of the current response have arrived */
    int32_t slot;       /* its place in the worker's idle or closed stack */
    int64_t i;          /* index in the schedule of the request it carries; -1: none */
    const char *out;    /* what of that request is still to send */
    size_t out_left;
    double deadline;    /* s since t0 when that request times out */
    ake_http_response resp;
} conn;

typedef struct {
    plan *p;
    int32_t id;
    int32_t max_conn; /* this worker's share of --max-connections */
    int ep, tfd;
    double armed;     /* when tfd fires, s since t0; NAN: disarmed or already fired */
    double t0;
    conn *conns;      /* [max_conn] */
    conn **idle;      /* [max_conn] stack of idle connections, the last used on top */
    conn **closed;    /* [max_conn] stack of closed slots */
    int32_t n_idle, n_closed;
    char *rbuf;       /* [RECV_BYTES] */
    double next_deadline; /* no request in flight times out before this (s since t0) */
    int64_t in_flight, sent;
    double *lat;      /* [cap] ms from due time to the end of the response, measured successes */
    double *lag;      /* [cap] ms from due time to the moment the worker took it up, measured requests */
    int64_t cap, n_lat, n_lag;
    int64_t ok, http_err, net_err, status_count[6];
    int64_t tail_n;      /* how many of the lag samples, the last ones, are of plan.tail_from on */
    int64_t ok_window;   /* successes answered in the measured window, whichever request */
    char err[200];       /* why the worker stopped early; empty when it did not */
    char net_why[200];   /* why its first measured request that failed on the network failed */
} worker;

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
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


/* Splits an http:// URL (the scheme may be left out) into the host as getaddrinfo takes it, its
 * port (80 when none), the authority for the Host header and the path. Returns false with one
 * sentence in err when loadgen cannot use it: https or another scheme (its client speaks plain
 * HTTP/1.1 only), no host, a bad port, or bytes that cannot go into a request line. */
static bool split_url(const char *url, char *host, size_t host_n, char *port, size_t port_n, char *authority,
                      size_t authority_n, const char **path, char *err, size_t errlen) {
    const char *s = strstr(url, "://");
    if (s) {
        if (s - url == 5 && !strncasecmp(url, "https", 5)) {
            snprintf(err, errlen, "'%.200s': https is not supported, loadgen's client speaks plain HTTP/1.1 (measure "
                     "the server on http, or load a TLS terminator's http side)", url);
            return false;
        }
        if (s - url != 4 || strncasecmp(url, "http", 4)) {
            snprintf(err, errlen, "'%.200s': the URL's scheme is not http", url);
            return false;
        }
        s += 3;
    } else {
        s = url;
    }
    const char *slash = strchr(s, '/');
    const size_t an = slash ? (size_t)(slash - s) : strlen(s);
    *path = slash ? slash : "/";
    const char *h = s, *hend, *colon;
    if (*s == '[') { /* [IPv6]:port */
        h = s + 1;
        hend = memchr(h, ']', an ? an - 1 : 0);
        colon = hend && hend + 1 < s + an && hend[1] == ':' ? hend + 1 : NULL;
        if (!hend || (hend + 1 < s + an && !colon)) hend = NULL;
    } else {
        colon = memchr(s, ':', an);
        hend = colon ? colon : s + an;
    }
    const size_t pn = colon ? (size_t)(s + an - colon - 1) : 0;
    bool ok = hend && hend > h && (size_t)(hend - h) < host_n && an < authority_n && pn < port_n && (!colon || pn);
    for (size_t i = 0; ok && i < pn; i++) ok = colon[1 + i] >= '0' && colon[1 + i] <= '9';
    if (ok && colon) ok = atol(colon + 1) >= 1 && atol(colon + 1) <= 65535;
    for (const char *c = s; ok && *c; c++) ok = (unsigned char)*c > ' ' && *c != 0x7f;
    if (!ok) {
        snprintf(err, errlen, "'%.200s' is not a URL loadgen can use (http://HOST[:PORT][/PATH])", url);
        return false;
    }
    snprintf(host, host_n, "%.*s", (int)(hend - h), h);
    snprintf(port, port_n, "%.*s", colon ? (int)pn : 2, colon ? colon + 1 : "80");
    snprintf(authority, authority_n, "%.*s", (int)an, s);
    return true;
}

/* Resolves host:port once, for every connection of the run, and keeps the first address that
 * takes a connection within timeout_ms: "localhost" may name ::1 first where the server
 * listens on 127.0.0.1 alone. Returns false with one sentence in err when none does. */
static bool resolve(plan *p, const char *host, const char *port, int32_t timeout_ms, char *err, size_t errlen) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    const int rc = getaddrinfo(host, port, &hints, &res);
    if (rc) {
        snprintf(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(rc));
        return false;
    }
    int e = 0;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        const int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            e = errno;
            continue;
        }
        e = connect(fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS ? errno : 0;
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        socklen_t n = sizeof e;
        if (!e && poll(&pf, 1, timeout_ms) != 1) e = ETIMEDOUT;
        if (!e && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &n)) e = errno;
        close(fd);
        if (!e && ai->ai_addrlen <= sizeof p->addr) {
            memcpy(&p->addr, ai->ai_addr, ai->ai_addrlen);
            p->addr_len = ai->ai_addrlen;
            freeaddrinfo(res);
            return true;
        }
    }
    freeaddrinfo(res);
    snprintf(err, errlen, "cannot connect to %s port %s: %s", host, port, strerror(e ? e : EAFNOSUPPORT));
    return false;
}

/* Request b of the run, whole: request line, headers and body, written with one send(). NULL
 * when out of memory; the caller frees. */
static char *make_request(const char *path, const char *authority, const char *key, const char *body, size_t body_len,
                          size_t *len) {
    ake_buf b = {0};
    ake_buf_printf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n",
                   path, authority, body_len);
    if (key) ake_buf_printf(&b, "Authorization: Bearer %s\r\n", key);
    ake_buf_puts(&b, "\r\n");
    ake_buf_put(&b, body, body_len);
    return b.oom ? (ake_buf_release(&b), NULL) : ake_buf_take(&b, len);
}

/* Request i fell due and the worker sees it at `now` (s since t0): records how late. */
static void note_due(worker *w, int64_t i, double now) {
    const plan *p = w->p;
    if (i < p->first_measured) return;
    const double lag = (now - (double)i / p->rate) * 1e3;
    w->lag[w->n_lag++] = lag;
    w->tail_n += i >= p->tail_from;
}

/* Counts the end of the request c carries: `status` is its response's, 0 when it failed on the
 * network (`why` says how). c carries none afterwards. */
static void finish(worker *w, conn *c, int32_t status, const char *why) {
    const plan *p = w->p;
    const bool ok = status >= 200 && status < 300;
    const double done = mono() - w->t0;
    w->ok_window += ok && done >= p->warm && done < p->warm + p->dur;
    if (c->i >= p->first_measured) {
        if (!status) {
            if (!w->net_err++) snprintf(w->net_why, sizeof w->net_why, "%s", why);
        } else if (!ok) {
            w->http_err++;
            w->status_count[status / 100]++; /* the parser takes 100-599 only */
        } else {
            w->ok++;
            w->lat[w->n_lat++] = (done - (double)c->i / p->rate) * 1e3;
        }
    }
    c->i = -1;
    w->in_flight--;
}

/* Closes c's connection, if open, and puts the slot on the closed stack; c carries no request. */
static void conn_close(worker *w, conn *c) {
    if (c->fd >= 0) close(c->fd); /* the socket's only descriptor: closing it takes it out of the epoll */
    c->fd = -1;
    c->connecting = c->out_watched = c->reused = false;
    c->slot = w->n_closed;
    w->closed[w->n_closed++] = c;
}

/* Takes idle c off the idle stack (the server closed it). */
static void idle_remove(worker *w, conn *c) {
    conn *last = w->idle[--w->n_idle];
    w->idle[c->slot] = last;
    last->slot = c->slot;
}

/* Registers c for EPOLLOUT as well (on) or EPOLLIN alone. Returns false (errno set) when epoll
 * refuses. */
static bool watch_out(worker *w, conn *c, bool on) {
    if (c->out_watched == on) return true;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0u), .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev)) return false;
    c->out_watched = on;
    return true;
}

/* Opens a connection in closed slot c (still on no stack), non-blocking; the connect completes
 * (or fails) by the first EPOLLOUT unless it did at once. Returns false with the reason in why. */
static bool conn_open(worker *w, conn *c, char *why, size_t why_n) {
    const plan *p = w->p;
    c->fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) goto err;
    /* a request leaves at once, not held back until the last response's segment is ACKed */
    const int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const int rc = connect(c->fd, (const struct sockaddr *)&p->addr, p->addr_len);
    if (rc && errno != EINPROGRESS) goto err;
    c->connecting = rc != 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev)) goto err;
    c->out_watched = true;
    return true;
err:
    snprintf(why, why_n, "cannot connect: %s", strerror(errno));
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->connecting = false;
    return false;
}

static void conn_send(worker *w, conn *c);

/* The request c carries failed on the network (why). A connection that has answered before and
 * fails before any byte of the next response most likely was closed by the server while idle
 * (its keep-alive timeout) just as the request left: as curl does, the request goes again, once,
 * on a fresh connection, keeping its due time and deadline. Otherwise it counts as a network
 * error and the slot closes. */
static void fail(worker *w, conn *c, const char *why) {
    char why2[160];
    if (c->reused && !c->got_bytes) {
        close(c->fd);
        c->fd = -1;
        c->reused = c->out_watched = false;
        if (conn_open(w, c, why2, sizeof why2)) {
            const int b = (int)(c->i % N_BODIES);
            c->out = w->p->reqs[b];
            c->out_left = w->p->req_len[b];
            ake_http_response_init(&c->resp);
            if (!c->connecting) conn_send(w, c);
            return;
        }
        why = why2;
    }
    finish(w, c, 0, why);
    conn_close(w, c);
}

/* Writes what is left of c's request; when the socket takes only part, waits for EPOLLOUT. */
static void conn_send(worker *w, conn *c) {
    char why[160];
    while (c->out_left) {
        const ssize_t n = send(c->fd, c->out, c->out_left, MSG_NOSIGNAL);
        if (n > 0) {
            c->out += n;
            c->out_left -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (watch_out(w, c, true)) return;
            break;
        } else {
            break;
        }
    }
    if (!c->out_left && watch_out(w, c, false)) return;
    snprintf(why, sizeof why, "%s: %s", c->out_left ? "send" : "epoll_ctl", strerror(errno));
    fail(w, c, why);
}

/* Gives request i, due now or earlier, to a connection: the idle one used last (its socket is
 * likeliest still warm in the server), else a closed slot opened anew. The caller makes sure
 * one is free (in_flight < max_conn). */
static void start(worker *w, int64_t i, double now) {
    const plan *p = w->p;
    AKE_ASSERT(w->n_idle + w->n_closed > 0);
    const bool fresh = w->n_idle == 0;
    conn *c = fresh ? w->closed[--w->n_closed] : w->idle[--w->n_idle];
    const int b = (int)(i % N_BODIES);
    c->i = i;
    c->out = p->reqs[b];
    c->out_left = p->req_len[b];
    c->deadline = now + p->timeout_ms * 1e-3;
    c->got_bytes = false;
    ake_http_response_init(&c->resp);
    if (c->deadline < w->next_deadline) w->next_deadline = c->deadline;
    w->in_flight++;
    w->sent++;
    if (fresh) {
        char why[160];
        if (!conn_open(w, c, why, sizeof why)) {
            finish(w, c, 0, why);
            conn_close(w, c);
            return;
        }
        if (c->connecting) return;
    }
    conn_send(w, c);
}

/* c's connect() completed, or failed. */
static void on_connected(worker *w, conn *c) {
    int e = 0;
    socklen_t n = sizeof e;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &n)) e = errno;
    if (e) {
        char why[160];
        snprintf(why, sizeof why, "cannot connect: %s", strerror(e));
        fail(w, c, why);
        return;
    }
    c->connecting = false;
    conn_send(w, c);
}

/* Reads what c's connection has: (part of) the response to its request, or the end of an idle
 * connection. */
static void on_readable(worker *w, conn *c) {
    char why[200];
    for (;;) {
        const ssize_t n = recv(c->fd, w->rbuf, RECV_BYTES, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (c->i < 0) { /* idle: the server closed it, or sent what no request asked for; either way it goes */
            idle_remove(w, c);
            conn_close(w, c);
            return;
        }
        if (n <= 0) {
            snprintf(why, sizeof why, "%s", n ? strerror(errno) : "the server closed the connection");
            fail(w, c, why);
            return;
        }
        c->got_bytes = true;
        size_t used;
        if (ake_http_response_feed(&c->resp, w->rbuf, (size_t)n, &used, why, sizeof why) != AKE_OK) {
            finish(w, c, 0, why);
            conn_close(w, c);
            return;
        }
        if (c->resp.done) {
            finish(w, c, c->resp.status, "");
            /* bytes past the response answer nothing we asked, and a response before the whole
             * request left (the server refused it early) leaves the rest of it unsent: neither
             * connection can carry another request */
            if (!c->resp.keep_alive || used < (size_t)n || c->out_left) {
                conn_close(w, c);
            } else {
                c->reused = true;
                c->slot = w->n_idle;
                w->idle[w->n_idle++] = c;
            }
            return;
        }
        if (n < RECV_BYTES) return;
    }
}

/* Ends the requests whose --timeout-ms ran out by `now`, closing their connections (a late
 * response must not be taken for the next request's), and finds the next deadline. Scans the
 * slots only once the earliest deadline it knows of has passed. */
static void expire(worker *w, double now) {
    if (now < w->next_deadline) return;
    double next = INFINITY;
    for (int32_t k = 0; k < w->max_conn; k++) {
        conn *c = &w->conns[k];
        if (c->i < 0) continue;
        if (c->deadline <= now) {
            char why[64];
            snprintf(why, sizeof why, "no response within %d ms", w->p->timeout_ms);
            finish(w, c, 0, why);
            conn_close(w, c);
        } else if (c->deadline < next) {
            next = c->deadline;
        }
    }
    w->next_deadline = next;
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

/* Sets up the worker's epoll, timerfd, connection slots (all closed) and receive buffer.
 * Returns false (w->err set) on failure. */
static bool worker_open(worker *w) {
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    w->armed = NAN;
    w->next_deadline = INFINITY;
    w->conns = calloc((size_t)w->max_conn, sizeof *w->conns);
    w->idle = malloc((size_t)w->max_conn * sizeof *w->idle);
    w->closed = malloc((size_t)w->max_conn * sizeof *w->closed);
    w->rbuf = malloc(RECV_BYTES);
    if (w->ep < 0 || w->tfd < 0 || !w->conns || !w->idle || !w->closed || !w->rbuf) {
        snprintf(w->err, sizeof w->err, "cannot create epoll or timerfd, or out of memory");
        return false;
    }
    for (int32_t k = w->max_conn - 1; k >= 0; k--) { /* slot 0 on top */
        w->conns[k].fd = -1;
        w->conns[k].i = -1;
        conn_close(w, &w->conns[k]);
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}; /* NULL: the timer, not a connection */
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->tfd, &ev)) {
        snprintf(w->err, sizeof w->err, "epoll_ctl: %s", strerror(errno));
        return false;
    }
    return true;
}

/* Releases what worker_open and the run allocated (not the sample arrays). */
static void worker_close(worker *w) {
    if (w->conns)
        for (int32_t k = 0; k < w->max_conn; k++)
            if (w->conns[k].fd >= 0) close(w->conns[k].fd);
    if (w->ep >= 0) close(w->ep);
    if (w->tfd >= 0) close(w->tfd);
    free(w->conns);
    free(w->idle);
    free(w->closed);
    free(w->rbuf);
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
    int64_t send_next = w->id; /* its first request not yet sent (<= due_next) */
    /* Spinning before lone requests costs up to SPIN_S of every gap between this worker's
     * requests; it is done only where that is at most a fifth of a core. */
    const bool spin = (double)step / p->rate >= 5 * SPIN_S;
    struct epoll_event evs[64];
    while (send_next < total || w->in_flight > 0) {
        const double now = mono() - w->t0;
        for (; due_next < total && (double)due_next / p->rate <= now; due_next += step) note_due(w, due_next, now);
        /* before the sends: the connections it frees take the requests waiting for one */
        expire(w, now);
        for (; send_next < due_next && w->in_flight < w->max_conn; send_next += step) start(w, send_next, now);
        if (send_next >= total && w->in_flight == 0) break;
        const double due = due_next < total ? (double)due_next / p->rate : INFINITY;
        if (spin && w->in_flight == 0 && due - (mono() - w->t0) < 0.05) {
            sleep_until(w, due);
            continue;
        }
        /* finite: with nothing in flight no request waits (all connections are free), so one is
         * still due; and one in flight has a deadline */
        const double wake = due < w->next_deadline ? due : w->next_deadline;
        AKE_ASSERT(isfinite(wake));
        arm(w, wake);
        const int n = epoll_wait(w->ep, evs, 64, -1);
        for (int k = 0; k < n; k++) {
            conn *c = evs[k].data.ptr;
            const uint32_t e = evs[k].events;
            if (!c) {
                w->armed = NAN; /* fired: the next arm() re-arms or disarms, which clears it */
            } else if (c->connecting) {
                on_connected(w, c);
            } else {
                if ((e & EPOLLOUT) && c->out_left) conn_send(w, c);
                /* the send may have closed the connection, or opened a fresh one (see fail) */
                if ((e & (EPOLLIN | EPOLLERR | EPOLLHUP)) && c->fd >= 0 && !c->connecting) on_readable(w, c);
            }
        }
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
    const char *given = strchr(scheme ? scheme + 3 : url, '/');
    if (!given || !strcmp(given, "/"))
        snprintf(full, sizeof full, "%.*s%s", (int)(given ? (size_t)(given - url) : strlen(url)), url,
                 openai ? "/v1/embeddings" : "/embed");
    else
        snprintf(full, sizeof full, "%s", url);
    char host[256], port[8], authority[300], err[512];
    const char *path;
    if (!split_url(full, host, sizeof host, port, sizeof port, authority, sizeof authority, &path, err, sizeof err)) {
        ake_cli_error("loadgen", "%s", err);
        return 2;
    }
    for (const char *c = key; c && *c; c++)
        if ((unsigned char)*c < ' ' || *c == 0x7f) {
            ake_cli_error("loadgen", "--api-key holds a control character, which cannot go into a header");
            return 2;
        }

    int rc = 1;
    plan *p = calloc(1, sizeof *p);
    worker *ws = calloc((size_t)threads, sizeof *ws);
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    double *lat = NULL, *lag = NULL, *tail = NULL;
    int32_t started = 0;
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
    for (int i = 0; i < N_BODIES; i++)
        if (!(p->reqs[i] = make_request(path, authority, key, p->bodies[i], p->body_len[i], &p->req_len[i]))) goto oom;
    if (!resolve(p, host, port, timeout_ms, err, sizeof err)) {
        ake_cli_error("loadgen", "%s", err);
        goto done;
    }
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
    /* Request 0 is due once every worker has its epoll and connection slots: creating them is not
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
    /* the counts say how many; the first one's reason says why, which a run that failed on the
     * network otherwise leaves to guessing */
    for (int32_t t = 0; t < threads && net_err; t++)
        if (ws[t].net_err) {
            fprintf(stderr, "loadgen: %lld requests failed on the network; the first of thread %d: %s\n",
                    (long long)net_err, t, ws[t].net_why);
            break;
        }
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
        for (int i = 0; i < N_BODIES; i++) {
            free(p->bodies[i]);
            free(p->reqs[i]);
        }
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
    }
    free(p);
    free(ws);
    free(tids);
    free(lat);
    free(lag);
    free(tail);
    return rc;
}
