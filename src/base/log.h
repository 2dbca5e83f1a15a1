/* One-line logs to stderr: "2024-05-01T12:00:00.123Z info  message".
 *
 * Each call formats the whole line first and writes it with one fputs, so lines
 * from different threads do not interleave. The level is process-wide. */
#ifndef AKE_BASE_LOG_H
#define AKE_BASE_LOG_H

#include <stdbool.h>

typedef enum { AKE_LOG_DEBUG = 0, AKE_LOG_INFO = 1, AKE_LOG_WARN = 2, AKE_LOG_ERROR = 3 } ake_log_level;

/* Parses "debug" / "info" / "warn" / "error"; false if none of these. */
bool ake_log_parse_level(const char *s, ake_log_level *out);
void ake_log_set_level(ake_log_level level);
bool ake_log_enabled(ake_log_level level);

void ake_log(ake_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
