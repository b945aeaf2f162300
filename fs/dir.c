/* dir.c - folder listings into the inode table, name rules, statfs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "box.h"
#include "dir.h"
#include "inode.h"
#include "log.h"
#include "options.h"

struct listing {
	struct box_item **v;
	size_t n, cap;
};

static int utf8_len(const unsigned char *s, size_t *nchars)
{
	size_t n = 0;

	while (*s) {
		int k, i;

		if (s[0] < 0x80)
			k = 1;
		else if ((s[0] & 0xe0) == 0xc0 && s[0] >= 0xc2)
			k = 2;
		else if ((s[0] & 0xf0) == 0xe0)
			k = 3;
		else if ((s[0] & 0xf8) == 0xf0 && s[0] <= 0xf4)
			k = 4;
		else
			return -1;
		for (i = 1; i < k; i++)
			if ((s[i] & 0xc0) != 0x80)
				return -1;
		s += k;
		n++;
	}
	*nchars = n;
	return 0;
}

int dir_check_name(const char *name)
{
	size_t len = strlen(name), nchars;
	const unsigned char *p;

	if (!len || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	if (utf8_len((const unsigned char *)name, &nchars))
		return -EINVAL;
	if (nchars > 255)
		return -ENAMETOOLONG;
	for (p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f || *p == '/' || *p == '\\')
			return -EINVAL;
	if (name[len - 1] == ' ')
		return -EINVAL;
	return 0;
}

int dir_name_safe(const char *name)
{
	return name[0] && strcmp(name, ".") && strcmp(name, "..") &&
	       !strchr(name, '/');
}

/* Keep a copy of each item; applied under the lock once complete. */
static int collect_cb(const struct box_item *it, void *arg)
{
	struct listing *l = arg;
	struct box_item *c;

	if (!dir_name_safe(it->name)) {
		log_warn("skipping item %s: its name cannot be shown locally",
			 it->id);
		return 0;
	}
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		struct box_item **nv = realloc(l->v, ncap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = ncap;
	}
	c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	*c = *it;
	l->v[l->n++] = c;
	return 0;
}

static void listing_free(struct listing *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

/* locked */
static void apply_listing(struct inode *dir, struct listing *l)
{
	struct inode *c, *next;
	size_t i;

	for (c = dir->child; c; c = c->sib_next)
		c->seen = 0;
	for (i = 0; i < l->n; i++) {
		if (!strcmp(l->v[i]->id, dir->id))
			continue;
		/* Box keeps names unique case-insensitively; a listing that
		 * breaks this would make a lookup find the other item */
		c = inode_clash(dir->ino, l->v[i]->name, NULL);
		if (c && c->seen && strcmp(c->id, l->v[i]->id)) {
			log_warn("dir: folder %s lists items %s and %s under one "
				 "name (ignoring case): %s not shown", dir->id,
				 c->id, l->v[i]->id, l->v[i]->id);
			continue;
		}
		c = inode_from_item(dir->ino, l->v[i]);
		if (c)
			c->seen = 1;
	}
	/* items with a Box id that the server no longer lists are gone;
	 * local files not yet committed stay */
	for (c = dir->child; c; c = next) {
		next = c->sib_next;
		if (!c->seen && c->id[0])
			inode_detach(c);
	}
	dir->listed_at = inode_now();
}

int dir_refresh(uint64_t ino, int force)
{
	struct listing l = { 0 };
	char id[BOX_ID_MAX];
	struct inode *in;
	uint64_t gen;
	int ret;

	inode_lock();
	in = inode_find(ino);
	if (!in) {
		inode_unlock();
		return -ENOENT;
	}
	if (in->type != BOX_FOLDER) {
		inode_unlock();
		return -ENOTDIR;
	}
	if (!force && in->listed_at &&
	    inode_now() - in->listed_at < boxfs_opts.dir_ttl) {
		inode_unlock();
		return 0;
	}
	snprintf(id, sizeof(id), "%s", in->id);
	gen = in->gen;
	in->refs++;
	inode_unlock();

	ret = box_list_folder(id, collect_cb, &l);

	inode_lock();
	if (ret == -ENOENT) {
		/* the folder itself is gone */
		inode_detach(in);
	} else if (!ret && in->gen == gen) {
		apply_listing(in, &l);
	}
	/* else: a local change raced with the listing, whose view is older
	 * than our table; keep the table and list again next time */
	in->refs--;
	inode_maybe_free(in);
	inode_unlock();
	listing_free(&l);
	if (ret)
		log_debug("listing folder %s: %s", id, strerror(-ret));
	return ret;
}

void dir_snap_free(struct dir_snap *s)
{
	size_t i;

	if (!s)
		return;
	inode_lock();
	for (i = 0; i < s->n; i++) {
		struct inode *in = inode_find(s->ents[i].ino);

		if (in) {
			in->refs--;
			inode_maybe_free(in);
		}
		free(s->ents[i].name);
	}
	inode_unlock();
	free(s->ents);
	free(s);
}

int dir_snap_new(uint64_t ino, struct dir_snap **out)
{
	struct dir_snap *s;
	struct inode *dir, *c;
	size_t n = 0;
	int ret = dir_refresh(ino, 0);

	if (ret)
		return ret;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	inode_lock();
	dir = inode_find(ino);
	if (!dir) {
		inode_unlock();
		free(s);
		return -ENOENT;
	}
	for (c = dir->child; c; c = c->sib_next)
		n++;
	s->ino = ino;
	s->parent = dir->parent ? dir->parent : ino;
	s->ents = calloc(n ? n : 1, sizeof(*s->ents));
	if (!s->ents) {
		inode_unlock();
		free(s);
		return -ENOMEM;
	}
	for (c = dir->child; c; c = c->sib_next) {
		struct dir_ent *e = &s->ents[s->n];

		e->name = strdup(c->name);
		if (!e->name)
			continue;
		e->ino = c->ino;
		e->type = c->type == BOX_FOLDER ? S_IFDIR : S_IFREG;
		c->refs++;
		s->n++;
	}
	inode_unlock();
	*out = s;
	return 0;
}

int dir_statfs(struct statvfs *st)
{
	uint64_t total = 0, used = 0;
	const uint64_t bs = 4096;
	int ret = box_space(&total, &used);

	if (ret)
		return ret;
	memset(st, 0, sizeof(*st));
	st->f_bsize = bs;
	st->f_frsize = bs;
	st->f_blocks = total / bs;
	st->f_bfree = total > used ? (total - used) / bs : 0;
	st->f_bavail = st->f_bfree;
	st->f_files = 1000000000;
	st->f_ffree = 1000000000;
	st->f_favail = st->f_ffree;
	st->f_namemax = 255;
	return 0;
}
