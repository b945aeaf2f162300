/* reader.h - reads of committed files: ranged GETs with sequential read-ahead.
 *
 * One reader per open fd. It keeps a window of the file (128 KiB, doubling
 * up to 8 MiB while reads are sequential) and, once a sequential pattern is
 * seen, fetches the next window on a worker thread while the program
 * consumes the current one. Memory per reader is at most two windows; the
 * file is never buffered whole. Reads at or past the end return 0 bytes.
 *
 * Owner: reader.c. */
#ifndef BOXFS_READER_H
#define BOXFS_READER_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <stdint.h>

struct reader;

struct reader *reader_new(void);
/* Waits for a prefetch in flight, then frees. */
void reader_free(struct reader *r);

/* Answer the kernel's read of `size` bytes at `off` of Box file `id`, whose
 * content is `fsize` bytes with SHA-1 `sha1` (a change of id or sha1 drops
 * the cached windows). Replies to req itself (fuse_reply_buf or
 * fuse_reply_err). */
void reader_read(struct reader *r, fuse_req_t req, const char *id,
		 const char *sha1, uint64_t fsize, size_t size, uint64_t off);

#endif
