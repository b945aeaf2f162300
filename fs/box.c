/* box.c - typed Box API calls (see box.h): URLs, JSON in and out, errors. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "auth.h"
#include "box.h"
#include "codec.h"
#include "http.h"
#include "log.h"
#include "options.h"

#define BOX_URL_MAX 2048
#define BOX_FIELDS "type,id,name,size,sha1,etag,content_modified_at," \
	"modified_at,parent,item_status"
#define BOX_COMMIT_WAIT_MAX 600         /* seconds of 202 we sit out */
#define BOX_MISMATCH_TRIES 5

/* Read at each call: boxfs_opts is filled before box_init and then fixed. */
static const char *box_api_root(void)
{
	return boxfs_opts.api_url ? boxfs_opts.api_url : "https://api.box.com/2.0";
}

static const char *box_upload_root(void)
{
	return boxfs_opts.upload_url ? boxfs_opts.upload_url :
		"https://upload.box.com/api/2.0";
}

/* ---- small helpers ---------------------------------------------------- */

static const char *box_type_path(enum box_type t)
{
	return t == BOX_FOLDER ? "folders" : "files";
}

/* printf into a URL buffer; -ENAMETOOLONG when it does not fit. */
__attribute__((format(printf, 3, 4)))
static int box_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int box_bad_id(const char *what, const char *id)
{
	log_err("box: refusing malformed %s id", what);
	(void)id;
	return -EINVAL;
}

static const cJSON *box_obj(const cJSON *j, const char *k)
{
	return cJSON_GetObjectItemCaseSensitive(j, k);
}

static const char *box_str(const cJSON *j, const char *k)
{
	const cJSON *v = box_obj(j, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Numbers may come as JSON numbers (possibly in exponent form) or strings. */
static int box_u64(const cJSON *j, const char *k, uint64_t *out)
{
	const cJSON *v = box_obj(j, k);

	if (cJSON_IsNumber(v)) {
		if (!isfinite(v->valuedouble) || v->valuedouble < 0 ||
		    v->valuedouble > 1.8e19)
			return -1;
		*out = (uint64_t)v->valuedouble;
		return 0;
	}
	if (cJSON_IsString(v) && v->valuestring[0]) {
		char *e;
		errno = 0;
		*out = strtoull(v->valuestring, &e, 10);
		return errno || *e || v->valuestring[0] == '-' ? -1 : 0;
	}
	return -1;
}

static void box_copy(char *dst, size_t len, const char *src)
{
	if (!src)
		src = "";
	snprintf(dst, len, "%s", src);
}

static time_t box_time(const cJSON *j, const char *k)
{
	const char *s = box_str(j, k);
	time_t t;

	return s && !codec_time_parse(s, &t) ? t : 0;
}

/* ---- parsing (exposed for the unit tests) ----------------------------- */

int box_name_safe(const char *name)
{
	return name && name[0] && !strchr(name, '/') && strcmp(name, ".") &&
		strcmp(name, "..") && strlen(name) < sizeof(((struct box_item *)0)->name);
}

int box_parse_item(const cJSON *j, struct box_item *it)
{
	const char *type, *id, *name, *st, *sha1;
	const cJSON *parent;

	memset(it, 0, sizeof(*it));
	if (!cJSON_IsObject(j))
		return -EIO;
	type = box_str(j, "type");
	id = box_str(j, "id");
	if (!type || !id || !codec_id_ok(id))
		return -EIO;
	if (!strcmp(type, "file"))
		it->type = BOX_FILE;
	else if (!strcmp(type, "folder"))
		it->type = BOX_FOLDER;
	else
		return 1;	/* web_link and the like: not shown */
	st = box_str(j, "item_status");
	if (st && strcmp(st, "active"))
		return 1;
	name = box_str(j, "name");
	if (!name)
		return -EIO;
	if (!box_name_safe(name)) {
		log_warn("box: item %s has a name that cannot exist locally, "
			 "not shown", id);
		return 1;
	}
	box_copy(it->id, sizeof(it->id), id);
	box_copy(it->name, sizeof(it->name), name);
	parent = box_obj(j, "parent");
	if (cJSON_IsObject(parent) && box_str(parent, "id") &&
	    codec_id_ok(box_str(parent, "id")))
		box_copy(it->parent_id, sizeof(it->parent_id), box_str(parent, "id"));
	if (box_u64(j, "size", &it->size))
		it->size = 0;
	it->mtime = box_time(j, "content_modified_at");
	it->ctime = box_time(j, "modified_at");
	if (!it->mtime)
		it->mtime = it->ctime;
	if (!it->ctime)
		it->ctime = it->mtime;
	sha1 = box_str(j, "sha1");
	if (it->type == BOX_FILE && sha1 && strlen(sha1) == 40) {
		unsigned char md[20];
		if (!codec_hex_decode(sha1, md, 20))
			codec_hex_encode(md, 20, it->sha1);
	}
	box_copy(it->etag, sizeof(it->etag), box_str(j, "etag"));
	return 0;
}

int box_parse_error(const char *body, size_t len, char *code, size_t codelen,
		    char *msg, size_t msglen, char conflict_id[BOX_ID_MAX])
{
	cJSON *j;
	const cJSON *ctx, *c;

	if (code && codelen)
		code[0] = '\0';
	if (msg && msglen)
		msg[0] = '\0';
	if (conflict_id)
		conflict_id[0] = '\0';
	if (!body || !len)
		return -1;
	j = cJSON_ParseWithLength(body, len);
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return -1;
	}
	if (code)
		box_copy(code, codelen, box_str(j, "code"));
	if (msg)
		box_copy(msg, msglen, box_str(j, "message"));
	ctx = box_obj(j, "context_info");
	c = cJSON_IsObject(ctx) ? box_obj(ctx, "conflicts") : NULL;
	if (cJSON_IsArray(c))
		c = cJSON_GetArrayItem(c, 0);
	if (conflict_id && cJSON_IsObject(c) && box_str(c, "id") &&
	    codec_id_ok(box_str(c, "id")))
		box_copy(conflict_id, BOX_ID_MAX, box_str(c, "id"));
	cJSON_Delete(j);
	return 0;
}

int box_errno(long status, const char *code, int session)
{
	switch (status) {
	case 400:
		if (!strcmp(code, "folder_not_empty"))
			return -ENOTEMPTY;
		if (!strcmp(code, "item_name_too_long"))
			return -ENAMETOOLONG;
		if (!strcmp(code, "item_name_invalid") ||
		    !strcmp(code, "bad_request") ||
		    !strcmp(code, "cyclical_folder_structure") ||
		    !strncmp(code, "invalid_", 8) || !strncmp(code, "missing_", 8) ||
		    !strcmp(code, "file_size_too_small"))
			return -EINVAL;
		return -EIO;
	case 401:
		return -EACCES;
	case 403:
		if (!strcmp(code, "storage_limit_exceeded"))
			return -ENOSPC;
		if (!strcmp(code, "file_size_limit_exceeded"))
			return -EFBIG;
		return -EACCES;
	case 404:
	case 410:
		return session ? -ESTALE : -ENOENT;
	case 405:
		return -EINVAL;
	case 409:
		if (!strcmp(code, "operation_blocked_temporary"))
			return -EBUSY;
		return -EEXIST;
	case 413:
		return -EFBIG;
	case 507:
		return -ENOSPC;
	default:
		return -EIO;
	}
}

/* ---- one call --------------------------------------------------------- */

struct box_call {
	struct http_req rq;
	struct http_resp rs;
	struct curl_slist *hdr;
	char url[BOX_URL_MAX];
	char path[256];         /* for logs: ids only */
	char *json;             /* request body we own */
	int session;            /* 404/410 mean a dead upload session */
};

static void box_call_init(struct box_call *c, const char *method,
			  enum http_retry retry)
{
	memset(c, 0, sizeof(*c));
	c->rq.method = method;
	c->rq.url = c->url;
	c->rq.logpath = c->path;
	c->rq.retry = retry;
	c->rq.fd = -1;
}

static void box_call_free(struct box_call *c)
{
	http_resp_free(&c->rs);
	curl_slist_free_all(c->hdr);
	free(c->json);
}

static int box_header(struct box_call *c, const char *line)
{
	struct curl_slist *l = curl_slist_append(c->hdr, line);

	if (!l)
		return -ENOMEM;
	c->hdr = l;
	c->rq.headers = l;
	return 0;
}

/* URL = base + path (+ query); the log shows the path only. */
__attribute__((format(printf, 4, 5)))
static int box_target(struct box_call *c, const char *base, const char *query,
		      const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(c->path, sizeof(c->path), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(c->path))
		return -ENAMETOOLONG;
	return box_fmt(c->url, sizeof(c->url), "%s%s%s%s", base, c->path,
		       query ? "?" : "", query ? query : "");
}

/* Takes ownership of json (a cJSON tree) and sends it as the body. */
static int box_json_body(struct box_call *c, cJSON *json)
{
	if (!json)
		return -ENOMEM;
	c->json = cJSON_PrintUnformatted(json);
	cJSON_Delete(json);
	if (!c->json || box_header(c, "Content-Type: application/json"))
		return -ENOMEM;
	c->rq.has_body = 1;
	c->rq.pre = c->json;
	c->rq.pre_len = strlen(c->json);
	return 0;
}

/* The errno of a finished exchange; logs one line for any failure. */
static int box_result(struct box_call *c, int rc, char conflict_id[BOX_ID_MAX])
{
	char code[64], msg[256];
	long st = c->rs.status;

	if (conflict_id)
		conflict_id[0] = '\0';
	if (rc == -EFBIG)
		return -EIO;	/* oversized answer: http.c logged it */
	if (rc)
		return rc;	/* http.c logged the transport failure */
	if (st >= 200 && st <= 299)
		return 0;
	box_parse_error(c->rs.body, c->rs.len, code, sizeof(code), msg,
			sizeof(msg), conflict_id);
	rc = box_errno(st, code, c->session);
	/* server text goes into one log line: no control characters */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 32 || *p == 127)
			*p = '?';
	for (char *p = code; *p; p++)
		if ((unsigned char)*p < 32 || *p == 127)
			*p = '?';
	if (st == 404 || st == 409)
		log_info("box: %s %s: %ld %s: %s", c->rq.method, c->path, st,
			 code[0] ? code : "-", msg[0] ? msg : "-");
	else
		log_warn("box: %s %s: %ld %s: %s", c->rq.method, c->path, st,
			 code[0] ? code : "-", msg[0] ? msg : "-");
	return rc;
}

/* 409 operation_blocked_temporary: another move/copy/delete holds the
 * folder and nothing was done, so trying again later is safe. */
static int box_blocked(const struct box_call *c)
{
	char code[64];

	if (c->rs.status != 409)
		return 0;
	box_parse_error(c->rs.body, c->rs.len, code, sizeof(code), NULL, 0, NULL);
	return !strcmp(code, "operation_blocked_temporary");
}

static int box_run(struct box_call *c, char conflict_id[BOX_ID_MAX])
{
	int rc, n = 0, max = boxfs_opts.retries > 0 ? boxfs_opts.retries : 0;

	for (;;) {
		rc = http_request(&c->rq, &c->rs);
		if (rc || !box_blocked(c) || n >= max)
			break;
		log_info("box: %s %s: folder busy, again in %d s", c->rq.method,
			 c->path, 1 << n);
		sleep(1u << n++);
		http_resp_free(&c->rs);
	}
	return box_result(c, rc, conflict_id);
}

/* Send `json` (owned: always freed) as the body of a prepared call and run
 * it. rc: an error from preparing the call; bad: building the JSON failed. */
static int box_send_json(struct box_call *c, int rc, cJSON *json, int bad,
			 char conflict_id[BOX_ID_MAX])
{
	if (rc || bad) {
		cJSON_Delete(json);
		return rc ? rc : -ENOMEM;
	}
	rc = box_json_body(c, json);
	return rc ? rc : box_run(c, conflict_id);
}

cJSON *box_parse_json(char *body, size_t len)
{
	size_t i, k;

	/* cJSON would cut a string at an escaped NUL ("a\u0000b" -> "a"), which
	 * could alias another name: turn it into an escaped '/', which makes
	 * the name unsafe, so the item is skipped with a warning. */
	for (i = 0; i + 6 <= len; i++) {
		if (memcmp(body + i, "\\u0000", 6))
			continue;
		for (k = 0; k < i && body[i - 1 - k] == '\\'; k++)
			;
		if (!(k & 1))	/* the backslash is not itself escaped */
			memcpy(body + i, "\\u002f", 6);
	}
	return cJSON_ParseWithLength(body, len);
}

/* Parse the answer body; NULL (and a log line) when it is not JSON. */
static cJSON *box_answer(struct box_call *c)
{
	cJSON *j = c->rs.body ? box_parse_json(c->rs.body, c->rs.len) : NULL;

	if (!j)
		log_err("box: %s %s: %ld answer is not JSON", c->rq.method,
			c->path, c->rs.status);
	return j;
}

static int box_answer_item(struct box_call *c, struct box_item *out)
{
	struct box_item tmp;
	cJSON *j = box_answer(c);
	int rc;

	if (!j)
		return -EIO;
	rc = box_parse_item(j, out ? out : &tmp);
	cJSON_Delete(j);
	if (rc) {
		log_err("box: %s %s: unusable item in the answer", c->rq.method,
			c->path);
		return -EIO;
	}
	return 0;
}

int box_parse_files(const cJSON *j, struct box_item *it)
{
	const cJSON *e = box_obj(j, "entries");

	if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) < 1)
		return -EIO;
	return box_parse_item(cJSON_GetArrayItem(e, 0), it);
}

/* {"total_count":1,"entries":[item]} */
static int box_answer_files(struct box_call *c, struct box_item *out)
{
	struct box_item tmp;
	cJSON *j = box_answer(c);
	int rc;

	if (!j)
		return -EIO;
	rc = box_parse_files(j, out ? out : &tmp);
	cJSON_Delete(j);
	if (rc) {
		log_err("box: %s %s: no usable file in the answer",
			c->rq.method, c->path);
		return -EIO;
	}
	return 0;
}

/* ---- setup ------------------------------------------------------------ */

int box_init(void)
{
	char msg[512];
	int rc;

	rc = http_init();
	if (rc) {
		log_err("box: cannot initialise libcurl");
		return rc;
	}
	rc = auth_init(msg, sizeof(msg));
	if (rc)
		log_err("%s", msg);
	return rc;
}

void box_cleanup(void)
{
	auth_cleanup();
	http_cleanup();
	curl_global_cleanup();
}

static int box_me(const char *query, struct box_call *c)
{
	box_call_init(c, "GET", HTTP_IDEMPOTENT);
	if (box_target(c, box_api_root(), query, "/users/me"))
		return -ENAMETOOLONG;
	return box_run(c, NULL);
}

int box_check(char *msg, size_t msglen)
{
	struct box_call c;
	int rc = box_me("fields=id,login", &c);

	if (!rc) {
		cJSON *j = box_answer(&c);
		if (!j || !box_str(j, "id")) {
			snprintf(msg, msglen, "%s/users/me did not answer like Box",
				 box_api_root());
			rc = -EIO;
		}
		cJSON_Delete(j);
	} else if (c.rs.status == 401 || c.rs.status == 403) {
		snprintf(msg, msglen, "the server refused the access token "
			 "(HTTP %ld): get a new token", c.rs.status);
	} else if (rc == -EACCES) {
		snprintf(msg, msglen, "no access token loaded");
	} else if (c.rs.status >= 200 && c.rs.status <= 299) {
		/* oversized or cut short: the transfer failed, not the call */
		snprintf(msg, msglen, "%s/users/me did not answer like Box "
			 "(unusable answer)", box_api_root());
	} else if (c.rs.status) {
		snprintf(msg, msglen, "%s/users/me answered HTTP %ld", box_api_root(),
			 c.rs.status);
	} else {
		snprintf(msg, msglen, "cannot reach %s/users/me: %s",
			 box_api_root(), rc == -ETIMEDOUT ? "timed out" :
			 "connection failed or cut short");
	}
	box_call_free(&c);
	return rc;
}

int box_space(uint64_t *total, uint64_t *used)
{
	struct box_call c;
	int rc = box_me("fields=space_amount,space_used", &c);

	if (!rc) {
		cJSON *j = box_answer(&c);
		if (!j || box_u64(j, "space_amount", total) ||
		    box_u64(j, "space_used", used)) {
			if (j)
				log_err("box: GET %s: no usable space_amount "
					"and space_used", c.path);
			rc = -EIO;
		}
		cJSON_Delete(j);
	}
	box_call_free(&c);
	return rc;
}

/* ---- items ------------------------------------------------------------ */

int box_get_item(enum box_type type, const char *id, struct box_item *out)
{
	struct box_call c;
	int rc;

	if (!codec_id_ok(id))
		return box_bad_id("item", id);
	box_call_init(&c, "GET", HTTP_IDEMPOTENT);
	rc = box_target(&c, box_api_root(), "fields=" BOX_FIELDS, "/%s/%s",
			box_type_path(type), id);
	if (!rc)
		rc = box_run(&c, NULL);
	if (!rc)
		rc = box_answer_item(&c, out);
	box_call_free(&c);
	return rc;
}

int box_parse_page(const cJSON *j, const char *logpath, box_list_cb cb,
		   void *arg, char *marker, size_t mlen)
{
	const cJSON *e = box_obj(j, "entries"), *it;
	const char *next;
	int rc;

	if (!cJSON_IsArray(e)) {
		log_err("box: GET %s: no entries in the listing", logpath);
		return -EIO;
	}
	cJSON_ArrayForEach(it, e) {
		struct box_item bi;
		int r = box_parse_item(it, &bi);
		if (r < 0)
			log_warn("box: GET %s: skipping a malformed entry", logpath);
		if (r)
			continue;
		if ((rc = cb(&bi, arg)) != 0)
			return rc;
	}
	next = box_str(j, "next_marker");
	if (next && strlen(next) >= mlen) {
		log_err("box: GET %s: next_marker too long", logpath);
		return -EIO;
	}
	box_copy(marker, mlen, next);
	return 0;
}

/* One page; *marker gets the next marker ("" at the end). */
static int box_list_page(const char *folder_id, char *marker, size_t mlen,
			 box_list_cb cb, void *arg)
{
	char query[1200], esc[800];
	struct box_call c;
	cJSON *j = NULL;
	int rc;

	if (marker[0] && codec_url_escape(marker, esc, sizeof(esc)) < 0)
		return -EIO;
	if (box_fmt(query, sizeof(query), "usemarker=true&limit=1000&fields="
		    BOX_FIELDS "%s%s", marker[0] ? "&marker=" : "",
		    marker[0] ? esc : ""))
		return -ENAMETOOLONG;
	box_call_init(&c, "GET", HTTP_IDEMPOTENT);
	rc = box_target(&c, box_api_root(), query, "/folders/%s/items", folder_id);
	if (!rc)
		rc = box_run(&c, NULL);
	if (!rc && !(j = box_answer(&c)))
		rc = -EIO;
	if (rc)
		goto out;
	rc = box_parse_page(j, c.path, cb, arg, marker, mlen);
out:
	cJSON_Delete(j);
	box_call_free(&c);
	return rc;
}

int box_list_folder(const char *folder_id, box_list_cb cb, void *arg)
{
	char marker[256] = "";
	int rc, pages = 0;

	if (!codec_id_ok(folder_id))
		return box_bad_id("folder", folder_id);
	do {
		rc = box_list_page(folder_id, marker, sizeof(marker), cb, arg);
		/* a server repeating markers forever must not hang us */
		if (!rc && ++pages > 100000) {
			log_err("box: folder %s: listing never ends", folder_id);
			rc = -EIO;
		}
	} while (!rc && marker[0]);
	return rc;
}

static cJSON *box_parent_obj(const char *parent_id)
{
	cJSON *p = cJSON_CreateObject();

	if (p && !cJSON_AddStringToObject(p, "id", parent_id)) {
		cJSON_Delete(p);
		p = NULL;
	}
	return p;
}

int box_create_folder(const char *parent_id, const char *name,
		      struct box_item *out, char conflict_id[BOX_ID_MAX])
{
	struct box_call c;
	cJSON *j, *p;
	int rc;

	if (conflict_id)
		conflict_id[0] = '\0';
	if (!codec_id_ok(parent_id))
		return box_bad_id("parent", parent_id);
	box_call_init(&c, "POST", HTTP_UNSENT);
	rc = box_target(&c, box_api_root(), "fields=" BOX_FIELDS, "/folders");
	j = cJSON_CreateObject();
	p = box_parent_obj(parent_id);
	if (!j || !p || !cJSON_AddStringToObject(j, "name", name)) {
		cJSON_Delete(p);
		rc = box_send_json(&c, rc, j, 1, conflict_id);
	} else {
		cJSON_AddItemToObject(j, "parent", p);
		rc = box_send_json(&c, rc, j, 0, conflict_id);
	}
	if (!rc)
		rc = box_answer_item(&c, out);
	/* a retried create (after a 5xx) may find the folder its first try
	 * made: same name, same parent, a folder -> that is ours */
	if (rc == -EEXIST && c.rs.attempts > 1 && conflict_id && conflict_id[0]) {
		struct box_item it;
		if (!box_get_item(BOX_FOLDER, conflict_id, &it) &&
		    !strcmp(it.parent_id, parent_id) && !strcmp(it.name, name)) {
			if (out)
				*out = it;
			rc = 0;
		}
	}
	box_call_free(&c);
	return rc;
}

int box_update(enum box_type type, const char *id, const char *new_name,
	       const char *new_parent, time_t mtime, struct box_item *out)
{
	struct box_call c;
	char ts[32];
	cJSON *j;
	int rc, bad = 0;

	if (!codec_id_ok(id) || (new_parent && !codec_id_ok(new_parent)))
		return box_bad_id("item", id);
	box_call_init(&c, "PUT", HTTP_IDEMPOTENT);
	rc = box_target(&c, box_api_root(), "fields=" BOX_FIELDS, "/%s/%s",
			box_type_path(type), id);
	j = cJSON_CreateObject();
	if (!j)
		bad = 1;
	if (j && new_name && !cJSON_AddStringToObject(j, "name", new_name))
		bad = 1;
	if (j && new_parent) {
		cJSON *p = box_parent_obj(new_parent);
		if (!p)
			bad = 1;
		else
			cJSON_AddItemToObject(j, "parent", p);
	}
	if (j && mtime && type == BOX_FILE) {
		if (codec_time_format(mtime, ts, sizeof(ts)))
			rc = rc ? rc : -EINVAL;
		else if (!cJSON_AddStringToObject(j, "content_modified_at", ts))
			bad = 1;
	}
	rc = box_send_json(&c, rc, j, bad, NULL);
	if (!rc)
		rc = box_answer_item(&c, out);
	box_call_free(&c);
	return rc;
}

int box_delete(enum box_type type, const char *id, int recursive)
{
	struct box_call c;
	int rc;

	if (!codec_id_ok(id))
		return box_bad_id("item", id);
	box_call_init(&c, "DELETE", HTTP_IDEMPOTENT);
	rc = box_target(&c, box_api_root(), recursive ? "recursive=true" : NULL,
			"/%s/%s", box_type_path(type), id);
	if (!rc)
		rc = http_request(&c.rq, &c.rs);
	/* a retried DELETE whose first try went through finds nothing */
	if (!rc && c.rs.status == 404 && c.rs.attempts > 1)
		c.rs.status = 204;
	rc = box_result(&c, rc, NULL);
	box_call_free(&c);
	return rc;
}

/* ---- download --------------------------------------------------------- */

int box_download(const char *file_id, uint64_t off, size_t len, void *buf,
		 size_t *got)
{
	struct box_call c;
	char range[80];
	int rc, tries = 0;

	*got = 0;
	if (!codec_id_ok(file_id))
		return box_bad_id("file", file_id);
	if (!len)
		return 0;
	for (;;) {
		box_call_init(&c, "GET", HTTP_IDEMPOTENT);
		c.rq.follow = 1;
		c.rq.buf = buf;
		c.rq.cap = len;
		c.rq.skip200 = off;
		rc = box_target(&c, box_api_root(), NULL, "/files/%s/content", file_id);
		snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-%" PRIu64,
			 off, off + len - 1);
		if (!rc)
			rc = box_header(&c, range);
		if (!rc)
			rc = http_request(&c.rq, &c.rs);
		/* 202: not downloadable yet (just uploaded), come back */
		/* bounded: a FUSE read is waiting on this */
		if (!rc && c.rs.status == 202 && ++tries <= 5) {
			int s = c.rs.retry_after > 0 ? c.rs.retry_after : 1;
			box_call_free(&c);
			sleep((unsigned)(s < 5 ? s : 5));
			continue;
		}
		break;
	}
	if (!rc && c.rs.status == 416) {
		/* range starts at or past the end: nothing to read */
		box_call_free(&c);
		return 0;
	}
	if (!rc && c.rs.status == 202)
		c.rs.status = 503;
	rc = box_result(&c, rc, NULL);
	if (!rc)
		*got = c.rs.got;
	box_call_free(&c);
	return rc;
}

/* ---- simple upload ---------------------------------------------------- */

/* Random multipart boundary (never in the attributes JSON: hex only). */
static void box_boundary(char *b, size_t len)
{
	unsigned char r[16];
	char hex[33];
	FILE *f = fopen("/dev/urandom", "re");

	if (!f || fread(r, 1, sizeof(r), f) != sizeof(r)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		unsigned long v = (unsigned long)ts.tv_nsec ^ (unsigned long)getpid();
		for (size_t i = 0; i < sizeof(r); i++)
			r[i] = (unsigned char)(v >> (i % 8 * 8) ^ i * 37);
	}
	if (f)
		fclose(f);
	codec_hex_encode(r, sizeof(r), hex);
	snprintf(b, len, "boxfs-%s", hex);
}

static char *box_attributes(const char *parent_id, const char *file_id,
			    const char *name, time_t mtime)
{
	cJSON *j = cJSON_CreateObject();
	char ts[32], *s = NULL;
	int bad = !j;

	if (j && !file_id) {
		cJSON *p = box_parent_obj(parent_id);
		if (!p || !cJSON_AddStringToObject(j, "name", name))
			bad = 1;
		if (p)
			cJSON_AddItemToObject(j, "parent", p);
	}
	/* a time Box cannot store must not fail the upload: left out */
	if (j && mtime && !codec_time_format(mtime, ts, sizeof(ts)) &&
	    !cJSON_AddStringToObject(j, "content_modified_at", ts))
		bad = 1;
	if (!bad)
		s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return s;
}

int box_upload_simple(const char *parent_id, const char *file_id,
		      const char *name, int fd, uint64_t size,
		      const char sha1_hex[41], time_t mtime,
		      struct box_item *out, char conflict_id[BOX_ID_MAX])
{
	char bnd[64], fname[256], hdr[160], *attr = NULL, *pre = NULL, post[96];
	char cid[BOX_ID_MAX];
	struct box_call c;
	int rc, n;
	size_t i;

	if (conflict_id)
		conflict_id[0] = '\0';
	if ((file_id && !codec_id_ok(file_id)) || (!file_id && !codec_id_ok(parent_id)))
		return box_bad_id("item", file_id ? file_id : parent_id);
	if (!file_id && !name)
		return -EINVAL;
	box_boundary(bnd, sizeof(bnd));
	/* the filename parameter is informative (attributes carry the name):
	 * keep it free of characters that would break the header */
	snprintf(fname, sizeof(fname), "%s", name ? name : "file");
	i = strlen(fname);
	/* cut short: never in the middle of a UTF-8 character */
	if (name && strlen(name) > i) {
		while (i && ((unsigned char)name[i] & 0xc0) == 0x80)
			i--;
		fname[i] = '\0';
	}
	for (i = 0; fname[i]; i++)
		if (fname[i] == '"' || fname[i] == '\\' || (unsigned char)fname[i] < 32)
			fname[i] = '_';
	box_call_init(&c, "POST", HTTP_UNSENT);
	if (file_id)
		rc = box_target(&c, box_upload_root(), "fields=" BOX_FIELDS,
				"/files/%s/content", file_id);
	else
		rc = box_target(&c, box_upload_root(), "fields=" BOX_FIELDS, "/files/content");
	attr = box_attributes(parent_id, file_id, name, mtime);
	if (!rc && !attr)
		rc = -ENOMEM;
	if (!rc) {
		n = asprintf(&pre, "--%s\r\nContent-Disposition: form-data; "
			     "name=\"attributes\"\r\n\r\n%s\r\n--%s\r\n"
			     "Content-Disposition: form-data; name=\"file\"; "
			     "filename=\"%s\"\r\nContent-Type: "
			     "application/octet-stream\r\n\r\n", bnd, attr, bnd,
			     fname);
		if (n < 0) {
			pre = NULL;
			rc = -ENOMEM;
		}
	}
	snprintf(post, sizeof(post), "\r\n--%s--\r\n", bnd);
	snprintf(hdr, sizeof(hdr), "Content-Type: multipart/form-data; boundary=%s", bnd);
	if (!rc)
		rc = box_header(&c, hdr);
	if (!rc && sha1_hex && sha1_hex[0]) {
		snprintf(hdr, sizeof(hdr), "Content-MD5: %s", sha1_hex);
		rc = box_header(&c, hdr);
	}
	if (!rc) {
		c.rq.has_body = 1;
		c.rq.pre = pre;
		c.rq.pre_len = strlen(pre);
		c.rq.fd = fd;
		c.rq.fd_off = 0;
		c.rq.fd_len = size;
		c.rq.post = post;
		c.rq.post_len = strlen(post);
		rc = http_request(&c.rq, &c.rs);
		rc = box_result(&c, rc, cid);
		if (conflict_id)
			memcpy(conflict_id, cid, BOX_ID_MAX);
	}
	/* a retried upload that finds "its" file: the first try went through */
	if (rc == -EEXIST && c.rs.attempts > 1 && cid[0] && sha1_hex) {
		struct box_item it;
		if (!box_get_item(BOX_FILE, cid, &it) && !strcasecmp(it.sha1, sha1_hex) &&
		    it.size == size) {
			if (out)
				*out = it;
			rc = 0;
		}
	} else if (!rc) {
		rc = box_answer_files(&c, out);
	}
	free(attr);
	free(pre);
	box_call_free(&c);
	return rc;
}

/* ---- upload sessions -------------------------------------------------- */

int box_parse_session(const cJSON *j, struct box_session *s)
{
	const char *id = box_str(j, "id");
	uint64_t tp;

	memset(s, 0, sizeof(*s));
	if (!id || !codec_id_ok(id) || box_u64(j, "part_size", &s->part_size) ||
	    !s->part_size || box_u64(j, "total_parts", &tp) || tp > UINT32_MAX)
		return -EIO;
	box_copy(s->id, sizeof(s->id), id);
	s->total_parts = (uint32_t)tp;
	s->expires_at = box_time(j, "session_expires_at");
	return 0;
}

int box_session_create(const char *parent_id, const char *file_id,
		       const char *name, uint64_t file_size,
		       struct box_session *out, char conflict_id[BOX_ID_MAX])
{
	struct box_call c;
	char num[32];
	cJSON *j;
	int rc, bad;

	if (conflict_id)
		conflict_id[0] = '\0';
	if ((file_id && !codec_id_ok(file_id)) || (!file_id && !codec_id_ok(parent_id)))
		return box_bad_id("item", file_id ? file_id : parent_id);
	if (!file_id && !name)
		return -EINVAL;
	box_call_init(&c, "POST", HTTP_UNSENT);
	if (file_id)
		rc = box_target(&c, box_upload_root(), NULL, "/files/%s/upload_sessions", file_id);
	else
		rc = box_target(&c, box_upload_root(), NULL, "/files/upload_sessions");
	snprintf(num, sizeof(num), "%" PRIu64, file_size);
	j = cJSON_CreateObject();
	/* a raw number: exact for any 64-bit size, unlike a double */
	bad = !j || !cJSON_AddRawToObject(j, "file_size", num);
	if (!bad && !file_id)
		bad = !cJSON_AddStringToObject(j, "folder_id", parent_id) ||
			!cJSON_AddStringToObject(j, "file_name", name);
	rc = box_send_json(&c, rc, j, bad, conflict_id);
	if (!rc) {
		cJSON *a = box_answer(&c);
		if (!a || box_parse_session(a, out)) {
			log_err("box: POST %s: unusable upload session", c.path);
			rc = -EIO;
		} else {
			out->file_size = file_size;
		}
		cJSON_Delete(a);
	}
	box_call_free(&c);
	return rc;
}

int box_parse_part(const cJSON *j, struct box_part *p)
{
	const char *id = cJSON_IsObject(j) ? box_str(j, "part_id") : NULL;
	const char *sha1 = id ? box_str(j, "sha1") : NULL;

	memset(p, 0, sizeof(*p));
	if (!id || strlen(id) >= sizeof(p->part_id) || box_u64(j, "offset", &p->offset) ||
	    box_u64(j, "size", &p->size))
		return -EIO;
	box_copy(p->part_id, sizeof(p->part_id), id);
	if (sha1 && strlen(sha1) == 40) {
		unsigned char md[20];
		if (!codec_hex_decode(sha1, md, 20))
			codec_hex_encode(md, 20, p->sha1);
	}
	return 0;
}

static int box_part_cmp(const void *a, const void *b)
{
	const struct box_part *x = a, *y = b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

int box_parse_parts_page(const cJSON *j, const char *logpath,
			 struct box_part **v, size_t *n, size_t *cap,
			 size_t *got, uint64_t *limit)
{
	const cJSON *e = box_obj(j, "entries"), *it;

	*got = 0;
	if (!cJSON_IsArray(e)) {
		log_err("box: GET %s: no entries in the parts list", logpath);
		return -EIO;
	}
	cJSON_ArrayForEach(it, e) {
		if (*n == *cap) {
			size_t nc = *cap ? *cap * 2 : 64;
			struct box_part *nv = realloc(*v, nc * sizeof(**v));
			if (!nv)
				return -ENOMEM;
			*v = nv;
			*cap = nc;
		}
		if (box_parse_part(it, &(*v)[*n])) {
			log_err("box: GET %s: malformed part", logpath);
			return -EIO;
		}
		(*n)++;
		(*got)++;
	}
	if (box_u64(j, "limit", limit) || !*limit)
		*limit = 1000;
	return 0;
}

int box_session_list_parts(const struct box_session *s,
			   struct box_part **parts, size_t *nparts)
{
	struct box_part *v = NULL;
	size_t n = 0, cap = 0;
	uint64_t offset = 0;
	int rc = 0;

	*parts = NULL;
	*nparts = 0;
	if (!codec_id_ok(s->id))
		return box_bad_id("session", s->id);
	for (;;) {
		struct box_call c;
		char q[64];
		cJSON *j = NULL;
		uint64_t limit = 1000;
		size_t got = 0;

		box_call_init(&c, "GET", HTTP_IDEMPOTENT);
		c.session = 1;
		snprintf(q, sizeof(q), "offset=%" PRIu64 "&limit=1000", offset);
		rc = box_target(&c, box_upload_root(), q, "/files/upload_sessions/%s/parts", s->id);
		if (!rc)
			rc = box_run(&c, NULL);
		if (!rc && !(j = box_answer(&c)))
			rc = -EIO;
		if (!rc)
			rc = box_parse_parts_page(j, c.path, &v, &n, &cap, &got, &limit);
		cJSON_Delete(j);
		box_call_free(&c);
		if (rc)
			break;
		offset += (uint64_t)got;
		if ((uint64_t)got < limit || !got || offset > 10000)
			break;
	}
	if (rc) {
		free(v);
		return rc;
	}
	if (n)  /* qsort(NULL, 0, ...) is undefined */
		qsort(v, n, sizeof(*v), box_part_cmp);
	*parts = v;
	*nparts = n;
	return 0;
}

/* After an ambiguous PUT: does the server hold our part? 1 yes (out filled),
 * 0 no, -errno when it holds something else or the listing failed. */
static int box_part_check(const struct box_session *s, uint64_t off, size_t len,
			  const char hex[41], struct box_part *out)
{
	struct box_part *v;
	size_t n, i;
	int rc = box_session_list_parts(s, &v, &n);

	if (rc)
		return rc;
	rc = 0;
	for (i = 0; i < n; i++) {
		if (v[i].offset != off)
			continue;
		if (v[i].size == len && (!v[i].sha1[0] || !strcmp(v[i].sha1, hex))) {
			if (out)
				*out = v[i];
			rc = 1;
		} else {
			log_err("box: session %s holds a different part at %" PRIu64,
				s->id, off);
			rc = -EIO;
		}
		break;
	}
	free(v);
	return rc;
}

/* The body is buf, or (buf == NULL) len bytes of fd at off, streamed. */
static int box_put_part(const struct box_session *s, uint64_t off,
			const void *buf, int fd, size_t len,
			const unsigned char sha1[20], struct box_part *out)
{
	char b64[CODEC_B64_LEN(20) + 1], hex[41], line[128];
	int rc, round;

	if (!codec_id_ok(s->id))
		return box_bad_id("session", s->id);
	if (!len || off + len > s->file_size)
		return -EINVAL;
	codec_b64_encode(sha1, 20, b64, sizeof(b64));
	codec_hex_encode(sha1, 20, hex);
	for (round = 0;; round++) {
		struct box_call c;
		char code[64] = "";

		box_call_init(&c, "PUT", HTTP_UNSENT);
		c.session = 1;
		rc = box_target(&c, box_upload_root(), NULL, "/files/upload_sessions/%s", s->id);
		if (!rc)
			rc = box_header(&c, "Content-Type: application/octet-stream");
		snprintf(line, sizeof(line), "Content-Range: bytes %" PRIu64 "-%"
			 PRIu64 "/%" PRIu64, off, off + len - 1, s->file_size);
		if (!rc)
			rc = box_header(&c, line);
		snprintf(line, sizeof(line), "Digest: sha=%s", b64);
		if (!rc)
			rc = box_header(&c, line);
		if (rc) {
			box_call_free(&c);
			return rc;
		}
		c.rq.has_body = 1;
		if (buf) {
			c.rq.pre = buf;
			c.rq.pre_len = len;
		} else {
			c.rq.fd = fd;
			c.rq.fd_off = off;
			c.rq.fd_len = len;
		}
		rc = http_request(&c.rq, &c.rs);
		int ambiguous = rc && c.rs.ambiguous;
		if (!rc && c.rs.status == 416)
			box_parse_error(c.rs.body, c.rs.len, code, sizeof(code),
					NULL, 0, NULL);
		/* a retry (ours or http's) may hit the part an earlier try
		 * stored: an overlap is then resolved by listing, too */
		int overlap = !rc && (c.rs.status == 416 || c.rs.status == 409) &&
			(!strcmp(code, "range_overlaps_existing_part") ||
			 c.rs.attempts > 1 || round > 0);
		if (!ambiguous && !overlap) {
			rc = box_result(&c, rc, NULL);
			if (!rc) {
				cJSON *j = box_answer(&c);
				if (!j || box_parse_part(box_obj(j, "part"), out)) {
					log_err("box: PUT %s: unusable part record", c.path);
					rc = -EIO;
				}
				cJSON_Delete(j);
			}
			box_call_free(&c);
			return rc;
		}
		log_warn("box: PUT %s: part at %" PRIu64 " %s, asking the server",
			 c.path, off, ambiguous ? "outcome unknown" : "overlaps");
		box_call_free(&c);
		rc = box_part_check(s, off, len, hex, out);
		if (rc == 1)
			return 0;
		if (rc < 0)
			return rc;
		if (overlap || round >= (boxfs_opts.retries > 0 ? boxfs_opts.retries : 1))
			return -EIO;
		/* not stored: sending it again is safe */
	}
}

int box_session_put_part(const struct box_session *s, uint64_t off,
			 const void *buf, size_t len,
			 const unsigned char sha1[20], struct box_part *out)
{
	if (!buf)
		return -EINVAL;
	return box_put_part(s, off, buf, -1, len, sha1, out);
}

int box_session_put_part_fd(const struct box_session *s, uint64_t off,
			    int fd, size_t len,
			    const unsigned char sha1[20], struct box_part *out)
{
	if (fd < 0)
		return -EINVAL;
	return box_put_part(s, off, NULL, fd, len, sha1, out);
}

static char *box_commit_body(const struct box_part *parts, size_t nparts,
			     time_t mtime)
{
	cJSON *j = cJSON_CreateObject(), *arr = NULL, *attr = NULL;
	char num[32], ts[32], *s = NULL;
	size_t i;
	int bad = !j;

	if (j)
		arr = cJSON_AddArrayToObject(j, "parts");
	bad |= !arr;
	for (i = 0; !bad && i < nparts; i++) {
		cJSON *p = cJSON_CreateObject();
		if (!p) {
			bad = 1;
			break;
		}
		cJSON_AddItemToArray(arr, p);
		bad |= !cJSON_AddStringToObject(p, "part_id", parts[i].part_id);
		snprintf(num, sizeof(num), "%" PRIu64, parts[i].offset);
		bad |= !cJSON_AddRawToObject(p, "offset", num);
		snprintf(num, sizeof(num), "%" PRIu64, parts[i].size);
		bad |= !cJSON_AddRawToObject(p, "size", num);
		if (parts[i].sha1[0])
			bad |= !cJSON_AddStringToObject(p, "sha1", parts[i].sha1);
	}
	/* a time Box cannot store must not fail the commit: left out */
	if (!bad && mtime && !codec_time_format(mtime, ts, sizeof(ts))) {
		attr = cJSON_AddObjectToObject(j, "attributes");
		bad |= !attr || !cJSON_AddStringToObject(attr, "content_modified_at", ts);
	}
	if (!bad)
		s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return s;
}

int box_session_commit(const struct box_session *s,
		       const struct box_part *parts, size_t nparts,
		       const unsigned char file_sha1[20], time_t mtime,
		       struct box_item *out)
{
	char b64[CODEC_B64_LEN(20) + 1], digest[64], *body;
	int rc, waited = 0, mismatches = 0, ambiguous = 0;

	if (!codec_id_ok(s->id))
		return box_bad_id("session", s->id);
	body = box_commit_body(parts, nparts, mtime);
	if (!body)
		return -ENOMEM;
	codec_b64_encode(file_sha1, 20, b64, sizeof(b64));
	snprintf(digest, sizeof(digest), "Digest: sha=%s", b64);
	for (;;) {
		struct box_call c;
		char code[64] = "";
		int pause = 0;

		box_call_init(&c, "POST", HTTP_UNSENT);
		c.session = 1;
		rc = box_target(&c, box_upload_root(), "fields=" BOX_FIELDS,
				"/files/upload_sessions/%s/commit", s->id);
		if (!rc)
			rc = box_header(&c, "Content-Type: application/json");
		if (!rc)
			rc = box_header(&c, digest);
		if (!rc) {
			c.rq.has_body = 1;
			c.rq.pre = body;
			c.rq.pre_len = strlen(body);
			rc = http_request(&c.rq, &c.rs);
		}
		if (rc && c.rs.ambiguous && ++ambiguous <= 2) {
			/* the answer was lost: committing again is harmless
			 * (a session already committed is gone: -ESTALE, and
			 * the caller re-sends rather than lose data) */
			log_warn("box: POST %s: outcome unknown, committing again",
				 c.path);
			pause = 1;
		} else if (!rc && c.rs.status == 202) {
			/* parts still being processed: come back later */
			pause = c.rs.retry_after > 0 ? c.rs.retry_after : 1;
			if (pause > 60)
				pause = 60;
			if (waited + pause > BOX_COMMIT_WAIT_MAX) {
				log_err("box: POST %s: still 202 after %d s",
					c.path, waited);
				box_call_free(&c);
				rc = -ETIMEDOUT;
				break;
			}
			log_debug("box: POST %s: 202, again in %d s", c.path, pause);
		} else if (!rc && c.rs.status == 400) {
			box_parse_error(c.rs.body, c.rs.len, code, sizeof(code),
					NULL, 0, NULL);
			if (!strcmp(code, "parts_mismatch") &&
			    ++mismatches < BOX_MISMATCH_TRIES) {
				log_warn("box: POST %s: parts_mismatch, again in 2 s",
					 c.path);
				pause = 2;
			}
		}
		if (pause) {
			box_call_free(&c);
			sleep((unsigned)pause);
			waited += pause;
			continue;
		}
		rc = box_result(&c, rc, NULL);
		if (!rc)
			rc = box_answer_files(&c, out);
		box_call_free(&c);
		break;
	}
	free(body);
	return rc;
}

void box_session_abort(const struct box_session *s)
{
	struct box_call c;
	int rc;

	if (!codec_id_ok(s->id))
		return;
	box_call_init(&c, "DELETE", HTTP_IDEMPOTENT);
	c.session = 1;
	rc = box_target(&c, box_upload_root(), NULL, "/files/upload_sessions/%s", s->id);
	if (!rc) {
		rc = http_request(&c.rq, &c.rs);
		if (!rc && c.rs.status == 404)
			c.rs.status = 204;	/* already gone: fine */
		box_result(&c, rc, NULL);
	}
	box_call_free(&c);
}
