#include "base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static atomic_int g_level = AKE_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

bool ake_log_parse_level(const char *s, ake_log_level *out) {
    for (int i = 0; i < 4; i++)
        if (s && !strcmp(s, level_names[i])) {
            *out = (ake_log_level)i;
            return true;
        }
    return false;
}

void ake_log_set_level(ake_log_level level) { atomic_store(&g_level, (int)level); }

bool ake_log_enabled(ake_log_level level) { return (int)level >= atomic_load_explicit(&g_level, memory_order_relaxed); }

void ake_log(ake_log_level level, const char *fmt, ...) {
    if (!ake_log_enabled(level)) return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ %-5s ", ts.tv_nsec / 1000000L, level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = m < 0 ? (size_t)n : (size_t)n + (size_t)m;
    if (len > sizeof line - 2) len = sizeof line - 2; /* cut long lines; keep the newline */
    line[len] = '\n';
    line[len + 1] = 0;
    fputs(line, stderr);
}
