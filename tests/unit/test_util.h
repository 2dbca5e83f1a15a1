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
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* A fresh folder under /tmp (malloc'd path, caller frees); fails the test if it cannot. */
static inline char *test_tmp_dir(void) {
    char *d = strdup("/tmp/ake_test_XXXXXX");
    assert_non_null(d);
    assert_non_null(mkdtemp(d));
    return d;
}

static inline int test_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* Removes dir with everything under it. */
static inline void test_rm_rf(const char *dir) { nftw(dir, test_rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

/* Writes len bytes to dir/rel (rel's folder must exist); fails the test if it cannot. */
static inline void test_write_file(const char *dir, const char *rel, const void *data, size_t len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot create %s", path);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* test_write_file of a NUL-terminated text. */
static inline void test_put_file(const char *dir, const char *rel, const char *text) {
    test_write_file(dir, rel, text, strlen(text));
}

#endif
