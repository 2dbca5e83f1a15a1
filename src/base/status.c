#include "base/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

const char *ake_status_str(ake_status s) {
    switch (s) {
    case AKE_OK: return "ok";
    case AKE_EINVAL: return "invalid input";
    case AKE_EIO: return "I/O error";
    case AKE_ENOMEM: return "out of memory";
    case AKE_EFORMAT: return "malformed file";
    case AKE_ENOTFOUND: return "not found";
    case AKE_ETOOLONG: return "too long";
    case AKE_EUNSUPPORTED: return "unsupported";
    }
    return "unknown status";
}

ake_status ake_errf(char *err, size_t errlen, ake_status code, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

void ake_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "akidb-embed: assertion failed at %s:%d: %s\n", file, line, expr);
    abort();
}
