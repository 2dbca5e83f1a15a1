/* Progress of long CLI work on stderr: a bar redrawn in place on a terminal, plain lines
 * (at most one per 10 % or 10 s) when stderr is a file or a pipe, so logs stay readable. */
#ifndef AKE_CLI_PROGRESS_H
#define AKE_CLI_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *label;   /* borrowed, e.g. "calibrating" */
    int64_t total;       /* units of work (texts) */
    double t0, last;     /* seconds: start, last print */
    int64_t last_done;
    bool tty;
} ake_progress;

void ake_progress_start(ake_progress *p, const char *label, int64_t total);
/* done of total finished; prints when due. */
void ake_progress_update(ake_progress *p, int64_t done);
/* Final line with the elapsed time. */
void ake_progress_end(ake_progress *p);
/* ake_corpus_embed's callback shape: ctx is an ake_progress. */
void ake_progress_cb(void *ctx, int32_t done);

#endif
