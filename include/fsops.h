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

/* Free the file handles the kernel never released (unmount with files
 * still open). Call after the session loop and worker_shutdown(), before
 * inode_cleanup(). */
void fsops_shutdown(void);

#endif
