/* http.h - one HTTP exchange with retries, on a per-thread libcurl handle.
 *
 * Each thread reuses one easy handle (kept in a pthread key, cleaned at
 * thread exit), so HTTP/1.1 connections stay alive between calls. Every
 * transfer has CURLOPT_CONNECTTIMEOUT = boxfs_opts.connect_timeout and a
 * low-speed limit (1 byte/s for boxfs_opts.io_timeout seconds): a stalled
 * server fails the call instead of hanging it. TLS is always verified
 * (boxfs_opts.cafile adds a CA bundle). SIGPIPE is ignored.
 *
 * Retries (up to boxfs_opts.retries more attempts, exponential backoff with
 * jitter, Retry-After seconds honoured; no retry starts unless it would end
 * within boxfs_opts.timeout of the first attempt even if the server stalls
 * for connect_timeout + io_timeout (+ 6 s: libcurl averages the speed over
 * ~5 s), so a dead or hung server fails one request within `timeout`, 60 s
 * by default; and once a request got no answer at all, no request starts
 * that could end more than `timeout` after that request's start, so a call
 * made of several requests fails within one `timeout` too; any answer ends
 * that state):
 *   - 429, 500, 502, 503, 504: always (Box did not act on the request or
 *     says to come back);
 *   - network errors: HTTP_IDEMPOTENT requests always; HTTP_UNSENT requests
 *     only when nothing of the request went out (connect errors). An
 *     HTTP_UNSENT request that failed after sending sets resp.ambiguous;
 *   - 401: auth_refresh() once, then again with the new token.
 *
 * Bodies: `pre`, then `fd_len` bytes read from `fd` at `fd_off` with pread
 * (streamed, never loaded whole), then `post`. Content-Length is always
 * sent. Responses: JSON/text bodies are collected up to HTTP_BODY_MAX
 * (larger answers fail with -EIO and a log line); with `buf` set, a 2xx
 * body goes into buf (at most cap bytes; for a 200 answer to a ranged
 * request the first `skip200` bytes are dropped) and only error bodies are
 * collected.
 *
 * Owner: http.c. */
#ifndef BOXFS_HTTP_H
#define BOXFS_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <curl/curl.h>

#define HTTP_BODY_MAX (16u << 20)

enum http_retry {
	HTTP_IDEMPOTENT,        /* GET, PUT metadata, DELETE, OPTIONS */
	HTTP_UNSENT,            /* POST, part PUT: network retry only if unsent */
};

struct http_req {
	const char *method;             /* "GET", "POST", "PUT", "DELETE", ... */
	const char *url;                /* full URL (no secrets in it) */
	const char *logpath;            /* what log lines show, e.g. "/files/123" */
	enum http_retry retry;
	struct curl_slist *headers;     /* extra headers (caller owns) */
	/* body: has_body = 0 sends none */
	int has_body;
	const void *pre;
	size_t pre_len;
	int fd;                         /* < 0: no file part */
	uint64_t fd_off, fd_len;
	const void *post;
	size_t post_len;
	/* download sink */
	void *buf;
	size_t cap;
	uint64_t skip200;
	int follow;                     /* follow redirects (downloads) */
	int no_auth;                    /* no Authorization (token endpoint) */
};

struct http_resp {
	long status;                    /* last HTTP status, 0 when none */
	char *body;                     /* NUL-terminated, or NULL */
	size_t len;
	size_t got;                     /* bytes written into req.buf */
	int retry_after;                /* seconds from the last answer, -1 none */
	int attempts;                   /* sends, counting curl's own re-sends */
	int ambiguous;                  /* failed after the request went out */
};

/* Once per process (also done by the first request). 0 or -errno. */
int http_init(void);
/* Free the calling thread's handle and global curl state (at exit). */
void http_cleanup(void);

/* Run the exchange. Returns 0 when an HTTP answer arrived (any status: look
 * at resp->status), -ETIMEDOUT for a timeout, -EIO for other transport
 * failures (logged), -ENOMEM, -EFBIG for an oversized response, -EACCES
 * when no token is loaded. resp is filled in every case; free it with
 * http_resp_free. */
int http_request(const struct http_req *req, struct http_resp *resp);
void http_resp_free(struct http_resp *resp);

/* Process-wide counters (for status output); read any time. */
struct http_counters {
	uint64_t requests;      /* attempts sent (each retry counts) */
	uint64_t retries;       /* attempts that were retries */
	uint64_t failures;      /* exchanges that ended in an error */
	uint64_t bytes_up;      /* request body bytes handed to the network */
	uint64_t bytes_down;    /* response body bytes received */
};
void http_get_counters(struct http_counters *out);

/* Retry delay in ms for attempt n (0-based) without Retry-After: 500 ms *
 * 2^n, capped at 30 s, times a jitter factor in [0.5, 1.5) from r01 in
 * [0, 1). Exposed for the unit test. */
long http_backoff_ms(int n, double r01);
/* Parse a Retry-After value: delta-seconds, or an HTTP-date (IMF-fixdate,
 * RFC 850 or asctime form, RFC 9110 5.6.7) meaning the seconds from `now`
 * until then (0 when it is past). Capped at 86400; -1 when malformed.
 * http_parse_retry_after uses the current time. */
int http_parse_retry_after(const char *v);
int http_parse_retry_after_at(const char *v, time_t now);
/* An HTTP-date in any of the three forms -> epoch seconds. 0 or -1. */
int http_parse_date(const char *v, time_t *out);

#endif
