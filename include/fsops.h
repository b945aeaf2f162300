/* fsops.h - the fuse_lowlevel_ops table of boxfs.
 *
 * Thin adapters between the kernel's requests and the modules: inode/dir for
 * the tree, reader for reads of committed files, upload for everything
 * written. Semantics (errno of each case, rename, case-insensitive names,
 * close() returning the upload's result) are described in
 * docs/SEMANTICS.md.
 *
 * Owner: fsops.c. */
#ifndef BOXFS_FSOPS_H
#define BOXFS_FSOPS_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>

extern const struct fuse_lowlevel_ops fsops_ops;

/* Start the write-back thread (after the workers; it also resumes the
 * journal's uploads in any mode). 0 or -errno. */
int fsops_start(const char *mountpoint);
/* After the session loop, before the workers stop: commit everything
 * write-back still holds (progress on stderr). */
void fsops_unmount(void);

/* 1 once the kernel's INIT request reached op_init (the kernel applies our
 * answer right after it; settings it would overwrite, such as the bdi
 * read-ahead, go after this). */
int fsops_initialized(void);

/* Free the file handles the kernel never released (unmount with files
 * still open). Call after the session loop and worker_shutdown(), before
 * inode_cleanup(). */
void fsops_shutdown(void);

#endif
