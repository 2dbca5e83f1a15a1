/* Status codes, error buffers and assertions shared by every room.
 *
 * Recoverable failures (bad files, bad input) return a negative ake_status and
 * write one sentence naming the file, tensor, field or input at fault into a
 * caller-supplied buffer. Broken invariants (bugs) abort through AKE_ASSERT. */
#ifndef AKE_BASE_STATUS_H
#define AKE_BASE_STATUS_H

#include <stddef.h>

typedef enum {
    AKE_OK = 0,
    AKE_EINVAL = -1,      /* bad argument or bad input from a user */
    AKE_EIO = -2,         /* a file could not be opened, read or mapped */
    AKE_ENOMEM = -3,      /* an allocation failed */
    AKE_EFORMAT = -4,     /* a file's content is malformed */
    AKE_ENOTFOUND = -5,   /* a required file, tensor or field is missing */
    AKE_ETOOLONG = -6,    /* an input exceeds a limit */
    AKE_EUNSUPPORTED = -7 /* valid but not something we implement */
} ake_status;

/* Short name of a status ("invalid input", ...). Static string, never freed. */
const char *ake_status_str(ake_status s);

/* printf-style: writes the message into err (if err && errlen) and returns code.
 * Lets error paths read `return ake_errf(err, errlen, AKE_EFORMAT, "...", ...);`. */
ake_status ake_errf(char *err, size_t errlen, ake_status code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Aborts with file:line and the expression; for bugs, never for bad input. */
void ake_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
#define AKE_ASSERT(cond) ((cond) ? (void)0 : ake_assert_fail(#cond, __FILE__, __LINE__))

#endif
