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
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Messages quote what clients sent (a model name, a field): a control character is written
     * as \xNN, so no request can forge a log line or send escape codes to a terminal. */
    static const char hex[] = "0123456789abcdef";
    size_t len = (size_t)n;
    for (size_t i = 0; m > 0 && i < (size_t)m && i < sizeof msg - 1 && len < sizeof line - 6; i++) {
        const unsigned char c = (unsigned char)msg[i];
        if (c >= 0x20 && c != 0x7f) {
            line[len++] = (char)c;
        } else {
            line[len++] = '\\';
            line[len++] = 'x';
            line[len++] = hex[c >> 4];
            line[len++] = hex[c & 15];
        }
    }
    if (len > sizeof line - 2) len = sizeof line - 2; /* cut long lines; keep the newline */
    line[len] = '\n';
    line[len + 1] = 0;
    fputs(line, stderr);
}

bool ake_log_limit_pass(ake_log_limit *l, const char *what) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t w = atomic_load(&l->window);
    if ((int64_t)ts.tv_sec != w && atomic_compare_exchange_strong(&l->window, &w, (int64_t)ts.tv_sec))
        atomic_store(&l->passed, 0); /* one thread opens the new window */
    if (atomic_fetch_add(&l->passed, 1) >= l->per_s) {
        atomic_fetch_add(&l->suppressed, 1);
        return false;
    }
    ake_log_limit_flush(l, what);
    return true;
}

void ake_log_limit_flush(ake_log_limit *l, const char *what) {
    const int64_t n = atomic_exchange(&l->suppressed, 0);
    if (n > 0) ake_log(AKE_LOG_WARN, "%lld %s log lines suppressed (more than %d a second)", (long long)n, what, l->per_s);
}
