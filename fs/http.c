/* http.c - libcurl exchanges with timeouts and retries (see http.h). */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "http.h"
#include "log.h"
#include "options.h"

static pthread_once_t http_once = PTHREAD_ONCE_INIT;
static pthread_key_t http_key;
static int http_init_rc;
static __thread unsigned int http_seed;
static struct http_counters http_cnt;

#define HTTP_COUNT(field, n) __atomic_add_fetch(&http_cnt.field, (n), __ATOMIC_RELAXED)

void http_get_counters(struct http_counters *out)
{
	out->requests = __atomic_load_n(&http_cnt.requests, __ATOMIC_RELAXED);
	out->retries = __atomic_load_n(&http_cnt.retries, __ATOMIC_RELAXED);
	out->failures = __atomic_load_n(&http_cnt.failures, __ATOMIC_RELAXED);
	out->bytes_up = __atomic_load_n(&http_cnt.bytes_up, __ATOMIC_RELAXED);
	out->bytes_down = __atomic_load_n(&http_cnt.bytes_down, __ATOMIC_RELAXED);
}

/* State of one attempt, handed to the curl callbacks. */
struct http_xfer {
	const struct http_req *rq;
	struct http_resp *rs;
	CURL *h;
	uint64_t pos;           /* body bytes handed to curl */
	uint64_t total;
	int short_read;         /* the file ended before fd_len */
	int read_err;
	int full;               /* download buffer filled: stopped on purpose */
	int too_big;
	uint64_t skipped;
	size_t cap;             /* allocated size of rs->body */
};

static void http_key_free(void *h)
{
	curl_easy_cleanup(h);
}

static void http_once_init(void)
{
	/* a peer closing a kept-alive socket must not kill the daemon */
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_ALL)) {
		http_init_rc = -EIO;
		return;
	}
	if (pthread_key_create(&http_key, http_key_free))
		http_init_rc = -ENOMEM;
}

int http_init(void)
{
	pthread_once(&http_once, http_once_init);
	return http_init_rc;
}

void http_cleanup(void)
{
	CURL *h;

	if (http_init_rc)
		return;
	h = pthread_getspecific(http_key);
	if (h) {
		curl_easy_cleanup(h);
		pthread_setspecific(http_key, NULL);
	}
}

static CURL *http_handle(void)
{
	CURL *h;

	if (http_init())
		return NULL;
	h = pthread_getspecific(http_key);
	if (h) {
		/* keeps the connection cache, drops every option */
		curl_easy_reset(h);
		return h;
	}
	h = curl_easy_init();
	if (h && pthread_setspecific(http_key, h)) {
		curl_easy_cleanup(h);
		h = NULL;
	}
	return h;
}

long http_backoff_ms(int n, double r01)
{
	double ms = 500;

	while (n-- > 0 && ms < 30000)
		ms *= 2;
	if (ms > 30000)
		ms = 30000;
	if (r01 < 0 || r01 >= 1)
		r01 = 0.5;
	return (long)(ms * (0.5 + r01));
}

/* Fixed-width decimal field of n digits at *p. -1 when not digits. */
static int http_num(const char **p, int n)
{
	int v = 0;

	while (n-- > 0) {
		if (!isdigit((unsigned char)**p))
			return -1;
		v = v * 10 + (*(*p)++ - '0');
	}
	return v;
}

/* 1..12 for "Jan".."Dec" at *p (exact case, as HTTP-date requires), else 0. */
static int http_month(const char **p)
{
	static const char m[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

	for (int i = 0; i < 12; i++)
		if (!strncmp(*p, m + 3 * i, 3)) {
			*p += 3;
			return i + 1;
		}
	return 0;
}

static int http_lit(const char **p, const char *lit)
{
	size_t n = strlen(lit);

	if (strncmp(*p, lit, n))
		return -1;
	*p += n;
	return 0;
}

/* "HH:MM:SS" into t. */
static int http_hms(const char **p, struct tm *t)
{
	if ((t->tm_hour = http_num(p, 2)) < 0 || http_lit(p, ":") ||
	    (t->tm_min = http_num(p, 2)) < 0 || http_lit(p, ":") ||
	    (t->tm_sec = http_num(p, 2)) < 0)
		return -1;
	return t->tm_hour > 23 || t->tm_min > 59 || t->tm_sec > 60 ? -1 : 0;
}

int http_parse_date(const char *v, time_t *out)
{
	static const char *const days[] = { "Mon", "Tue", "Wed", "Thu", "Fri",
					    "Sat", "Sun" };
	static const char *const longdays[] = { "Monday", "Tuesday",
		"Wednesday", "Thursday", "Friday", "Saturday", "Sunday" };
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31,
				     30, 31 };
	struct tm t;
	const char *p = v;
	int i, form = 0;
	time_t r;

	memset(&t, 0, sizeof(t));
	for (i = 0; i < 7 && !form; i++) {
		size_t n = strlen(longdays[i]);
		if (!strncmp(p, longdays[i], n) && p[n] == ',') {
			p += n + 1;
			form = 2;               /* RFC 850 */
		} else if (!strncmp(p, days[i], 3) && (p[3] == ',' || p[3] == ' ')) {
			form = p[3] == ',' ? 1 : 3;     /* IMF-fixdate, asctime */
			p += 4;
		}
	}
	if (form == 1) {        /* Sun, 06 Nov 1994 08:49:37 GMT */
		if (http_lit(&p, " ") || (t.tm_mday = http_num(&p, 2)) < 0 ||
		    http_lit(&p, " ") || !(t.tm_mon = http_month(&p)) ||
		    http_lit(&p, " ") || (t.tm_year = http_num(&p, 4)) < 0 ||
		    http_lit(&p, " ") || http_hms(&p, &t) || http_lit(&p, " GMT"))
			return -1;
	} else if (form == 2) { /* Sunday, 06-Nov-94 08:49:37 GMT */
		if (http_lit(&p, " ") || (t.tm_mday = http_num(&p, 2)) < 0 ||
		    http_lit(&p, "-") || !(t.tm_mon = http_month(&p)) ||
		    http_lit(&p, "-") || (t.tm_year = http_num(&p, 2)) < 0 ||
		    http_lit(&p, " ") || http_hms(&p, &t) || http_lit(&p, " GMT"))
			return -1;
		/* RFC 9110: a two-digit year more than 50 years ahead is past */
		t.tm_year += t.tm_year < 70 ? 2000 : 1900;
	} else if (form == 3) { /* Sun Nov  6 08:49:37 1994 */
		if (!(t.tm_mon = http_month(&p)) || http_lit(&p, " "))
			return -1;
		if (*p == ' ')
			p++, t.tm_mday = http_num(&p, 1);
		else
			t.tm_mday = http_num(&p, 2);
		if (t.tm_mday < 0 || http_lit(&p, " ") || http_hms(&p, &t) ||
		    http_lit(&p, " ") || (t.tm_year = http_num(&p, 4)) < 0)
			return -1;
	} else {
		return -1;
	}
	if (*p || t.tm_year < 1970 || t.tm_mday < 1 ||
	    t.tm_mday > mdays[t.tm_mon - 1])
		return -1;
	t.tm_year -= 1900;
	t.tm_mon -= 1;
	r = timegm(&t);
	if (r == (time_t)-1)
		return -1;
	*out = r;
	return 0;
}

int http_parse_retry_after_at(const char *v, time_t now)
{
	char buf[64];
	size_t n;
	long s = 0;
	time_t when;

	while (*v == ' ' || *v == '\t')
		v++;
	if (!isdigit((unsigned char)*v)) {
		/* an HTTP-date: the delay is the time until then */
		n = strlen(v);
		while (n > 0 && strchr(" \t\r\n", v[n - 1]))
			n--;
		if (n >= sizeof(buf))
			return -1;
		memcpy(buf, v, n);
		buf[n] = '\0';
		if (http_parse_date(buf, &when))
			return -1;
		if (when <= now)
			return 0;
		return when - now > 86400 ? 86400 : (int)(when - now);
	}
	while (isdigit((unsigned char)*v)) {
		s = s * 10 + (*v++ - '0');
		if (s > 86400)
			return 86400;
	}
	while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
		v++;
	return *v ? -1 : (int)s;
}

int http_parse_retry_after(const char *v)
{
	return http_parse_retry_after_at(v, time(NULL));
}

static size_t http_body_read(char *dst, size_t size, size_t n, void *arg)
{
	struct http_xfer *x = arg;
	const struct http_req *rq = x->rq;
	size_t want = size * n, done = 0;

	while (done < want && x->pos < x->total) {
		uint64_t p = x->pos;
		size_t k;

		if (p < rq->pre_len) {
			k = rq->pre_len - p;
			k = k < want - done ? k : want - done;
			memcpy(dst + done, (const char *)rq->pre + p, k);
		} else if (p < rq->pre_len + rq->fd_len) {
			uint64_t fp = p - rq->pre_len;
			uint64_t left = rq->fd_len - fp;
			ssize_t r;

			k = left < want - done ? left : want - done;
			r = pread(rq->fd, dst + done, k, (off_t)(rq->fd_off + fp));
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				x->read_err = errno;
				return CURL_READFUNC_ABORT;
			}
			if (r == 0) {
				/* the file shrank under us: never send less
				 * than the Content-Length we announced */
				x->short_read = 1;
				return CURL_READFUNC_ABORT;
			}
			k = (size_t)r;
		} else {
			uint64_t q = p - rq->pre_len - rq->fd_len;
			k = rq->post_len - q;
			k = k < want - done ? k : want - done;
			memcpy(dst + done, (const char *)rq->post + q, k);
		}
		done += k;
		x->pos += k;
	}
	return done;
}

/* curl rewinds the body when it re-sends on a fresh connection (a kept-alive
 * one turned out dead) or after a redirect. */
static int http_body_seek(void *arg, curl_off_t off, int origin)
{
	struct http_xfer *x = arg;

	if (origin != SEEK_SET || off < 0 || (uint64_t)off > x->total)
		return CURL_SEEKFUNC_CANTSEEK;
	/* a re-send inside curl counts as an attempt: callers use attempts
	 * to tell "my earlier try did it" from a real conflict */
	if (x->pos > 0)
		x->rs->attempts++;
	x->pos = (uint64_t)off;
	return CURL_SEEKFUNC_OK;
}

static int http_collect(struct http_xfer *x, const char *src, size_t n)
{
	struct http_resp *rs = x->rs;
	char *nb;

	if (rs->len + n > HTTP_BODY_MAX) {
		x->too_big = 1;
		return -1;
	}
	/* grow by doubling: exact-size reallocs copy a big answer
	 * quadratically (minutes for 16 MiB under ASan) */
	if (rs->len + n + 1 > x->cap) {
		size_t cap = x->cap ? x->cap : 4096;

		while (cap < rs->len + n + 1)
			cap *= 2;
		if (cap > HTTP_BODY_MAX + 1)
			cap = HTTP_BODY_MAX + 1;
		nb = realloc(rs->body, cap);
		if (!nb)
			return -1;
		rs->body = nb;
		x->cap = cap;
	}
	memcpy(rs->body + rs->len, src, n);
	rs->len += n;
	rs->body[rs->len] = '\0';
	return 0;
}

static size_t http_body_write(char *src, size_t size, size_t n, void *arg)
{
	struct http_xfer *x = arg;
	const struct http_req *rq = x->rq;
	size_t len = size * n, k;
	long st = 0;

	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &st);
	if (!rq->buf || st < 200 || st > 299)
		return http_collect(x, src, len) ? 0 : len;

	/* a server that ignored Range sends the file from byte 0 */
	if (st == 200 && x->skipped < rq->skip200) {
		uint64_t s = rq->skip200 - x->skipped;
		s = s < len ? s : len;
		x->skipped += s;
		src += s;
		len -= s;
		if (!len)
			return size * n;
	}
	k = rq->cap - x->rs->got;
	k = k < len ? k : len;
	memcpy((char *)rq->buf + x->rs->got, src, k);
	x->rs->got += k;
	if (k < len) {
		x->full = 1;	/* more than asked for: stop here */
		return 0;
	}
	return size * n;
}

static size_t http_header(char *line, size_t size, size_t n, void *arg)
{
	struct http_xfer *x = arg;
	size_t len = size * n;
	char v[32];

	if (len > 12 && !strncasecmp(line, "Retry-After:", 12)) {
		size_t k = len - 12 < sizeof(v) - 1 ? len - 12 : sizeof(v) - 1;
		memcpy(v, line + 12, k);
		v[k] = '\0';
		x->rs->retry_after = http_parse_retry_after(v);
	}
	return len;
}

/* The caller's headers plus ours; the auth line is wiped before freeing. */
static struct curl_slist *http_headers(const struct http_req *rq,
				       unsigned *gen, int *rc)
{
	struct curl_slist *l = NULL, *t, *c;
	char auth[AUTH_HEADER_MAX];

	if (rq->no_auth) {
		auth[0] = '\0';
		*rc = 0;
	} else if ((*rc = auth_header(auth, sizeof(auth), gen)) != 0) {
		return NULL;
	}
	for (c = rq->headers; c; c = c->next) {
		if (!(t = curl_slist_append(l, c->data)))
			goto oom;
		l = t;
	}
	/* no 100-continue round trip before each part */
	if (!(t = curl_slist_append(l, "Expect:")))
		goto oom;
	l = t;
	if (auth[0]) {
		if (!(t = curl_slist_append(l, auth)))
			goto oom;
		l = t;
	}
	explicit_bzero(auth, sizeof(auth));
	return l;
oom:
	explicit_bzero(auth, sizeof(auth));
	curl_slist_free_all(l);
	*rc = -ENOMEM;
	return NULL;
}

static void http_headers_free(struct curl_slist *l)
{
	struct curl_slist *c;

	for (c = l; c; c = c->next)
		if (!strncasecmp(c->data, "Authorization:", 14))
			explicit_bzero(c->data, strlen(c->data));
	curl_slist_free_all(l);
}

static void http_setopts(CURL *h, const struct http_req *rq,
			 struct http_xfer *x, struct curl_slist *hdr, char *err)
{
	curl_easy_setopt(h, CURLOPT_URL, rq->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT,
			 (long)(boxfs_opts.connect_timeout > 0 ? boxfs_opts.connect_timeout : 10));
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
			 (long)(boxfs_opts.io_timeout > 0 ? boxfs_opts.io_timeout : 30));
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (boxfs_opts.cafile)
		curl_easy_setopt(h, CURLOPT_CAINFO, boxfs_opts.cafile);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_USERAGENT, "boxfs/" BOXFS_VERSION);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, http_body_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, http_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	if (rq->follow) {
		curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
		curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	}
	if (rq->has_body) {
		curl_easy_setopt(h, CURLOPT_READFUNCTION, http_body_read);
		curl_easy_setopt(h, CURLOPT_READDATA, x);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, http_body_seek);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, x);
	}
	if (!strcmp(rq->method, "GET")) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	} else if (!strcmp(rq->method, "POST")) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		if (rq->has_body)
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)x->total);
		else
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
	} else if (!strcmp(rq->method, "PUT")) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->total);
		if (!rq->has_body) {
			curl_easy_setopt(h, CURLOPT_READFUNCTION, http_body_read);
			curl_easy_setopt(h, CURLOPT_READDATA, x);
		}
	} else {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
	}
}

static int http_status_retryable(long st)
{
	return st == 429 || st == 500 || st == 502 || st == 503 || st == 504;
}

static void http_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static double http_rand01(void)
{
	if (!http_seed)
		http_seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&http_seed;
	return rand_r(&http_seed) / ((double)RAND_MAX + 1);
}

/* One attempt. Returns 0 with rs->status set, or -errno (transport). */
static int http_attempt(CURL *h, const struct http_req *rq,
			struct http_resp *rs, unsigned *gen, int *sent)
{
	struct http_xfer x = { .rq = rq, .rs = rs, .h = h };
	char err[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdr;
	CURLcode cc;
	long reqsize = 0;
	int rc;

	free(rs->body);
	rs->body = NULL;
	rs->len = 0;
	rs->got = 0;
	rs->status = 0;
	rs->retry_after = -1;
	x.total = rq->has_body ? rq->pre_len + (rq->fd >= 0 ? rq->fd_len : 0) +
		rq->post_len : 0;
	hdr = http_headers(rq, gen, &rc);
	if (!hdr)
		return rc;
	/* every attempt starts from no options: a 401 refreshes the token
	 * on this same handle in between (a form POST), and its method, size
	 * and body must not leak into the retry (a DELETE went out with the
	 * form's Content-Length and waited for an answer that never came) */
	curl_easy_reset(h);
	http_setopts(h, rq, &x, hdr, err);
	HTTP_COUNT(requests, 1);
	cc = curl_easy_perform(h);
	HTTP_COUNT(bytes_up, x.pos);
	HTTP_COUNT(bytes_down, rs->len + rs->got);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &rs->status);
	curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &reqsize);
	/* drop the header list before curl could reuse it */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	http_headers_free(hdr);
	*sent = reqsize > 0;

	if (cc == CURLE_OK || (cc == CURLE_WRITE_ERROR && x.full))
		return 0;
	if (x.too_big) {
		log_err("http: %s %s: answer larger than %u bytes, refused",
			rq->method, rq->logpath, HTTP_BODY_MAX);
		return -EFBIG;
	}
	if (x.short_read || x.read_err) {
		log_err("http: %s %s: local file %s while sending", rq->method,
			rq->logpath, x.short_read ? "shrank" : strerror(x.read_err));
		return -EBADFD;	/* local, not worth a retry */
	}
	rs->status = 0;
	if (cc == CURLE_WRITE_ERROR)
		return -ENOMEM;
	log_warn("http: %s %s: %s", rq->method, rq->logpath,
		 err[0] ? err : curl_easy_strerror(cc));
	if (cc == CURLE_OPERATION_TIMEDOUT)
		return -ETIMEDOUT;
	return -EIO;
}

static long http_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static long http_limit_ms(void)
{
	return 1000L * (boxfs_opts.timeout > 0 ? boxfs_opts.timeout : 60);
}

/* Would an attempt starting after `ms` more of sleep end more than
 * `timeout` after `start` if the server makes no progress (connect and io
 * timeouts run out)? libcurl averages the speed over its last ~5 s, so an
 * attempt that sent a body before the stall fails up to that much after
 * io_timeout: HTTP_SPEED_LAG. */
#define HTTP_SPEED_LAG 6
static int http_past_deadline(long start, long ms)
{
	long worst = 1000L * ((boxfs_opts.connect_timeout > 0 ?
			       boxfs_opts.connect_timeout : 10) +
			      (boxfs_opts.io_timeout > 0 ?
			       boxfs_opts.io_timeout : 30) + HTTP_SPEED_LAG);

	return http_now_ms() - start + ms + worst > http_limit_ms();
}

/* The server is down: a request got no answer at all. Right after that
 * (HTTP_DOWN_GRACE), no request starts that could end more than `timeout`
 * after the failed request's start, so a call that makes several requests
 * in a row (a lookup and a mkdir, a commit and its abort) still fails
 * within `timeout` instead of once per request. Any answer ends it, and so
 * does a quiet moment: the next call, a while later, tries again. */
#define HTTP_DOWN_GRACE 2000
static pthread_mutex_t http_down_lock = PTHREAD_MUTEX_INITIALIZER;
static long http_down_since = -1;       /* ms, -1: not down */
static long http_down_end;              /* ms: when that failure came back */
static int http_down_rc;

/* The start of the current down window (or `start`); *rc its error when a
 * request starting now may not run. */
static long http_down_check(long start, int *rc)
{
	long base = start;

	*rc = 0;
	pthread_mutex_lock(&http_down_lock);
	if (http_down_since >= 0 &&
	    http_now_ms() - http_down_end > HTTP_DOWN_GRACE)
		http_down_since = -1;
	if (http_down_since >= 0 && http_down_since < start) {
		base = http_down_since;
		if (http_past_deadline(base, 0))
			*rc = http_down_rc;
	}
	pthread_mutex_unlock(&http_down_lock);
	return base;
}

static void http_down_set(long start, int rc)
{
	pthread_mutex_lock(&http_down_lock);
	if (rc == 0) {
		http_down_since = -1;
	} else {
		if (http_down_since < 0 || start < http_down_since) {
			http_down_since = start;
			http_down_rc = rc;
		}
		http_down_end = http_now_ms();
	}
	pthread_mutex_unlock(&http_down_lock);
}

static int http_request_loop(const struct http_req *rq, struct http_resp *rs)
{
	int max = boxfs_opts.retries > 0 ? boxfs_opts.retries : 0;
	int retries = 0, refreshed = 0, rc;
	long start = http_now_ms(), base;
	CURL *h;

	memset(rs, 0, sizeof(*rs));
	rs->retry_after = -1;
	h = http_handle();
	if (!h)
		return -ENOMEM;
	base = http_down_check(start, &rc);
	if (rc) {
		log_warn("http: %s %s: not sent, the server gave no answer for "
			 "%ld s (timeout=%d s)", rq->method, rq->logpath,
			 (start - base) / 1000, boxfs_opts.timeout);
		return rc;
	}
	for (;;) {
		unsigned gen = 0;
		int sent = 0;
		long ms;

		rs->attempts++;
		rc = http_attempt(h, rq, rs, &gen, &sent);
		if (rc == -EBADFD)
			return -EIO;
		if (rc == -ENOMEM || rc == -EFBIG || rc == -ENOKEY)
			return rc == -ENOKEY ? -EACCES : rc;
		http_down_set(start, rc);
		if (!rc && rs->status == 401 && !refreshed && !rq->no_auth) {
			refreshed = 1;
			if (!auth_refresh(gen)) {
				log_info("http: %s %s: token refreshed, again",
					 rq->method, rq->logpath);
				continue;
			}
			return 0;
		}
		if (!rc && !http_status_retryable(rs->status))
			return 0;
		if (rc && rq->retry == HTTP_UNSENT && sent) {
			/* the server may have acted on it: the caller decides */
			rs->ambiguous = 1;
			return rc;
		}
		if (retries >= max)
			return rc;
		ms = http_backoff_ms(retries, http_rand01());
		if (!rc && rs->retry_after >= 0)
			ms = rs->retry_after * 1000L;
		/* a FUSE caller is waiting: never past boxfs_opts.timeout */
		if (http_past_deadline(base, ms)) {
			log_warn("http: %s %s: no retry, it could end after "
				 "timeout=%d s", rq->method, rq->logpath,
				 boxfs_opts.timeout);
			return rc;
		}
		retries++;
		HTTP_COUNT(retries, 1);
		if (rc)
			log_warn("http: %s %s: retry %d/%d in %ld ms", rq->method,
				 rq->logpath, retries, max, ms);
		else
			log_warn("http: %s %s: status %ld, retry %d/%d in %ld ms",
				 rq->method, rq->logpath, rs->status, retries,
				 max, ms);
		http_sleep_ms(ms);
	}
}

int http_request(const struct http_req *rq, struct http_resp *rs)
{
	int rc = http_request_loop(rq, rs);

	if (rc || rs->status >= 400)
		HTTP_COUNT(failures, 1);
	return rc;
}

void http_resp_free(struct http_resp *rs)
{
	free(rs->body);
	rs->body = NULL;
	rs->len = 0;
}
