/* inode.c - inode table: ino -> inode, Box id -> inode, (parent, name) -> inode.
 *
 * Three chained hash tables that grow by doubling. One global mutex; no
 * network call is ever made while it is held (see inode.h). */
#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wctype.h>

#include "inode.h"
#include "log.h"
#include "upload.h"

#define FUSE_ROOT_INO 1

struct table {
	struct inode **b;
	size_t nb;
};

static pthread_mutex_t inode_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct table by_ino, by_id, by_name;
static size_t ninodes;
static uint64_t next_ino = 2;

void inode_lock(void)
{
	pthread_mutex_lock(&inode_mtx);
}

void inode_unlock(void)
{
	pthread_mutex_unlock(&inode_mtx);
}

double inode_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* FNV-1a */
static uint64_t hash_bytes(uint64_t h, const char *s)
{
	if (!h)
		h = 1469598103934665603ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static uint64_t hash_ino(uint64_t ino)
{
	return ino * 11400714819323198485ULL;
}

static uint64_t hash_name(uint64_t parent, const char *fold)
{
	return hash_bytes(hash_ino(parent + 1) | 1, fold);
}

static struct inode **link_of(struct inode *in, int which)
{
	if (which == 0)
		return &in->ino_next;
	if (which == 1)
		return &in->id_next;
	return &in->name_next;
}

static uint64_t key_of(const struct inode *in, int which)
{
	if (which == 0)
		return hash_ino(in->ino);
	if (which == 1)
		return hash_bytes(0, in->id);
	return hash_name(in->parent, in->fold);
}

static struct table *table_of(int which)
{
	return which == 0 ? &by_ino : which == 1 ? &by_id : &by_name;
}

static void tab_insert(int which, struct inode *in)
{
	struct table *t = table_of(which);
	size_t i = key_of(in, which) & (t->nb - 1);

	*link_of(in, which) = t->b[i];
	t->b[i] = in;
}

static void tab_remove(int which, struct inode *in)
{
	struct table *t = table_of(which);
	struct inode **pp = &t->b[key_of(in, which) & (t->nb - 1)];

	for (; *pp; pp = link_of(*pp, which)) {
		if (*pp == in) {
			*pp = *link_of(in, which);
			*link_of(in, which) = NULL;
			return;
		}
	}
}

/* Double all three tables when they get crowded; a failed allocation only
 * means longer chains. */
static void tab_grow(void)
{
	struct inode **nb[3];
	size_t n = by_ino.nb * 2;
	int w;

	if (ninodes < by_ino.nb)
		return;
	for (w = 0; w < 3; w++) {
		nb[w] = calloc(n, sizeof(*nb[w]));
		if (!nb[w]) {
			while (w--)
				free(nb[w]);
			return;
		}
	}
	for (w = 0; w < 3; w++) {
		struct table *t = table_of(w);
		struct inode **old = t->b;
		size_t oldn = t->nb, i;

		t->b = nb[w];
		t->nb = n;
		for (i = 0; i < oldn; i++) {
			struct inode *in = old[i], *next;

			for (; in; in = next) {
				next = *link_of(in, w);
				if (w == 1 && !in->id[0])
					continue;
				if (w == 2 && !in->parent)
					continue;
				tab_insert(w, in);
			}
		}
		free(old);
	}
}

static int utf8_decode(const unsigned char *s, wint_t *wc)
{
	int n, i;
	wint_t c;

	if (s[0] < 0x80) {
		*wc = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2;
		c = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3;
		c = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4;
		c = s[0] & 0x07;
	} else {
		return -1;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		c = (c << 6) | (s[i] & 0x3f);
	}
	*wc = c;
	return n;
}

static int utf8_encode(wint_t c, char *out)
{
	if (c < 0x80) {
		out[0] = c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = 0xc0 | (c >> 6);
		out[1] = 0x80 | (c & 0x3f);
		return 2;
	}
	if (c < 0x10000) {
		out[0] = 0xe0 | (c >> 12);
		out[1] = 0x80 | ((c >> 6) & 0x3f);
		out[2] = 0x80 | (c & 0x3f);
		return 3;
	}
	out[0] = 0xf0 | (c >> 18);
	out[1] = 0x80 | ((c >> 12) & 0x3f);
	out[2] = 0x80 | ((c >> 6) & 0x3f);
	out[3] = 0x80 | (c & 0x3f);
	return 4;
}

char *inode_fold(const char *name)
{
	size_t len = strlen(name);
	/* a lower-case form is at most 4 bytes per input byte */
	char *out = malloc(len * 4 + 1), *o = out;
	const unsigned char *s = (const unsigned char *)name;

	if (!out)
		return NULL;
	while (*s) {
		wint_t wc, lc;
		int n = utf8_decode(s, &wc);

		if (n < 0) {
			*o++ = *s++;
			continue;
		}
		lc = towlower(wc);
		if (lc > 0x10ffff)
			lc = wc;
		o += utf8_encode(lc, o);
		s += n;
	}
	*o = '\0';
	return out;
}

int inode_init(const char *root_id)
{
	struct inode *root;
	int w;

	for (w = 0; w < 3; w++) {
		struct table *t = table_of(w);

		t->nb = 1024;
		t->b = calloc(t->nb, sizeof(*t->b));
		if (!t->b)
			goto nomem;
	}
	root = calloc(1, sizeof(*root));
	if (!root)
		goto nomem;
	root->name = strdup("");
	root->fold = strdup("");
	if (!root->name || !root->fold) {
		free(root->name);
		free(root->fold);
		free(root);
		goto nomem;
	}
	root->ino = FUSE_ROOT_INO;
	root->type = BOX_FOLDER;
	root->nlookup = 1;              /* never forgotten */
	root->mtime = root->ctime = time(NULL);
	snprintf(root->id, sizeof(root->id), "%s", root_id);
	tab_insert(0, root);
	tab_insert(1, root);
	ninodes = 1;
	return 0;
nomem:
	for (w = 0; w < 3; w++) {
		free(table_of(w)->b);
		table_of(w)->b = NULL;
	}
	return -ENOMEM;
}

static void inode_free(struct inode *in)
{
	if (in->up)
		upload_free(in->up);
	free(in->name);
	free(in->fold);
	free(in);
}

void inode_cleanup(void)
{
	size_t i;

	inode_lock();
	for (i = 0; by_ino.b && i < by_ino.nb; i++) {
		struct inode *in = by_ino.b[i], *next;

		for (; in; in = next) {
			next = in->ino_next;
			inode_free(in);
		}
	}
	for (i = 0; i < 3; i++) {
		free(table_of(i)->b);
		table_of(i)->b = NULL;
		table_of(i)->nb = 0;
	}
	ninodes = 0;
	inode_unlock();
}

struct inode *inode_find(uint64_t ino)
{
	struct inode *in = by_ino.b[hash_ino(ino) & (by_ino.nb - 1)];

	for (; in; in = in->ino_next)
		if (in->ino == ino)
			return in;
	return NULL;
}

struct inode *inode_by_id(const char *id)
{
	struct inode *in;

	if (!id[0])
		return NULL;
	in = by_id.b[hash_bytes(0, id) & (by_id.nb - 1)];
	for (; in; in = in->id_next)
		if (!strcmp(in->id, id))
			return in;
	return NULL;
}

struct inode *inode_child(uint64_t parent, const char *name)
{
	char *fold = inode_fold(name);
	struct inode *in;

	if (!fold)
		return NULL;
	in = by_name.b[hash_name(parent, fold) & (by_name.nb - 1)];
	for (; in; in = in->name_next)
		if (in->parent == parent && !strcmp(in->name, name))
			break;
	free(fold);
	return in;
}

struct inode *inode_clash(uint64_t parent, const char *name,
			  const struct inode *except)
{
	char *fold = inode_fold(name);
	struct inode *in;

	if (!fold)
		return NULL;
	in = by_name.b[hash_name(parent, fold) & (by_name.nb - 1)];
	for (; in; in = in->name_next)
		if (in != except && in->parent == parent &&
		    !strcmp(in->fold, fold))
			break;
	free(fold);
	return in;
}

struct inode *inode_get(uint64_t ino)
{
	struct inode *in;

	inode_lock();
	in = inode_find(ino);
	if (in)
		in->refs++;
	inode_unlock();
	return in;
}

void inode_put(struct inode *in)
{
	if (!in)
		return;
	inode_lock();
	in->refs--;
	inode_maybe_free(in);
	inode_unlock();
}

int inode_maybe_free(struct inode *in)
{
	if (in->ino == FUSE_ROOT_INO || in->parent || in->nlookup ||
	    in->refs || in->nopen || in->up)
		return 0;
	tab_remove(0, in);
	if (in->id[0])
		tab_remove(1, in);
	ninodes--;
	inode_free(in);
	return 1;
}

static void sib_unlink(struct inode *in)
{
	struct inode *p = inode_find(in->parent);

	if (in->sib_prev)
		in->sib_prev->sib_next = in->sib_next;
	else if (p && p->child == in)
		p->child = in->sib_next;
	if (in->sib_next)
		in->sib_next->sib_prev = in->sib_prev;
	in->sib_next = in->sib_prev = NULL;
}

static void sib_link(struct inode *in)
{
	struct inode *p = inode_find(in->parent);

	if (!p)
		return;
	in->sib_prev = NULL;
	in->sib_next = p->child;
	if (p->child)
		p->child->sib_prev = in;
	p->child = in;
}

void inode_detach(struct inode *in)
{
	if (!in->parent || in->ino == FUSE_ROOT_INO)
		return;
	tab_remove(2, in);
	sib_unlink(in);
	in->parent = 0;
	inode_maybe_free(in);
}

int inode_move(struct inode *in, uint64_t parent, const char *name)
{
	char *nname = strdup(name), *nfold = inode_fold(name);

	if (!nname || !nfold) {
		free(nname);
		free(nfold);
		return -ENOMEM;
	}
	if (in->parent) {
		tab_remove(2, in);
		sib_unlink(in);
	}
	free(in->name);
	free(in->fold);
	in->name = nname;
	in->fold = nfold;
	in->parent = parent;
	if (parent) {
		tab_insert(2, in);
		sib_link(in);
	}
	return 0;
}

static void set_id(struct inode *in, const char *id)
{
	struct inode *dup;

	if (!strcmp(in->id, id))
		return;
	/* a listing raced with a commit and already made an inode for the
	 * new id: ours wins, the other one leaves the tree */
	dup = inode_by_id(id);
	if (dup) {
		tab_remove(1, dup);
		dup->id[0] = '\0';
		inode_detach(dup);
	}
	if (in->id[0])
		tab_remove(1, in);
	snprintf(in->id, sizeof(in->id), "%s", id);
	if (in->id[0])
		tab_insert(1, in);
}

void inode_set_item(struct inode *in, const struct box_item *it)
{
	if (it->id[0])
		set_id(in, it->id);
	in->type = it->type;
	in->size = it->size;
	if (it->mtime)
		in->mtime = it->mtime;
	if (it->ctime)
		in->ctime = it->ctime;
	else if (!in->ctime)
		in->ctime = in->mtime;
	snprintf(in->sha1, sizeof(in->sha1), "%s", it->sha1);
	snprintf(in->etag, sizeof(in->etag), "%s", it->etag);
	/* a folder time set through the mount lives only here */
	if (in->type == BOX_FOLDER && in->set_mtime)
		in->mtime = in->set_mtime;
}

static struct inode *inode_alloc(uint64_t parent, const char *name)
{
	struct inode *in = calloc(1, sizeof(*in));

	if (!in)
		return NULL;
	tab_grow();
	in->ino = next_ino++;
	in->name = strdup("");
	in->fold = strdup("");
	if (!in->name || !in->fold || inode_move(in, parent, name)) {
		free(in->name);
		free(in->fold);
		free(in);
		return NULL;
	}
	tab_insert(0, in);
	ninodes++;
	return in;
}

struct inode *inode_from_item(uint64_t parent, const struct box_item *it)
{
	struct inode *in = inode_by_id(it->id);

	if (in) {
		if ((in->parent != parent || strcmp(in->name, it->name)) &&
		    in->ino != FUSE_ROOT_INO &&
		    inode_move(in, parent, it->name))
			return NULL;
	} else {
		in = inode_alloc(parent, it->name);
		if (!in)
			return NULL;
	}
	/* while we hold unsent data, our size and times are the truth */
	if (!in->up || !in->id[0])
		inode_set_item(in, it);
	return in;
}

struct inode *inode_new_local(uint64_t parent, const char *name)
{
	struct inode *in = inode_alloc(parent, name);

	if (!in)
		return NULL;
	in->type = BOX_FILE;
	in->mtime = in->ctime = time(NULL);
	return in;
}

void inode_forget(uint64_t ino, uint64_t n)
{
	struct inode *in;

	inode_lock();
	in = inode_find(ino);
	if (in) {
		in->nlookup = in->nlookup > n ? in->nlookup - n : 0;
		if (ino == FUSE_ROOT_INO && !in->nlookup)
			in->nlookup = 1;
		inode_maybe_free(in);
	}
	inode_unlock();
}

void inode_stat(const struct inode *in, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = in->ino;
	if (in->type == BOX_FOLDER) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0644;
		st->st_nlink = in->parent || in->ino == FUSE_ROOT_INO ? 1 : 0;
	}
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_size = in->size;
	/* the I/O size programs pick (cp, cat, stdio buffers): 1 MiB makes
	 * one FUSE request of each 1 MiB write instead of eight of 128 KiB
	 * (docs/PERFORMANCE.md finding 4: +13% for a 1 GiB cp, less CPU) */
	st->st_blksize = 1 << 20;
	st->st_blocks = (in->size + 511) / 512;
	st->st_mtim.tv_sec = in->mtime;
	st->st_atim.tv_sec = in->mtime;
	st->st_ctim.tv_sec = in->ctime ? in->ctime : in->mtime;
}
