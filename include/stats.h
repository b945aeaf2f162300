/* stats.h - upload counters and the registry of uploads in flight, for
 * `boxfs status` (served as JSON in the xattr user.boxfs.status of the
 * mount root).
 *
 * upload.c reports what happens; every function is thread-safe (one leaf
 * lock: callers may hold their own locks) and never fails: when memory runs
 * out an upload is simply not listed.
 *
 * Owner: stats.c. */
#ifndef BOXFS_STATS_H
#define BOXFS_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"

/* An upload (key: its struct upload pointer) starts: `name` (may be NULL)
 * of `total` bytes, sent in `parts` parts (0: a single request). Listed as
 * "queued" until bytes go out. Calling it again updates name/total/parts. */
void stats_upload_begin(const void *key, const char *name, uint64_t total,
			uint32_t parts);
/* A part of `bytes` was accepted; `done` of the upload's `parts` are up. */
void stats_upload_part(const void *key, uint64_t bytes, uint32_t done,
		       uint32_t parts);
/* The commit request is out. */
void stats_upload_committing(const void *key);
/* The upload ended: rc 0 = committed (counted, unlisted), otherwise it is
 * listed as failed with `reason` (the last few failures are kept). */
void stats_upload_end(const void *key, int rc, const char *reason);
/* The write state is gone: drop it from the in-flight list. */
void stats_upload_forget(const void *key);
/* A session could not carry the file and it is sent again. */
void stats_resend(void);
/* A part's SHA-1 was taken while it was written (in the same pass as the
 * whole file's), so its PUT did not re-read it from the spool. */
void stats_part_hashed_on_write(void);
/* Bytes of a single-request upload that succeeded. */
void stats_bytes(uint64_t bytes);

/* The whole status as a JSON object (malloc'd, NUL-terminated; caller
 * frees), or NULL when out of memory: `auth` (auth_state()) and the http
 * counters are passed in so this module links without the network layer
 * (unit tests of upload.c). Never holds a secret. */
char *stats_json(const char *auth, const struct http_counters *hc);

#endif
