/* api.c - folders, files, users, preflight and downloads. Uploads (simple
 * and chunked) live in upl.c. Handlers run once the (small, buffered) body
 * is complete; they take the store lock for the whole operation so that
 * metadata and the on-disk tree stay consistent. */
#include "bs.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_SEG 6

static const char *file_mini[] = { "type", "id", "file_version",
				   "sequence_id", "etag", "sha1", "name",
				   NULL };
static const char *folder_mini[] = { "type", "id", "sequence_id", "etag",
				     "name", NULL };

static int field_in(const char *list, const char *f)
{
	size_t n = strlen(f);
	const char *p = list;

	while (p && *p) {
		const char *c = strchr(p, ',');
		size_t len = c ? (size_t)(c - p) : strlen(p);

		if (len == n && !strncmp(p, f, n))
			return 1;
		p = c ? c + 1 : NULL;
	}
	return 0;
}

static int wanted(const char *fields, const char *f)
{
	return !fields || field_in(fields, f);
}

/* Keeps only mini fields + requested ones. */
static void filter_fields(cJSON *o, const char *fields, const char **mini)
{
	cJSON *c = o->child, *nx;
	int i, keep;

	if (!fields)
		return;
	for (; c; c = nx) {
		nx = c->next;
		keep = field_in(fields, c->string);
		for (i = 0; !keep && mini[i]; i++)
			keep = !strcmp(mini[i], c->string);
		if (!keep)
			cJSON_Delete(cJSON_DetachItemViaPointer(o, c));
	}
}

static void add_id(cJSON *o, const char *k, uint64_t v)
{
	char b[24];

	snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
	cJSON_AddStringToObject(o, k, b);
}

static void add_time(cJSON *o, const char *k, int64_t t)
{
	char b[32];

	parse_time_fmt(t, b);
	cJSON_AddStringToObject(o, k, b);
}

static cJSON *user_mini(void)
{
	cJSON *u = cJSON_CreateObject();

	if (!u)
		return NULL;
	cJSON_AddStringToObject(u, "type", "user");
	cJSON_AddStringToObject(u, "id", "1");
	cJSON_AddStringToObject(u, "name", "boxsim user");
	cJSON_AddStringToObject(u, "login", "boxsim@example.com");
	return u;
}

static cJSON *folder_mini_json(struct item *it)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "type", "folder");
	add_id(o, "id", it->id);
	if (it->id == 0) {
		cJSON_AddNullToObject(o, "sequence_id");
		cJSON_AddNullToObject(o, "etag");
	} else {
		add_id(o, "sequence_id", it->seq);
		add_id(o, "etag", it->seq);
	}
	cJSON_AddStringToObject(o, "name", it->name);
	return o;
}

static cJSON *file_version_json(struct item *it)
{
	cJSON *v = cJSON_CreateObject();

	if (!v)
		return NULL;
	cJSON_AddStringToObject(v, "type", "file_version");
	add_id(v, "id", it->version);
	cJSON_AddStringToObject(v, "sha1", it->sha1);
	return v;
}

static cJSON *file_mini_json(struct item *it)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "type", "file");
	add_id(o, "id", it->id);
	cJSON_AddItemToObject(o, "file_version", file_version_json(it));
	add_id(o, "sequence_id", it->seq);
	add_id(o, "etag", it->seq);
	cJSON_AddStringToObject(o, "sha1", it->sha1);
	cJSON_AddStringToObject(o, "name", it->name);
	return o;
}

cJSON *api_item_mini(struct item *it)
{
	return it->folder ? folder_mini_json(it) : file_mini_json(it);
}

static cJSON *path_collection(struct item *it)
{
	cJSON *pc = cJSON_CreateObject(), *e;
	struct item *chain[1024];
	int n = 0, i;
	struct item *p = it->id ? store_get(it->parent) : NULL;

	if (!pc)
		return NULL;
	while (p && n < 1024) {
		chain[n++] = p;
		p = p->id ? store_get(p->parent) : NULL;
	}
	cJSON_AddNumberToObject(pc, "total_count", n);
	e = cJSON_AddArrayToObject(pc, "entries");
	for (i = n - 1; e && i >= 0; i--)
		cJSON_AddItemToArray(e, folder_mini_json(chain[i]));
	return pc;
}

/* The parts common to File--Full and Folder--Full. */
static void add_common(cJSON *o, struct item *it, const char *fields)
{
	struct item *p = it->id ? store_get(it->parent) : NULL;

	cJSON_AddStringToObject(o, "description",
				it->description ? it->description : "");
	if (wanted(fields, "path_collection"))
		cJSON_AddItemToObject(o, "path_collection", path_collection(it));
	add_time(o, "created_at", it->created);
	add_time(o, "modified_at", it->modified);
	cJSON_AddNullToObject(o, "trashed_at");
	cJSON_AddNullToObject(o, "purged_at");
	add_time(o, "content_created_at", it->ccreated);
	add_time(o, "content_modified_at", it->cmodified);
	cJSON_AddItemToObject(o, "created_by", user_mini());
	cJSON_AddItemToObject(o, "modified_by", user_mini());
	cJSON_AddItemToObject(o, "owned_by", user_mini());
	cJSON_AddNullToObject(o, "shared_link");
	if (p)
		cJSON_AddItemToObject(o, "parent", folder_mini_json(p));
	else
		cJSON_AddNullToObject(o, "parent");
	cJSON_AddStringToObject(o, "item_status", "active");
}

cJSON *api_file_json(struct item *it, const char *fields)
{
	cJSON *o = file_mini_json(it);

	if (!o)
		return NULL;
	cJSON_AddNumberToObject(o, "size", (double)it->size);
	add_common(o, it, fields);
	/* File--Full's shared_link is an object, not nullable: leave it out */
	cJSON_DeleteItemFromObjectCaseSensitive(o, "shared_link");
	filter_fields(o, fields, file_mini);
	return o;
}

static cJSON *entries_json(struct item **kids, size_t from, size_t to,
			   const char *fields);

static cJSON *folder_json(struct item *it, const char *fields, int coll)
{
	cJSON *o = folder_mini_json(it), *ic;
	struct item **kids;
	size_t n;

	if (!o)
		return NULL;
	if (wanted(fields, "size"))
		cJSON_AddNumberToObject(o, "size",
					(double)store_folder_size(it->id));
	add_common(o, it, fields);
	cJSON_AddNullToObject(o, "folder_upload_email");
	if (coll && wanted(fields, "item_collection")) {
		kids = store_children(it->id, &n);
		ic = cJSON_AddObjectToObject(o, "item_collection");
		if (kids && ic) {
			cJSON_AddNumberToObject(ic, "total_count", (double)n);
			cJSON_AddItemToObject(ic, "entries",
				entries_json(kids, 0, n < 100 ? n : 100, NULL));
			cJSON_AddNumberToObject(ic, "offset", 0);
			cJSON_AddNumberToObject(ic, "limit", 100);
		}
		free(kids);
	}
	filter_fields(o, fields, folder_mini);
	return o;
}

static cJSON *entries_json(struct item **kids, size_t from, size_t to,
			   const char *fields)
{
	cJSON *a = cJSON_CreateArray();
	size_t i;

	for (i = from; a && i < to; i++) {
		struct item *k = kids[i];
		cJSON *e;

		if (!fields)
			e = api_item_mini(k);
		else
			e = k->folder ? folder_json(k, fields, 0) :
					api_file_json(k, fields);
		if (e)
			cJSON_AddItemToArray(a, e);
	}
	return a;
}

static cJSON *order_json(void)
{
	cJSON *a = cJSON_CreateArray(), *o;

	if (!a)
		return NULL;
	o = cJSON_CreateObject();
	if (o) {
		cJSON_AddStringToObject(o, "by", "type");
		cJSON_AddStringToObject(o, "direction", "ASC");
		cJSON_AddItemToArray(a, o);
	}
	o = cJSON_CreateObject();
	if (o) {
		cJSON_AddStringToObject(o, "by", "name");
		cJSON_AddStringToObject(o, "direction", "ASC");
		cJSON_AddItemToArray(a, o);
	}
	return a;
}

int api_name_error(struct req *r, const char *name)
{
	switch (parse_name_check(name)) {
	case NAME_OK:
		return 0;
	case NAME_TOO_LONG:
		http_error(r, 400, "item_name_too_long",
			   "Item name is too long (maximum is 255 characters)",
			   NULL);
		return -1;
	default:
		http_error(r, 400, "item_name_invalid", "Item name invalid",
			   NULL);
		return -1;
	}
}

cJSON *api_conflict_ctx(struct item *c, int array)
{
	cJSON *ctx = cJSON_CreateObject(), *m = api_item_mini(c), *a;

	if (!ctx || !m) {
		cJSON_Delete(ctx);
		cJSON_Delete(m);
		return NULL;
	}
	if (array) {
		a = cJSON_AddArrayToObject(ctx, "conflicts");
		if (a)
			cJSON_AddItemToArray(a, m);
		else
			cJSON_Delete(m);
	} else {
		cJSON_AddItemToObject(ctx, "conflicts", m);
	}
	return ctx;
}

static void conflict(struct req *r, struct item *c, int array)
{
	http_error(r, 409, "item_name_in_use",
		   "Item with the same name already exists",
		   api_conflict_ctx(c, array));
}

int api_if_match(struct req *r, struct item *it)
{
	const char *im = http_header(r, "If-Match");
	char etag[24];

	if (!im)
		return 0;
	snprintf(etag, sizeof(etag), "%llu", (unsigned long long)it->seq);
	if (!strcmp(im, "*") || !strcmp(im, etag) ||
	    (im[0] == '"' && !strncmp(im + 1, etag, strlen(etag)) &&
	     !strcmp(im + 1 + strlen(etag), "\"")))
		return 0;
	http_error(r, 412, "precondition_failed",
		   "The resource has been modified. Please retrieve the resource again and retry",
		   NULL);
	return -1;
}

static void not_found(struct req *r)
{
	http_error(r, 404, "not_found", "Not Found", NULL);
}

/* Looks up {id} of the expected kind; answers 405/404 itself. */
static struct item *lookup(struct req *r, const char *id, int folder)
{
	uint64_t v;
	struct item *it;

	if (parse_u64(id, &v)) {
		http_error(r, 405, "method_not_allowed",
			   "Method Not Allowed", NULL);
		return NULL;
	}
	it = store_get(v);
	if (!it || it->folder != folder) {
		not_found(r);
		return NULL;
	}
	return it;
}

/* {"parent":{"id":"N"}} -> folder item; answers 404/400 itself. */
static struct item *json_parent(struct req *r, cJSON *body, int required)
{
	cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "parent"), *id;
	struct item *it;

	if (!p) {
		if (required)
			http_error(r, 400, "bad_request",
				   "parent.id is required", NULL);
		return NULL;
	}
	id = cJSON_GetObjectItemCaseSensitive(p, "id");
	if (!cJSON_IsString(id) && !cJSON_IsNumber(id)) {
		http_error(r, 400, "bad_request", "parent.id is required",
			   NULL);
		return NULL;
	}
	it = cJSON_IsString(id) ? store_get_str(id->valuestring) :
				  store_get((uint64_t)id->valuedouble);
	if (!it || !it->folder) {
		http_error(r, 404, "not_found", "Parent folder not found",
			   NULL);
		return NULL;
	}
	return it;
}

/* Optional string member; -1 (and 400) if present with a wrong type. */
static int json_str(struct req *r, cJSON *body, const char *k,
		    const char **out)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(body, k);

	*out = NULL;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v)) {
		http_error(r, 400, "bad_request", "Invalid parameter type",
			   NULL);
		return -1;
	}
	*out = v->valuestring;
	return 0;
}

static int json_time(struct req *r, cJSON *body, const char *k,
		     int64_t *out)
{
	const char *s;

	if (json_str(r, body, k, &s))
		return -1;
	if (!s)
		return 0;
	if (parse_time(s, out)) {
		http_error(r, 400, "bad_request",
			   "Invalid value for a date-time field", NULL);
		return -1;
	}
	return 1;
}

static void items_list(struct req *r, struct item *f)
{
	const char *fields = http_arg(r, "fields");
	const char *ls = http_arg(r, "limit"), *os = http_arg(r, "offset");
	const char *um = http_arg(r, "usemarker"), *mk = http_arg(r, "marker");
	uint64_t limit = 100, off = 0;
	struct item **kids;
	size_t n, to;
	cJSON *o;
	int marker = um && !strcmp(um, "true");

	if (ls && parse_u64(ls, &limit)) {
		http_error(r, 400, "invalid_limit", "Invalid limit", NULL);
		return;
	}
	if (limit > 1000)
		limit = 1000;
	if (marker && mk && *mk) {
		char dec[32];
		long len = codec_b64_decode(mk, (unsigned char *)dec,
					    sizeof(dec) - 1);

		if (len < 2 || dec[0] != 'm' ||
		    (dec[len] = 0, parse_u64(dec + 1, &off))) {
			http_error(r, 400, "invalid_marker", "Invalid marker",
				   NULL);
			return;
		}
	} else if (!marker && os && parse_u64(os, &off)) {
		http_error(r, 400, "invalid_offset", "Invalid offset", NULL);
		return;
	}
	if (fields && !*fields)
		fields = NULL;
	kids = store_children(f->id, &n);
	if (!kids) {
		http_respond(r, 500, NULL);
		return;
	}
	to = off >= n ? n : (off + limit > n ? n : (size_t)(off + limit));
	o = cJSON_CreateObject();
	if (o && marker) {
		cJSON_AddNumberToObject(o, "limit", (double)limit);
		if (to < n && limit) {
			char m[32], enc[48];
			int l = snprintf(m, sizeof(m), "m%zu", to);

			codec_b64_encode((unsigned char *)m, (size_t)l, enc, sizeof(enc));
			cJSON_AddStringToObject(o, "next_marker", enc);
		}
		cJSON_AddItemToObject(o, "entries",
			entries_json(kids, off < n ? off : n, to, fields));
	} else if (o) {
		cJSON_AddNumberToObject(o, "total_count", (double)n);
		cJSON_AddItemToObject(o, "entries",
			entries_json(kids, off < n ? off : n, to, fields));
		cJSON_AddNumberToObject(o, "offset", (double)off);
		cJSON_AddNumberToObject(o, "limit", (double)limit);
	}
	if (o)
		cJSON_AddItemToObject(o, "order", order_json());
	free(kids);
	http_json(r, 200, o);
}

static void folder_create(struct req *r)
{
	cJSON *b = http_body_json(r, 1);
	struct item *p, *c, *it;
	const char *name;
	char path[4200];

	if (!b)
		return;
	if (json_str(r, b, "name", &name))
		goto out;
	if (!name) {
		http_error(r, 400, "bad_request", "name is required", NULL);
		goto out;
	}
	if (api_name_error(r, name))
		goto out;
	p = json_parent(r, b, 1);
	if (!p)
		goto out;
	c = store_child(p->id, name);
	if (c) {
		conflict(r, c, 1);
		goto out;
	}
	it = store_add(1, p->id, name);
	if (!it || store_path(it, path, sizeof(path)) || mkdir(path, 0755)) {
		if (it)
			store_remove(it);
		http_error(r, 500, "internal_server_error", "cannot create",
			   NULL);
		goto out;
	}
	store_save();
	http_json(r, 201, folder_json(it, http_arg(r, "fields"), 1));
out:
	cJSON_Delete(b);
}

/* Rename/move an item on disk and in metadata. Answers itself on error. */
static int move_item(struct req *r, struct item *it, const char *name,
		     struct item *np)
{
	char from[4200], to[4200];
	uint64_t op = it->parent;
	char *oname = it->name, *nn;
	struct item *c;

	if (!name)
		name = it->name;
	if (!np)
		np = store_get(it->parent);
	if (!np)
		return -1;
	if (api_name_error(r, name))
		return -1;
	if (it->folder && store_is_ancestor(it->id, np->id)) {
		http_error(r, 400, "cyclical_folder_structure",
			   "Cannot move a folder into itself", NULL);
		return -1;
	}
	c = store_child(np->id, name);
	if (c && c != it) {
		conflict(r, c, it->folder);
		return -1;
	}
	if (np->id == op && !strcmp(name, it->name))
		return 0;
	nn = strdup(name);
	if (!nn || store_path(it, from, sizeof(from))) {
		free(nn);
		http_respond(r, 500, NULL);
		return -1;
	}
	it->parent = np->id;
	it->name = nn;
	if (store_path(it, to, sizeof(to)) || rename(from, to)) {
		it->parent = op;
		it->name = oname;
		free(nn);
		http_error(r, 500, "internal_server_error", "rename failed",
			   NULL);
		return -1;
	}
	free(oname);
	store_touch(it);
	return 0;
}

static void item_update(struct req *r, struct item *it)
{
	cJSON *b = http_body_json(r, 1);
	struct item *np = NULL;
	const char *name, *desc;
	int64_t t;
	int rc;

	if (!b)
		return;
	if (api_if_match(r, it) || json_str(r, b, "name", &name) ||
	    json_str(r, b, "description", &desc))
		goto out;
	if (it->id == 0) {
		http_error(r, 403, "access_denied_insufficient_permissions",
			   "The root folder cannot be changed", NULL);
		goto out;
	}
	if (cJSON_GetObjectItemCaseSensitive(b, "parent")) {
		np = json_parent(r, b, 1);
		if (!np)
			goto out;
	}
	rc = json_time(r, b, "content_modified_at", &t);
	if (rc < 0)
		goto out;
	if (move_item(r, it, name, np))
		goto out;
	if (rc > 0 && !it->folder) {
		it->cmodified = t;
		store_touch(it);
	}
	if (desc) {
		char *d = strdup(desc);

		if (d) {
			free(it->description);
			it->description = d;
			store_touch(it);
		}
	}
	store_save();
	http_json(r, 200, it->folder ? folder_json(it, http_arg(r, "fields"), 1) :
		  api_file_json(it, http_arg(r, "fields")));
out:
	cJSON_Delete(b);
}

static int rm_cb(const char *p, const struct stat *sb, int flag,
		 struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void remove_subtree(uint64_t id)
{
	struct item **kids;
	size_t n, i;

	kids = store_children(id, &n);
	if (!kids)
		return;
	for (i = 0; i < n; i++) {
		if (kids[i]->folder)
			remove_subtree(kids[i]->id);
		store_remove(kids[i]);
	}
	free(kids);
}

static void folder_delete(struct req *r, struct item *it)
{
	const char *rec = http_arg(r, "recursive");
	char path[4200];
	size_t n;
	struct item **kids;

	if (api_if_match(r, it))
		return;
	if (it->id == 0) {
		http_error(r, 403, "access_denied_insufficient_permissions",
			   "The root folder cannot be deleted", NULL);
		return;
	}
	kids = store_children(it->id, &n);
	free(kids);
	if (n && !(rec && !strcmp(rec, "true"))) {
		http_error(r, 400, "folder_not_empty",
			   "Cannot delete – folder not empty", NULL);
		return;
	}
	if (store_path(it, path, sizeof(path)) == 0)
		nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	remove_subtree(it->id);
	store_remove(it);
	store_save();
	http_empty(r, 204);
}

static void file_delete(struct req *r, struct item *it)
{
	char path[4200];

	if (api_if_match(r, it))
		return;
	if (store_path(it, path, sizeof(path)) == 0)
		unlink(path);
	store_remove(it);
	store_save();
	http_empty(r, 204);
}

/* Copies a file's content to dst (a new path) through a temp file. */
static int copy_content(const char *src, const char *dst)
{
	char tmp[4200];
	int in, out, rc = -1;
	struct stat st;
	off_t left;

	if (store_tmp_path(tmp, sizeof(tmp), "copy"))
		return -1;
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -1;
	out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0 || fstat(in, &st))
		goto done;
	for (left = st.st_size; left > 0;) {
		ssize_t n = copy_file_range(in, NULL, out, NULL,
					    (size_t)left, 0);

		if (n <= 0)
			goto done;
		left -= n;
	}
	rc = rename(tmp, dst);
done:
	if (out >= 0)
		close(out);
	close(in);
	if (rc)
		unlink(tmp);
	return rc;
}

static void file_copy(struct req *r, struct item *it)
{
	cJSON *b = http_body_json(r, 1);
	struct item *p, *c, *n;
	const char *name;
	char src[4200], dst[4200];

	if (!b)
		return;
	if (json_str(r, b, "name", &name))
		goto out;
	if (!name)
		name = it->name;
	if (api_name_error(r, name))
		goto out;
	p = json_parent(r, b, 1);
	if (!p)
		goto out;
	c = store_child(p->id, name);
	if (c) {
		conflict(r, c, 0);
		goto out;
	}
	n = store_add(0, p->id, name);
	if (!n)
		goto fail;
	n->size = it->size;
	memcpy(n->sha1, it->sha1, sizeof(n->sha1));
	n->version = store_new_id();
	n->ccreated = it->ccreated;
	n->cmodified = it->cmodified;
	if (store_path(it, src, sizeof(src)) ||
	    store_path(n, dst, sizeof(dst)) || copy_content(src, dst)) {
		store_remove(n);
		goto fail;
	}
	store_save();
	http_json(r, 201, api_file_json(n, http_arg(r, "fields")));
	goto out;
fail:
	http_error(r, 500, "internal_server_error", "copy failed", NULL);
out:
	cJSON_Delete(b);
}

static void preflight(struct req *r, struct item *file)
{
	cJSON *b = http_body_json(r, 0), *o, *sz;
	struct item *p = NULL, *c;
	const char *name = NULL;
	char url[256];

	if (!b && r->resp)
		return;
	if (b && json_str(r, b, "name", &name))
		goto out;
	if (!file && !name) {
		http_error(r, 400, "bad_request", "name is required", NULL);
		goto out;
	}
	if (name && api_name_error(r, name))
		goto out;
	sz = b ? cJSON_GetObjectItemCaseSensitive(b, "size") : NULL;
	if (cJSON_IsNumber(sz) && sz->valuedouble > (double)BS_MAX_UPLOAD) {
		http_error(r, 403, "file_size_limit_exceeded",
			   "File is bigger than the maximum upload size", NULL);
		goto out;
	}
	if (b && cJSON_GetObjectItemCaseSensitive(b, "parent")) {
		p = json_parent(r, b, 1);
		if (!p)
			goto out;
	} else if (file) {
		p = store_get(file->parent);
	} else {
		http_error(r, 400, "bad_request", "parent.id is required",
			   NULL);
		goto out;
	}
	c = p && name ? store_child(p->id, name) : NULL;
	if (c && c != file) {
		conflict(r, c, 0);
		goto out;
	}
	o = cJSON_CreateObject();
	snprintf(url, sizeof(url), "%s/api/2.0/files/content", bs_conf.base);
	if (o) {
		cJSON_AddStringToObject(o, "upload_url", url);
		cJSON_AddStringToObject(o, "upload_token", "boxsim");
	}
	http_json(r, 200, o);
out:
	cJSON_Delete(b);
}

static void users_me(struct req *r)
{
	cJSON *u = user_mini();

	if (u) {
		add_time(u, "created_at", 1700000000);
		add_time(u, "modified_at", 1700000000);
		cJSON_AddStringToObject(u, "language", "en");
		cJSON_AddStringToObject(u, "timezone", "UTC");
		cJSON_AddNumberToObject(u, "space_amount", (double)BS_SPACE);
		cJSON_AddNumberToObject(u, "space_used",
					(double)store_space_used());
		cJSON_AddNumberToObject(u, "max_upload_size",
					(double)BS_MAX_UPLOAD);
		cJSON_AddStringToObject(u, "status", "active");
		cJSON_AddStringToObject(u, "job_title", "");
		cJSON_AddStringToObject(u, "phone", "");
		cJSON_AddStringToObject(u, "address", "");
		cJSON_AddStringToObject(u, "avatar_url", "");
	}
	http_json(r, 200, u);
}

static void download_redirect(struct req *r, struct item *it)
{
	char url[512];

	snprintf(url, sizeof(url), "%s/_dl/%llu/%llu", bs_conf.base,
		 (unsigned long long)it->id, (unsigned long long)it->version);
	http_empty(r, 302);
	if (r->resp)
		MHD_add_response_header(r->resp, "Location", url);
}

static void get_file(struct req *r, struct item *it)
{
	const char *inm = http_header(r, "If-None-Match");
	char etag[24];

	snprintf(etag, sizeof(etag), "%llu", (unsigned long long)it->seq);
	if (inm && !strcmp(inm, etag)) {
		http_empty(r, 304);
		return;
	}
	http_json(r, 200, api_file_json(it, http_arg(r, "fields")));
}

static int is(const char *a, const char *b)
{
	return !strcmp(a, b);
}

/* Routes a complete, authorized request (store locked). */
static void dispatch(struct req *r, char **s, int n)
{
	const char *m = r->method;
	struct item *it;

	if (n >= 1 && is(s[0], "users") && n == 2 && is(s[1], "me") &&
	    is(m, "GET")) {
		users_me(r);
		return;
	}
	if (n >= 1 && is(s[0], "folders")) {
		if (n == 1 && is(m, "POST")) {
			folder_create(r);
			return;
		}
		if (n < 2 || n > 3 || (n == 3 && !is(s[2], "items")))
			goto nf;
		if ((n == 3 && !is(m, "GET")) ||
		    (n == 2 && !is(m, "GET") && !is(m, "PUT") &&
		     !is(m, "DELETE")))
			goto bad_method;
		it = lookup(r, s[1], 1);
		if (!it)
			return;
		if (n == 3)
			items_list(r, it);
		else if (is(m, "GET"))
			http_json(r, 200, folder_json(it, http_arg(r, "fields"), 1));
		else if (is(m, "PUT"))
			item_update(r, it);
		else
			folder_delete(r, it);
		return;
	}
	if (n >= 2 && is(s[0], "files")) {
		if (is(s[1], "content") && (n == 2 || (n == 3 && !*s[2]))) {
			if (is(m, "OPTIONS"))
				preflight(r, NULL);
			else
				goto bad_method;
			return;
		}
		if (n > 3)
			goto nf;
		if (n == 3 && !is(s[2], "content") && !is(s[2], "copy"))
			goto nf;
		it = lookup(r, s[1], 0);
		if (!it)
			return;
		if (n == 2 && is(m, "GET"))
			get_file(r, it);
		else if (n == 2 && is(m, "PUT"))
			item_update(r, it);
		else if (n == 2 && is(m, "DELETE"))
			file_delete(r, it);
		else if (n == 3 && is(s[2], "copy") && is(m, "POST"))
			file_copy(r, it);
		else if (n == 3 && is(s[2], "content") && is(m, "GET"))
			download_redirect(r, it);
		else if (n == 3 && is(s[2], "content") && is(m, "OPTIONS"))
			preflight(r, it);
		else
			goto bad_method;
		return;
	}
nf:
	not_found(r);
	return;
bad_method:
	http_error(r, 405, "method_not_allowed", "Method Not Allowed", NULL);
}

static int split(char *p, char **seg)
{
	int n = 0;

	if (*p == '/')
		p++;
	while (n < MAX_SEG) {
		seg[n++] = p;
		p = strchr(p, '/');
		if (!p)
			return n;
		*p++ = 0;
	}
	return -1;
}

static void api_done(struct req *r)
{
	char buf[2048], *seg[MAX_SEG];
	int n;

	snprintf(buf, sizeof(buf), "%s", r->sub);
	n = split(buf, seg);
	if (n < 0) {
		not_found(r);
		return;
	}
	store_lock();
	dispatch(r, seg, n);
	store_unlock();
}

void api_route(struct req *r)
{
	if (upl_route(r, r->sub))
		return;
	r->on_done = api_done;
}

/* GET /_dl/<file id>/<version id>: the download URL (no auth, like Box's
 * pre-signed dl.boxcloud.com URLs). Streams from the file with Range. */
void api_dl(struct req *r)
{
	unsigned long long id, ver;
	char path[4200], cr[96], extra;
	struct item *it;
	struct stat st;
	uint64_t a = 0, b = 0;
	int fd = -1, rc;
	struct MHD_Response *resp;

	if (!is(r->method, "GET") && !is(r->method, "HEAD")) {
		http_error(r, 405, "method_not_allowed", "Method Not Allowed",
			   NULL);
		return;
	}
	if (sscanf(r->path, "/_dl/%llu/%llu%c", &id, &ver, &extra) != 2) {
		not_found(r);
		return;
	}
	store_lock();
	it = store_get(id);
	if (it && !it->folder && it->version == ver &&
	    !store_path(it, path, sizeof(path)))
		fd = open(path, O_RDONLY | O_CLOEXEC);
	store_unlock();
	if (fd < 0 || fstat(fd, &st)) {
		if (fd >= 0)
			close(fd);
		not_found(r);
		return;
	}
	rc = parse_byte_range(http_header(r, "Range"), (uint64_t)st.st_size,
			      &a, &b);
	if (rc == -2) {
		close(fd);
		http_empty(r, 416);
		snprintf(cr, sizeof(cr), "bytes */%llu",
			 (unsigned long long)st.st_size);
		if (r->resp)
			MHD_add_response_header(r->resp, "Content-Range", cr);
		return;
	}
	if (rc != 0) {
		a = 0;
		b = st.st_size ? (uint64_t)st.st_size - 1 : 0;
	}
	if (!st.st_size) {	/* MHD itself leaves the body out for HEAD */
		close(fd);
		resp = MHD_create_response_from_buffer(0, (void *)"",
						       MHD_RESPMEM_PERSISTENT);
	} else {
		resp = MHD_create_response_from_fd_at_offset64(b - a + 1, fd,
							       a);
		if (!resp)
			close(fd);
	}
	if (!resp) {
		http_respond(r, 500, NULL);
		return;
	}
	MHD_add_response_header(resp, "Content-Type",
				 "application/octet-stream");
	MHD_add_response_header(resp, "Accept-Ranges", "bytes");
	if (rc == 0) {
		snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu",
			 (unsigned long long)a, (unsigned long long)b,
			 (unsigned long long)st.st_size);
		MHD_add_response_header(resp, "Content-Range", cr);
	}
	http_respond(r, rc == 0 ? 206 : 200, resp);
}
