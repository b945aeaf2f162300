/* store.c - the item table (files and folders), its persistence in
 * DATA/meta.json (rewritten atomically on each change) and the mapping of
 * items to ordinary files under DATA/tree/<path>. One global lock. */
#include "bs.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct item **items;
static size_t nitems, capitems;
static uint64_t next_id = 1000;
static uint64_t tmp_seq;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

void store_lock(void)
{
	pthread_mutex_lock(&lock);
}

void store_unlock(void)
{
	pthread_mutex_unlock(&lock);
}

uint64_t store_new_id(void)
{
	return next_id++;
}

struct item *store_get(uint64_t id)
{
	size_t i;

	for (i = 0; i < nitems; i++)
		if (items[i]->id == id)
			return items[i];
	return NULL;
}

struct item *store_get_str(const char *id)
{
	uint64_t v;

	if (parse_u64(id, &v))
		return NULL;
	return store_get(v);
}

struct item *store_child(uint64_t parent, const char *name)
{
	size_t i;

	for (i = 0; i < nitems; i++)
		if (items[i]->id && items[i]->parent == parent &&
		    !strcasecmp(items[i]->name, name))
			return items[i];
	return NULL;
}

static int child_cmp(const void *a, const void *b)
{
	const struct item *x = *(struct item * const *)a;
	const struct item *y = *(struct item * const *)b;
	int c;

	if (x->folder != y->folder)
		return y->folder - x->folder;
	c = strcasecmp(x->name, y->name);
	if (c)
		return c;
	return x->id < y->id ? -1 : 1;
}

struct item **store_children(uint64_t parent, size_t *n)
{
	struct item **out = malloc((nitems + 1) * sizeof(*out));
	size_t i, k = 0;

	if (!out)
		return NULL;
	for (i = 0; i < nitems; i++)
		if (items[i]->id && items[i]->parent == parent)
			out[k++] = items[i];
	qsort(out, k, sizeof(*out), child_cmp);
	*n = k;
	return out;
}

static struct item *item_alloc(void)
{
	struct item *it;

	if (nitems == capitems) {
		size_t cap = capitems ? capitems * 2 : 64;
		struct item **ni = realloc(items, cap * sizeof(*ni));

		if (!ni)
			return NULL;
		items = ni;
		capitems = cap;
	}
	it = calloc(1, sizeof(*it));
	if (!it)
		return NULL;
	items[nitems++] = it;
	return it;
}

struct item *store_add(int folder, uint64_t parent, const char *name)
{
	struct item *it;
	char *nm = strdup(name);

	if (!nm)
		return NULL;
	it = item_alloc();
	if (!it) {
		free(nm);
		return NULL;
	}
	it->id = store_new_id();
	it->folder = folder;
	it->parent = parent;
	it->name = nm;
	it->seq = 0;
	it->created = it->modified = it->ccreated = it->cmodified = time(NULL);
	return it;
}

void store_remove(struct item *it)
{
	size_t i;

	for (i = 0; i < nitems; i++) {
		if (items[i] == it) {
			items[i] = items[--nitems];
			free(it->name);
			free(it->description);
			free(it);
			return;
		}
	}
}

void store_touch(struct item *it)
{
	it->seq++;
	it->modified = time(NULL);
}

int store_is_ancestor(uint64_t anc, uint64_t id)
{
	struct item *it = store_get(id);
	int depth = 0;

	while (it && depth++ < 10000) {
		if (it->id == anc)
			return 1;
		if (it->id == 0)
			return 0;
		it = store_get(it->parent);
	}
	return 0;
}

uint64_t store_folder_size(uint64_t id)
{
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i < nitems; i++) {
		if (!items[i]->id || items[i]->parent != id)
			continue;
		sum += items[i]->folder ? store_folder_size(items[i]->id) :
					  items[i]->size;
	}
	return sum;
}

uint64_t store_space_used(void)
{
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i < nitems; i++)
		if (!items[i]->folder)
			sum += items[i]->size;
	return sum;
}

/* On-disk name: the Box name, except that names longer than the file
 * system's 255 bytes (Box counts 255 characters) are cut at a character
 * boundary and made unique with the item id. */
static void disk_name(const struct item *it, char *out, size_t len)
{
	size_t n = strlen(it->name);

	if (n <= 255) {
		snprintf(out, len, "%s", it->name);
		return;
	}
	n = 200;
	while (n && ((unsigned char)it->name[n] & 0xc0) == 0x80)
		n--;
	snprintf(out, len, "%.*s~%llu", (int)n, it->name,
		 (unsigned long long)it->id);
}

static int path_rec(const struct item *it, char *buf, size_t len, int depth)
{
	size_t n;

	if (depth > 1000)
		return -1;
	if (it->id == 0) {
		if ((size_t)snprintf(buf, len, "%s/tree", bs_conf.data) >= len)
			return -1;
		return 0;
	}
	{
		struct item *p = store_get(it->parent);

		if (!p || path_rec(p, buf, len, depth + 1))
			return -1;
	}
	n = strlen(buf);
	{
		char dn[1100];

		disk_name(it, dn, sizeof(dn));
		if ((size_t)snprintf(buf + n, len - n, "/%s", dn) >= len - n)
			return -1;
	}
	return 0;
}

int store_path(const struct item *it, char *buf, size_t len)
{
	return path_rec(it, buf, len, 0);
}

int store_tmp_path(char *buf, size_t len, const char *tag)
{
	uint64_t n;

	/* own atomic: callers may or may not hold the store lock */
	n = __atomic_add_fetch(&tmp_seq, 1, __ATOMIC_RELAXED);
	if ((size_t)snprintf(buf, len, "%s/tmp/%s-%d-%llu", bs_conf.data, tag,
			     (int)getpid(), (unsigned long long)n) >= len)
		return -1;
	return 0;
}

struct sbuf {
	char *buf;
	size_t len, cap;
	int oom;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		char *nb = realloc(b->buf, cap);

		if (!nb) {
			b->oom = 1;
			return;
		}
		b->buf = nb;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
	b->buf[b->len] = 0;
}

/* A JSON string; names are valid UTF-8 without control characters, but
 * escape anyway so that meta.json always parses. */
static void sb_str(struct sbuf *b, const char *s)
{
	char esc[8];

	sb_put(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			sb_put(b, esc, 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			sb_put(b, esc, 6);
		} else {
			sb_put(b, s, 1);
		}
	}
	sb_put(b, "\"", 1);
}

static void sb_num(struct sbuf *b, const char *key, long long v)
{
	char tmp[64];
	int n = snprintf(tmp, sizeof(tmp), ",\"%s\":%lld", key, v);

	sb_put(b, tmp, (size_t)n);
}

/* One item, by hand: cJSON's number printing made saving O(n) slow. */
static void item_write(struct sbuf *b, const struct item *it)
{
	char id[40];

	snprintf(id, sizeof(id), "{\"id\":\"%llu\"",
		 (unsigned long long)it->id);
	sb_put(b, id, strlen(id));
	sb_put(b, ",\"folder\":", 10);
	sb_put(b, it->folder ? "true" : "false", it->folder ? 4 : 5);
	sb_num(b, "parent", (long long)it->parent);
	sb_put(b, ",\"name\":", 8);
	sb_str(b, it->name);
	sb_put(b, ",\"description\":", 15);
	sb_str(b, it->description ? it->description : "");
	sb_num(b, "size", (long long)it->size);
	sb_put(b, ",\"sha1\":", 8);
	sb_str(b, it->sha1);
	sb_num(b, "seq", (long long)it->seq);
	sb_num(b, "version", (long long)it->version);
	sb_num(b, "created", it->created);
	sb_num(b, "modified", it->modified);
	sb_num(b, "ccreated", it->ccreated);
	sb_num(b, "cmodified", it->cmodified);
	sb_put(b, "}", 1);
}

/* Writes meta.json: tmp, fsync, rename. Caller holds the lock. */
int store_save(void)
{
	char path[4200], tmp[4200], head[64];
	struct sbuf b = { NULL, 0, 0, 0 };
	size_t i;
	int fd, rc = -1;

	snprintf(head, sizeof(head), "{\"next_id\":%llu,\"items\":[",
		 (unsigned long long)next_id);
	sb_put(&b, head, strlen(head));
	for (i = 0; i < nitems; i++) {
		if (i)
			sb_put(&b, ",", 1);
		item_write(&b, items[i]);
	}
	sb_put(&b, "]}\n", 3);
	if (b.oom) {
		free(b.buf);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/meta.json", bs_conf.data);
	snprintf(tmp, sizeof(tmp), "%s/meta.json.tmp", bs_conf.data);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		if (write(fd, b.buf, b.len) == (ssize_t)b.len && !fsync(fd))
			rc = 0;
		close(fd);
		if (!rc && rename(tmp, path))
			rc = -1;
	}
	if (rc)
		fprintf(stderr, "boxsim: cannot write %s: %s\n", path,
			strerror(errno));
	free(b.buf);
	return rc;
}

static uint64_t jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) && v->valuedouble > 0 ?
		(uint64_t)v->valuedouble : 0;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int load_item(const cJSON *o)
{
	struct item *it;
	const char *id = jstr(o, "id"), *name = jstr(o, "name");
	const char *sha = jstr(o, "sha1"), *desc = jstr(o, "description");
	uint64_t v;

	if (!id || !name || parse_u64(id, &v))
		return -1;
	it = item_alloc();
	if (!it)
		return -1;
	it->id = v;
	it->name = strdup(name);
	it->description = desc && *desc ? strdup(desc) : NULL;
	if (!it->name)
		return -1;
	it->folder = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "folder"));
	it->parent = jnum(o, "parent");
	it->size = jnum(o, "size");
	snprintf(it->sha1, sizeof(it->sha1), "%s", sha ? sha : "");
	it->seq = jnum(o, "seq");
	it->version = jnum(o, "version");
	it->created = (int64_t)jnum(o, "created");
	it->modified = (int64_t)jnum(o, "modified");
	it->ccreated = (int64_t)jnum(o, "ccreated");
	it->cmodified = (int64_t)jnum(o, "cmodified");
	return 0;
}

static int load_meta(void)
{
	char path[4200];
	FILE *f;
	char *buf;
	long n;
	cJSON *root, *arr, *o;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/meta.json", bs_conf.data);
	f = fopen(path, "rb");
	if (!f)
		return errno == ENOENT ? 1 : -1;
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) || !(buf = malloc((size_t)n + 1))) {
		fclose(f);
		return -1;
	}
	if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	root = cJSON_ParseWithLength(buf, (size_t)n);
	free(buf);
	if (!root)
		return -1;
	next_id = jnum(root, "next_id");
	if (next_id < 1000)
		next_id = 1000;
	arr = cJSON_GetObjectItemCaseSensitive(root, "items");
	cJSON_ArrayForEach(o, arr)
		if (load_item(o))
			rc = -1;
	cJSON_Delete(root);
	return rc;
}

static int rm_cb(const char *p, const struct stat *sb, int flag,
		 struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

void store_cleanup(void)
{
	if (bs_conf.tmp_data)
		nftw(bs_conf.data, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static int mkdir_p(const char *d)
{
	if (mkdir(d, 0755) && errno != EEXIST) {
		fprintf(stderr, "boxsim: mkdir %s: %s\n", d, strerror(errno));
		return -1;
	}
	return 0;
}

int store_init(void)
{
	char d[4200];
	struct item *root;
	int rc;

	snprintf(d, sizeof(d), "%s/tmp", bs_conf.data);
	/* leftovers of a previous run: uncommitted sessions and uploads */
	nftw(d, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	if (mkdir_p(bs_conf.data) || mkdir_p(d))
		return -1;
	snprintf(d, sizeof(d), "%s/tree", bs_conf.data);
	if (mkdir_p(d))
		return -1;
	rc = load_meta();
	if (rc < 0) {
		fprintf(stderr, "boxsim: %s/meta.json is corrupt\n",
			bs_conf.data);
		return -1;
	}
	if (!store_get(0)) {
		root = item_alloc();
		if (!root || !(root->name = strdup("All Files")))
			return -1;
		root->folder = 1;
		root->id = 0;
		root->created = root->modified = root->ccreated =
			root->cmodified = time(NULL);
		store_save();
	}
	return 0;
}
