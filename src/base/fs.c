#include "base/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *ake_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    while (a > 1 && dir[a - 1] == '/') a--;
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

bool ake_file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

ake_status ake_read_file(const char *path, size_t max_bytes, char **buf, size_t *len, char *err, size_t errlen) {
    *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return ake_errf(err, errlen, e == ENOENT ? AKE_ENOTFOUND : AKE_EIO, "cannot open %s: %s", path, strerror(e));
    }
    ake_status st = AKE_OK;
    long n = -1;
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && !S_ISREG(sb.st_mode)) {
        fclose(f);
        return ake_errf(err, errlen, AKE_EIO, "%s is not a regular file", path);
    }
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        st = ake_errf(err, errlen, AKE_EIO, "cannot read %s: %s", path, strerror(errno));
    } else if ((unsigned long)n > max_bytes) {
        st = ake_errf(err, errlen, AKE_ETOOLONG, "%s has %ld bytes, more than the %zu accepted", path, n, max_bytes);
    } else if (!(*buf = malloc((size_t)n + 1))) {
        st = ake_errf(err, errlen, AKE_ENOMEM, "out of memory reading %ld bytes of %s", n, path);
    } else if (fread(*buf, 1, (size_t)n, f) != (size_t)n) {
        st = ake_errf(err, errlen, AKE_EIO, "short read of %s", path);
    } else {
        (*buf)[n] = 0;
        *len = (size_t)n;
    }
    fclose(f);
    if (st != AKE_OK) {
        free(*buf);
        *buf = NULL;
    }
    return st;
}

ake_status ake_write_file_atomic_parts(const char *path, const ake_file_part *parts, int n, char *err,
                                      size_t errlen) {
    char *tmp = malloc(strlen(path) + 32);
    if (!tmp) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory");
    sprintf(tmp, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    bool ok = fd >= 0;
    for (int i = 0; ok && i < n; i++) {
        const char *data = parts[i].data;
        size_t done = 0;
        while (ok && done < parts[i].len) {
            ssize_t w = write(fd, data + done, parts[i].len - done);
            if (w < 0 && errno == EINTR) continue;
            ok = w > 0;
            done += w > 0 ? (size_t)w : 0;
        }
    }
    if (fd >= 0) {
        ok = ok && fsync(fd) == 0;
        ok = close(fd) == 0 && ok;
    }
    ok = ok && rename(tmp, path) == 0;
    const int saved = errno;
    if (!ok && fd >= 0) unlink(tmp);
    free(tmp);
    if (!ok) return ake_errf(err, errlen, AKE_EIO, "cannot write %s: %s", path, strerror(saved));
    return AKE_OK;
}

ake_status ake_write_file_atomic(const char *path, const char *data, size_t len, char *err, size_t errlen) {
    const ake_file_part part = {data, len};
    return ake_write_file_atomic_parts(path, &part, 1, err, errlen);
}
