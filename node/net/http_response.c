/* HTTP/1.1 responses the node writes: one format for every answer and every error. */
#include "net/http_response.h"

#include <stdio.h>

const char *sb_http_status_text(int status)
{
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

void sb_http_respond(struct evbuffer *out, int status, const char *content_type, const char *body,
                     size_t body_len, const char *extra, int head)
{
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\n"
                        "Server: switchboard\r\n"
                        "%s%s%s"
                        "Content-Length: %zu\r\n"
                        "Cache-Control: no-store\r\n"
                        "X-Content-Type-Options: nosniff\r\n"
                        "Connection: close\r\n"
                        "%s\r\n",
                        status, sb_http_status_text(status), content_type ? "Content-Type: " : "",
                        content_type ? content_type : "", content_type ? "\r\n" : "", body_len,
                        extra ? extra : "");
    if (body_len > 0 && !head)
        evbuffer_add(out, body, body_len);
}

void sb_http_error(struct evbuffer *out, int status, const char *why, const char *extra, int head)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "%d %s: %s\n", status, sb_http_status_text(status), why);
    sb_http_respond(out, status, "text/plain; charset=utf-8", body, (size_t)n, extra, head);
}
