#include "cli/progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void ake_progress_start(ake_progress *p, const char *label, int64_t total) {
    *p = (ake_progress){.label = label, .total = total > 0 ? total : 1, .t0 = now_s(), .tty = isatty(2)};
    p->last = p->t0;
}

static void print(ake_progress *p, int64_t done, double t, bool final) {
    const double el = t - p->t0, rate = el > 0 ? done / el : 0.0;
    const double eta = rate > 0 ? (p->total - done) / rate : 0.0;
    const int pct = (int)(100 * done / p->total);
    if (p->tty) {
        char bar[31];
        const int fill = (int)(30 * done / p->total);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r%-12s [%s] %3d%% %lld/%lld  %.0f/s  %s %.0fs ", p->label, bar, pct, (long long)done,
                (long long)p->total, rate, final ? "took" : "ETA", final ? el : eta);
        if (final) fputc('\n', stderr);
    } else {
        fprintf(stderr, "%s: %lld/%lld (%d%%) %.0f/s, %s %.0f s\n", p->label, (long long)done, (long long)p->total,
                pct, rate, final ? "took" : "ETA", final ? el : eta);
    }
    fflush(stderr);
}

void ake_progress_update(ake_progress *p, int64_t done) {
    const double t = now_s();
    const bool due = p->tty ? t - p->last >= 0.1
                            : (done - p->last_done) * 10 >= p->total || t - p->last >= 10.0;
    if (!due || done >= p->total) return;
    print(p, done, t, false);
    p->last = t;
    p->last_done = done;
}

void ake_progress_end(ake_progress *p) { print(p, p->total, now_s(), true); }

void ake_progress_cb(void *ctx, int32_t done) { ake_progress_update((ake_progress *)ctx, done); }
