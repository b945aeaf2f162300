/* fsops.c - the FUSE low-level operations: thin adapters, no HTTP here.
 *
 * Network calls happen only through box_*, upload_*, dir_refresh and the
 * reader, always without the inode lock held. */
#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <linux/fs.h>

#include "auth.h"
#include "box.h"
#include "dir.h"
#include "fsops.h"
#include "http.h"
#include "inode.h"
#include "log.h"
#include "options.h"
#include "predict.h"
#include "reader.h"
#include "stats.h"
#include "upload.h"
#include "wback.h"

#define XATTR_STATE "user.boxfs.state"
#define XATTR_SIZE "user.boxfs.size"
#define XATTR_STATUS "user.boxfs.status"  /* on the root: `boxfs status` */

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

/* One per open fd (files and folders). Holds an inode reference. All are
 * listed so that those the kernel never released (unmount with files
 * still open) are freed at shutdown. */
struct fh {
	struct inode *in;
	int writer;
	struct reader *rd;
	struct dir_snap *snap;
	struct predict *pr;  /* predicted size of a plain copy (predict.h) */
	struct fh *next, *prev;
};

static pthread_mutex_t fh_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct fh *fh_list;

static struct fh *fh_new(void)
{
	struct fh *fh = calloc(1, sizeof(*fh));

	if (!fh)
		return NULL;
	pthread_mutex_lock(&fh_mtx);
	fh->next = fh_list;
	if (fh_list)
		fh_list->prev = fh;
	fh_list = fh;
	pthread_mutex_unlock(&fh_mtx);
	return fh;
}

static void fh_free(struct fh *fh)
{
	if (!fh)
		return;
	pthread_mutex_lock(&fh_mtx);
	if (fh->prev)
		fh->prev->next = fh->next;
	else
		fh_list = fh->next;
	if (fh->next)
		fh->next->prev = fh->prev;
	pthread_mutex_unlock(&fh_mtx);
	reader_free(fh->rd);
	dir_snap_free(fh->snap);
	predict_free(fh->pr);
	free(fh);
}

static struct fh *fh_of(struct fuse_file_info *fi)
{
	return (struct fh *)(uintptr_t)fi->fh;
}

/* locked */
static void fill_entry(struct fuse_entry_param *e, struct inode *in)
{
	memset(e, 0, sizeof(*e));
	e->ino = in->ino;
	e->generation = 1;
	inode_stat(in, &e->attr);
	e->attr_timeout = boxfs_opts.attr_ttl;
	e->entry_timeout = boxfs_opts.attr_ttl;
}

/* locked: use the write state outside the lock; pair with up_unhold. */
static struct upload *up_hold(struct inode *in)
{
	if (!in->up)
		return NULL;
	in->upusers++;
	return in->up;
}

/* Drop a hold; when no fd is open any more and the state is clean, free
 * it (outside the lock: upload_free may touch the disk). */
static void up_unhold(struct inode *in, struct upload *up)
{
	int dirty = up ? upload_dirty(up) : 0;
	struct upload *drop = NULL;

	if (!up)
		return;
	inode_lock();
	in->upusers--;
	if (!in->upusers && !in->nopen && in->up == up &&
	    (!dirty || !in->parent)) {
		drop = up;
		in->up = NULL;
	}
	inode_unlock();
	if (drop)
		upload_free(drop);
}

/* A folder must have been listed once; later refresh failures fall back to
 * the cache (the server may be briefly unreachable). */
static int refresh(uint64_t ino)
{
	int ret = dir_refresh(ino, 0);
	struct inode *in;

	if (!ret || ret == -ENOENT || ret == -ENOTDIR || ret == -ENOMEM)
		return ret;
	inode_lock();
	in = inode_find(ino);
	if (in && in->listed_at)
		ret = 0;
	inode_unlock();
	return ret;
}

/* locked: the Box id of folder ino into id; -ENOENT if it is gone */
static int folder_id(uint64_t ino, char id[BOX_ID_MAX])
{
	struct inode *p = inode_find(ino);

	if (!p || (p->ino != FUSE_ROOT_ID && !p->parent))
		return -ENOENT;
	if (p->type != BOX_FOLDER)
		return -ENOTDIR;
	snprintf(id, BOX_ID_MAX, "%s", p->id);
	return 0;
}

/* The token was refused and cannot be renewed: close() waits up to
 * auth_wait seconds for token_file to be fixed, trying it again with
 * backoff (1 s doubling to 10 s), then commits once more. */
static int commit_auth_wait(struct upload *up, const char *pid,
			    const char *name, time_t mtime, struct box_item *out)
{
	double end = inode_now() + boxfs_opts.auth_wait, step = 1, left;
	int ret = -EACCES;

	while (ret == -EACCES && auth_waiting(NULL, 0) &&
	       (left = end - inode_now()) > 0) {
		struct timespec ts;

		if (step > left)
			step = left;
		ts.tv_sec = (time_t)step;
		ts.tv_nsec = (long)((step - (double)ts.tv_sec) * 1e9);
		nanosleep(&ts, NULL);
		step = step * 2 > 10 ? 10 : step * 2;
		if (auth_retry() == 0)
			ret = upload_commit(up, pid, name, mtime, out);
	}
	return ret;
}

/* Commit the write state as the file's current name and folder. An
 * unlinked file has nowhere to go: its data is dropped, as POSIX says. */
static int commit(struct inode *in, struct upload *up)
{
	char pid[BOX_ID_MAX], *name;
	struct box_item out;
	uint64_t parent;
	time_t mtime;
	int ret;

	inode_lock();
	if (!in->parent) {
		inode_unlock();
		return 0;
	}
	ret = folder_id(in->parent, pid);
	if (ret) {
		/* its folder vanished from Box: the data stays in the spool */
		log_err("cannot upload %s: its folder is gone", in->name);
		inode_unlock();
		return ret;
	}
	parent = in->parent;
	name = strdup(in->name);
	mtime = in->set_mtime ? in->set_mtime : in->mtime;
	inode_unlock();
	if (!name)
		return -ENOMEM;

	memset(&out, 0, sizeof(out));
	ret = upload_commit(up, pid, name, mtime, &out);
	if (ret == -EACCES && !wback_on())
		ret = commit_auth_wait(up, pid, name, mtime, &out);
	if (ret)
		log_err("upload of %s failed: %s", name, strerror(-ret));
	free(name);
	if (ret)
		return ret;
	inode_lock();
	inode_set_item(in, &out);
	if (!out.mtime)
		in->mtime = mtime;
	in->set_mtime = 0;
	if (inode_find(parent))
		inode_find(parent)->gen++;
	inode_unlock();
	return 0;
}

/* Write-back close(): make the data durable in the spool + journal under
 * the file's current name and folder, then let wback commit it later. */
static int persist(struct inode *in, struct upload *up)
{
	char pid[BOX_ID_MAX], *name;
	time_t mtime;
	int ret;

	inode_lock();
	if (!in->parent) {
		inode_unlock();
		return 0;       /* unlinked: nothing is kept */
	}
	ret = folder_id(in->parent, pid);
	name = ret ? NULL : strdup(in->name);
	mtime = in->set_mtime ? in->set_mtime : in->mtime;
	inode_unlock();
	if (ret)
		return ret;
	if (!name)
		return -ENOMEM;
	ret = upload_persist(up, pid, name, mtime);
	free(name);
	if (!ret)
		wback_add(in);
	return ret;
}

/* Run fn (commit or persist) on the inode's write state if it is dirty. */
static int if_dirty(struct inode *in,
		    int (*fn)(struct inode *in, struct upload *up))
{
	struct upload *up;
	int ret = 0;

	inode_lock();
	up = up_hold(in);
	inode_unlock();
	if (up && upload_dirty(up))
		ret = fn(in, up);
	up_unhold(in, up);
	return ret;
}

static int inited;

int fsops_initialized(void)
{
	return __atomic_load_n(&inited, __ATOMIC_ACQUIRE);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* in-order reads on a fd keep the read-ahead window sequential */
	conn->want &= ~FUSE_CAP_ASYNC_READ;
	/* every write must reach the upload state, never sit in page cache */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	__atomic_store_n(&inited, 1, __ATOMIC_RELEASE);
}

static void op_destroy(void *userdata)
{
	/* main calls fsops_shutdown once no worker runs any more */
	(void)userdata;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	struct inode *in;
	int ret = refresh(parent);

	if (ret) {
		fuse_reply_err(req, -ret);
		return;
	}
	inode_lock();
	in = inode_child(parent, name);
	if (!in) {
		inode_unlock();
		fuse_reply_err(req, ENOENT);
		return;
	}
	in->nlookup++;
	fill_entry(&e, in);
	inode_unlock();
	fuse_reply_entry(req, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	inode_forget(ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	size_t i;

	for (i = 0; i < count; i++)
		inode_forget(forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void reply_attr(fuse_req_t req, struct inode *in)
{
	struct stat st;

	inode_lock();
	inode_stat(in, &st);
	inode_unlock();
	fuse_reply_attr(req, &st, boxfs_opts.attr_ttl);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct inode *in = inode_get(ino);

	(void)fi;
	if (!in) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	reply_attr(req, in);
	inode_put(in);
}

/* Size change: ftruncate of an empty file being written announces the
 * final size; otherwise the write state is truncated. With no writer
 * (truncate(2) by path) the change is committed at once. */
static int set_size(struct inode *in, uint64_t size)
{
	char pid[BOX_ID_MAX] = "", *name = NULL, id[BOX_ID_MAX];
	struct upload *up, *nu = NULL;
	uint64_t cur;
	int ret, writers;

	inode_lock();
	up = up_hold(in);
	snprintf(id, sizeof(id), "%s", in->id);
	cur = in->size;
	inode_unlock();
	if (!up) {
		nu = upload_new(id[0] ? id : NULL, cur);
		if (!nu)
			return -ENOMEM;
		inode_lock();
		if (!in->up)
			in->up = nu, nu = NULL;
		up = up_hold(in);
		inode_unlock();
		if (nu)
			upload_free(nu);
	}
	inode_lock();
	writers = in->nwriters;
	if (in->parent)
		folder_id(in->parent, pid);
	name = strdup(in->name);
	inode_unlock();
	if (!name) {
		up_unhold(in, up);
		return -ENOMEM;
	}

	cur = upload_size(up);
	/* the size changes either way (zeros up to it); an empty file being
	 * written also announces its final size */
	ret = upload_truncate(up, size);
	if (!ret && writers && cur == 0 && size > 0)
		ret = upload_declare_size(up, size, pid, name, 0);
	free(name);
	if (!ret) {
		inode_lock();
		in->size = size;
		in->mtime = time(NULL);
		in->set_mtime = 0;
		inode_unlock();
		if (!writers && upload_dirty(up))
			ret = wback_on() ? persist(in, up) : commit(in, up);
	}
	up_unhold(in, up);
	return ret;
}

/* utimens: remembered for the commit while there is unsent data,
 * otherwise sent now as content_modified_at. Folders: Box keeps no
 * settable time for them; the time is kept in memory for the life of the
 * mount (so `rsync -a` sees its own directory times), nothing is sent. */
static int set_mtime(struct inode *in, time_t t)
{
	char id[BOX_ID_MAX];
	struct box_item out;
	struct upload *up;
	int dirty, ret;

	inode_lock();
	if (in->type == BOX_FOLDER) {
		in->set_mtime = t;
		in->mtime = t;
		inode_unlock();
		return 0;
	}
	up = up_hold(in);
	snprintf(id, sizeof(id), "%s", in->id);
	inode_unlock();
	dirty = up ? upload_dirty(up) : 0;
	if (dirty || !id[0]) {
		inode_lock();
		in->set_mtime = t;
		in->mtime = t;
		inode_unlock();
		ret = 0;
		/* write-back: the pending upload carries the new time */
		if (dirty && wback_on() && upload_journaled(up))
			ret = persist(in, up);
		up_unhold(in, up);
		return ret;
	}
	memset(&out, 0, sizeof(out));
	ret = box_update(BOX_FILE, id, NULL, NULL, t, &out);
	if (!ret) {
		inode_lock();
		in->mtime = out.mtime ? out.mtime : t;
		if (out.ctime)
			in->ctime = out.ctime;
		if (out.etag[0])
			snprintf(in->etag, sizeof(in->etag), "%s", out.etag);
		inode_unlock();
	}
	up_unhold(in, up);
	return ret;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct inode *in = inode_get(ino);
	int ret = 0;

	(void)fi;
	if (!in) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (in->type == BOX_FOLDER)
			ret = -EISDIR;
		else if (attr->st_size < 0)
			ret = -EINVAL;
		else
			ret = set_size(in, attr->st_size);
	}
	if (!ret && (to_set & FUSE_SET_ATTR_MTIME_NOW))
		ret = set_mtime(in, time(NULL));
	else if (!ret && (to_set & FUSE_SET_ATTR_MTIME))
		ret = set_mtime(in, attr->st_mtim.tv_sec);
	/* mode, uid, gid, atime: accepted without effect (Box has none) */
	if (ret)
		fuse_reply_err(req, -ret);
	else
		reply_attr(req, in);
	inode_put(in);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	char pid[BOX_ID_MAX], conflict[BOX_ID_MAX] = "";
	struct fuse_entry_param e;
	struct box_item out;
	struct inode *in, *p;
	int ret = dir_check_name(name);

	(void)mode;
	if (!ret)
		ret = refresh(parent);
	if (ret)
		goto err;
	inode_lock();
	ret = folder_id(parent, pid);
	if (!ret && inode_clash(parent, name, NULL))
		ret = -EEXIST;
	inode_unlock();
	if (ret)
		goto err;
	memset(&out, 0, sizeof(out));
	ret = box_create_folder(pid, name, &out, conflict);
	if (ret)
		goto err;
	inode_lock();
	p = inode_find(parent);
	if (p)
		p->gen++;
	in = inode_from_item(parent, &out);
	if (!in) {
		inode_unlock();
		ret = -ENOMEM;
		goto err;
	}
	in->nlookup++;
	in->listed_at = inode_now();    /* a new folder is empty */
	fill_entry(&e, in);
	inode_unlock();
	fuse_reply_entry(req, &e);
	return;
err:
	fuse_reply_err(req, -ret);
}

/* locked: find the child to remove; takes a reference */
static int child_for_removal(fuse_ino_t parent, const char *name, int want_dir,
			     struct inode **out, char id[BOX_ID_MAX])
{
	struct inode *in = inode_child(parent, name);

	if (!in)
		return -ENOENT;
	if (want_dir && in->type != BOX_FOLDER)
		return -ENOTDIR;
	if (!want_dir && in->type == BOX_FOLDER)
		return -EISDIR;
	snprintf(id, BOX_ID_MAX, "%s", in->id);
	in->refs++;
	*out = in;
	return 0;
}

static void finish_removal(fuse_ino_t parent, struct inode *in)
{
	struct inode *p;

	inode_lock();
	p = inode_find(parent);
	if (p)
		p->gen++;
	inode_detach(in);
	in->refs--;
	inode_maybe_free(in);
	inode_unlock();
}

/* Delete `in` on Box (nothing to do for a file not committed yet: id "")
 * and drop it from the tree; an item already gone counts as removed. Takes
 * over the reference on `in`. */
static int remove_on_box(fuse_ino_t parent, struct inode *in,
			 enum box_type type, const char *id)
{
	int ret = id[0] ? box_delete(type, id, 0) : 0;

	if (ret == -ENOENT)
		ret = 0;
	if (ret) {
		inode_put(in);
		return ret;
	}
	finish_removal(parent, in);
	return 0;
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	char id[BOX_ID_MAX];
	struct upload *up = NULL;
	struct inode *in;
	int ret = refresh(parent);

	if (ret)
		goto out;
	inode_lock();
	ret = child_for_removal(parent, name, 0, &in, id);
	if (!ret) {
		in->refs++;
		up = up_hold(in);
	}
	inode_unlock();
	if (ret)
		goto out;
	ret = remove_on_box(parent, in, BOX_FILE, id);
	/* a pending upload goes with it: journal entry, spool, session */
	if (!ret && up)
		upload_discard(up);
	up_unhold(in, up);
	inode_put(in);
out:
	fuse_reply_err(req, -ret);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	char id[BOX_ID_MAX];
	struct inode *in, *c;
	int ret = refresh(parent);

	if (ret)
		goto out;
	inode_lock();
	ret = child_for_removal(parent, name, 1, &in, id);
	/* files created here but not committed yet make it non-empty */
	for (c = ret ? NULL : in->child; c; c = c->sib_next)
		if (!c->id[0])
			ret = -ENOTEMPTY;
	inode_unlock();
	if (ret) {
		if (ret == -ENOTEMPTY)
			inode_put(in);
		goto out;
	}
	ret = remove_on_box(parent, in, BOX_FOLDER, id);
out:
	fuse_reply_err(req, -ret);
}

struct rn {
	struct inode *src, *dst;
	char src_id[BOX_ID_MAX], dst_id[BOX_ID_MAX], np_id[BOX_ID_MAX];
	enum box_type src_type, dst_type;
};

/* locked: validate a rename and take references */
static int rename_prepare(fuse_ino_t parent, const char *name,
			  fuse_ino_t newparent, const char *newname,
			  unsigned int flags, struct rn *r)
{
	struct inode *src, *dst, *clash, *a;
	int ret;

	src = inode_child(parent, name);
	if (!src)
		return -ENOENT;
	ret = folder_id(newparent, r->np_id);
	if (ret)
		return ret;
	dst = inode_child(newparent, newname);
	if (dst == src)
		return 1;               /* same entry: nothing to do */
	/* Box names are unique ignoring case: another spelling is a clash
	 * (renaming a file onto its own name in another case is fine) */
	clash = inode_clash(newparent, newname, src);
	if (clash && clash != dst)
		return -EEXIST;
	if (dst && (flags & RENAME_NOREPLACE))
		return -EEXIST;
	if (dst && dst->type == BOX_FOLDER && src->type != BOX_FOLDER)
		return -EISDIR;
	if (dst && dst->type != BOX_FOLDER && src->type == BOX_FOLDER)
		return -ENOTDIR;
	if (src->type == BOX_FOLDER) {
		/* a folder cannot move into itself or below */
		for (a = inode_find(newparent); a; a = inode_find(a->parent)) {
			if (a == src)
				return -EINVAL;
			if (!a->parent)
				break;
		}
	}
	if (dst && dst->type == BOX_FOLDER)
		for (a = dst->child; a; a = a->sib_next)
			if (!a->id[0])
				return -ENOTEMPTY;
	r->src = src;
	r->dst = dst;
	src->refs++;
	if (dst)
		dst->refs++;
	snprintf(r->src_id, sizeof(r->src_id), "%s", src->id);
	r->src_type = src->type;
	if (dst) {
		snprintf(r->dst_id, sizeof(r->dst_id), "%s", dst->id);
		r->dst_type = dst->type;
	}
	return 0;
}

/* Replace safely: an existing target file is first moved aside under a
 * unique name, then the source is moved, then the target is deleted; if
 * the move fails the target gets its name back. An existing target folder
 * must be empty (rename(2)); it is deleted first. */
static int rename_remote(struct rn *r, fuse_ino_t parent, fuse_ino_t newparent,
			 const char *name, const char *newname,
			 struct box_item *out)
{
	char aside[64 + BOX_ID_MAX];
	struct box_item tmp;
	int ret, moved_aside = 0;

	if (r->dst && r->dst_id[0]) {
		if (r->dst_type == BOX_FOLDER) {
			ret = box_delete(BOX_FOLDER, r->dst_id, 0);
			if (ret && ret != -ENOENT)
				return ret;
		} else {
			snprintf(aside, sizeof(aside), ".boxfs-replaced-%s-%lx",
				 r->dst_id, (unsigned long)time(NULL));
			ret = box_update(BOX_FILE, r->dst_id, aside, NULL, 0,
					 &tmp);
			if (ret && ret != -ENOENT)
				return ret;
			moved_aside = !ret;
		}
	}
	if (r->src_id[0]) {
		ret = box_update(r->src_type, r->src_id,
				 strcmp(name, newname) ? newname : NULL,
				 parent != newparent ? r->np_id : NULL, 0, out);
		if (ret) {
			if (moved_aside &&
			    box_update(BOX_FILE, r->dst_id, newname, NULL, 0,
				       &tmp))
				log_err("rename: could not restore %s (now %s)",
					newname, aside);
			return ret;
		}
	}
	if (moved_aside) {
		ret = box_delete(BOX_FILE, r->dst_id, 0);
		if (ret && ret != -ENOENT)
			log_warn("rename: replaced file left as %s: %s", aside,
				 strerror(-ret));
	}
	return 0;
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	struct upload *up = NULL;
	struct rn r;
	struct box_item out;
	struct inode *p;
	int ret;

	memset(&r, 0, sizeof(r));
	memset(&out, 0, sizeof(out));
	if (flags & ~RENAME_NOREPLACE) {
		fuse_reply_err(req, EINVAL);    /* RENAME_EXCHANGE, WHITEOUT */
		return;
	}
	ret = dir_check_name(newname);
	if (!ret)
		ret = refresh(parent);
	if (!ret && newparent != parent)
		ret = refresh(newparent);
	if (ret)
		goto out;
	inode_lock();
	ret = rename_prepare(parent, name, newparent, newname, flags, &r);
	if (!ret && wback_on())
		up = up_hold(r.src);
	inode_unlock();
	if (ret) {
		ret = ret > 0 ? 0 : ret;
		goto out;
	}
	/* write-back: a pending new file renamed onto a Box file becomes its
	 * next version (same id) at the commit; nothing to do on Box now */
	if (up && !r.src_id[0] && r.dst && r.dst_type == BOX_FILE &&
	    r.dst_id[0] && upload_dirty(up) && !upload_adopt(up, r.dst_id))
		ret = 0;
	else
		ret = rename_remote(&r, parent, newparent, name, newname, &out);

	inode_lock();
	if (!ret) {
		if ((p = inode_find(parent)))
			p->gen++;
		if ((p = inode_find(newparent)))
			p->gen++;
		if (r.dst)
			inode_detach(r.dst);
		ret = inode_move(r.src, newparent, newname);
		if (out.id[0] && !r.src->up)
			inode_set_item(r.src, &out);
	}
	inode_unlock();
	/* the journal follows the pending upload's new name */
	if (!ret && up && upload_journaled(up))
		ret = persist(r.src, up);
	up_unhold(r.src, up);
	inode_lock();
	r.src->refs--;
	inode_maybe_free(r.src);
	if (r.dst) {
		r.dst->refs--;
		inode_maybe_free(r.dst);
	}
	inode_unlock();
out:
	fuse_reply_err(req, -ret);
}

static int open_inode(struct inode *in, int flags, struct fh *fh);

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	struct upload *up = NULL;
	struct inode *in, *p;
	struct fh *fh = NULL;
	char pid[BOX_ID_MAX];
	int ret;

	if (!S_ISREG(mode)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	ret = dir_check_name(name);
	/* open-or-create without O_TRUNC/O_EXCL (touch, >>, dd): another Box
	 * client may have made the name since our listing; creating over it
	 * would replace its content, so ask Box (a fresh listing) and open
	 * what is there. cp, rsync, tar and > use O_EXCL or O_TRUNC. */
	if (!ret && !(fi->flags & (O_TRUNC | O_EXCL))) {
		ret = dir_refresh(parent, 1);
		if (ret == -ENOMEM || ret == -ENOENT || ret == -ENOTDIR)
			goto err;
		ret = 0;
		fh = fh_new();
		if (!fh) {
			ret = -ENOMEM;
			goto err;
		}
		inode_lock();
		in = inode_child(parent, name);
		if (in && !in->id[0])
			in = NULL;	/* our own new file: see below */
		if (in) {
			in->refs++;
			in->nlookup++;
		}
		inode_unlock();
		if (in) {
			ret = open_inode(in, fi->flags, fh);
			if (ret) {
				inode_forget(in->ino, 1);
				inode_put(in);
				goto err;
			}
			inode_lock();
			goto reply;
		}
	}
	if (!ret)
		ret = refresh(parent);
	if (ret)
		goto err;
	if (!fh)
		fh = fh_new();
	up = upload_new(NULL, 0);
	if (!fh || !up) {
		ret = -ENOMEM;
		goto err;
	}
	inode_lock();
	ret = folder_id(parent, pid);
	if (!ret && inode_clash(parent, name, NULL))
		ret = -EEXIST;
	in = ret ? NULL : inode_new_local(parent, name);
	if (!ret && !in)
		ret = -ENOMEM;
	if (ret) {
		inode_unlock();
		goto err;
	}
	p = inode_find(parent);
	p->gen++;
	in->up = up;
	in->nwriters = 1;
	in->nopen = 1;
	in->nlookup++;
	in->refs++;
	fh->in = in;
	fh->writer = 1;
reply:	/* locked */
	fill_entry(&e, in);
	inode_unlock();
	fi->fh = (uintptr_t)fh;
	fi->keep_cache = 0;
	fuse_reply_create(req, &e, fi);
	return;
err:
	if (up)
		upload_free(up);
	fh_free(fh);
	fuse_reply_err(req, -ret);
}

/* Open the existing file `in` (the caller holds a reference, which fh keeps
 * on success) with open(2) flags into fh. 0 or -errno. */
static int open_inode(struct inode *in, int flags, struct fh *fh)
{
	int writer = (flags & O_ACCMODE) != O_RDONLY;
	struct upload *up = NULL, *nu = NULL;
	char id[BOX_ID_MAX];
	uint64_t size;
	int ret = 0;

	fh->in = in;
	fh->writer = writer;
	if (in->type == BOX_FOLDER)
		return -EISDIR;
	if (writer) {
		inode_lock();
		snprintf(id, sizeof(id), "%s", in->id);
		size = in->size;
		inode_unlock();
		/* an existing file: its content is fetched only if a write
		 * needs it; a new version keeps the Box id */
		nu = upload_new(id[0] ? id : NULL, size);
		inode_lock();
		if (!in->up && nu) {
			in->up = nu;
			nu = NULL;
		}
		up = up_hold(in);
		if (up) {
			in->nwriters++;
			in->nopen++;
		}
		inode_unlock();
		if (nu)
			upload_free(nu);
		if (!up)
			return -ENOMEM;
		if (flags & O_TRUNC) {
			ret = upload_truncate(up, 0);
			if (!ret) {
				inode_lock();
				in->size = 0;
				in->mtime = time(NULL);
				inode_unlock();
			}
		}
		up_unhold(in, up);
		if (ret) {
			inode_lock();
			in->nwriters--;
			in->nopen--;
			inode_unlock();
			return ret;
		}
	} else {
		fh->rd = reader_new();
		if (!fh->rd)
			return -ENOMEM;
		inode_lock();
		in->nopen++;
		inode_unlock();
	}
	return 0;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct inode *in;
	struct fh *fh;
	int ret;

	fh = fh_new();
	if (!fh) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	in = inode_get(ino);
	if (!in) {
		fh_free(fh);
		fuse_reply_err(req, ENOENT);
		return;
	}
	ret = open_inode(in, fi->flags, fh);
	if (ret) {
		fh_free(fh);
		inode_put(in);
		fuse_reply_err(req, -ret);
		return;
	}
	fi->fh = (uintptr_t)fh;
	fi->keep_cache = 0;
	fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fh *fh = fh_of(fi);
	struct inode *in = fh->in;
	char id[BOX_ID_MAX], sha1[41];
	struct upload *up;
	uint64_t fsize;
	ssize_t n;
	char *buf;

	(void)ino;
	inode_lock();
	up = up_hold(in);
	snprintf(id, sizeof(id), "%s", in->id);
	snprintf(sha1, sizeof(sha1), "%s", in->sha1);
	fsize = in->size;
	inode_unlock();
	if (up) {
		/* a file with a write state: the spool holds its content */
		buf = malloc(size ? size : 1);
		n = buf ? upload_read(up, buf, size, off) : -ENOMEM;
		up_unhold(in, up);
		if (n < 0)
			fuse_reply_err(req, (int)-n);
		else
			fuse_reply_buf(req, buf, n);
		free(buf);
		return;
	}
	if (!id[0]) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (!fh->rd) {
		fh->rd = reader_new();
		if (!fh->rd) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	reader_read(fh->rd, req, id, sha1, fsize, size, off);
}

static int declare(struct inode *in, uint64_t size, int copy);

/* cp, cat, dd, pv: stream as if the size of the file they copy from had
 * been declared; a wrong guess is withdrawn (sent from the spool). */
static void predict_hook(fuse_req_t req, struct fh *fh, struct upload *up,
			 off_t off, size_t size)
{
	uint64_t n = 0;

	switch (predict_write(&fh->pr, fuse_req_ctx(req)->pid, off, size,
			      upload_size(up), upload_declared(up), &n)) {
	case PREDICT_DECLARE:
		declare(fh->in, n, 1);  /* a plain copy: no hold-back */
		break;
	case PREDICT_DROP:
		stats_resend();
		declare(fh->in, 0, 0);
		break;
	case PREDICT_NONE:
		break;
	}
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fh *fh = fh_of(fi);
	struct inode *in = fh->in;
	struct upload *up;
	uint64_t sz;
	ssize_t n;

	(void)ino;
	if (!fh->writer) {
		fuse_reply_err(req, EBADF);
		return;
	}
	inode_lock();
	up = up_hold(in);
	inode_unlock();
	if (!up) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (boxfs_opts.predict)
		predict_hook(req, fh, up, off, size);
	n = upload_write(up, buf, size, off);
	sz = upload_size(up);
	if (n >= 0) {
		uint64_t end = (uint64_t)off + (uint64_t)n;

		inode_lock();
		if (end > sz)
			sz = end;
		if (sz > in->size)
			in->size = sz;
		in->mtime = time(NULL);
		in->set_mtime = 0;
		inode_unlock();
	}
	up_unhold(in, up);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, n);
}

/* close() and fsync() return what the commit returned; in write-back
 * mode close() returns once the data is durable locally. */
static int commit_if_dirty(struct inode *in)
{
	return if_dirty(in, commit);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fh *fh = fh_of(fi);
	int ret = 0;

	(void)ino;
	if (fh->writer)
		ret = if_dirty(fh->in, wback_on() ? persist : commit);
	fuse_reply_err(req, -ret);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	fuse_reply_err(req, -commit_if_dirty(fh_of(fi)->in));
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fh *fh = fh_of(fi);
	struct inode *in = fh->in;
	struct upload *up;
	int last = 0, ret;

	(void)ino;
	inode_lock();
	if (fh->writer)
		last = --in->nwriters == 0;
	in->nopen--;
	up = up_hold(in);
	inode_unlock();
	/* the kernel ignores release's answer: a failure here can only be
	 * logged. After a failed flush nothing is retried here: close()
	 * already returned the error, and a file must not appear in Box
	 * after its program was told the upload failed. */
	if (wback_on()) {
		/* flush persisted it already unless written since */
		if (last && up && upload_dirty(up) && !upload_journaled(up) &&
		    (ret = persist(in, up)))
			log_err("inode %" PRIu64 ": data not made durable: %s",
				in->ino, strerror(-ret));
	} else if (last && up && upload_dirty(up) && !upload_failed(up)) {
		ret = commit(in, up);
		if (ret)
			log_err("inode %" PRIu64 ": data not uploaded, kept in "
				"the spool: %s", in->ino, strerror(-ret));
	}
	up_unhold(in, up);
	fh_free(fh);
	inode_put(in);
	fuse_reply_err(req, 0);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fh *fh = fh_new();
	int ret;

	if (!fh) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ret = dir_refresh(ino, 0);
	if (ret && ret != -ENOENT && ret != -ENOTDIR) {
		/* server unreachable: list from the cache if there is one */
		inode_lock();
		if (inode_find(ino) && inode_find(ino)->listed_at)
			ret = 0;
		inode_unlock();
	}
	if (!ret)
		ret = dir_snap_new(ino, &fh->snap);
	if (ret) {
		fh_free(fh);
		fuse_reply_err(req, -ret);
		return;
	}
	fi->fh = (uintptr_t)fh;
	fuse_reply_open(req, fi);
}

/* Entries: 0 ".", 1 "..", 2+i the snapshot's i-th child. */
static void do_readdir(fuse_req_t req, size_t size, off_t off,
		       struct fuse_file_info *fi, int plus)
{
	struct dir_snap *s = fh_of(fi)->snap;
	char *buf = malloc(size ? size : 1);
	size_t pos = 0;
	off_t i;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (i = off < 0 ? 0 : off; (size_t)i < s->n + 2; i++) {
		struct fuse_entry_param e;
		const char *name;
		struct inode *in = NULL;
		size_t need;

		memset(&e, 0, sizeof(e));
		if (i < 2) {
			name = i == 0 ? "." : "..";
			e.attr.st_ino = i == 0 ? s->ino : s->parent;
			e.attr.st_mode = S_IFDIR | 0755;
		} else {
			name = s->ents[i - 2].name;
			inode_lock();
			in = inode_find(s->ents[i - 2].ino);
			if (!in || !in->parent) {
				/* deleted since the snapshot */
				inode_unlock();
				continue;
			}
			fill_entry(&e, in);
			inode_unlock();
		}
		if (plus) {
			need = fuse_add_direntry_plus(req, buf + pos,
						      size - pos, name, &e,
						      i + 1);
		} else {
			need = fuse_add_direntry(req, buf + pos, size - pos,
						 name, &e.attr, i + 1);
		}
		if (need > size - pos)
			break;
		pos += need;
		if (plus && in) {
			/* the kernel now holds a lookup on it */
			inode_lock();
			in->nlookup++;
			inode_unlock();
		}
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
		       off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	do_readdir(req, size, off, fi, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	do_readdir(req, size, off, fi, 1);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct fh *fh = fh_of(fi);

	(void)ino;
	fh_free(fh);
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st;
	int ret = dir_statfs(&st);

	(void)ino;
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_statfs(req, &st);
}

/* Announce the final size of a file being written: the upload can start
 * streaming parts at once. */
static int declare(struct inode *in, uint64_t size, int copy)
{
	char pid[BOX_ID_MAX] = "", *name;
	struct upload *up;
	int ret;

	inode_lock();
	up = up_hold(in);
	if (in->parent)
		folder_id(in->parent, pid);
	name = strdup(in->name);
	inode_unlock();
	if (!up || !name) {
		up_unhold(in, up);
		free(name);
		return up ? -ENOMEM : -EBADF;
	}
	ret = upload_declare_size(up, size, pid, name, copy);
	free(name);
	up_unhold(in, up);
	return ret;
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode,
			 off_t offset, off_t length, struct fuse_file_info *fi)
{
	struct fh *fh = fh_of(fi);
	struct inode *in = fh->in;
	struct upload *up;
	uint64_t end = (uint64_t)offset + length, cur;
	int ret;

	(void)ino;
	if (mode) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (!fh->writer || offset < 0 || length <= 0) {
		fuse_reply_err(req, fh->writer ? EINVAL : EBADF);
		return;
	}
	inode_lock();
	up = up_hold(in);
	inode_unlock();
	if (!up) {
		fuse_reply_err(req, EBADF);
		return;
	}
	cur = upload_size(up);
	ret = end > cur ? upload_truncate(up, end) : 0;
	if (!ret && cur == 0)
		ret = declare(in, end, 0);
	up_unhold(in, up);
	if (!ret) {
		inode_lock();
		if (end > in->size)
			in->size = end;
		inode_unlock();
	}
	fuse_reply_err(req, -ret);
}

static int parse_u64(const char *value, size_t size, uint64_t *out)
{
	char buf[32], *end;
	unsigned long long v;

	if (!size || size >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, value, size);
	buf[size] = '\0';
	if (buf[size - 1] == '\n')
		buf[size - 1] = '\0';
	if (buf[0] < '0' || buf[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	struct inode *in;
	uint64_t n;
	int ret;

	(void)flags;
	if (strcmp(name, XATTR_SIZE)) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	ret = parse_u64(value, size, &n);
	in = inode_get(ino);
	if (!in)
		ret = -ENOENT;
	else if (!ret && in->type == BOX_FOLDER)
		ret = -EISDIR;
	if (!ret)
		ret = declare(in, n, 0);
	inode_put(in);
	fuse_reply_err(req, -ret);
}

static void reply_xattr(fuse_req_t req, const char *val, size_t len,
			size_t size)
{
	if (!size)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, len);
}

/* The status JSON of the whole mount (stats.c); xattr values stop at 64 KiB,
 * a longer one (hundreds of uploads) is refused with E2BIG. */
static void getxattr_status(fuse_req_t req, size_t size)
{
	struct http_counters hc;
	char auth[256];
	size_t len;
	char *js;

	if (auth_state(auth, sizeof(auth)) <= 0)
		auth[0] = '\0';
	http_get_counters(&hc);
	js = stats_json(auth, &hc);
	if (!js) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	len = strlen(js);
	if (len > 65536)
		fuse_reply_err(req, E2BIG);
	else
		reply_xattr(req, js, len, size);
	free(js);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	struct upload *up = NULL;
	struct inode *in;
	char val[512];
	int len;

	if (ino == FUSE_ROOT_ID && !strcmp(name, XATTR_STATUS)) {
		getxattr_status(req, size);
		return;
	}
	in = inode_get(ino);
	if (!in) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (!strcmp(name, XATTR_STATE) && in->type == BOX_FILE) {
		inode_lock();
		up = up_hold(in);
		len = snprintf(val, sizeof(val), "%s",
			       in->id[0] ? "committed" : "new");
		inode_unlock();
		if (up)
			len = upload_state(up, val, sizeof(val));
		up_unhold(in, up);
		if (up && len > 0) {
			char pend[sizeof(val)], why[160];
			int n = wback_state(in, val, pend, sizeof(pend));

			if (n <= 0 && !strncmp(val, "failed", 6) &&
			    auth_waiting(why, sizeof(why)))
				n = snprintf(pend, sizeof(pend), "waiting for "
					     "authentication: %s", why);
			if (n > 0) {
				memcpy(val, pend, (size_t)n + 1);
				len = n;
			}
		}
		if (len < 0)
			len = 0;
		if ((size_t)len >= sizeof(val))
			len = sizeof(val) - 1;
		reply_xattr(req, val, len, size);
	} else if (!strcmp(name, XATTR_SIZE) && in->type == BOX_FILE) {
		inode_lock();
		len = snprintf(val, sizeof(val), "%" PRIu64, in->size);
		inode_unlock();
		reply_xattr(req, val, len, size);
	} else {
		fuse_reply_err(req, ENODATA);
	}
	inode_put(in);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	static const char names[] = XATTR_STATE;
	struct inode *in = inode_get(ino);

	if (!in) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (in->type == BOX_FILE)
		reply_xattr(req, names, sizeof(names), size);
	else
		reply_xattr(req, "", 0, size);
	inode_put(in);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino;
	(void)name;
	fuse_reply_err(req, ENOTSUP);
}

/* Box has no symlinks, hard links or special files. */
static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	(void)link;
	(void)parent;
	(void)name;
	fuse_reply_err(req, EPERM);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	(void)ino;
	(void)newparent;
	(void)newname;
	fuse_reply_err(req, EPERM);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)rdev;
	fuse_reply_err(req, EPERM);
}

int fsops_start(const char *mountpoint)
{
	return wback_start(mountpoint, commit_if_dirty);
}

void fsops_unmount(void)
{
	wback_unmount();
}

void fsops_shutdown(void)
{
	/* releases the kernel dropped at unmount; the inodes and their write
	 * states go later with inode_cleanup */
	while (fh_list)
		fh_free(fh_list);
}

const struct fuse_lowlevel_ops fsops_ops = {
	.init = op_init,
	.destroy = op_destroy,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.create = op_create,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.fsync = op_fsync,
	.release = op_release,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.fallocate = op_fallocate,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.symlink = op_symlink,
	.link = op_link,
	.mknod = op_mknod,
};
