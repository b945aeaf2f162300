/* dir.h - folder listings, Box name rules, statfs.
 *
 * A folder's children live in the inode table (inode.h); this module fills
 * it from box_list_folder when the folder's listing is older than
 * boxfs_opts.dir_ttl, and snapshots it for readdir. Our own changes
 * (create, mkdir, unlink, rmdir, rename, commit) update the table at once
 * and bump the folder's `gen`, so a listing fetched before such a change is
 * never applied over it.
 *
 * Names: Box compares names case-insensitively within a folder, so creating
 * `A` when `a` exists fails with EEXIST (see docs/SEMANTICS.md). Names Box
 * refuses are refused before asking: longer than 255 characters ->
 * ENAMETOOLONG; `/`, `\`, a trailing space, non-printable ASCII, invalid
 * UTF-8, `.` and `..` -> EINVAL. Names from the server that cannot exist
 * locally (`/`, `.`, `..`, empty) are never exposed.
 *
 * Owner: dir.c. */
#ifndef BOXFS_DIR_H
#define BOXFS_DIR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

/* 0, -ENAMETOOLONG or -EINVAL. */
int dir_check_name(const char *name);
/* 1 when a name that came from the server can be shown locally. */
int dir_name_safe(const char *name);

/* Fetch the folder's listing if it is older than dir_ttl (force: always).
 * Blocks on the network; takes no lock across it. 0 or -errno. */
int dir_refresh(uint64_t ino, int force);

/* A readdir snapshot: the entries of a folder when it was opened. */
struct dir_ent {
	uint64_t ino;
	char *name;
	mode_t type;        /* S_IFDIR or S_IFREG */
};

struct dir_snap {
	uint64_t ino, parent;
	size_t n;
	struct dir_ent *ents;
};

/* Refresh the folder and take a snapshot of its children. Each entry holds
 * an inode reference until dir_snap_free. 0 or -errno. */
int dir_snap_new(uint64_t ino, struct dir_snap **out);
void dir_snap_free(struct dir_snap *s);

/* statvfs from box_space (blocks of 4 KiB). 0 or -errno. */
int dir_statfs(struct statvfs *st);

#endif
