/* upload.h - the per-inode write state: spool, part hashing, upload sessions.
 *
 * One `struct upload` per inode open for writing, shared by all its fds (the
 * caller, inode/fsops, keeps the pointer and serialises nothing: every
 * function here is thread-safe on its own lock).
 *
 * Every byte written lands in a spool file under boxfs_opts.cache_dir (0600 in
 * a 0700 directory) until the file is committed, so any fallback can re-send
 * from it and reads of a file being written see its data. Part-sized blocks
 * are SHA-1 hashed as they complete.
 *   - size known early (upload_declare_size): the session is created at once
 *     and every completed part but the first is PUT from the worker pool
 *     while the program keeps writing (the first goes at commit, so a header
 *     rewrite costs nothing); parts are read from the spool as curl sends
 *     them, so memory does not grow with the part size; the bytes of parts
 *     queued or in flight are bounded by boxfs_opts.mem_budget (writers
 *     block when it is full).
 *   - size unknown: at commit the session is created and the parts go up in
 *     parallel from the spool.
 *   - final size < boxfs_opts.chunked_min: one single-request upload.
 *   - anything the session cannot take (rewrite of a sent part, a final size
 *     different from the declared one): the session is aborted and the file
 *     is re-sent from the spool. Never corrupt, never lose.
 *
 * Owner: upload.c. */
#ifndef BOXFS_UPLOAD_H
#define BOXFS_UPLOAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "box.h"

struct upload;

/* Create the spool directory, remove or report spool files of an earlier
 * run. 0 or -errno. */
int upload_init(void);
void upload_shutdown(void);

/* Write state for a file. file_id NULL: a new file that Box does not have yet
 * (it is dirty: the first commit creates it, even empty). Otherwise an
 * existing file of `size` bytes; its content is fetched into the spool only
 * when a write needs it (a partial overwrite or an append). */
struct upload *upload_new(const char *file_id, uint64_t size);
/* Drop the state, the spool file and any unfinished session. */
void upload_free(struct upload *u);

/* pwrite into the file. May block for backpressure. Returns bytes written or
 * -errno (ENOSPC when the spool limit is reached and nothing can drain). */
ssize_t upload_write(struct upload *u, const void *buf, size_t len, off_t off);
/* pread from the written file. Returns bytes read (0 at EOF) or -errno. */
ssize_t upload_read(struct upload *u, void *buf, size_t len, off_t off);
/* Set the file size (shrink or grow with zeros). 0 or -errno. */
int upload_truncate(struct upload *u, uint64_t size);
/* The program announced the final size (fallocate, ftruncate of an empty
 * file, xattr user.boxfs.size) or predict.h guessed it from the file a copy
 * reads: start a session now and stream parts. Size 0 withdraws an earlier
 * declaration (the session is aborted; the file is sent at commit).
 * parent_id/name say where a new file goes. copy: the writer is a plain
 * sequential copy (predict.h), which rewrites nothing: its first part goes
 * as soon as it is written. Otherwise the first part is held back until the
 * commit, so that a header rewritten after the body (WAV, MP4, zip writers)
 * costs no re-send. 0 or -errno (a failure to start the session is not an
 * error: the data is spooled and sent at commit). */
int upload_declare_size(struct upload *u, uint64_t size,
			const char *parent_id, const char *name, int copy);

uint64_t upload_size(struct upload *u);
/* The size announced by upload_declare_size, 0 if none (or withdrawn by
 * declaring 0: the session is dropped, the file is sent at close). */
uint64_t upload_declared(struct upload *u);
/* 1 when there is data Box does not have yet. */
int upload_dirty(struct upload *u);
/* 1 when the last commit failed and nothing was written since (release
 * does not retry it: close() already reported the failure). */
int upload_failed(struct upload *u);

/* Make Box hold exactly what was written: finish the parts, commit (or the
 * single-request upload) as `name` in `parent_id` with content_modified_at
 * `mtime` (0: now). Blocks until Box answered. On success fills *out (id,
 * size, sha1, times of the committed file) and the state becomes clean (later
 * writes start a new version of the same Box id). On failure the session is
 * aborted, nothing new is visible in Box, the data stays in the spool and
 * the error is returned: -EIO, -ENOSPC (quota), -EACCES (auth), ... */
int upload_commit(struct upload *u, const char *parent_id, const char *name,
		  time_t mtime, struct box_item *out);

/* ---- write-back (see journal.h) ---- */

/* close() in write-back mode: fsync the spool and write the journal entry
 * saying the data goes to `name` in `parent_id` with content_modified_at
 * `mtime`. Returns once the data survives a crash of the daemon: 0, or the
 * errno close() should see (EIO). A clean state is left alone. The entry
 * follows the upload from then on (session, parts) and is removed by the
 * successful commit; upload_free keeps a journaled dirty state's spool
 * file, entry and session for the next start. */
int upload_persist(struct upload *u, const char *parent_id, const char *name,
		   time_t mtime);
/* The file was unlinked: forget its journal entry (upload_free then removes
 * the spool and aborts the session). */
void upload_discard(struct upload *u);
/* A new file (no Box id yet) becomes the next version of Box file
 * `file_id` at its commit (write-back rename onto an existing file).
 * 0, or -EINVAL when u already belongs to a Box file. */
int upload_adopt(struct upload *u, const char *file_id);
/* 1 when u has a journal entry. */
int upload_journaled(struct upload *u);
/* Monotonic time (seconds) of the last write or truncate. */
double upload_changed_at(struct upload *u);
/* Pending uploads of an earlier run that upload_init found in the journal,
 * one per call: a dirty write state over its spool file and its target
 * (folder, *name malloc'ed, mtime); NULL when none is left. Commit it with
 * upload_commit after upload_resume_sync. Not thread-safe: one caller. */
struct upload *upload_resume_next(char parent_id[BOX_ID_MAX], char **name,
				  time_t *mtime);
/* Network: list the resumed session's parts on the server and keep those
 * whose SHA-1 matches the spool, so only the missing ones are sent. An
 * expired session is dropped (the commit creates a new one). 0 or -errno. */
int upload_resume_sync(struct upload *u);

/* One line for the xattr user.boxfs.state, e.g. "uploading 3/12 parts" or
 * "failed: quota exceeded". Returns its length. */
int upload_state(struct upload *u, char *buf, size_t len);

#endif
