/* wback.h - the write-back scheduler (-o writeback=SECONDS).
 *
 * In write-back mode close() only makes the data durable (upload_persist)
 * and hands the inode to this module; one background thread commits each
 * file once it has had no change for `writeback` seconds, retries failures
 * with backoff (2 s doubling up to 5 min) and, in any mode, resumes the
 * uploads an earlier run left in the journal (upload_resume_next).
 * With -o unmount=refuse the thread holds an O_RDONLY fd on the mount root
 * while anything is pending, so umount fails with EBUSY.
 *
 * Locking: one mutex; order wback -> inode table -> upload. It is never
 * held across a commit or an open(2) of the mount. Owner: wback.c. */
#ifndef BOXFS_WBACK_H
#define BOXFS_WBACK_H

#include <stddef.h>

struct inode;

/* Commit the inode's write state now (fsops): 0 or -errno. */
typedef int (*wback_commit_fn)(struct inode *in);

/* 1 when -o writeback is on. */
int wback_on(void);
/* Start the thread (after the workers). mountpoint: for unmount=refuse.
 * 0 or -errno. */
int wback_start(const char *mountpoint, wback_commit_fn commit);
/* (Re)schedule an inode whose data was just persisted; takes a reference
 * on it (inode_get semantics) while it is pending. Call without locks. */
void wback_add(struct inode *in);
/* The state line of a pending inode into buf, built from the upload's own
 * line `upstate` ("pending (commit in 3s)", "failed, retry in 8s: server
 * error"); returns 0 (buf untouched) when the inode is not pending or is
 * being committed right now. */
int wback_state(struct inode *in, const char *upstate, char *buf, size_t len);
/* Files waiting for their commit (inodes and resumed ones). */
size_t wback_pending(void);
/* Before the workers stop at unmount: stop the thread and commit all that
 * is pending now, with progress on stderr; what fails stays in the
 * journal for the next start (said on stderr). */
void wback_unmount(void);

#endif
