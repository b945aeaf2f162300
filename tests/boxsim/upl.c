/* upl.c - uploads: chunked upload sessions (create, part PUT, list parts,
 * status, abort, commit) and multipart simple uploads.
 *
 * Part bodies are pwrite()n at their offset into one sparse file per session
 * (DATA/tmp/sess-<id>) and hashed while they arrive.  The whole-file SHA-1 is
 * advanced as soon as the parts at the front of the file are complete by
 * reading them back (page cache), so a commit normally has nothing left to
 * hash.  Simple uploads are parsed as a stream and written to a temp file. */
#include "bs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SESSION_TTL (7 * 24 * 3600)
#define MIB (1024ULL * 1024)

struct part {
	char id[9];
	uint64_t off, size;
	unsigned char sha[20];
};

struct inflight {
	uint64_t off, size;
	struct inflight *next;
};

struct sess {
	char id[33];
	uint64_t file_id;	/* new version of this file, 0: new file */
	uint64_t folder_id;
	char *name;		/* NULL: keep the file's name */
	uint64_t file_size, part_size, total_parts;
	time_t expires;
	int expired, dead, committing;
	struct part *parts;	/* sorted by offset */
	size_t nparts;
	struct inflight *inflight;
	int fd;
	char path[4200];
	int refs;
	pthread_mutex_t hlock;	/* whole-file hash */
	EVP_MD_CTX *hctx;
	uint64_t hashed;
	struct sess *next;
};

static struct sess *sessions;
static pthread_mutex_t slock = PTHREAD_MUTEX_INITIALIZER;

void upl_init(void)
{
}

static void sess_unref(struct sess *s)
{
	int last;

	pthread_mutex_lock(&slock);
	last = --s->refs == 0;
	pthread_mutex_unlock(&slock);
	if (!last)
		return;
	if (s->fd >= 0)
		close(s->fd);
	if (s->path[0])
		unlink(s->path);
	EVP_MD_CTX_free(s->hctx);
	pthread_mutex_destroy(&s->hlock);
	free(s->parts);
	free(s->name);
	free(s);
}

/* Unlinks s from the table (caller holds slock); the table's ref goes. */
static void sess_detach(struct sess *s)
{
	struct sess **pp;

	for (pp = &sessions; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			s->dead = 1;
			s->refs--;	/* > 0: the caller holds one */
			return;
		}
	}
}

static int valid_sid(const char *id)
{
	size_t i;

	for (i = 0; id[i]; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
		      (id[i] >= 'A' && id[i] <= 'F')))
			return 0;
	return i == 32;
}

/* Finds a live session and takes a ref; answers 400/404/410 itself. */
static struct sess *sess_get(struct req *r, const char *id)
{
	struct sess *s;

	if (!valid_sid(id)) {
		http_error(r, 400, "invalid_upload_session_id",
			   "Invalid upload session id", NULL);
		return NULL;
	}
	pthread_mutex_lock(&slock);
	for (s = sessions; s; s = s->next)
		if (!strcmp(s->id, id))
			break;
	if (s && !s->expired && time(NULL) > s->expires)
		s->expired = 1;
	if (s && !s->expired)
		s->refs++;
	pthread_mutex_unlock(&slock);
	if (!s)
		http_error(r, 404, "not_found", "Upload session not found",
			   NULL);
	else if (s->expired)
		http_error(r, 410, "session_expired",
			   "The upload session has expired", NULL);
	return s && !s->expired ? s : NULL;
}

int upl_expire_path(const char *path)
{
	const char *p = strstr(path, "/files/upload_sessions/");
	char id[33];
	struct sess *s;

	if (!p)
		return -1;
	p += strlen("/files/upload_sessions/");
	snprintf(id, sizeof(id), "%s", p);
	pthread_mutex_lock(&slock);
	for (s = sessions; s; s = s->next)
		if (!strcmp(s->id, id))
			s->expired = 1;
	pthread_mutex_unlock(&slock);
	return 0;
}

uint64_t upl_sessions_open(void)
{
	struct sess *s;
	uint64_t n = 0;

	pthread_mutex_lock(&slock);
	for (s = sessions; s; s = s->next)
		if (!s->expired)
			n++;
	pthread_mutex_unlock(&slock);
	return n;
}

static cJSON *part_json(const struct part *p)
{
	cJSON *o = cJSON_CreateObject();
	char hex[41];

	if (!o)
		return NULL;
	codec_hex_encode(p->sha, 20, hex);
	cJSON_AddStringToObject(o, "part_id", p->id);
	cJSON_AddNumberToObject(o, "offset", (double)p->off);
	cJSON_AddNumberToObject(o, "size", (double)p->size);
	cJSON_AddStringToObject(o, "sha1", hex);
	return o;
}

static cJSON *sess_json(struct sess *s)
{
	cJSON *o = cJSON_CreateObject(), *ep;
	char t[32], url[512];
	static const struct { const char *k, *suffix; } eps[] = {
		{ "upload_part", "" }, { "commit", "/commit" },
		{ "abort", "" }, { "list_parts", "/parts" },
		{ "status", "" }, { "log_event", "/log" } };
	size_t i;

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "id", s->id);
	cJSON_AddStringToObject(o, "type", "upload_session");
	parse_time_fmt(s->expires, t);
	cJSON_AddStringToObject(o, "session_expires_at", t);
	cJSON_AddNumberToObject(o, "part_size", (double)s->part_size);
	cJSON_AddNumberToObject(o, "total_parts", (double)s->total_parts);
	pthread_mutex_lock(&slock);
	cJSON_AddNumberToObject(o, "num_parts_processed", (double)s->nparts);
	pthread_mutex_unlock(&slock);
	ep = cJSON_AddObjectToObject(o, "session_endpoints");
	for (i = 0; ep && i < sizeof(eps) / sizeof(eps[0]); i++) {
		snprintf(url, sizeof(url),
			 "%s/api/2.0/files/upload_sessions/%s%s",
			 bs_conf.base, s->id, eps[i].suffix);
		cJSON_AddStringToObject(ep, eps[i].k, url);
	}
	return o;
}

static uint64_t choose_part_size(uint64_t size)
{
	if (bs_conf.part_size)
		return bs_conf.part_size;
	if (size < 1024 * MIB)
		return 8 * MIB;
	if (size < 4096 * MIB)
		return 32 * MIB;
	if (size < 32768 * MIB)
		return 64 * MIB;
	return 128 * MIB;
}

static void rand_hex(char *out, size_t n)
{
	static const char hx[] = "0123456789ABCDEF";
	size_t i;

	for (i = 0; i < n; i++)
		out[i] = hx[random() % 16];
	out[n] = 0;
}

/* Validates a name and its uniqueness in folder (store locked). */
static int name_free(struct req *r, uint64_t folder, const char *name,
		     uint64_t self)
{
	struct item *c;

	if (api_name_error(r, name))
		return -1;
	c = store_child(folder, name);
	if (c && c->id != self) {
		http_error(r, 409, "item_name_in_use",
			   "Item with the same name already exists",
			   api_conflict_ctx(c, 0));
		return -1;
	}
	return 0;
}

static struct sess *sess_new(uint64_t size)
{
	struct sess *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->fd = -1;
	s->hctx = EVP_MD_CTX_new();
	if (!s->hctx || !EVP_DigestInit_ex(s->hctx, EVP_sha1(), NULL)) {
		EVP_MD_CTX_free(s->hctx);
		free(s);
		return NULL;
	}
	pthread_mutex_init(&s->hlock, NULL);
	rand_hex(s->id, 32);
	s->file_size = size;
	s->part_size = choose_part_size(size);
	s->total_parts = (size + s->part_size - 1) / s->part_size;
	s->expires = time(NULL) + SESSION_TTL;
	s->refs = 1;
	if (store_tmp_path(s->path, sizeof(s->path), "sess"))
		goto fail;
	s->fd = open(s->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (s->fd < 0 || ftruncate(s->fd, (off_t)size))
		goto fail;
	return s;
fail:
	if (s->fd < 0)
		s->path[0] = 0;
	s->refs = 1;
	sess_unref(s);
	return NULL;
}

/* POST /files/upload_sessions and /files/{id}/upload_sessions */
static void sess_create(struct req *r)
{
	cJSON *b = http_body_json(r, 1), *v;
	const char *fid = r->arg[0] ? r->arg : NULL;	/* version */
	const char *name = NULL;
	uint64_t size, folder = 0, file = 0;
	struct item *it;
	struct sess *s;

	if (!b)
		return;
	v = cJSON_GetObjectItemCaseSensitive(b, "file_size");
	if (!v) {
		http_error(r, 400, "missing_file_size", "file_size is required",
			   NULL);
		goto out;
	}
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 ||
	    v->valuedouble != (double)(uint64_t)v->valuedouble ||
	    v->valuedouble > 9e15) {
		http_error(r, 400, "invalid_file_size", "Invalid file_size",
			   NULL);
		goto out;
	}
	size = (uint64_t)v->valuedouble;
	v = cJSON_GetObjectItemCaseSensitive(b, "file_name");
	if (v && !cJSON_IsString(v)) {
		http_error(r, 400, "bad_request", "file_name must be a string",
			   NULL);
		goto out;
	}
	name = v ? v->valuestring : NULL;
	store_lock();
	if (fid) {
		it = store_get_str(fid);
		if (!it || it->folder) {
			store_unlock();
			http_error(r, 404, "not_found", "File not found", NULL);
			goto out;
		}
		if (api_if_match(r, it)) {
			store_unlock();
			goto out;
		}
		file = it->id;
		folder = it->parent;
		if (name && name_free(r, folder, name, file)) {
			store_unlock();
			goto out;
		}
	} else {
		v = cJSON_GetObjectItemCaseSensitive(b, "folder_id");
		if (!v) {
			store_unlock();
			http_error(r, 400, "missing_destination",
				   "folder_id is required", NULL);
			goto out;
		}
		if (!cJSON_IsString(v) || parse_u64(v->valuestring, &folder)) {
			store_unlock();
			http_error(r, 400, "invalid_folder_id",
				   "Invalid folder_id", NULL);
			goto out;
		}
		it = store_get(folder);
		if (!it || !it->folder) {
			store_unlock();
			http_error(r, 404, "not_found", "Folder not found",
				   NULL);
			goto out;
		}
		if (!name) {
			store_unlock();
			http_error(r, 400, "missing_file_name",
				   "file_name is required", NULL);
			goto out;
		}
		if (name_free(r, folder, name, 0)) {
			store_unlock();
			goto out;
		}
	}
	store_unlock();
	if (size > BS_MAX_UPLOAD) {
		http_error(r, 403, "file_size_limit_exceeded",
			   "File is bigger than the maximum upload size", NULL);
		goto out;
	}
	if (size < bs_conf.chunked_min) {
		http_error(r, 400, "file_size_too_small",
			   "File size is less than minimum allowed for this API",
			   NULL);
		goto out;
	}
	s = sess_new(size);
	if (!s || (name && !(s->name = strdup(name)))) {
		if (s)
			sess_unref(s);
		http_error(r, 500, "internal_server_error",
			   "cannot create session", NULL);
		goto out;
	}
	s->file_id = file;
	s->folder_id = folder;
	pthread_mutex_lock(&slock);
	s->next = sessions;
	sessions = s;
	pthread_mutex_unlock(&slock);
	http_json(r, 201, sess_json(s));
out:
	cJSON_Delete(b);
}

/* ---- part upload ---- */

struct part_ctx {
	struct sess *s;
	struct inflight *res;
	uint64_t a, b, got;
	unsigned char want[20];
	EVP_MD_CTX *md;
	int io_error;
};

/* slock held: forget the part's in-flight reservation. */
static void inflight_drop(struct part_ctx *pc)
{
	struct inflight **pp;

	if (!pc->res)
		return;
	for (pp = &pc->s->inflight; *pp; pp = &(*pp)->next) {
		if (*pp == pc->res) {
			*pp = pc->res->next;
			break;
		}
	}
	free(pc->res);
	pc->res = NULL;
}

static void part_free(void *p)
{
	struct part_ctx *pc = p;

	if (!pc)
		return;
	if (pc->res) {
		pthread_mutex_lock(&slock);
		inflight_drop(pc);
		pthread_mutex_unlock(&slock);
	}
	EVP_MD_CTX_free(pc->md);
	if (pc->s)
		sess_unref(pc->s);
	free(pc);
}

static int part_data(struct req *r, const char *buf, size_t n)
{
	struct part_ctx *pc = r->hctx;
	uint64_t len = pc->b - pc->a + 1;
	size_t done = 0;

	if (pc->got + n > len) {
		http_error(r, 400, "bad_request",
			   "Body is longer than the Content-Range", NULL);
		return -1;
	}
	while (done < n) {
		ssize_t w = pwrite(pc->s->fd, buf + done, n - done,
				   (off_t)(pc->a + pc->got + done));

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			http_error(r, 500, "internal_server_error",
				   "write failed", NULL);
			return -1;
		}
		done += (size_t)w;
	}
	EVP_DigestUpdate(pc->md, buf, n);
	pc->got += n;
	return 0;
}

static struct part *part_overlap(struct sess *s, uint64_t a, uint64_t b)
{
	size_t i;

	for (i = 0; i < s->nparts; i++)
		if (s->parts[i].off <= b && a <= s->parts[i].off +
		    s->parts[i].size - 1)
			return &s->parts[i];
	return NULL;
}

static int inflight_overlap(struct sess *s, uint64_t a, uint64_t b)
{
	struct inflight *f;

	for (f = s->inflight; f; f = f->next)
		if (f->off <= b && a <= f->off + f->size - 1)
			return 1;
	return 0;
}

static void overlap_error(struct req *r, struct part *p)
{
	cJSON *ctx = cJSON_CreateObject();

	if (ctx)
		cJSON_AddItemToObject(ctx, "conflicting_part", part_json(p));
	http_error(r, 416, "range_overlaps_existing_part",
		   "Part overlaps with a previously uploaded part", ctx);
}

/* Reads the parts at the front of the file into the whole-file hash. */
static void sess_hash_advance(struct sess *s)
{
	char *buf = malloc(MIB);
	size_t i;

	if (!buf)
		return;
	pthread_mutex_lock(&s->hlock);
	for (;;) {
		uint64_t size = 0, done = 0;

		pthread_mutex_lock(&slock);
		for (i = 0; i < s->nparts; i++)
			if (s->parts[i].off == s->hashed)
				size = s->parts[i].size;
		pthread_mutex_unlock(&slock);
		if (!size)
			break;
		while (done < size) {
			size_t want = size - done > MIB ? MIB : size - done;
			ssize_t n = pread(s->fd, buf, want,
					  (off_t)(s->hashed + done));

			if (n <= 0)
				goto out;	/* hash stays short: commit 400s */
			EVP_DigestUpdate(s->hctx, buf, (size_t)n);
			done += (uint64_t)n;
		}
		s->hashed += size;
	}
out:
	pthread_mutex_unlock(&s->hlock);
	free(buf);
}

static void part_done(struct req *r)
{
	struct part_ctx *pc = r->hctx;
	struct sess *s = pc->s;
	unsigned char got[20];
	unsigned int glen = 0;
	struct part np, *ov, *nparts;
	size_t i;
	cJSON *o;

	if (pc->got != pc->b - pc->a + 1) {
		http_error(r, 400, "bad_request",
			   "Body length does not match the Content-Range",
			   NULL);
		return;
	}
	EVP_DigestFinal_ex(pc->md, got, &glen);
	if (memcmp(got, pc->want, 20)) {
		http_error(r, 412, "precondition_failed",
			   "The digest of the part does not match the Digest header",
			   NULL);
		return;
	}
	memset(&np, 0, sizeof(np));
	rand_hex(np.id, 8);
	np.off = pc->a;
	np.size = pc->got;
	memcpy(np.sha, got, 20);
	pthread_mutex_lock(&slock);
	if (s->dead || s->expired) {
		pthread_mutex_unlock(&slock);
		http_error(r, s->dead ? 404 : 410,
			   s->dead ? "not_found" : "session_expired",
			   "The upload session is gone", NULL);
		return;
	}
	ov = part_overlap(s, pc->a, pc->b);
	if (ov) {
		overlap_error(r, ov);
		pthread_mutex_unlock(&slock);
		return;
	}
	nparts = realloc(s->parts, (s->nparts + 1) * sizeof(*nparts));
	if (!nparts) {
		pthread_mutex_unlock(&slock);
		http_respond(r, 500, NULL);
		return;
	}
	s->parts = nparts;
	for (i = s->nparts; i > 0 && s->parts[i - 1].off > np.off; i--)
		s->parts[i] = s->parts[i - 1];
	s->parts[i] = np;
	s->nparts++;
	/* No longer in flight once stored: the client may commit as soon as
	 * it has the answer, before MHD calls part_free. */
	inflight_drop(pc);
	pthread_mutex_unlock(&slock);
	sess_hash_advance(s);
	o = cJSON_CreateObject();
	if (o)
		cJSON_AddItemToObject(o, "part", part_json(&np));
	http_json(r, 200, o);
}

static void part_start(struct req *r, const char *sid)
{
	const char *cr = http_header(r, "Content-Range");
	const char *dg = http_header(r, "Digest");
	const char *cl = http_header(r, "Content-Length");
	uint64_t a, b, t, clen;
	struct part_ctx *pc;
	struct sess *s;
	struct part *ov;

	s = sess_get(r, sid);
	if (!s)
		return;
	pc = calloc(1, sizeof(*pc));
	if (!pc) {
		sess_unref(s);
		http_respond(r, 500, NULL);
		return;
	}
	pc->s = s;
	r->hctx = pc;
	r->hfree = part_free;
	if (!cl) {
		http_error(r, 411, "length_required",
			   "Content-Length is required", NULL);
		return;
	}
	if (!cr || parse_content_range(cr, &a, &b, &t)) {
		http_error(r, 416, "requested_range_not_satisfiable",
			   "Content-Range is missing or malformed", NULL);
		return;
	}
	if (t != s->file_size || b >= t || a % s->part_size ||
	    (b - a + 1 != s->part_size && b != t - 1) ||
	    b - a + 1 > s->part_size) {
		http_error(r, 416, "requested_range_not_satisfiable",
			   "Content-Range does not match the upload session",
			   NULL);
		return;
	}
	if (parse_u64(cl, &clen) || clen != b - a + 1) {
		http_error(r, 400, "bad_request",
			   "Content-Length does not match the Content-Range",
			   NULL);
		return;
	}
	if (!dg || parse_digest_sha1(dg, pc->want)) {
		http_error(r, 400, "bad_request",
			   "Digest header with sha=<base64 SHA-1> is required",
			   NULL);
		return;
	}
	pthread_mutex_lock(&slock);
	ov = part_overlap(s, a, b);
	if (ov) {
		overlap_error(r, ov);
	} else if (inflight_overlap(s, a, b)) {
		http_error(r, 409, "conflict",
			   "An upload of an overlapping range is in progress",
			   NULL);
	} else if (s->committing) {
		http_error(r, 409, "conflict", "The session is being committed",
			   NULL);
	} else {
		pc->res = calloc(1, sizeof(*pc->res));
		if (pc->res) {
			pc->res->off = a;
			pc->res->size = b - a + 1;
			pc->res->next = s->inflight;
			s->inflight = pc->res;
		}
	}
	pthread_mutex_unlock(&slock);
	if (r->resp)
		return;
	pc->md = EVP_MD_CTX_new();
	if (!pc->res || !pc->md || !EVP_DigestInit_ex(pc->md, EVP_sha1(), NULL)) {
		http_respond(r, 500, NULL);
		return;
	}
	pc->a = a;
	pc->b = b;
	r->on_data = part_data;
	r->on_done = part_done;
}

/* ---- installing content into the store (commit and simple upload) ---- */

struct install {
	const char *tmp;	/* content file to rename into place */
	uint64_t size;
	char sha1[41];
	uint64_t folder;	/* new file: parent */
	uint64_t file;		/* version: file id */
	const char *name;	/* new name (NULL: keep) */
	int64_t ccreated, cmodified;	/* -1: now / keep */
};

/* Answers with the Files collection (status ok) or an error. */
static void install(struct req *r, struct install *in, int ok)
{
	struct item *it, *f;
	char path[4200];
	char *nn = NULL, *oname = NULL;
	time_t now = time(NULL);
	cJSON *o, *a;
	int created = 0;

	store_lock();
	if (in->file) {
		it = store_get(in->file);
		if (!it || it->folder) {
			http_error(r, 404, "not_found", "File not found", NULL);
			goto out;
		}
		if (api_if_match(r, it))
			goto out;
		if (in->name && strcmp(in->name, it->name)) {
			if (name_free(r, it->parent, in->name, it->id))
				goto out;
			nn = strdup(in->name);
			if (!nn || store_path(it, path, sizeof(path)))
				goto fail;
			unlink(path);	/* the new content replaces it */
			oname = it->name;
			it->name = nn;
		}
	} else {
		f = store_get(in->folder);
		if (!f || !f->folder) {
			http_error(r, 404, "not_found", "Folder not found",
				   NULL);
			goto out;
		}
		if (name_free(r, in->folder, in->name, 0))
			goto out;
		it = store_add(0, in->folder, in->name);
		if (!it)
			goto fail;
		created = 1;
	}
	if (store_path(it, path, sizeof(path)) || rename(in->tmp, path)) {
		if (created)
			store_remove(it);
		else if (oname) {
			free(it->name);
			it->name = oname;
			oname = NULL;
		}
		goto fail;
	}
	free(oname);
	it->size = in->size;
	memcpy(it->sha1, in->sha1, sizeof(it->sha1));
	it->version = store_new_id();
	if (!created)
		store_touch(it);
	it->modified = now;
	if (created)
		it->ccreated = in->ccreated >= 0 ? in->ccreated : now;
	else if (in->ccreated >= 0)
		it->ccreated = in->ccreated;
	it->cmodified = in->cmodified >= 0 ? in->cmodified : now;
	store_save();
	o = cJSON_CreateObject();
	if (o) {
		cJSON_AddNumberToObject(o, "total_count", 1);
		a = cJSON_AddArrayToObject(o, "entries");
		if (a)
			cJSON_AddItemToArray(a, api_file_json(it,
						http_arg(r, "fields")));
	}
	http_json(r, ok, o);
	goto out;
fail:
	http_error(r, 500, "internal_server_error", "cannot store the file",
		   NULL);
out:
	store_unlock();
}

/* attributes content_*_at; -1 on a bad value (answered). */
static int attr_times(struct req *r, cJSON *attrs, struct install *in)
{
	static const char *keys[] = { "content_created_at",
				      "content_modified_at" };
	int64_t *dst[] = { &in->ccreated, &in->cmodified };
	int i;

	in->ccreated = in->cmodified = -1;
	for (i = 0; attrs && i < 2; i++) {
		cJSON *v = cJSON_GetObjectItemCaseSensitive(attrs, keys[i]);

		if (!v || cJSON_IsNull(v))
			continue;
		if (!cJSON_IsString(v) || parse_time(v->valuestring, dst[i])) {
			http_error(r, 400, "bad_request",
				   "Invalid value for a date-time attribute",
				   NULL);
			return -1;
		}
	}
	return 0;
}

/* ---- commit ---- */

static int parts_match(struct sess *s, cJSON *list, char *msg, size_t mlen)
{
	cJSON *e;
	size_t n = 0, i;
	uint64_t next = 0;

	cJSON_ArrayForEach(e, list) {
		cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "part_id");
		cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "offset");
		cJSON *sz = cJSON_GetObjectItemCaseSensitive(e, "size");
		cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "sha1");
		char *txt;
		int found = 0;

		for (i = 0; cJSON_IsString(id) && cJSON_IsNumber(off) &&
		     cJSON_IsNumber(sz) && i < s->nparts; i++) {
			struct part *p = &s->parts[i];
			char hex[41];

			codec_hex_encode(p->sha, 20, hex);
			if (!strcmp(p->id, id->valuestring) &&
			    (double)p->off == off->valuedouble &&
			    (double)p->size == sz->valuedouble &&
			    (!cJSON_IsString(sh) ||
			     !strcasecmp(sh->valuestring, hex)))
				found = 1;
		}
		if (!found) {
			txt = cJSON_PrintUnformatted(e);
			snprintf(msg, mlen,
				 "No matching part found on server for %s",
				 txt ? txt : "?");
			free(txt);
			return -1;
		}
		n++;
	}
	if (n != s->nparts) {
		snprintf(msg, mlen, "Parts in the request (%zu) do not match the parts uploaded (%zu)",
			 n, s->nparts);
		return -1;
	}
	for (i = 0; i < s->nparts; i++) {
		if (s->parts[i].off != next)
			break;
		next += s->parts[i].size;
	}
	if (next != s->file_size) {
		snprintf(msg, mlen, "The parts do not cover the file: %llu of %llu bytes",
			 (unsigned long long)next,
			 (unsigned long long)s->file_size);
		return -1;
	}
	return 0;
}

static void commit_done(struct req *r)
{
	struct sess *s = r->hctx;
	cJSON *b = http_body_json(r, 1), *parts, *attrs;
	const char *dg = http_header(r, "Digest");
	unsigned char want[20], got[20];
	char msg[512], e1[32], e2[32];
	unsigned int glen = 0;
	EVP_MD_CTX *c;
	struct install in;
	int bad;

	if (!b)
		return;
	if (!dg || parse_digest_sha1(dg, want)) {
		http_error(r, 400, "bad_request",
			   "Digest header with sha=<base64 SHA-1> is required",
			   NULL);
		goto out;
	}
	parts = cJSON_GetObjectItemCaseSensitive(b, "parts");
	attrs = cJSON_GetObjectItemCaseSensitive(b, "attributes");
	if (!cJSON_IsArray(parts)) {
		http_error(r, 400, "bad_request", "parts is required", NULL);
		goto out;
	}
	memset(&in, 0, sizeof(in));
	if (attr_times(r, attrs, &in))
		goto out;
	pthread_mutex_lock(&slock);
	bad = parts_match(s, parts, msg, sizeof(msg));
	if (!bad && (s->committing || s->inflight)) {
		bad = 2;
		snprintf(msg, sizeof(msg), "The session is busy");
	}
	if (!bad)
		s->committing = 1;
	pthread_mutex_unlock(&slock);
	if (bad) {
		if (bad == 2)
			http_error(r, 409, "conflict", msg, NULL);
		else
			http_error(r, 400, "parts_mismatch", msg, NULL);
		goto out;
	}
	sess_hash_advance(s);
	c = EVP_MD_CTX_new();
	pthread_mutex_lock(&s->hlock);
	bad = !c || s->hashed != s->file_size ||
	      !EVP_MD_CTX_copy_ex(c, s->hctx) ||
	      !EVP_DigestFinal_ex(c, got, &glen);
	pthread_mutex_unlock(&s->hlock);
	EVP_MD_CTX_free(c);
	if (bad) {
		http_error(r, 500, "internal_server_error", "hash failed", NULL);
		goto unbusy;
	}
	if (memcmp(got, want, 20)) {
		codec_b64_encode(got, 20, e1, sizeof(e1));
		codec_b64_encode(want, 20, e2, sizeof(e2));
		snprintf(msg, sizeof(msg),
			 "File digest was incorrect. Actual: %s Expected: %s",
			 e1, e2);
		http_error(r, 400, "digest_mismatch", msg, NULL);
		goto unbusy;
	}
	in.tmp = s->path;
	in.size = s->file_size;
	codec_hex_encode(got, 20, in.sha1);
	in.folder = s->folder_id;
	in.file = s->file_id;
	in.name = s->name;
	if (cJSON_IsObject(attrs)) {
		cJSON *nm = cJSON_GetObjectItemCaseSensitive(attrs, "name");

		if (cJSON_IsString(nm))
			in.name = nm->valuestring;
	}
	if (!in.file && !in.name)
		in.name = "";
	install(r, &in, 201);
	if (r->status == 201) {
		pthread_mutex_lock(&slock);
		s->path[0] = 0;		/* renamed into the tree */
		sess_detach(s);
		pthread_mutex_unlock(&slock);
		goto out;
	}
unbusy:
	pthread_mutex_lock(&slock);
	s->committing = 0;
	pthread_mutex_unlock(&slock);
out:
	cJSON_Delete(b);
}

static void sess_unref_cb(void *p)
{
	if (p)
		sess_unref(p);
}

static void sess_status(struct req *r)
{
	http_json(r, 200, sess_json(r->hctx));
}

static void sess_abort(struct req *r)
{
	struct sess *s = r->hctx;

	pthread_mutex_lock(&slock);
	if (!s->dead)
		sess_detach(s);
	pthread_mutex_unlock(&slock);
	http_empty(r, 204);
}

static void sess_parts(struct req *r)
{
	struct sess *s = r->hctx;
	const char *os = http_arg(r, "offset"), *ls = http_arg(r, "limit");
	uint64_t off = 0, limit = 1000, i;
	cJSON *o, *a, *ord, *e;

	if (os && (parse_u64(os, &off) || off > 10000)) {
		http_error(r, 400, "invalid_offset", "Invalid offset", NULL);
		return;
	}
	if (ls && (parse_u64(ls, &limit) || !limit)) {
		http_error(r, 400, "invalid_limit", "Invalid limit", NULL);
		return;
	}
	if (limit > 1000)
		limit = 1000;
	o = cJSON_CreateObject();
	if (!o) {
		http_respond(r, 500, NULL);
		return;
	}
	pthread_mutex_lock(&slock);
	cJSON_AddNumberToObject(o, "total_count", (double)s->nparts);
	cJSON_AddNumberToObject(o, "limit", (double)limit);
	cJSON_AddNumberToObject(o, "offset", (double)off);
	a = cJSON_AddArrayToObject(o, "entries");
	for (i = off; a && i < s->nparts && i < off + limit; i++)
		cJSON_AddItemToArray(a, part_json(&s->parts[i]));
	pthread_mutex_unlock(&slock);
	ord = cJSON_AddArrayToObject(o, "order");
	e = cJSON_CreateObject();
	if (ord && e) {
		cJSON_AddStringToObject(e, "by", "type");
		cJSON_AddStringToObject(e, "direction", "ASC");
		cJSON_AddItemToArray(ord, e);
	} else {
		cJSON_Delete(e);
	}
	http_json(r, 200, o);
}

/* ---- simple upload (multipart) ---- */

struct simple {
	struct req *r;
	struct mp_parser mp;
	char *attrs;
	size_t alen;
	int in_attrs, in_file, have_attrs, have_file;
	int fd;
	char tmp[4200];
	EVP_MD_CTX *md;
	uint64_t size;
	uint64_t file;		/* version upload target */
};

static void simple_free(void *p)
{
	struct simple *sm = p;

	if (!sm)
		return;
	if (sm->fd >= 0)
		close(sm->fd);
	if (sm->tmp[0])
		unlink(sm->tmp);
	EVP_MD_CTX_free(sm->md);
	free(sm->attrs);
	free(sm);
}

static int mp_begin(void *ctx, const char *name, const char *filename,
		    int has_fn)
{
	struct simple *sm = ctx;

	(void)filename;
	sm->in_attrs = sm->in_file = 0;
	if (!has_fn && !strcmp(name, "attributes")) {
		sm->in_attrs = 1;
		sm->have_attrs = 1;
		return 0;
	}
	if (!has_fn)
		return 0;	/* other form fields are ignored */
	if (sm->have_file) {
		http_error(sm->r, 400, "bad_request", "More than one file part",
			   NULL);
		return -1;
	}
	if (!sm->have_attrs && !sm->file) {
		http_error(sm->r, 400, "metadata_after_file_contents",
			   "The attributes part must come before the file part",
			   NULL);
		return -1;
	}
	if (store_tmp_path(sm->tmp, sizeof(sm->tmp), "up"))
		return -1;
	sm->fd = open(sm->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	sm->md = EVP_MD_CTX_new();
	if (sm->fd < 0 || !sm->md ||
	    !EVP_DigestInit_ex(sm->md, EVP_sha1(), NULL)) {
		http_error(sm->r, 500, "internal_server_error",
			   "cannot store", NULL);
		return -1;
	}
	sm->in_file = sm->have_file = 1;
	return 0;
}

static int mp_data(void *ctx, const char *buf, size_t len)
{
	struct simple *sm = ctx;
	size_t done = 0;

	if (sm->in_attrs) {
		char *na;

		if (sm->alen + len > 65536) {
			http_error(sm->r, 400, "bad_request",
				   "attributes too large", NULL);
			return -1;
		}
		na = realloc(sm->attrs, sm->alen + len + 1);
		if (!na)
			return -1;
		memcpy(na + sm->alen, buf, len);
		sm->attrs = na;
		sm->alen += len;
		na[sm->alen] = 0;
		return 0;
	}
	if (!sm->in_file)
		return 0;
	while (done < len) {
		ssize_t w = write(sm->fd, buf + done, len - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			http_error(sm->r, 500, "internal_server_error",
				   "write failed", NULL);
			return -1;
		}
		done += (size_t)w;
	}
	EVP_DigestUpdate(sm->md, buf, len);
	sm->size += len;
	return 0;
}

static int mp_end(void *ctx)
{
	struct simple *sm = ctx;

	sm->in_attrs = sm->in_file = 0;
	return 0;
}

static const struct mp_cb simple_cb = { mp_begin, mp_data, mp_end };

static int simple_data(struct req *r, const char *buf, size_t n)
{
	struct simple *sm = r->hctx;

	if (parse_mp_feed(&sm->mp, buf, n)) {
		http_error(r, 400, "bad_request", "Malformed multipart body",
			   NULL);
		return -1;
	}
	return 0;
}

static void simple_done(struct req *r)
{
	struct simple *sm = r->hctx;
	const char *md5 = http_header(r, "Content-MD5");
	cJSON *attrs = NULL, *v;
	unsigned char got[20], want[20];
	unsigned int glen = 0;
	struct install in;

	if (!parse_mp_done(&sm->mp) || !sm->have_file) {
		http_error(r, 400, "bad_request",
			   "Multipart body incomplete or without a file part",
			   NULL);
		return;
	}
	EVP_DigestFinal_ex(sm->md, got, &glen);
	if (md5 && (codec_hex_decode(md5, want, 20) || memcmp(want, got, 20))) {
		http_error(r, 400, "bad_digest",
			   "The specified content-md5 did not match what we received",
			   NULL);
		return;
	}
	memset(&in, 0, sizeof(in));
	if (sm->have_attrs) {
		attrs = sm->attrs && !parse_json_has_nul(sm->attrs, sm->alen) ?
			cJSON_Parse(sm->attrs) : NULL;
		if (!cJSON_IsObject(attrs)) {
			http_error(r, 400, "bad_request",
				   "attributes is not a JSON object", NULL);
			goto out;
		}
	}
	if (attr_times(r, attrs, &in))
		goto out;
	v = cJSON_GetObjectItemCaseSensitive(attrs, "name");
	if (v && !cJSON_IsString(v)) {
		http_error(r, 400, "bad_request", "name must be a string",
			   NULL);
		goto out;
	}
	in.name = v ? v->valuestring : NULL;
	if (!sm->file) {
		cJSON *p = cJSON_GetObjectItemCaseSensitive(attrs, "parent");
		cJSON *pid = cJSON_GetObjectItemCaseSensitive(p, "id");

		if (!in.name) {
			http_error(r, 400, "bad_request",
				   "attributes.name is required", NULL);
			goto out;
		}
		if (!cJSON_IsString(pid) ||
		    parse_u64(pid->valuestring, &in.folder)) {
			http_error(r, 400, "bad_request",
				   "attributes.parent.id is required", NULL);
			goto out;
		}
	}
	close(sm->fd);
	sm->fd = -1;
	in.tmp = sm->tmp;
	in.size = sm->size;
	codec_hex_encode(got, 20, in.sha1);
	in.file = sm->file;
	install(r, &in, sm->file ? 200 : 201);
	if (r->status == 200 || r->status == 201)
		sm->tmp[0] = 0;
out:
	cJSON_Delete(attrs);
}

static void simple_start(struct req *r, const char *fid)
{
	const char *ct = http_header(r, "Content-Type");
	char boundary[128];
	struct simple *sm;

	if (strcmp(r->method, "POST")) {
		http_error(r, 405, "method_not_allowed", "Method Not Allowed",
			   NULL);
		return;
	}
	sm = calloc(1, sizeof(*sm));
	if (!sm) {
		http_respond(r, 500, NULL);
		return;
	}
	sm->r = r;
	sm->fd = -1;
	r->hctx = sm;
	r->hfree = simple_free;
	if (fid) {
		struct item *it;

		store_lock();
		it = store_get_str(fid);
		if (it && !it->folder)
			sm->file = it->id;
		store_unlock();
		if (!sm->file) {
			http_error(r, fid[strspn(fid, "0123456789")] ? 405 : 404,
				   "not_found", "File not found", NULL);
			return;
		}
	}
	if (parse_mp_boundary(ct, boundary, sizeof(boundary)) ||
	    parse_mp_init(&sm->mp, boundary, &simple_cb, sm)) {
		http_error(r, 400, "bad_request",
			   "Content-Type must be multipart/form-data with a boundary",
			   NULL);
		return;
	}
	r->on_data = simple_data;
	r->on_done = simple_done;
}

/* ---- routing ---- */

static int is(const char *a, const char *b)
{
	return !strcmp(a, b);
}

static void bad_method(struct req *r)
{
	http_error(r, 405, "method_not_allowed", "Method Not Allowed", NULL);
}

/* Session-scoped request: /files/upload_sessions/<id>[/parts|/commit] */
static void sess_route(struct req *r, const char *rest)
{
	char id[64];
	const char *slash = strchr(rest, '/');
	const char *tail = slash ? slash : "";
	size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
	struct sess *s;
	const char *m = r->method;

	if (n >= sizeof(id)) {
		http_error(r, 400, "invalid_upload_session_id",
			   "Invalid upload session id", NULL);
		return;
	}
	memcpy(id, rest, n);
	id[n] = 0;
	if (*tail && !is(tail, "/parts") && !is(tail, "/commit") &&
	    !is(tail, "/log")) {
		http_error(r, 404, "not_found", "Not Found", NULL);
		return;
	}
	if (!*tail && is(m, "PUT")) {
		part_start(r, id);
		return;
	}
	if ((!*tail && !is(m, "GET") && !is(m, "DELETE")) ||
	    (*tail && is(tail, "/parts") && !is(m, "GET")) ||
	    (*tail && !is(tail, "/parts") && !is(m, "POST"))) {
		bad_method(r);
		return;
	}
	s = sess_get(r, id);
	if (!s)
		return;
	r->hctx = s;
	r->hfree = sess_unref_cb;
	if (!*tail)
		r->on_done = is(m, "GET") ? sess_status : sess_abort;
	else if (is(tail, "/parts"))
		r->on_done = sess_parts;
	else if (is(tail, "/commit"))
		r->on_done = commit_done;
	else
		r->on_done = NULL, http_empty(r, 204);	/* log_event */
}

int upl_route(struct req *r, const char *sub)
{
	static const char us[] = "/files/upload_sessions";
	const char *m = r->method;
	char fid[64];
	int n = 0;

	if (!strncmp(sub, us, sizeof(us) - 1) &&
	    (sub[sizeof(us) - 1] == 0 || sub[sizeof(us) - 1] == '/')) {
		const char *rest = sub + sizeof(us) - 1;

		if (!*rest || is(rest, "/")) {
			if (is(m, "POST"))
				r->on_done = sess_create;
			else
				bad_method(r);
			return 1;
		}
		sess_route(r, rest + 1);
		return 1;
	}
	if (is(sub, "/files/content") || is(sub, "/files/content/")) {
		if (is(m, "OPTIONS"))
			return 0;
		simple_start(r, NULL);
		return 1;
	}
	if (sscanf(sub, "/files/%63[^/]/%n", fid, &n) == 1 && n > 0) {
		if (is(sub + n, "content") && is(m, "POST")) {
			simple_start(r, fid);
			return 1;
		}
		if (is(sub + n, "upload_sessions")) {
			if (!is(m, "POST")) {
				bad_method(r);
				return 1;
			}
			snprintf(r->arg, sizeof(r->arg), "%s", fid);
			r->on_done = sess_create;
			return 1;
		}
	}
	return 0;
}
