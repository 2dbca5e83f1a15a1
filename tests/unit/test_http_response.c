/* The response parser of loadgen's HTTP client: every response is fed whole, cut in two at every
 * byte offset and one byte at a time, and must read the same each way; bad responses must fail
 * with a sentence that says what is wrong, however they are cut. */
#include "test_util.h"

#include "base/http_response.h"

typedef struct {
    ake_status rc;
    int32_t status;
    bool keep_alive, done;
    size_t used; /* bytes consumed over all pieces */
    char err[256];
} outcome;

/* Feeds s[0..n) in pieces: cut at `cut` (0: whole), or one byte at a time when cut is SIZE_MAX.
 * Stops at the first error or once the response is done. */
static outcome feed(const char *s, size_t n, size_t cut) {
    ake_http_response r;
    ake_http_response_init(&r);
    outcome o = {0};
    size_t pos = 0;
    while (pos < n && !r.done) {
        const size_t piece = cut == SIZE_MAX ? 1 : pos < cut ? cut - pos : n - pos;
        size_t used = 0;
        o.rc = ake_http_response_feed(&r, s + pos, piece, &used, o.err, sizeof o.err);
        if (o.rc != AKE_OK) break;
        assert_true(used == piece || r.done); /* short only at the end of the response */
        pos += used;
    }
    o.status = r.status;
    o.keep_alive = r.keep_alive;
    o.done = r.done;
    o.used = pos;
    return o;
}

/* s must read as a complete response of `status` ending `len` bytes in (the rest is not its),
 * however it is cut. */
static void expect_ok(const char *s, size_t len, int32_t status, bool keep_alive) {
    const size_t n = strlen(s);
    for (size_t cut = 0; cut <= n + 1; cut++) {
        const size_t c = cut == n + 1 ? SIZE_MAX : cut;
        const outcome o = feed(s, n, c);
        if (o.rc != AKE_OK || !o.done || o.status != status || o.keep_alive != keep_alive || o.used != len)
            fail_msg("cut %zu of '%s': rc %d done %d status %d keep_alive %d used %zu (want %zu): %s", cut, s, o.rc,
                     o.done, o.status, o.keep_alive, o.used, len, o.err);
    }
}

/* s must fail with `want` and a message holding `needle`, however it is cut. */
static void expect_fail(const char *s, ake_status want, const char *needle) {
    const size_t n = strlen(s);
    for (size_t cut = 0; cut <= n + 1; cut++) {
        const outcome o = feed(s, n, cut == n + 1 ? SIZE_MAX : cut);
        if (o.rc != want || !strstr(o.err, needle))
            fail_msg("cut %zu of '%s': want status %d with '%s', got %d: %s", cut, s, want, needle, o.rc, o.err);
        assert_true(o.err[strlen(o.err) - 1] == '.'); /* one sentence */
    }
}

static void test_content_length(void **state) {
    (void)state;
    /* the server's own shape */
    const char *r = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n"
                    "Date: Sun, 29 Nov 2026 10:00:00 GMT\r\n\r\n[[0.0]]";
    expect_ok(r, strlen(r), 200, true);
    /* what follows the body is the next response's, not this one's */
    const char *two = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n";
    expect_ok(two, strlen("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"), 200, true);
    /* an empty body, a bare LF for CRLF, no reason phrase */
    expect_ok("HTTP/1.1 503\nContent-Length: 0\n\n", strlen("HTTP/1.1 503\nContent-Length: 0\n\n"), 503, true);
    /* an error status is a response all the same */
    const char *e = "HTTP/1.1 422 Unprocessable Entity\r\nContent-Length: 11\r\n\r\n{\"error\":1}";
    expect_ok(e, strlen(e), 422, true);
}

static void test_connection(void **state) {
    (void)state;
    const char *c = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx";
    expect_ok(c, strlen(c), 200, false);
    const char *c2 = "HTTP/1.1 200 OK\r\nconnection:  Upgrade , CLOSE\r\nContent-Length: 1\r\n\r\nx";
    expect_ok(c2, strlen(c2), 200, false);
    const char *h10 = "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx";
    expect_ok(h10, strlen(h10), 200, false);
    const char *h10k = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx";
    expect_ok(h10k, strlen(h10k), 200, true);
}

static void test_chunked(void **state) {
    (void)state;
    /* uvicorn's shape, with a chunk extension, upper-case hex and a trailer */
    const char *r = "HTTP/1.1 200 OK\r\nserver: uvicorn\r\ntransfer-encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\nA;name=v\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n";
    expect_ok(r, strlen(r), 200, true);
    const char *lf = "HTTP/1.1 200 OK\nTransfer-Encoding: gzip, chunked\n\n3\nabc\n0\n\n";
    expect_ok(lf, strlen(lf), 200, true);
    /* chunked wins over a Content-Length (RFC 9112 6.3) */
    const char *both = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n";
    expect_ok(both, strlen(both), 200, true);
}

static void test_no_body_and_interim(void **state) {
    (void)state;
    const char *nc = "HTTP/1.1 204 No Content\r\n\r\n";
    expect_ok(nc, strlen(nc), 204, true);
    const char *cont = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    expect_ok(cont, strlen(cont), 200, true);
}

static void test_long_lines(void **state) {
    (void)state;
    /* a long header that does not frame the body is skipped */
    char buf[2048];
    char pad[1001];
    memset(pad, 'a', 1000);
    pad[1000] = 0;
    snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nX-Long: %s\r\nContent-Length: 1\r\n\r\nx", pad);
    expect_ok(buf, strlen(buf), 200, true);
    snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\n%s: v\r\nContent-Length: 1\r\n\r\nx", pad);
    expect_ok(buf, strlen(buf), 200, true);
    /* one that does, cut, is an error rather than a guess */
    snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Length: 1%s\r\n\r\nx", pad);
    expect_fail(buf, AKE_ETOOLONG, "Content-Length");
    /* the header section is bounded */
    const size_t n = AKE_HTTP_HEADERS_MAX + 100;
    char *big = malloc(n + 1);
    assert_non_null(big);
    const char *head = "HTTP/1.1 200 OK\r\n";
    memcpy(big, head, strlen(head));
    for (size_t i = strlen(head); i < n; i += 10) memcpy(big + i, "X-A: 123\r\n", 10 <= n - i ? 10 : n - i);
    big[n] = 0;
    const outcome o = feed(big, n, 0);
    assert_int_equal(o.rc, AKE_ETOOLONG);
    assert_non_null(strstr(o.err, "headers longer"));
    free(big);
}

static void test_bad(void **state) {
    (void)state;
    expect_fail("HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n", AKE_EFORMAT, "bad HTTP status line");
    expect_fail("HTTP/1.1 2x0 OK\r\n\r\n", AKE_EFORMAT, "bad HTTP status line");
    expect_fail("HTTP/1.1 200OK\r\n\r\n", AKE_EFORMAT, "bad HTTP status line");
    expect_fail("SSH-2.0-OpenSSH_9.2\r\n", AKE_EFORMAT, "bad HTTP status line");
    expect_fail("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", AKE_EFORMAT, "no colon");
    expect_fail("HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\nx", AKE_EFORMAT, "header name");
    expect_fail("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", AKE_EFORMAT, "Content-Length");
    expect_fail("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", AKE_EFORMAT, "Content-Length");
    expect_fail("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", AKE_EFORMAT, "Content-Length");
    /* framing we do not read: a body that ends when the connection does */
    expect_fail("HTTP/1.1 200 OK\r\n\r\nuntil close", AKE_EUNSUPPORTED, "neither Content-Length");
    expect_fail("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", AKE_EUNSUPPORTED, "Transfer-Encoding");
    expect_fail("HTTP/1.1 101 Switching Protocols\r\n\r\n", AKE_EUNSUPPORTED, "101");
    /* chunks */
    expect_fail("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", AKE_EFORMAT, "chunk size line");
    expect_fail("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", AKE_EFORMAT,
                "longer than its size");
    expect_fail("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n", AKE_EFORMAT, "too large");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length), cmocka_unit_test(test_connection), cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_no_body_and_interim), cmocka_unit_test(test_long_lines), cmocka_unit_test(test_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
