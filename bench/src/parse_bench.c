/* Request parsing speed of the HTTP APIs (issue 9, fault 1: the JSON library change is
 * measured, not guessed). Times ake_api_parse_* + ake_api_request_release on bodies
 * shaped like real requests, in this process, one thread; prints µs per request and MB/s.
 *
 *   make build/bench/parse_bench && build/bench/parse_bench [seconds per case, default 1] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/api.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char *const words[] = {"the",    "quick", "brown",  "fox",    "jumps",  "over",  "lazy",
                                    "dog",    "vector", "search", "engine", "returns", "café", "naïve",
                                    "tab\\t", "line\\n", "quote\\\"", "\\u00e9t\\u00e9", "x", "y"};

/* {"inputs":[ n texts of w words ]} (TEI) */
static void tei_body(ake_buf *b, int n, int w, unsigned seed) {
    ake_buf_puts(b, "{\"inputs\":[");
    for (int i = 0; i < n; i++) {
        ake_buf_puts(b, i ? ",\"" : "\"");
        for (int k = 0; k < w; k++) {
            seed = seed * 1103515245u + 12345u;
            if (k) ake_buf_puts(b, " ");
            ake_buf_puts(b, words[(seed >> 16) % (sizeof words / sizeof *words)]);
        }
        ake_buf_puts(b, "\"");
    }
    ake_buf_puts(b, "],\"truncate\":true}");
}

/* {"model":"m","input":[[ids] x n]} (OpenAI token ids) */
static void openai_ids_body(ake_buf *b, int n, int len) {
    ake_buf_puts(b, "{\"model\":\"all-MiniLM-L6-v2\",\"input\":[");
    for (int i = 0; i < n; i++) {
        ake_buf_puts(b, i ? ",[101" : "[101");
        for (int k = 1; k < len - 1; k++) ake_buf_printf(b, ",%d", 1000 + (i * 131 + k * 17) % 28000);
        ake_buf_puts(b, ",102]");
    }
    ake_buf_puts(b, "]}");
}

static void run(const char *name, const ake_buf *b, bool openai, double seconds) {
    const ake_api_limits lim = {.max_client_batch_size = 1 << 20};
    ake_api_request r;
    ake_api_error e;
    long iters = 0;
    double t0 = now(), t;
    do {
        int rc = openai ? ake_api_parse_openai(b->data, b->len, &lim, &r, &e)
                        : ake_api_parse_tei_embed(b->data, b->len, &lim, &r, &e);
        if (rc) {
            fprintf(stderr, "%s: parse failed (%d): %s\n", name, rc, e.msg);
            exit(1);
        }
        ake_api_request_release(&r);
        iters++;
    } while ((t = now() - t0) < seconds);
    printf("%-28s %10zu bytes %12.2f us/request %9.1f MB/s\n", name, b->len, t / (double)iters * 1e6,
           (double)b->len * (double)iters / t / 1e6);
}

int main(int argc, char **argv) {
    const double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    static const struct { const char *name; int n, w; } tei[] = {
        {"tei 1 x 8 words", 1, 8}, {"tei 32 x 20 words", 32, 20}, {"tei 2048 x 128 words", 2048, 128}};
    for (size_t i = 0; i < sizeof tei / sizeof *tei; i++) {
        ake_buf b = {0};
        tei_body(&b, tei[i].n, tei[i].w, 1);
        run(tei[i].name, &b, false, seconds);
        ake_buf_release(&b);
    }
    ake_buf b = {0};
    openai_ids_body(&b, 64, 256);
    run("openai 64 x 256 token ids", &b, true, seconds);
    ake_buf_release(&b);
    return 0;
}
