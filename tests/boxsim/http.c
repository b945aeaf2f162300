/* http.c - libmicrohttpd glue: request life cycle, auth, faults, request log
 * and the /_sim control endpoint. */
#include "bs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define BODY_MAX (1 << 20)	/* JSON/form bodies we buffer */

static FILE *log_fp;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t stop_flag;

static double now_f(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

void http_log_open(const char *path)
{
	log_fp = fopen(path, "a");
	if (!log_fp) {
		fprintf(stderr, "boxsim: cannot open log %s: %s\n", path,
			strerror(errno));
		exit(2);
	}
}

const char *http_header(struct req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_arg(struct req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND,
					   name);
}

void http_respond(struct req *r, int status, struct MHD_Response *resp)
{
	if (!resp) {
		status = 500;
		resp = MHD_create_response_from_buffer(0, (void *)"",
						       MHD_RESPMEM_PERSISTENT);
		if (!resp)
			return;
	}
	if (r->resp) {
		MHD_destroy_response(resp);
		return;
	}
	r->resp = resp;
	r->status = status;
}

static struct MHD_Response *json_resp(cJSON *obj)
{
	char *s = obj ? cJSON_PrintUnformatted(obj) : NULL;
	struct MHD_Response *resp;

	cJSON_Delete(obj);
	if (!s)
		return NULL;
	resp = MHD_create_response_from_buffer(strlen(s), s,
					       MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(s);
		return NULL;
	}
	MHD_add_response_header(resp, "Content-Type", "application/json");
	return resp;
}

void http_json(struct req *r, int status, cJSON *obj)
{
	http_respond(r, status, json_resp(obj));
}

void http_empty(struct req *r, int status)
{
	http_respond(r, status, MHD_create_response_from_buffer(0, (void *)"",
						MHD_RESPMEM_PERSISTENT));
}

static void request_id(char *buf)
{
	static const char hx[] = "0123456789abcdef";
	int i;

	for (i = 0; i < 16; i++)
		buf[i] = hx[random() % 16];
	buf[16] = 0;
}

void http_error(struct req *r, int status, const char *code,
		const char *msg, cJSON *ctx)
{
	cJSON *o = cJSON_CreateObject();
	char rid[17];

	if (r->resp || !o) {
		cJSON_Delete(ctx);
		cJSON_Delete(o);
		if (!r->resp)
			http_respond(r, 500, NULL);
		return;
	}
	request_id(rid);
	cJSON_AddStringToObject(o, "type", "error");
	cJSON_AddNumberToObject(o, "status", status);
	cJSON_AddStringToObject(o, "code", code);
	if (ctx)
		cJSON_AddItemToObject(o, "context_info", ctx);
	cJSON_AddStringToObject(o, "help_url",
		"https://developer.box.com/guides/api-calls/permissions-and-errors/common-errors/");
	cJSON_AddStringToObject(o, "message", msg);
	cJSON_AddStringToObject(o, "request_id", rid);
	http_json(r, status, o);
}

void http_unauthorized(struct req *r)
{
	http_error(r, 401, "unauthorized", "Unauthorized", NULL);
	if (r->resp && r->status == 401)
		MHD_add_response_header(r->resp, "WWW-Authenticate",
			"Bearer realm=\"Service\", error=\"invalid_token\", "
			"error_description=\"The access token provided is invalid.\"");
}

cJSON *http_body_json(struct req *r, int required)
{
	cJSON *j;

	if (!r->blen) {
		if (required)
			http_error(r, 400, "bad_request",
				   "A JSON request body is required", NULL);
		return NULL;
	}
	if (parse_json_has_nul(r->body, r->blen)) {
		http_error(r, 400, "bad_request",
			   "JSON strings must not contain NUL characters", NULL);
		return NULL;
	}
	j = cJSON_ParseWithLength(r->body, r->blen);
	if (!j || !cJSON_IsObject(j)) {
		cJSON_Delete(j);
		http_error(r, 400, "bad_request",
			   "Could not parse JSON request body", NULL);
		return NULL;
	}
	return j;
}

struct qbuf {
	char *buf;
	size_t len, cap;
};

/* Re-encodes one query argument (MHD hands them decoded). */
static enum MHD_Result query_cb(void *cls, enum MHD_ValueKind kind,
				const char *key, const char *value)
{
	struct qbuf *q = cls;
	int n;

	(void)kind;
	n = snprintf(q->buf + q->len, q->cap - q->len, "%s%s%s%s",
		     q->len ? "&" : "", key, value ? "=" : "",
		     value ? value : "");
	if (n < 0 || (size_t)n >= q->cap - q->len)
		return MHD_NO;
	q->len += (size_t)n;
	return MHD_YES;
}

static void log_request(struct req *r)
{
	cJSON *o;
	char *s;

	if (!log_fp || r->sim)
		return;
	o = cJSON_CreateObject();
	if (!o)
		return;
	cJSON_AddNumberToObject(o, "t",
				(double)(int64_t)(r->t0 * 1000000) / 1000000);
	cJSON_AddStringToObject(o, "method", r->method);
	cJSON_AddStringToObject(o, "path", r->path);
	cJSON_AddStringToObject(o, "query", r->query);
	cJSON_AddNumberToObject(o, "status", r->status);
	if (r->content_range[0])
		cJSON_AddStringToObject(o, "content_range", r->content_range);
	else
		cJSON_AddNullToObject(o, "content_range");
	cJSON_AddNumberToObject(o, "bytes", (double)r->bytes);
	if (r->fault)
		cJSON_AddStringToObject(o, "fault", r->fault);
	else
		cJSON_AddNullToObject(o, "fault");
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!s)
		return;
	pthread_mutex_lock(&log_lock);
	fprintf(log_fp, "%s\n", s);
	fflush(log_fp);
	pthread_mutex_unlock(&log_lock);
	free(s);
}

static void sim_route(struct req *r)
{
	char err[256];
	cJSON *o, *spec;
	int id;

	if (!strcmp(r->path, "/_sim/faults")) {
		if (!strcmp(r->method, "GET")) {
			o = cJSON_CreateObject();
			if (o)
				cJSON_AddItemToObject(o, "faults", fault_list());
			http_json(r, 200, o);
		} else if (!strcmp(r->method, "DELETE")) {
			fault_clear();
			http_empty(r, 204);
		} else if (!strcmp(r->method, "POST")) {
			o = http_body_json(r, 1);
			if (!o)
				return;
			spec = cJSON_GetObjectItemCaseSensitive(o, "spec");
			if (!cJSON_IsString(spec)) {
				cJSON_Delete(o);
				http_error(r, 400, "bad_request",
					   "spec (string) required", NULL);
				return;
			}
			id = fault_add(spec->valuestring, err, sizeof(err));
			cJSON_Delete(o);
			if (id < 0) {
				http_error(r, 400, "bad_request", err, NULL);
				return;
			}
			o = cJSON_CreateObject();
			if (o)
				cJSON_AddNumberToObject(o, "id", id);
			http_json(r, 201, o);
		} else {
			http_error(r, 405, "method_not_allowed",
				   "Method Not Allowed", NULL);
		}
	} else if (!strcmp(r->path, "/_sim/stats") &&
		   !strcmp(r->method, "GET")) {
		o = cJSON_CreateObject();
		if (!o) {
			http_respond(r, 500, NULL);
			return;
		}
		pthread_mutex_lock(&bs_stats_lock);
		cJSON_AddNumberToObject(o, "requests", (double)bs_stats.requests);
		cJSON_AddNumberToObject(o, "faults_fired",
					(double)bs_stats.faults_fired);
		cJSON_AddNumberToObject(o, "bytes_received",
					(double)bs_stats.bytes_received);
		pthread_mutex_unlock(&bs_stats_lock);
		cJSON_AddNumberToObject(o, "sessions_open",
					(double)upl_sessions_open());
		http_json(r, 200, o);
	} else {
		http_error(r, 404, "not_found", "Not Found", NULL);
	}
}

/* kind=corrupt, body=length: Content-Length says more than is sent, then
 * the connection closes. */
static const char short_body[] = "{\"type\":\"file\",\"id\":\"1\",\"na";

static ssize_t short_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	size_t n = sizeof(short_body) - 1;

	(void)cls;
	if (pos >= n)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	n -= (size_t)pos;
	n = n < max ? n : max;
	memcpy(buf, short_body + pos, n);
	return (ssize_t)n;
}

/* kind=corrupt: a malformed answer with the fault's status (README). */
static void corrupt_respond(struct req *r, const struct fault_spec *f)
{
	static const char *const canned[] = {
		[FB_TRUNCATED] = "{\"total_count\":2,\"entries\":[{\"type\":"
			"\"file\",\"id\":\"12345\",\"name\":\"trunc",
		[FB_NOTJSON] = "<html><body><h1>502 Bad Gateway</h1></body></html>\n",
		[FB_TYPES] = "{\"type\":\"file\",\"id\":{\"id\":\"1\"},\"name\":7,"
			"\"size\":\"abc\",\"sha1\":[],\"parent\":\"0\","
			"\"entries\":{\"0\":1},\"next_marker\":5,\"part\":\"x\","
			"\"part_size\":\"abc\",\"total_parts\":-1,"
			"\"space_amount\":\"abc\",\"space_used\":{},\"login\":1}",
		[FB_MISSING] = "{\"total_count\":0,\"limit\":1000}",
#define NAMED(id, n) "{\"type\":\"file\",\"id\":\"" id "\",\"name\":\"" n \
	"\",\"size\":3,\"item_status\":\"active\"}"
		[FB_NAMES] = "{\"limit\":1000,\"entries\":[" NAMED("9001", "a/b") ","
			NAMED("9002", ".") "," NAMED("9003", "..") ","
			NAMED("9004", "x\\u0000y") "," NAMED("9005", "") ","
			NAMED("9006", "\\u0000") "," NAMED("9007", "ok.txt") ","
			NAMED("9008", "OK.TXT") ",{\"type\":\"web_link\",\"id\":"
			"\"9009\",\"name\":\"link\"},{\"type\":\"file\",\"id\":"
			"\"9010\",\"name\":\"gone\",\"item_status\":\"trashed\"},"
			"{\"type\":\"file\",\"id\":\"../9011\",\"name\":\"badid\"},"
			"{\"type\":\"folder\",\"id\":\"9012\",\"name\":\"sub\"}]}",
#undef NAMED
	};
	struct MHD_Response *resp = NULL;
	char *b;
	size_t n, depth = 100000;

	switch (f->body) {
	case FB_TRUNCATED: case FB_NOTJSON: case FB_TYPES: case FB_MISSING:
	case FB_NAMES:
		resp = MHD_create_response_from_buffer(strlen(canned[f->body]),
				(void *)canned[f->body], MHD_RESPMEM_PERSISTENT);
		break;
	case FB_HUGE:	/* whitespace, then an empty object */
		n = (size_t)f->bytes;
		b = malloc(n + 2);
		if (b) {
			memset(b, ' ', n);
			memcpy(b + n, "{}", 2);
			resp = MHD_create_response_from_buffer(n + 2, b,
						MHD_RESPMEM_MUST_FREE);
			if (!resp)
				free(b);
		}
		break;
	case FB_DEEP:	/* {"entries":[[[...]]]} nested 100000 deep */
		n = 12 + 2 * depth;
		b = malloc(n);
		if (b) {
			memcpy(b, "{\"entries\":", 11);
			memset(b + 11, '[', depth);
			memset(b + 11 + depth, ']', depth);
			b[n - 1] = '}';
			resp = MHD_create_response_from_buffer(n, b,
						MHD_RESPMEM_MUST_FREE);
			if (!resp)
				free(b);
		}
		break;
	case FB_LENGTH:
		resp = MHD_create_response_from_callback(4096, 256, short_reader,
							 NULL, NULL);
		break;
	}
	if (resp)
		MHD_add_response_header(resp, "Content-Type", f->body == FB_NOTJSON ?
					"text/html" : "application/json");
	http_respond(r, f->status, resp);
}

static void fault_respond(struct req *r, const struct fault_spec *f)
{
	char ra[16];
	static const char *kinds[] = { "", "status", "reset", "delay",
				       "commit202", "expire", "corrupt" };

	r->fault = kinds[f->kind];
	snprintf(ra, sizeof(ra), "%d", f->retry_after);
	switch (f->kind) {
	case FK_RESET:
		r->reset = 1;
		r->reset_after = f->after;
		break;
	case FK_DELAY:
		r->delay_ms = f->ms;
		break;
	case FK_COMMIT202:
		http_empty(r, 202);
		MHD_add_response_header(r->resp, "Retry-After", ra);
		break;
	case FK_CORRUPT:
		corrupt_respond(r, f);
		break;
	case FK_EXPIRE:
		upl_expire_path(r->path);
		http_error(r, 410, "session_expired",
			   "The upload session has expired", NULL);
		break;
	case FK_STATUS:
		if (f->status == 401) {
			http_unauthorized(r);
			break;
		}
		if (f->status == 429)
			http_error(r, 429, "rate_limit_exceeded",
				"Request rate limit exceeded, please try again later",
				NULL);
		else if (f->status == 503)
			http_error(r, 503, "unavailable", "Unavailable", NULL);
		else if (f->status == 502)
			http_error(r, 502, "bad_gateway", "Bad Gateway", NULL);
		else if (f->status == 500)
			http_error(r, 500, "internal_server_error",
				   "Internal Server Error", NULL);
		else
			http_error(r, f->status, "injected_fault",
				   "Injected fault", NULL);
		if (f->status == 429 || f->status == 503)
			MHD_add_response_header(r->resp, "Retry-After", ra);
		break;
	}
}

static int auth_ok(struct req *r)
{
	const char *h = http_header(r, "Authorization");

	if (!h || strncasecmp(h, "Bearer ", 7))
		return 0;
	h += 7;
	return oauth_token_ok(h);
}

/* First call: classify, faults, auth, route. */
static void req_start(struct req *r)
{
	struct fault_spec f;
	const char *cr = http_header(r, "Content-Range");

	if (cr)
		snprintf(r->content_range, sizeof(r->content_range), "%s", cr);
	if (!strncmp(r->path, "/_sim/", 6)) {
		r->sim = 1;
		return;		/* routed when the body is complete */
	}
	pthread_mutex_lock(&bs_stats_lock);
	bs_stats.requests++;
	pthread_mutex_unlock(&bs_stats_lock);
	if (fault_check(r->method, r->path, &f)) {
		pthread_mutex_lock(&bs_stats_lock);
		bs_stats.faults_fired++;
		pthread_mutex_unlock(&bs_stats_lock);
		fault_respond(r, &f);
		if (r->resp || (r->reset && !r->reset_after))
			return;
	}
	if (!strcmp(r->path, "/oauth2/token"))
		return;
	if (!strncmp(r->path, "/_dl/", 5)) {
		api_dl(r);
		return;
	}
	if (!strncmp(r->path, "/2.0/", 5)) {
		r->sub = r->path + 4;
	} else if (!strncmp(r->path, "/api/2.0/", 9)) {
		r->sub = r->path + 8;
		r->upload_host = 1;
	} else {
		http_error(r, 404, "not_found", "Not Found", NULL);
		return;
	}
	if (!auth_ok(r)) {
		http_unauthorized(r);
		return;
	}
	api_route(r);
}

static int body_buffer(struct req *r, const char *data, size_t n)
{
	char *nb;

	if (r->blen + n > BODY_MAX) {
		http_error(r, 413, "request_entity_too_large",
			   "Request body too large", NULL);
		return 0;
	}
	if (r->blen + n + 1 > r->bcap) {
		size_t cap = (r->blen + n + 1) * 2;

		nb = realloc(r->body, cap);
		if (!nb) {
			http_respond(r, 500, NULL);
			return 0;
		}
		r->body = nb;
		r->bcap = cap;
	}
	memcpy(r->body + r->blen, data, n);
	r->blen += n;
	r->body[r->blen] = 0;
	return 0;
}

static void req_finish(struct req *r)
{
	if (r->delay_ms)
		usleep((useconds_t)(r->delay_ms * 1000));
	if (r->resp)
		return;
	if (r->sim)
		sim_route(r);
	else if (!strcmp(r->path, "/oauth2/token"))
		oauth_handle(r);
	else if (r->on_done)
		r->on_done(r);
	if (!r->resp)
		http_error(r, 500, "internal_server_error",
			   "Internal Server Error", NULL);
}

static struct req *req_new(struct MHD_Connection *c, const char *url,
			   const char *method)
{
	struct req *r = calloc(1, sizeof(*r));
	struct qbuf q;

	if (!r)
		return NULL;
	r->conn = c;
	r->t0 = now_f();
	snprintf(r->method, sizeof(r->method), "%s", method);
	snprintf(r->path, sizeof(r->path), "%s", url);
	q.buf = r->query;
	q.len = 0;
	q.cap = sizeof(r->query);
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, query_cb, &q);
	return r;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c,
			       const char *url, const char *method,
			       const char *version, const char *data,
			       size_t *data_size, void **con_cls)
{
	struct req *r = *con_cls;
	enum MHD_Result ret;

	(void)cls;
	(void)version;
	if (!r) {
		r = req_new(c, url, method);
		if (!r)
			return MHD_NO;
		*con_cls = r;
		req_start(r);
		if (r->reset && !r->reset_after)
			return MHD_NO;
		return MHD_YES;
	}
	if (*data_size) {
		size_t n = *data_size;

		if (r->reset && r->bytes + n >= r->reset_after) {
			r->bytes = r->reset_after;
			return MHD_NO;
		}
		r->bytes += n;
		pthread_mutex_lock(&bs_stats_lock);
		bs_stats.bytes_received += n;
		pthread_mutex_unlock(&bs_stats_lock);
		*data_size = 0;
		if (r->resp || r->reset)
			return MHD_YES;	/* drain */
		if (r->on_data)
			r->on_data(r, data, n);
		else
			body_buffer(r, data, n);
		return MHD_YES;
	}
	if (r->reset)
		return MHD_NO;
	req_finish(r);
	if (!r->resp)
		return MHD_NO;	/* out of memory even for an error */
	MHD_add_response_header(r->resp, "box-request-id", "0boxsim");
	ret = MHD_queue_response(c, (unsigned)r->status, r->resp);
	return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct req *r = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (!r)
		return;
	/* dropped (reset fault, client gone) before an answer: status 0 */
	if (r->reset || (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK &&
			 !r->resp))
		r->status = 0;
	log_request(r);
	if (r->hfree)
		r->hfree(r->hctx);
	if (r->resp)
		MHD_destroy_response(r->resp);
	free(r->body);
	free(r);
	*con_cls = NULL;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET)) {
		fclose(f);
		return NULL;
	}
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	if (buf)
		buf[n] = 0;
	fclose(f);
	return buf;
}

/* MHD's own messages, minus the one every reset fault causes. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (strstr(msg, "Application reported internal error"))
		return;
	fprintf(stderr, "boxsim: mhd: %s", msg);
}

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static int parse_listen(const char *listen, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(listen, ':');
	uint64_t port;

	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	if (!colon || (size_t)(colon - listen) >= sizeof(host) ||
	    parse_u64(colon + 1, &port) || port > 65535)
		return -1;
	memcpy(host, listen, (size_t)(colon - listen));
	host[colon - listen] = 0;
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
		return -1;
	sa->sin_port = htons((uint16_t)port);
	return 0;
}

int http_run(const char *listen, const char *cert, const char *key,
	     const char *logpath)
{
	struct sockaddr_in sa;
	struct MHD_Daemon *d;
	const union MHD_DaemonInfo *info;
	char *certpem = NULL, *keypem = NULL, host[64];
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION |
			 MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;

	if (parse_listen(listen, &sa)) {
		fprintf(stderr, "boxsim: bad --listen '%s' (want IPv4:PORT)\n",
			listen);
		return 2;
	}
	if (logpath)
		http_log_open(logpath);
	if (cert || key) {
		certpem = cert ? slurp(cert) : NULL;
		keypem = key ? slurp(key) : NULL;
		if (!certpem || !keypem) {
			fprintf(stderr, "boxsim: cannot read --tls-cert/--tls-key\n");
			free(certpem);
			free(keypem);
			return 2;
		}
		flags |= MHD_USE_TLS;
	}
	signal(SIGPIPE, SIG_IGN);
	if (certpem)
		d = MHD_start_daemon(flags, 0, NULL, NULL, handler, NULL,
			MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
			MHD_OPTION_SOCK_ADDR, &sa,
			MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
			MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
			MHD_OPTION_HTTPS_MEM_CERT, certpem,
			MHD_OPTION_HTTPS_MEM_KEY, keypem,
			MHD_OPTION_END);
	else
		d = MHD_start_daemon(flags, 0, NULL, NULL, handler, NULL,
			MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
			MHD_OPTION_SOCK_ADDR, &sa,
			MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
			MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
			MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "boxsim: cannot listen on %s\n", listen);
		free(certpem);
		free(keypem);
		return 1;
	}
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	inet_ntop(AF_INET, &sa.sin_addr, host, sizeof(host));
	snprintf(bs_conf.base, sizeof(bs_conf.base), "%s://%s:%u",
		 certpem ? "https" : "http", host,
		 info ? (unsigned)info->port : (unsigned)ntohs(sa.sin_port));
	printf("%s\n", bs_conf.base);
	fflush(stdout);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	while (!stop_flag)
		pause();
	MHD_stop_daemon(d);
	free(certpem);
	free(keypem);
	if (log_fp)
		fclose(log_fp);
	return 0;
}
