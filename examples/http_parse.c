/*
 * The request-head parser and the responses shared by the http_hello
 * examples (see http_parse.h).
 */
#include "http_parse.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

size_t http_response(char *out, int status, const struct request *rq)
{
    const char *reason = "OK", *body = "Hello, world!";
    const char *connection = "";

    switch (status) {
    case 400:
        reason = body = "Bad Request";
        break;
    case 431:
        reason = body = "Request Header Fields Too Large";
        break;
    case 501:
        reason = body = "Not Implemented";
        break;
    case 505:
        reason = body = "HTTP Version Not Supported";
        break;
    }
    if (!rq->keep_alive)
        connection = "Connection: close\r\n";
    else if (rq->http10)
        connection = "Connection: keep-alive\r\n";
    int n = snprintf(out, HTTP_RESPONSE_MAX,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "%s\r\n%s",
                     status, reason, strlen(body), connection, rq->head ? "" : body);
    return n > 0 && n < HTTP_RESPONSE_MAX ? (size_t)n : 0;
}

size_t http_skip_empty_lines(const char *p, size_t n)
{
    size_t off = 0;
    while (n - off >= 2 && p[off] == '\r' && p[off + 1] == '\n')
        off += 2;
    return off;
}

static bool is_tchar(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static size_t token_len(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && is_tchar(p[i]))
        i++;
    return i;
}

/* Does the comma-separated list [p, p+n) hold `token` (case-insensitive)? */
static bool list_has(const char *p, size_t n, const char *token)
{
    size_t tl = strlen(token);

    while (n > 0) {
        while (n > 0 && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
            n--;
        }
        size_t len = token_len(p, n);
        if (len == tl && strncasecmp(p, token, tl) == 0)
            return true;
        while (n > 0 && *p != ',') {
            p++;
            n--;
        }
    }
    return false;
}

static int parse_content_length(const char *v, size_t n, struct request *rq, bool *seen)
{
    uint64_t value = 0;

    if (n == 0 || n > 18)
        return 400;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return 400;
        value = value * 10 + (uint64_t)(v[i] - '0');
    }
    if (*seen && value != rq->content_length)
        return 400;
    *seen = true;
    rq->content_length = value;
    return 0;
}

/* One header line [p, p+n), without its CRLF. */
static int parse_header(const char *p, size_t n, struct request *rq, bool *length_seen, bool *close,
                        bool *keep_alive)
{
    size_t name = token_len(p, n);

    if (name == 0 || name == n || p[name] != ':')
        return 400; /* also rejects obsolete line folding */
    const char *v = p + name + 1, *end = p + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vn = (size_t)(end - v);

    if (name == 14 && strncasecmp(p, "Content-Length", 14) == 0)
        return parse_content_length(v, vn, rq, length_seen);
    if (name == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0)
        return 501; /* chunked bodies are not supported: the framing is unknown */
    if (name == 10 && strncasecmp(p, "Connection", 10) == 0) {
        *close = *close || list_has(v, vn, "close");
        *keep_alive = *keep_alive || list_has(v, vn, "keep-alive");
    }
    return 0;
}

/*
 * Parse a request head [p, p+n), which ends with "\r\n\r\n".  Returns 0, or
 * the status of the error response.
 */
int http_parse_head(const char *p, size_t n, struct request *rq)
{
    const char *end = p + n - 2; /* the final empty line's CRLF */
    const char *eol = memchr(p, '\r', n);
    bool length_seen = false, close = false, keep_alive = false;

    *rq = (struct request){0};
    if (eol[1] != '\n')
        return 400; /* a CR alone */
    /* Request line: method SP target SP HTTP/1.x */
    size_t method = token_len(p, (size_t)(eol - p));
    if (method == 0 || p[method] != ' ')
        return 400;
    const char *target = p + method + 1;
    const char *sp = memchr(target, ' ', (size_t)(eol - target));
    if (!sp || sp == target)
        return 400;
    const char *version = sp + 1;
    size_t vlen = (size_t)(eol - version);
    if (vlen != 8 || strncmp(version, "HTTP/", 5) != 0 || version[6] != '.')
        return 400;
    if (version[5] != '1' || (version[7] != '0' && version[7] != '1'))
        return 505;
    rq->http10 = version[7] == '0';
    rq->head = method == 4 && strncmp(p, "HEAD", 4) == 0;

    /* Header lines, up to the empty line. */
    for (const char *line = eol + 2; line < end;) {
        const char *next = memchr(line, '\r', (size_t)(end + 2 - line));
        if (next[1] != '\n')
            return 400;
        int status =
            parse_header(line, (size_t)(next - line), rq, &length_seen, &close, &keep_alive);
        if (status)
            return status;
        line = next + 2;
    }
    rq->keep_alive = !close && (!rq->http10 || keep_alive);
    return 0;
}
