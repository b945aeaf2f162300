/* box.h - typed calls of the Box content API.
 *
 * Every function is blocking, thread-safe (one reused libcurl handle per
 * thread, see http.h) and returns 0 or a negative errno:
 *   -ENOENT  404 (item or parent missing)      -EEXIST   409 item_name_in_use
 *   -ENOTEMPTY 400 folder_not_empty            -EACCES   401 after refresh / 403
 *   -ENOSPC  storage_limit_exceeded, quota     -ENAMETOOLONG item_name_too_long
 *   -EINVAL  item_name_invalid / bad request   -ETIMEDOUT no answer in time
 *   -EIO     anything else (a log line says what Box answered)
 * 429 and 5xx (and network errors on idempotent calls) are retried inside, with
 * backoff honouring Retry-After, `boxfs_opts.retries` times, before an error is
 * returned. Nothing here ever logs a token.
 *
 * Owner: box.c (JSON via cJSON), built on http.c and auth.c. */
#ifndef BOXFS_BOX_H
#define BOXFS_BOX_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define BOX_ID_MAX 64

enum box_type { BOX_FILE = 1, BOX_FOLDER = 2 };

struct box_item {
	enum box_type type;
	char id[BOX_ID_MAX];
	char parent_id[BOX_ID_MAX];   /* "" when Box did not say */
	char name[256 * 4 + 1];       /* UTF-8, at most 255 characters */
	uint64_t size;
	time_t mtime;                 /* content_modified_at (file content time) */
	time_t ctime;                 /* modified_at (any change on the server) */
	char sha1[41];                /* lower-case hex, "" for folders */
	char etag[BOX_ID_MAX];
};

struct box_session {
	char id[BOX_ID_MAX];
	uint64_t file_size;
	uint64_t part_size;
	uint32_t total_parts;
	time_t expires_at;
};

struct box_part {
	char part_id[BOX_ID_MAX];
	uint64_t offset;
	uint64_t size;
	char sha1[41];                /* lower-case hex as Box returns it */
};

/* Global setup from boxfs_opts (URLs, timeouts, CA file). 0 or -errno. */
int box_init(void);
void box_cleanup(void);

/* GET /users/me: checks the server and the token. On failure writes one
 * human line (no secrets) into msg. */
int box_check(char *msg, size_t msglen);
/* Quota from /users/me (space_amount, space_used). */
int box_space(uint64_t *total, uint64_t *used);

/* GET /files/{id} or /folders/{id}. */
int box_get_item(enum box_type type, const char *id, struct box_item *out);

/* All entries of a folder (marker paging, limit 1000, the fields boxfs needs).
 * cb is called for each active entry in order; a non-zero return from cb stops
 * the listing and is returned. */
typedef int (*box_list_cb)(const struct box_item *it, void *arg);
int box_list_folder(const char *folder_id, box_list_cb cb, void *arg);

/* POST /folders. On -EEXIST, conflict_id (if not NULL) gets the clashing id. */
int box_create_folder(const char *parent_id, const char *name,
		      struct box_item *out, char conflict_id[BOX_ID_MAX]);

/* PUT /files/{id} or /folders/{id}: rename (new_name != NULL), move
 * (new_parent != NULL), set content_modified_at (mtime != 0, files only). */
int box_update(enum box_type type, const char *id, const char *new_name,
	       const char *new_parent, time_t mtime, struct box_item *out);

/* DELETE /files/{id} or /folders/{id}[?recursive=true]. */
int box_delete(enum box_type type, const char *id, int recursive);

/* GET /files/{id}/content with Range: bytes=off-(off+len-1), following the
 * redirect. Writes up to len bytes into buf, *got = bytes written (short only
 * at end of file). */
int box_download(const char *file_id, uint64_t off, size_t len, void *buf,
		 size_t *got);

/* Single-request upload (multipart, attributes first, Content-MD5 = hex
 * SHA-1) of `size` bytes read from fd at offset 0.
 * file_id == NULL: new file `name` in parent_id (POST /files/content);
 * otherwise a new version of file_id (POST /files/{id}/content), same id.
 * mtime != 0 is sent as content_modified_at. On -EEXIST conflict_id gets the
 * clashing item's id when Box said it. */
int box_upload_simple(const char *parent_id, const char *file_id,
		      const char *name, int fd, uint64_t size,
		      const char sha1_hex[41], time_t mtime,
		      struct box_item *out, char conflict_id[BOX_ID_MAX]);

/* POST /files/upload_sessions (file_id == NULL: new file name in parent_id)
 * or POST /files/{file_id}/upload_sessions (new version). */
int box_session_create(const char *parent_id, const char *file_id,
		       const char *name, uint64_t file_size,
		       struct box_session *out, char conflict_id[BOX_ID_MAX]);

/* PUT one part: `len` bytes at `off` with Digest sha=base64(sha1). 429/5xx are
 * retried; an ambiguous failure (the connection dropped after the body went
 * out) is resolved by listing the session's parts, never by re-sending blindly:
 * if the server holds a part at `off` with the same SHA-1 it is returned as
 * success. -ESTALE when the session expired or is gone (404/410). */
int box_session_put_part(const struct box_session *s, uint64_t off,
			 const void *buf, size_t len,
			 const unsigned char sha1[20], struct box_part *out);
/* The same with the body streamed from `fd` (bytes [off, off+len), read
 * with pread, never held in memory whole; a file shorter than that fails
 * the call): memory use does not grow with the part size. */
int box_session_put_part_fd(const struct box_session *s, uint64_t off,
			    int fd, size_t len,
			    const unsigned char sha1[20], struct box_part *out);

/* GET .../parts, all pages. *parts is malloc'ed (free()), sorted by offset. */
int box_session_list_parts(const struct box_session *s,
			   struct box_part **parts, size_t *nparts);

/* POST .../commit with Digest sha=base64(file_sha1) and the parts (sorted by
 * offset by the caller). Waits out 202 + Retry-After and a transient
 * parts_mismatch. mtime != 0 is committed as content_modified_at. */
int box_session_commit(const struct box_session *s,
		       const struct box_part *parts, size_t nparts,
		       const unsigned char file_sha1[20], time_t mtime,
		       struct box_item *out);

/* DELETE the session (best effort; errors are logged, not returned). */
void box_session_abort(const struct box_session *s);

/* Helpers of box.c, exposed for the unit tests (tests/unit/fs). */
struct cJSON;
/* 1 when a server name can exist locally (not empty, no '/', not "." or
 * "..", fits struct box_item). */
int box_name_safe(const char *name);
/* A Box item object -> *it. 0, 1 when it is not shown (not a file/folder,
 * not active, unsafe name: logged), -EIO when malformed. */
int box_parse_item(const struct cJSON *j, struct box_item *it);
/* ClientError body -> code, message and context_info.conflicts id (object
 * or array). 0, or -1 when the body is not a JSON object. */
int box_parse_error(const char *body, size_t len, char *code, size_t codelen,
		    char *msg, size_t msglen, char conflict_id[BOX_ID_MAX]);
/* cJSON_ParseWithLength of an answer, after turning escaped NULs in
 * strings into '/' (so such names are refused, never truncated). body is
 * modified in place. NULL when it is not JSON. */
struct cJSON *box_parse_json(char *body, size_t len);
/* The answer parsers of the calls above, exposed for tests/fuzz (each
 * takes any cJSON tree, never crashes, returns 0 or -EIO with a log line
 * naming logpath where the caller would log one):
 * {"entries":[item,...]} of a simple upload or commit -> the first item
 * (box_parse_item's codes); */
int box_parse_files(const struct cJSON *j, struct box_item *it);
/* one listing page: cb for each usable entry (a cb error stops and is
 * returned), marker gets next_marker ("" at the end); */
int box_parse_page(const struct cJSON *j, const char *logpath, box_list_cb cb,
		   void *arg, char *marker, size_t mlen);
/* an upload session object (file_size is left 0: the caller knows it); */
int box_parse_session(const struct cJSON *j, struct box_session *s);
/* one part record {"part_id","offset","size","sha1"}; */
int box_parse_part(const struct cJSON *j, struct box_part *p);
/* one page of a parts list, appended to the malloc'ed *v (*n used of *cap;
 * -ENOMEM leaves *v valid for free()); *got = entries of this page, *limit
 * = the page size the server used (1000 when it did not say). */
int box_parse_parts_page(const struct cJSON *j, const char *logpath,
			 struct box_part **v, size_t *n, size_t *cap,
			 size_t *got, uint64_t *limit);
/* HTTP status + Box code -> -errno as listed at the top (session: 404/410
 * mean the upload session is gone, -ESTALE). */
int box_errno(long status, const char *code, int session);

#endif
