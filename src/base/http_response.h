/* An incremental parser of HTTP/1.1 responses, for `akidb-embed loadgen`'s own client: the
 * bytes of one response are fed as they arrive, in pieces cut anywhere, and the parser says
 * when the response is complete, its status, and whether the connection stays open. The body
 * is skipped, not kept: the load generator counts responses, it does not read them.
 *
 * What it reads (RFC 9112):
 *   status-line  = "HTTP/1." DIGIT SP 3DIGIT [ SP reason ] CRLF
 *   header lines = name ":" value CRLF, until an empty line; only Content-Length,
 *                  Transfer-Encoding and Connection matter, other headers are skipped
 *   body         = Content-Length bytes, or chunks (hex size [";" ext] CRLF data CRLF ...,
 *                  a zero size, trailer lines, an empty line) when the last transfer coding is
 *                  "chunked"; none after 1xx, 204 and 304
 * A bare LF ends a line as CRLF does. Interim 1xx responses (100 Continue) are skipped and the
 * final response follows. Anything else is an error: a malformed status line or header, a body
 * whose end only the closing of the connection would mark (neither length nor chunks), 101
 * Switching Protocols, or a line longer than the parser keeps when it matters (the status line,
 * the three headers, a chunk size). Every input is treated as hostile: sizes are checked for
 * overflow and the header section is bounded. */
#ifndef AKE_BASE_HTTP_RESPONSE_H
#define AKE_BASE_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

enum {
    AKE_HTTP_LINE_MAX = 256,          /* bytes of a line kept; longer lines are skipped where they do not matter */
    AKE_HTTP_HEADERS_MAX = 64 * 1024, /* bytes of a status line and headers at most */
};

typedef struct {
    /* results */
    int32_t status;  /* the final response's status code, once its status line is in; 0 before */
    bool keep_alive; /* the connection may carry the next request: HTTP/1.1 without "Connection:
                        close", or HTTP/1.0 with "Connection: keep-alive" */
    bool done;       /* the whole response, body included, is in */
    /* internal */
    uint8_t state;
    bool http10, chunked, has_length, conn_close, conn_keep;
    uint64_t length;   /* Content-Length */
    uint64_t left;     /* bytes of the body or of the current chunk still to skip */
    uint32_t line_len; /* bytes of the current line seen (kept: at most AKE_HTTP_LINE_MAX; saturates) */
    char last;         /* the current line's last byte seen (a CR before its LF is not part of it) */
    uint32_t head_len; /* bytes of the status line and headers seen */
    char line[AKE_HTTP_LINE_MAX];
} ake_http_response;

/* Makes r ready for the next response on a connection. */
void ake_http_response_init(ake_http_response *r);

/* Feeds buf[0..n), the next bytes of the response. Consumes bytes up to the end of the response
 * and stores how many in *used (less than n only once r->done: the rest belongs to no response
 * of ours). Returns AKE_OK, or AKE_EFORMAT / AKE_EUNSUPPORTED with one sentence in err when the
 * bytes are not a response it can read; r is then unusable until init. */
ake_status ake_http_response_feed(ake_http_response *r, const char *buf, size_t n, size_t *used, char *err,
                                  size_t errlen);

#endif
