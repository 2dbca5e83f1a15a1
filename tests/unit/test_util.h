/* Helpers shared by the cmocka unit tests. Include after <cmocka.h>'s prerequisites. */
#ifndef AKE_TEST_UTIL_H
#define AKE_TEST_UTIL_H

#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* Folder of the real default model (make test-unit sets AKE_MODEL_DIR). */
static inline const char *test_model_dir(void) {
    const char *d = getenv("AKE_MODEL_DIR");
    return d && *d ? d : "models/all-MiniLM-L6-v2";
}

/* Reads a whole file into a malloc'd, NUL-terminated buffer (caller frees); NULL on failure. */
static inline char *test_read_file(const char *path, size_t *len_out) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    if (buf) { buf[n] = 0; if (len_out) *len_out = (size_t)n; }
    return buf;
}

#endif
