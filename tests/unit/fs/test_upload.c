/* test_upload.c - upload.c and worker.c against an in-memory fake of box.h
 * that is as strict as Box about sessions: aligned parts of exactly
 * part_size (the last shorter), never an overlap, part and commit digests
 * checked, parts listed in offset order. Runs with several worker threads,
 * so it also exercises the locking (clean under ASan/UBSan and TSan).
 *
 * Owner: engineer C. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "box.h"
#include "log.h"
#include "options.h"
#include "stats.h"
#include "upload.h"
#include "worker.h"

struct boxfs_opts boxfs_opts;

/* ---- the fake server ---- */

#define MAXF 64
#define MAXS 128
#define PSIZE 256               /* the fake's part size */

static pthread_mutex_t L = PTHREAD_MUTEX_INITIALIZER;
static struct ff {
	char id[BOX_ID_MAX], parent[BOX_ID_MAX], name[256];
	unsigned char *data;
	uint64_t size;
} files[MAXF];
static int nfiles, next_id = 100;
static struct fs {
	char id[BOX_ID_MAX], file_id[BOX_ID_MAX], parent[BOX_ID_MAX];
	char name[256];
	uint64_t size;
	unsigned char *data, *have;
	int open;
} sess[MAXS];
static int nsess;
static int n_put, n_put0_at, n_simple, n_commit, n_create, n_abort, n_download;
static int fail_commit, fail_put_nth, violations;

static void fsha(const void *b, size_t n, unsigned char md[20])
{
	unsigned int l;

	EVP_Digest(b, n, md, &l, EVP_sha1(), NULL);
}

static void fhex(const unsigned char *md, char *h)
{
	for (int i = 0; i < 20; i++)
		sprintf(h + 2 * i, "%02x", md[i]);
}

static struct ff *byid(const char *id)
{
	for (int i = 0; i < nfiles; i++)
		if (!strcmp(files[i].id, id))
			return &files[i];
	return NULL;
}

static struct ff *byname(const char *p, const char *n)
{
	for (int i = 0; i < nfiles; i++)
		if (!strcmp(files[i].parent, p) && !strcasecmp(files[i].name, n))
			return &files[i];
	return NULL;
}

/* L held */
static void store(const char *parent, const char *fid, const char *name,
		  const unsigned char *d, uint64_t n, struct box_item *out)
{
	struct ff *f = fid ? byid(fid) : NULL;
	unsigned char md[20];

	if (!f) {
		f = &files[nfiles++];
		snprintf(f->id, sizeof(f->id), "%d", next_id++);
		snprintf(f->parent, sizeof(f->parent), "%s", parent);
		snprintf(f->name, sizeof(f->name), "%s", name);
	}
	free(f->data);
	f->data = malloc(n ? n : 1);
	memcpy(f->data, d, n);
	f->size = n;
	memset(out, 0, sizeof(*out));
	out->type = BOX_FILE;
	strcpy(out->id, f->id);
	out->size = n;
	fsha(d, n, md);
	fhex(md, out->sha1);
}

int box_download(const char *id, uint64_t off, size_t len, void *buf,
		 size_t *got)
{
	struct ff *f;

	pthread_mutex_lock(&L);
	n_download++;
	f = byid(id);
	if (!f) {
		pthread_mutex_unlock(&L);
		return -ENOENT;
	}
	*got = off >= f->size ? 0 : (f->size - off < len ? f->size - off : len);
	memcpy(buf, f->data + off, *got);
	pthread_mutex_unlock(&L);
	return 0;
}

int box_upload_simple(const char *parent, const char *fid, const char *name,
		      int fd, uint64_t size, const char h[41], time_t mt,
		      struct box_item *out, char conflict[BOX_ID_MAX])
{
	unsigned char *d = malloc(size ? size : 1), md[20];
	char hh[41];
	int rc = 0;

	(void)mt;
	if (pread(fd, d, size, 0) != (ssize_t)size) {
		free(d);
		return -EIO;
	}
	fsha(d, size, md);
	fhex(md, hh);
	pthread_mutex_lock(&L);
	n_simple++;
	if (strcmp(hh, h)) {
		violations++;
		rc = -EINVAL;
	} else if (fail_commit) {
		rc = -EINVAL;
	} else if (!fid && byname(parent, name)) {
		if (conflict)
			strcpy(conflict, byname(parent, name)->id);
		rc = -EEXIST;
	} else if (fid && !byid(fid)) {
		rc = -ENOENT;
	} else {
		store(parent, fid, name, d, size, out);
	}
	pthread_mutex_unlock(&L);
	free(d);
	return rc;
}

int box_session_create(const char *parent, const char *fid, const char *name,
		       uint64_t size, struct box_session *out,
		       char conflict[BOX_ID_MAX])
{
	struct fs *s;

	usleep(10000);
	pthread_mutex_lock(&L);
	n_create++;
	if (size < boxfs_opts.chunked_min || nsess == MAXS) {
		violations += size < boxfs_opts.chunked_min;
		pthread_mutex_unlock(&L);
		return -EINVAL;
	}
	if (!fid && byname(parent, name)) {
		if (conflict)
			strcpy(conflict, byname(parent, name)->id);
		pthread_mutex_unlock(&L);
		return -EEXIST;
	}
	s = &sess[nsess++];
	snprintf(s->id, sizeof(s->id), "S%d", nsess);
	snprintf(s->file_id, sizeof(s->file_id), "%s", fid ? fid : "");
	snprintf(s->parent, sizeof(s->parent), "%s", parent ? parent : "");
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->size = size;
	s->data = calloc(size, 1);
	s->have = calloc(size / PSIZE + 1, 1);
	s->open = 1;
	memset(out, 0, sizeof(*out));
	strcpy(out->id, s->id);
	out->file_size = size;
	out->part_size = PSIZE;
	out->total_parts = (size + PSIZE - 1) / PSIZE;
	pthread_mutex_unlock(&L);
	return 0;
}

static struct fs *sbyid(const char *id)
{
	for (int i = 0; i < nsess; i++)
		if (!strcmp(sess[i].id, id))
			return &sess[i];
	return NULL;
}

int box_session_put_part(const struct box_session *bs, uint64_t off,
			 const void *buf, size_t len,
			 const unsigned char md[20], struct box_part *out)
{
	unsigned char m2[20];
	struct fs *s;
	uint64_t k;

	usleep(1000);
	fsha(buf, len, m2);
	pthread_mutex_lock(&L);
	n_put++;
	if (!off)
		n_put0_at = n_put;      /* which PUT carried offset 0 */
	s = sbyid(bs->id);
	if (memcmp(m2, md, 20)) {
		violations++;
		pthread_mutex_unlock(&L);
		return -EIO;
	}
	if (fail_put_nth && n_put == fail_put_nth) {
		pthread_mutex_unlock(&L);
		return -EIO;
	}
	if (!s || !s->open) {
		pthread_mutex_unlock(&L);
		return -ESTALE;
	}
	k = off / PSIZE;
	if (off % PSIZE || (len != PSIZE && off + len != s->size) ||
	    off + len > s->size || s->have[k]) {
		violations++;   /* misaligned, wrong size or an overlap */
		pthread_mutex_unlock(&L);
		return -EIO;
	}
	s->have[k] = 1;
	memcpy(s->data + off, buf, len);
	memset(out, 0, sizeof(*out));
	snprintf(out->part_id, sizeof(out->part_id), "P%llu",
		 (unsigned long long)k);
	out->offset = off;
	out->size = len;
	fhex(md, out->sha1);
	pthread_mutex_unlock(&L);
	return 0;
}

/* The streamed variant reads the part from the spool, as http.c would. */
int box_session_put_part_fd(const struct box_session *bs, uint64_t off,
			    int fd, size_t len,
			    const unsigned char md[20], struct box_part *out)
{
	char *buf = malloc(len ? len : 1);
	int rc = -EIO;

	if (buf && pread(fd, buf, len, (off_t)off) == (ssize_t)len)
		rc = box_session_put_part(bs, off, buf, len, md, out);
	free(buf);
	return rc;
}

int box_session_list_parts(const struct box_session *bs,
			   struct box_part **parts, size_t *nparts)
{
	struct fs *s;
	uint64_t k, n;

	pthread_mutex_lock(&L);
	s = sbyid(bs->id);
	if (!s || !s->open) {
		pthread_mutex_unlock(&L);
		return -ESTALE;
	}
	n = (s->size + PSIZE - 1) / PSIZE;
	*parts = calloc(n, sizeof(**parts));
	*nparts = 0;
	for (k = 0; k < n && *parts; k++) {
		struct box_part *p = &(*parts)[*nparts];
		unsigned char md[20];

		if (!s->have[k])
			continue;
		p->offset = k * PSIZE;
		p->size = s->size - p->offset < PSIZE ? s->size - p->offset : PSIZE;
		snprintf(p->part_id, sizeof(p->part_id), "P%llu",
			 (unsigned long long)k);
		fsha(s->data + p->offset, p->size, md);
		fhex(md, p->sha1);
		(*nparts)++;
	}
	pthread_mutex_unlock(&L);
	return *parts ? 0 : -ENOMEM;
}

int box_session_commit(const struct box_session *bs,
		       const struct box_part *p, size_t n,
		       const unsigned char md[20], time_t mt,
		       struct box_item *out)
{
	unsigned char m2[20];
	struct fs *s;
	size_t i;

	(void)mt;
	pthread_mutex_lock(&L);
	n_commit++;
	s = sbyid(bs->id);
	if (!s || !s->open) {
		pthread_mutex_unlock(&L);
		return -ESTALE;
	}
	if (fail_commit) {
		pthread_mutex_unlock(&L);
		return -EINVAL;
	}
	if (n != (s->size + PSIZE - 1) / PSIZE)
		goto bad;
	for (i = 0; i < n; i++)
		if (p[i].offset != i * PSIZE || !s->have[i])
			goto bad;
	fsha(s->data, s->size, m2);
	if (memcmp(m2, md, 20))
		goto bad;
	store(s->parent, s->file_id[0] ? s->file_id : NULL, s->name, s->data,
	      s->size, out);
	s->open = 0;
	pthread_mutex_unlock(&L);
	return 0;
bad:
	violations++;
	pthread_mutex_unlock(&L);
	return -EINVAL;
}

void box_session_abort(const struct box_session *bs)
{
	struct fs *s;

	pthread_mutex_lock(&L);
	n_abort++;
	s = sbyid(bs->id);
	if (s)
		s->open = 0;
	pthread_mutex_unlock(&L);
}

/* ---- helpers ---- */

static unsigned char *gen(size_t n, unsigned seed)
{
	unsigned char *b = malloc(n ? n : 1);

	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245 + 12345;
		b[i] = seed >> 16;
	}
	return b;
}

static void expect_file(const char *name, const unsigned char *d, uint64_t n)
{
	struct ff *f;

	pthread_mutex_lock(&L);
	f = byname("0", name);
	assert_non_null(f);
	assert_int_equal(f->size, n);
	assert_memory_equal(f->data, d, n ? n : 0);
	pthread_mutex_unlock(&L);
}

static int put_file(const char *name, const void *d, uint64_t n)
{
	struct box_item it;

	pthread_mutex_lock(&L);
	store("0", NULL, name, d, n, &it);
	pthread_mutex_unlock(&L);
	return atoi(it.id);
}

static int counter(int *c)
{
	int v;

	pthread_mutex_lock(&L);
	v = *c;
	pthread_mutex_unlock(&L);
	return v;
}

static void reset(void)
{
	pthread_mutex_lock(&L);
	n_put = n_put0_at = n_simple = n_commit = n_create = n_abort = 0;
	fail_commit = fail_put_nth = 0;
	pthread_mutex_unlock(&L);
}

static void wr(struct upload *u, const unsigned char *d, size_t n, size_t off,
	       size_t chunk)
{
	for (size_t o = 0; o < n; o += chunk) {
		size_t l = n - o < chunk ? n - o : chunk;

		assert_int_equal(upload_write(u, d + o, l, off + o), l);
	}
}

static void wait_puts(int n)
{
	for (int i = 0; i < 500 && counter(&n_put) < n; i++)
		usleep(10000);
	assert_int_equal(counter(&n_put), n);
}

#define N (PSIZE * 7 + 100)     /* 8 parts, a short tail */

/* ---- tests ---- */

static void test_declared_streams_before_commit(void **st)
{
	unsigned char *d = gen(N, 1), *d2;
	struct box_item it;
	struct upload *u;
	char line[64];

	(void)st;
	reset();
	u = upload_new(NULL, 0);
	assert_non_null(u);
	assert_int_equal(upload_truncate(u, N), 0);
	assert_int_equal(upload_declare_size(u, N, "0", "a", 0), 0);
	wr(u, d, N, 0, 64);
	wait_puts(7);   /* all but the first part, held back for the commit */
	upload_state(u, line, sizeof(line));
	assert_string_equal(line, "uploading 7/8 parts");
	assert_int_equal(counter(&n_put0_at), 0);
	assert_int_equal(upload_commit(u, "0", "a", 0, &it), 0);
	assert_int_equal(counter(&n_put), 8);   /* none re-sent */
	assert_int_equal(counter(&n_put0_at), 8);
	assert_int_equal(counter(&n_create), 1);
	assert_int_equal(counter(&n_commit), 1);
	upload_state(u, line, sizeof(line));
	assert_string_equal(line, "committed");
	expect_file("a", d, N);
	/* append after the commit: fetched back, new version, same id */
	d2 = malloc(N + 50);
	memcpy(d2, d, N);
	memset(d2 + N, 7, 50);
	wr(u, d2 + N, 50, N, 50);
	assert_int_equal(upload_commit(u, "0", "a", 0, &it), 0);
	expect_file("a", d2, N + 50);
	upload_free(u);
	free(d);
	free(d2);
}

/* A plain copy (copy = 1) rewrites nothing: its first part goes first,
 * while the file is written, not at the commit. */
static void test_copy_sends_first_part_early(void **st)
{
	unsigned char *d = gen(N, 10);
	struct box_item it;
	struct upload *u = upload_new(NULL, 0);

	(void)st;
	reset();
	assert_int_equal(upload_declare_size(u, N, "0", "cp", 1), 0);
	wr(u, d, N, 0, 128);
	wait_puts(8);
	assert_true(counter(&n_put0_at) >= 1 && counter(&n_put0_at) < 8);
	assert_int_equal(upload_commit(u, "0", "cp", 0, &it), 0);
	assert_int_equal(counter(&n_put), 8);
	expect_file("cp", d, N);
	upload_free(u);
	free(d);
}

static void test_unknown_size_bursts(void **st)
{
	unsigned char *d = gen(N, 2);
	struct box_item it;
	struct upload *u = upload_new(NULL, 0);

	(void)st;
	reset();
	wr(u, d, N, 0, 77);
	usleep(20000);
	assert_int_equal(counter(&n_put), 0);
	assert_int_equal(upload_commit(u, "0", "b", 0, &it), 0);
	assert_int_equal(counter(&n_put), 8);
	assert_int_equal(counter(&n_commit), 1);
	expect_file("b", d, N);
	upload_free(u);
	free(d);
}

static void test_small_and_empty(void **st)
{
	unsigned char *d = gen(999, 3);
	struct box_item it;
	struct upload *u = upload_new(NULL, 0);

	(void)st;
	reset();
	wr(u, d, 999, 0, 100);
	assert_int_equal(upload_commit(u, "0", "c", 0, &it), 0);
	assert_int_equal(counter(&n_simple), 1);
	assert_int_equal(counter(&n_create), 0);
	expect_file("c", d, 999);
	upload_free(u);
	u = upload_new(NULL, 0);
	assert_int_equal(upload_dirty(u), 1);
	assert_int_equal(upload_commit(u, "0", "e", 0, &it), 0);
	expect_file("e", d, 0);
	upload_free(u);
	free(d);
}

/* Stream a declared file, wait for the parts that go while writing, then
 * rewrite 44 bytes at off before the commit. */
static void rewrite_after_body(size_t off, const char *name, int creates,
			       int puts)
{
	unsigned char *d = gen(N, 4);
	struct box_item it;
	struct upload *u = upload_new(NULL, 0);

	reset();
	assert_int_equal(upload_declare_size(u, N, "0", name, 0), 0);
	wr(u, d, N, 0, 100);
	wait_puts(7);       /* all but the first, held back for the commit */
	memset(d + off, 'H', 44);
	wr(u, d + off, 44, off, 44);
	assert_int_equal(upload_commit(u, "0", name, 0, &it), 0);
	assert_int_equal(counter(&n_create), creates);
	assert_int_equal(counter(&n_put), puts);
	expect_file(name, d, N);
	upload_free(u);
	free(d);
}

/* A write into a part already sent: the file goes again in a new session. */
static void test_rewrite_of_sent_part(void **st)
{
	(void)st;
	rewrite_after_body(PSIZE + 10, "r", 2, 7 + 8);
	assert_true(counter(&n_abort) >= 1);
}

/* A header rewritten after the body (WAV, MP4, zip writers): the first part
 * was held back, so nothing is re-sent and it goes last, at the commit. */
static void test_header_rewrite(void **st)
{
	(void)st;
	rewrite_after_body(0, "h", 1, 8);
	assert_int_equal(counter(&n_put0_at), 8);
	assert_int_equal(counter(&n_abort), 0);
}

/* the status counter of parts whose SHA-1 was taken while written */
static double hashed_on_write(void)
{
	struct http_counters hc;
	char *js;
	cJSON *j, *v;
	double n;

	memset(&hc, 0, sizeof(hc));
	js = stats_json(NULL, &hc);
	assert_non_null(js);
	j = cJSON_Parse(js);
	assert_non_null(j);
	v = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "counters"),
				"parts_hashed_on_write");
	assert_true(cJSON_IsNumber(v));
	n = v->valuedouble;
	cJSON_Delete(j);
	free(js);
	return n;
}

/* With the session ready before the first write, every part's Digest is
 * taken in the write pass (the fake checks each PUT's digest against its
 * bytes). Part 0, held back, is then rewritten: its digest is stale and
 * must come from the spool again, or the fake refuses the PUT. */
static void test_parts_hashed_while_written(void **st)
{
	unsigned char *d = gen(N, 9);
	double h0 = hashed_on_write();
	struct box_item it;
	struct upload *u;
	char line[64] = "";
	int i;

	(void)st;
	reset();
	u = upload_new(NULL, 0);
	assert_int_equal(upload_declare_size(u, N, "0", "hw", 0), 0);
	for (i = 0; i < 500; i++) {
		upload_state(u, line, sizeof(line));
		if (!strncmp(line, "uploading", 9))
			break;
		usleep(10000);
	}
	assert_string_equal(line, "uploading 0/8 parts");
	wr(u, d, N, 0, 100);
	wait_puts(7);
	assert_int_equal((int)(hashed_on_write() - h0), 8);
	memset(d + 3, 'H', 44);
	wr(u, d + 3, 44, 3, 44);
	assert_int_equal(upload_commit(u, "0", "hw", 0, &it), 0);
	assert_int_equal(counter(&n_put), 8);
	assert_int_equal(counter(&n_create), 1);
	expect_file("hw", d, N);
	upload_free(u);
	free(d);
}

static void test_size_differs_from_declared(void **st)
{
	unsigned char *d = gen(N + 600, 5);
	struct box_item it;
	struct upload *u;

	(void)st;
	reset();
	u = upload_new(NULL, 0);
	assert_int_equal(upload_declare_size(u, N, "0", "s1", 0), 0);
	wr(u, d, N - 300, 0, PSIZE);
	assert_int_equal(upload_commit(u, "0", "s1", 0, &it), 0);
	expect_file("s1", d, N - 300);
	upload_free(u);
	u = upload_new(NULL, 0);
	assert_int_equal(upload_declare_size(u, N, "0", "s2", 0), 0);
	wr(u, d, N + 600, 0, PSIZE);
	assert_int_equal(upload_commit(u, "0", "s2", 0, &it), 0);
	expect_file("s2", d, N + 600);
	upload_free(u);
	free(d);
}

static void test_existing_file(void **st)
{
	unsigned char *d = gen(N, 6), *d3 = malloc(N), rb[100];
	int dl, id = put_file("x", d, N);
	struct box_item it;
	struct upload *u;
	char ids[16];

	(void)st;
	reset();
	snprintf(ids, sizeof(ids), "%d", id);
	/* overwrite in the middle: fetched, new version, same id */
	u = upload_new(ids, N);
	assert_int_equal(upload_dirty(u), 0);
	memcpy(d3, d, N);
	memset(d3 + 500, 9, 10);
	wr(u, d3 + 500, 10, 500, 10);
	assert_int_equal(upload_commit(u, "0", "x", 0, &it), 0);
	assert_string_equal(it.id, ids);
	expect_file("x", d3, N);
	upload_free(u);
	/* O_TRUNC: never downloads */
	dl = counter(&n_download);
	u = upload_new(ids, N);
	assert_int_equal(upload_truncate(u, 0), 0);
	wr(u, d, 1500, 0, 100);
	assert_int_equal(upload_commit(u, "0", "x", 0, &it), 0);
	assert_int_equal(counter(&n_download), dl);
	expect_file("x", d, 1500);
	upload_free(u);
	/* reads: from Box while not fetched, zeros after a growing truncate */
	u = upload_new(ids, 1500);
	assert_int_equal(upload_read(u, rb, 100, 1450), 50);
	assert_memory_equal(rb, d + 1450, 50);
	assert_int_equal(upload_truncate(u, 2000), 0);
	assert_int_equal(upload_size(u), 2000);
	assert_int_equal(upload_read(u, rb, 100, 1450), 100);
	assert_memory_equal(rb, d + 1450, 50);
	for (int i = 50; i < 100; i++)
		assert_int_equal(rb[i], 0);
	assert_int_equal(upload_commit(u, "0", "x", 0, &it), 0);
	assert_int_equal(it.size, 2000);
	upload_free(u);
	free(d);
	free(d3);
}

static void test_out_of_order_writes(void **st)
{
	unsigned char *d = gen(N, 7);
	struct box_item it;
	struct upload *u = upload_new(NULL, 0);
	int blk;

	(void)st;
	reset();
	assert_int_equal(upload_declare_size(u, N, "0", "o", 0), 0);
	for (int pass = 0; pass < 2; pass++)
		for (blk = N / 64 - pass; blk >= 0; blk -= 2) {
			size_t o = blk * 64;

			if (o < N)
				wr(u, d + o, N - o < 64 ? N - o : 64, o, 64);
		}
	wait_puts(7);   /* all but the first streamed once the gaps closed */
	assert_int_equal(upload_commit(u, "0", "o", 0, &it), 0);
	assert_int_equal(counter(&n_put), 8);
	expect_file("o", d, N);
	upload_free(u);
	free(d);
}

static void test_name_taken_meanwhile(void **st)
{
	unsigned char *d = gen(N, 8);
	int id = put_file("k", d, 10);
	struct box_item it;
	struct upload *u;

	(void)st;
	reset();
	u = upload_new(NULL, 0);
	assert_int_equal(upload_declare_size(u, N, "0", "k", 0), 0);
	wr(u, d, N, 0, PSIZE);
	assert_int_equal(upload_commit(u, "0", "k", 0, &it), 0);
	assert_int_equal(atoi(it.id), id);
	expect_file("k", d, N);
	upload_free(u);
	u = upload_new(NULL, 0);
	wr(u, d, 10, 0, 10);
	assert_int_equal(upload_commit(u, "0", "k", 0, &it), 0);
	assert_int_equal(atoi(it.id), id);
	upload_free(u);
	free(d);
}

static void test_failures(void **st)
{
	unsigned char *d = gen(N, 9);
	struct box_item it;
	struct upload *u;
	char line[64];

	(void)st;
	reset();
	u = upload_new(NULL, 0);
	wr(u, d, N, 0, PSIZE);
	fail_commit = 1;
	assert_int_equal(upload_commit(u, "0", "f", 0, &it), -EIO);
	upload_state(u, line, sizeof(line));
	assert_string_equal(line, "failed: refused by the server");
	assert_int_equal(upload_dirty(u), 1);
	fail_commit = 0;
	assert_int_equal(upload_commit(u, "0", "f", 0, &it), 0);
	expect_file("f", d, N);
	upload_free(u);
	/* a part failing while streaming: everything again at commit */
	reset();
	u = upload_new(NULL, 0);
	assert_int_equal(upload_declare_size(u, N, "0", "g", 0), 0);
	pthread_mutex_lock(&L);
	fail_put_nth = 2;
	pthread_mutex_unlock(&L);
	wr(u, d, N, 0, PSIZE);
	assert_int_equal(upload_commit(u, "0", "g", 0, &it), 0);
	expect_file("g", d, N);
	upload_free(u);
	free(d);
}

static void *writer(void *a)
{
	int i = (int)(intptr_t)a;
	size_t n = 3000 + i * 517;
	unsigned char *d = gen(n, 100 + i);
	struct upload *u = upload_new(NULL, 0);
	struct box_item it;
	char name[32];

	snprintf(name, sizeof(name), "par%d", i);
	if (i % 2) {
		assert_int_equal(upload_truncate(u, n), 0);
		assert_int_equal(upload_declare_size(u, n, "0", name, 0), 0);
	}
	wr(u, d, n, 0, 100);
	assert_int_equal(upload_commit(u, "0", name, 0, &it), 0);
	upload_free(u);
	expect_file(name, d, n);
	free(d);
	return NULL;
}

static void test_parallel_writers(void **st)
{
	pthread_t t[8];

	(void)st;
	reset();
	for (int i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i);
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
}

static void test_free_with_live_session_and_spool_max(void **st)
{
	unsigned char *d = gen(N, 10);
	struct upload *u = upload_new(NULL, 0);

	(void)st;
	reset();
	assert_int_equal(upload_declare_size(u, N, "0", "z", 0), 0);
	wr(u, d, 600, 0, PSIZE);
	upload_free(u);   /* waits for its jobs; the session is aborted */
	boxfs_opts.spool_max = 1000;
	u = upload_new(NULL, 0);
	assert_int_equal(upload_write(u, d, 900, 0), 900);
	assert_int_equal(upload_write(u, d, 200, 900), -ENOSPC);
	assert_int_equal(upload_write(u, d, 50, 0), 50);  /* rewrites fit */
	boxfs_opts.spool_max = 0;
	upload_free(u);
	free(d);
}

/* Write-back: a persisted upload whose daemon "dies" (the state is freed
 * as at exit) is found again by upload_init; the resumed session sends
 * only the parts the server lacks. A corrupt entry keeps its spool. */
static void test_persist_and_resume(void **st)
{
	unsigned char *d = gen(N, 11);
	char pid[BOX_ID_MAX], *name = NULL, path[512];
	struct box_item it;
	struct upload *u;
	time_t mt = 0;
	int puts, fd;

	(void)st;
	reset();
	u = upload_new(NULL, 0);
	assert_int_equal(upload_declare_size(u, N, "0", "wb", 0), 0);
	wr(u, d, PSIZE * 3, 0, PSIZE);       /* parts 1..2 stream (0 is held
					      * back until the commit) */
	wait_puts(2);
	wr(u, d + PSIZE * 3, N - PSIZE * 3, PSIZE * 3, N);
	assert_int_equal(upload_persist(u, "0", "wb", 1600000000), 0);
	assert_true(upload_journaled(u));
	puts = counter(&n_put);
	upload_free(u);                      /* exit: spool + entry stay */
	assert_int_equal(counter(&n_abort), 0);

	/* a corrupt entry next to it: reported, skipped, its spool kept */
	snprintf(path, sizeof(path), "%s/spool-1-1", boxfs_opts.cache_dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/journal/spool-1-1.json",
		 boxfs_opts.cache_dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_int_equal(write(fd, "{\"v\":1,\"spo", 12), 12);
	close(fd);

	upload_shutdown();
	assert_int_equal(upload_init(), 0);
	u = upload_resume_next(pid, &name, &mt);
	assert_non_null(u);
	assert_string_equal(pid, "0");
	assert_string_equal(name, "wb");
	assert_int_equal(mt, 1600000000);
	assert_null(upload_resume_next(pid, &name, &mt) ? (void *)1 : NULL);
	assert_int_equal(upload_resume_sync(u), 0);
	assert_int_equal(upload_commit(u, pid, name, mt, &it), 0);
	expect_file("wb", d, N);
	/* the same session, 8 parts in all: only those not sent before the
	 * "crash" went now (an overlap would be a violation of the fake) */
	assert_int_equal(counter(&n_create), 1);
	assert_true(puts <= 8);
	assert_int_equal(counter(&n_put), 8);
	assert_false(upload_journaled(u));
	upload_free(u);
	free(name);
	snprintf(path, sizeof(path), "%s/spool-1-1", boxfs_opts.cache_dir);
	assert_int_equal(access(path, F_OK), 0);
	unlink(path);
	snprintf(path, sizeof(path), "%s/journal/spool-1-1.json",
		 boxfs_opts.cache_dir);
	unlink(path);
	free(d);
}

static char cache[] = "/tmp/boxfs-test-upload-XXXXXX";

static int setup(void **st)
{
	char *dir;

	(void)st;
	log_setup(LOG_LVL_ERR, 0);
	if (!mkdtemp(cache) || asprintf(&dir, "%s/a/b", cache) < 0)
		return -1;
	boxfs_opts.cache_dir = dir;
	boxfs_opts.chunked_min = 1000;
	boxfs_opts.part_parallel = 2;
	boxfs_opts.mem_budget = 4 * PSIZE;
	if (worker_init(4) || upload_init())
		return -1;
	return 0;
}

static int teardown(void **st)
{
	char cmd[128];

	(void)st;
	worker_shutdown();
	upload_shutdown();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", cache);
	if (system(cmd))
		return -1;
	free(boxfs_opts.cache_dir);
	for (int i = 0; i < nfiles; i++)
		free(files[i].data);
	for (int i = 0; i < nsess; i++) {
		free(sess[i].data);
		free(sess[i].have);
	}
	return violations ? -1 : 0;  /* the fake saw a protocol violation */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_declared_streams_before_commit),
		cmocka_unit_test(test_copy_sends_first_part_early),
		cmocka_unit_test(test_unknown_size_bursts),
		cmocka_unit_test(test_small_and_empty),
		cmocka_unit_test(test_rewrite_of_sent_part),
		cmocka_unit_test(test_header_rewrite),
		cmocka_unit_test(test_parts_hashed_while_written),
		cmocka_unit_test(test_size_differs_from_declared),
		cmocka_unit_test(test_existing_file),
		cmocka_unit_test(test_out_of_order_writes),
		cmocka_unit_test(test_name_taken_meanwhile),
		cmocka_unit_test(test_failures),
		cmocka_unit_test(test_parallel_writers),
		cmocka_unit_test(test_free_with_live_session_and_spool_max),
		cmocka_unit_test(test_persist_and_resume),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
