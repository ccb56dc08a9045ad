/*
 * The HTTP/1.1 request-head parser and the responses of the http_hello
 * examples (examples/http_hello.c in task form, http_hello_cb.c in
 * callback form): just enough HTTP for "Hello, world!" to real clients.
 * examples/http_workers.c parses its requests with it too.
 */
#ifndef HTTP_PARSE_H
#define HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a request asks of its response. */
struct request {
    bool keep_alive;
    bool http10;
    bool head; /* HEAD: no body in the response */
    uint64_t content_length;
};

/* The most a response takes. */
#define HTTP_RESPONSE_MAX 256

/*
 * Parse a request head [p, p+n), which ends with "\r\n\r\n" (empty lines
 * before it must have been skipped).  Returns 0, or the status of the error
 * response (400, 501, 505); rq is filled either way.
 */
int http_parse_head(const char *p, size_t n, struct request *rq);

/*
 * Write the response to rq with this status (200, or an error: 400, 431,
 * 501, 505) into out[HTTP_RESPONSE_MAX]; returns its length.  A request
 * that does not keep the connection alive gets "Connection: close".
 */
size_t http_response(char *out, int status, const struct request *rq);

/* Skip the empty lines (CRLF) that may come before a request line (RFC
 * 9112, 2.2): how many bytes of [p, p+n) they take. */
size_t http_skip_empty_lines(const char *p, size_t n);

#endif /* HTTP_PARSE_H */
