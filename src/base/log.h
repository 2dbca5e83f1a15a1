/* One-line logs to stderr: "2024-05-01T12:00:00.123Z info  message".
 *
 * Each call formats the whole line first and writes it with one fputs, so lines
 * from different threads do not interleave. The level is process-wide. */
#ifndef AKE_BASE_LOG_H
#define AKE_BASE_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum { AKE_LOG_DEBUG = 0, AKE_LOG_INFO = 1, AKE_LOG_WARN = 2, AKE_LOG_ERROR = 3 } ake_log_level;

/* Parses "debug" / "info" / "warn" / "error"; false if none of these. */
bool ake_log_parse_level(const char *s, ake_log_level *out);
void ake_log_set_level(ake_log_level level);
bool ake_log_enabled(ake_log_level level);

void ake_log(ake_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A rate limit for one kind of log line (failed requests: an overload must not flood the log).
 * Zero-initialize, set per_s. At most per_s lines pass in each one-second window; the first line
 * that passes after lines were held back is preceded by one saying how many, and so is
 * ake_log_limit_flush's line (at shutdown). Thread-safe. */
typedef struct {
    int32_t per_s;
    _Atomic int64_t window;     /* the current window: whole seconds of CLOCK_MONOTONIC */
    _Atomic int32_t passed;     /* lines passed in it */
    _Atomic int64_t suppressed; /* lines held back since the last report */
} ake_log_limit;

/* True when a line may be written now (the caller writes it); what: the kind of line, for the
 * report ("failed-request"). */
bool ake_log_limit_pass(ake_log_limit *l, const char *what);
/* Reports lines still held back, if any. */
void ake_log_limit_flush(ake_log_limit *l, const char *what);

#endif
