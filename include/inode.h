/* inode.h - the table of inodes the kernel knows, and the folder tree cache.
 *
 * One `struct inode` per Box item (and per new file not yet committed).
 * Kernel inode numbers are ours (1 = root, then a counter); a second map
 * Box id -> inode keeps one inode per item, so ids survive renames.
 * The table doubles as the folder listing cache (see dir.h): every inode is
 * linked into its parent's child list and into a name hash keyed by
 * (parent, case-folded name), so lookups and Box's case-insensitive
 * clashes are O(1).
 *
 * Locking: one mutex (inode_lock/inode_unlock) protects the table and every
 * field below. Functions marked "locked" must be called with it held. It is
 * never held across a network call.
 *
 * Lifetime: an inode stays while the kernel holds a lookup count on it,
 * while any fd is open on it, while it holds a write state, while an
 * operation holds a reference (inode_get/inode_put), or while it is attached
 * to a folder (it is then a listing cache entry). Once detached (deleted,
 * or gone from the server) it is freed as soon as nothing uses it.
 *
 * Owner: inode.c. */
#ifndef BOXFS_INODE_H
#define BOXFS_INODE_H

#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "box.h"

struct upload;

struct inode {
	uint64_t ino;
	uint64_t parent;        /* parent's ino, 0 when detached */
	char *name;             /* UTF-8 name in the parent */
	char *fold;             /* case-folded name (hash key) */
	char id[BOX_ID_MAX];    /* Box id, "" for a new file not yet committed */
	enum box_type type;
	uint64_t size;
	time_t mtime;           /* content_modified_at, 1 s precision */
	time_t ctime;           /* modified_at */
	char sha1[41];
	char etag[BOX_ID_MAX];

	uint64_t nlookup;       /* kernel lookup count */
	unsigned refs;          /* operations in progress */
	int nopen;              /* open fds (files and folders) */
	int nwriters;           /* fds open for writing */
	struct upload *up;      /* write state while open for writing / dirty */
	int upusers;            /* operations using `up` outside the lock */
	time_t set_mtime;       /* files: utimens while dirty, sent at commit;
				 * folders: utimens kept locally; 0 none */

	/* folders: the listing cache */
	double listed_at;       /* monotonic seconds of the last listing, 0 never */
	uint64_t gen;           /* bumped by every local change of the children */
	struct inode *child;    /* first child */
	int seen;               /* scratch flag for dir refresh */

	/* table links */
	struct inode *sib_next, *sib_prev;
	struct inode *ino_next, *id_next, *name_next;
};

int inode_init(const char *root_id);
/* Free every inode and write state; may be called more than once. */
void inode_cleanup(void);

void inode_lock(void);
void inode_unlock(void);

/* Monotonic clock in seconds. */
double inode_now(void);

/* locked: the inode with kernel number ino, or NULL. */
struct inode *inode_find(uint64_t ino);
/* locked: the inode of a Box id, or NULL. */
struct inode *inode_by_id(const char *id);
/* locked: the child of parent named exactly `name`, or NULL. */
struct inode *inode_child(uint64_t parent, const char *name);
/* locked: a child of parent whose name equals `name` ignoring case (Box's
 * rule), other than `except` (may be NULL); NULL when none. */
struct inode *inode_clash(uint64_t parent, const char *name,
			  const struct inode *except);

/* Take / drop an operation reference (takes the lock itself). inode_get
 * returns NULL for an unknown ino. */
struct inode *inode_get(uint64_t ino);
void inode_put(struct inode *in);

/* locked: make the table agree with a Box item seen in folder `parent`:
 * find it by id (moving/renaming it if needed) or create it. Content fields
 * are left alone while the inode has a write state (local data is newer).
 * Returns the inode or NULL (ENOMEM). */
struct inode *inode_from_item(uint64_t parent, const struct box_item *it);
/* locked: a new local file (no Box id yet) in parent. NULL on ENOMEM. */
struct inode *inode_new_local(uint64_t parent, const char *name);
/* locked: update content fields (size, times, sha1, etag, id) after a
 * commit or an update call. */
void inode_set_item(struct inode *in, const struct box_item *it);
/* locked: move/rename in the tree. -ENOMEM or 0. */
int inode_move(struct inode *in, uint64_t parent, const char *name);
/* locked: take out of its folder (deleted or gone); freed when unused. */
void inode_detach(struct inode *in);
/* locked: free it now if nothing uses it any more. Returns 1 if freed. */
int inode_maybe_free(struct inode *in);

/* Kernel forget: drop n lookups (takes the lock). */
void inode_forget(uint64_t ino, uint64_t n);

/* locked: fill st for the kernel. */
void inode_stat(const struct inode *in, struct stat *st);

/* Case-fold a UTF-8 name (simple lower-case mapping; invalid bytes are
 * kept). Returns a malloc'ed string or NULL. */
char *inode_fold(const char *name);

#endif
