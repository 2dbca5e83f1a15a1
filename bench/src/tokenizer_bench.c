/* Tokenizer throughput: every line of a text file through ake_tokenizer_encode, ROUNDS times,
 * best round reported (the machine is shared: the minimum is the least disturbed measure).
 *
 *   make build/bench/tokenizer_bench
 *   build/bench/tokenizer_bench [--spans] [--rounds N] [--model DIR] [FILE]
 *
 * FILE defaults to tests/golden/quant_eval.txt (one short English text a line, ~0.8 MB);
 * --spans times ake_tokenizer_encode_spans (byte spans too) instead. No truncation, so
 * every byte is tokenized. Prints MB/s of input text and tokens/s (specials included).
 * Time is this thread's CPU time (CLOCK_THREAD_CPUTIME_ID), not wall time: on a shared
 * machine, time spent descheduled would otherwise drown the differences we look for. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "text/tokenizer.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    const char *model = "models/all-MiniLM-L6-v2", *path = "tests/golden/quant_eval.txt";
    int rounds = 15, spans = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--spans")) spans = 1;
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: tokenizer_bench [--spans] [--rounds N] [--model DIR] [FILE]\n");
            return 2;
        } else path = argv[i];
    }
    if (rounds < 1) rounds = 1;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "tokenizer_bench: cannot open %s\n", path);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "tokenizer_bench: cannot read %s\n", path);
        return 1;
    }
    fclose(f);
    buf[size] = '\n';

    char err[512];
    ake_tokenizer *tok = NULL;
    if (ake_tokenizer_load(model, &tok, err, sizeof err) != AKE_OK) {
        fprintf(stderr, "tokenizer_bench: %s\n", err);
        return 1;
    }
    ake_tokens out = {0};
    double best = 1e30;
    long long tokens = 0, lines = 0;
    for (int r = 0; r < rounds; r++) {
        tokens = lines = 0;
        double t0 = now_s();
        for (char *p = buf, *end = buf + size; p < end;) {
            char *nl = memchr(p, '\n', (size_t)(end - p) + 1);
            ake_status st = spans ? ake_tokenizer_encode_spans(tok, p, (size_t)(nl - p), 0, AKE_TRUNCATE_RIGHT, &out,
                                                               err, sizeof err)
                                  : ake_tokenizer_encode(tok, p, (size_t)(nl - p), 0, AKE_TRUNCATE_RIGHT, &out, err,
                                                         sizeof err);
            if (st != AKE_OK) {
                fprintf(stderr, "tokenizer_bench: line %lld: %s\n", lines + 1, err);
                return 1;
            }
            tokens += out.n;
            lines++;
            p = nl + 1;
        }
        double dt = now_s() - t0;
        if (dt < best) best = dt;
    }
    printf("%s: %s, %lld lines, %.2f MB, best of %d: %.1f ms = %.1f MB/s, %.2f M tokens/s\n",
           spans ? "encode_spans" : "encode", path, lines, size / 1e6, rounds, best * 1e3, size / 1e6 / best,
           tokens / 1e6 / best);
    ake_tokens_release(&out);
    ake_tokenizer_free(tok);
    free(buf);
    return 0;
}
