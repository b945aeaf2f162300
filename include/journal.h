/* journal.h - the write-back journal: one small JSON file per pending upload.
 *
 * The journal lives in cache_dir/journal (0700), next to the spool files.
 * Each entry, `<spool file name>.json` (0600), says where a spooled file
 * goes (folder id and name, or the Box id it is a new version of), its
 * size, mtime and SHA-1 when known, and the upload session it was being
 * sent with (id, part size and the parts the server acknowledged). An entry
 * is written tmp + fsync + rename + fsync(dir), so a crash at any instant
 * leaves either the old or the new entry, never a torn one. At start,
 * upload_init reads the entries and resumes their uploads; a spool file
 * with an entry is never removed, even when the entry cannot be read.
 *
 * Thread-safe: no shared state besides the directory name set once by
 * journal_init. Owner: journal.c (used by upload.c). */
#ifndef BOXFS_JOURNAL_H
#define BOXFS_JOURNAL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "box.h"

#define JOURNAL_SPOOL_MAX 128

struct journal_entry {
	char spool[JOURNAL_SPOOL_MAX];   /* spool file name in cache_dir */
	char parent_id[BOX_ID_MAX];      /* target folder */
	char *name;                      /* target name (malloc'ed) */
	char file_id[BOX_ID_MAX];        /* "" new file, else a new version */
	uint64_t size;
	time_t mtime;                    /* 0: none */
	char sha1[41];                   /* "" unknown */
	struct box_session sess;         /* sess.id "" when none */
	struct box_part *parts;          /* acknowledged parts (malloc'ed) */
	size_t nparts;
};

/* Create cache_dir/journal (0700). 0 or -errno. */
int journal_init(const char *cache_dir);
/* The journal directory (NULL before journal_init). */
const char *journal_dir(void);

/* Durably replace the entry named after e->spool. 0 or -errno. */
int journal_write(const struct journal_entry *e);
/* Remove the entry of spool file `spool` (missing is fine). */
void journal_remove(const char *spool);
/* 1 when an entry (readable or not) exists for spool file `spool`. */
int journal_has(const char *spool);

/* Read one entry file. 0, -EINVAL when it is corrupt or truncated (msg
 * says why), or -errno. *e must be freed with journal_entry_free. */
int journal_read(const char *path, struct journal_entry *e, char *msg,
		 size_t msglen);
/* The JSON text of an entry (malloc'ed) / parse it back; for the tests. */
char *journal_encode(const struct journal_entry *e);
int journal_decode(const char *text, size_t len, struct journal_entry *e,
		   char *msg, size_t msglen);
void journal_entry_free(struct journal_entry *e);

#endif
