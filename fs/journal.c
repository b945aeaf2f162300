/* journal.c - the write-back journal (see journal.h).
 *
 * Entry format (version 1), one JSON object:
 *   {"v":1,"spool":"spool-123-4","parent_id":"0","name":"a.bin",
 *    "file_id":"","size":123,"mtime":1700000000,"sha1":"...",
 *    "session":{"id":"...","file_size":123,"part_size":8388608,
 *               "total_parts":1,"expires_at":0,
 *               "parts":[{"part_id":"..","offset":0,"size":..,"sha1":".."}]}}
 * Numbers stay below 2^53 (sizes and times), so doubles carry them exactly. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "journal.h"
#include "log.h"

#define J_MAX_BYTES (16u << 20)    /* an entry larger than this is corrupt */
#define J_MAX_NUM   9007199254740992.0

static char *j_dir;

int journal_init(const char *cache_dir)
{
	char *d;

	if (asprintf(&d, "%s/journal", cache_dir) < 0)
		return -ENOMEM;
	if (mkdir(d, 0700) && errno != EEXIST) {
		int e = errno;

		free(d);
		return -e;
	}
	chmod(d, 0700);
	free(j_dir);
	j_dir = d;
	return 0;
}

const char *journal_dir(void)
{
	return j_dir;
}

static int j_safe_name(const char *spool)
{
	return spool && spool[0] && spool[0] != '.' && !strchr(spool, '/') &&
	       strlen(spool) < JOURNAL_SPOOL_MAX;
}

char *journal_encode(const struct journal_entry *e)
{
	cJSON *o = cJSON_CreateObject(), *s, *arr, *p;
	char *txt = NULL;
	size_t i;

	if (!o)
		return NULL;
	if (!cJSON_AddNumberToObject(o, "v", 1) ||
	    !cJSON_AddStringToObject(o, "spool", e->spool) ||
	    !cJSON_AddStringToObject(o, "parent_id", e->parent_id) ||
	    !cJSON_AddStringToObject(o, "name", e->name ? e->name : "") ||
	    !cJSON_AddStringToObject(o, "file_id", e->file_id) ||
	    !cJSON_AddNumberToObject(o, "size", (double)e->size) ||
	    !cJSON_AddNumberToObject(o, "mtime", (double)e->mtime) ||
	    !cJSON_AddStringToObject(o, "sha1", e->sha1))
		goto out;
	if (e->sess.id[0]) {
		s = cJSON_AddObjectToObject(o, "session");
		if (!s || !cJSON_AddStringToObject(s, "id", e->sess.id) ||
		    !cJSON_AddNumberToObject(s, "file_size",
					     (double)e->sess.file_size) ||
		    !cJSON_AddNumberToObject(s, "part_size",
					     (double)e->sess.part_size) ||
		    !cJSON_AddNumberToObject(s, "total_parts",
					     e->sess.total_parts) ||
		    !cJSON_AddNumberToObject(s, "expires_at",
					     (double)e->sess.expires_at))
			goto out;
		arr = cJSON_AddArrayToObject(s, "parts");
		if (!arr)
			goto out;
		for (i = 0; i < e->nparts; i++) {
			p = cJSON_CreateObject();
			if (!p)
				goto out;
			cJSON_AddItemToArray(arr, p);
			if (!cJSON_AddStringToObject(p, "part_id",
						     e->parts[i].part_id) ||
			    !cJSON_AddNumberToObject(p, "offset",
						     (double)e->parts[i].offset) ||
			    !cJSON_AddNumberToObject(p, "size",
						     (double)e->parts[i].size) ||
			    !cJSON_AddStringToObject(p, "sha1", e->parts[i].sha1))
				goto out;
		}
	}
	txt = cJSON_PrintUnformatted(o);
out:
	cJSON_Delete(o);
	return txt;
}

/* Copy string member `key` of o into dst[len]; 0 or -1 (missing, not a
 * string, too long). */
static int j_str(const cJSON *o, const char *key, char *dst, size_t len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsString(v) || !v->valuestring ||
	    strlen(v->valuestring) >= len)
		return -1;
	memcpy(dst, v->valuestring, strlen(v->valuestring) + 1);
	return 0;
}

static int j_num(const cJSON *o, const char *key, uint64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsNumber(v) || v->valuedouble < 0 ||
	    v->valuedouble > J_MAX_NUM ||
	    v->valuedouble != (double)(uint64_t)v->valuedouble)
		return -1;
	*out = (uint64_t)v->valuedouble;
	return 0;
}

static int j_bad(char *msg, size_t msglen, const char *why)
{
	if (msg && msglen)
		snprintf(msg, msglen, "%s", why);
	return -EINVAL;
}

static int j_decode_session(const cJSON *s, struct journal_entry *e,
			    char *msg, size_t msglen)
{
	const cJSON *arr, *p;
	uint64_t v, n;
	size_t i = 0;

	if (j_str(s, "id", e->sess.id, sizeof(e->sess.id)) || !e->sess.id[0] ||
	    j_num(s, "file_size", &e->sess.file_size) ||
	    j_num(s, "part_size", &e->sess.part_size) || !e->sess.part_size ||
	    j_num(s, "total_parts", &n) || n == 0 || n > 100000 ||
	    j_num(s, "expires_at", &v))
		return j_bad(msg, msglen, "bad session");
	e->sess.total_parts = (uint32_t)n;
	e->sess.expires_at = (time_t)v;
	arr = cJSON_GetObjectItemCaseSensitive(s, "parts");
	if (!cJSON_IsArray(arr))
		return j_bad(msg, msglen, "bad part table");
	n = (uint64_t)cJSON_GetArraySize(arr);
	if (n > e->sess.total_parts)
		return j_bad(msg, msglen, "more parts than the session has");
	e->parts = n ? calloc(n, sizeof(*e->parts)) : NULL;
	if (n && !e->parts)
		return -ENOMEM;
	cJSON_ArrayForEach(p, arr) {
		struct box_part *bp = &e->parts[i];

		if (j_str(p, "part_id", bp->part_id, sizeof(bp->part_id)) ||
		    j_num(p, "offset", &bp->offset) ||
		    j_num(p, "size", &bp->size) ||
		    j_str(p, "sha1", bp->sha1, sizeof(bp->sha1)))
			return j_bad(msg, msglen, "bad part record");
		i++;
	}
	e->nparts = i;
	return 0;
}

int journal_decode(const char *text, size_t len, struct journal_entry *e,
		   char *msg, size_t msglen)
{
	const cJSON *s, *nm;
	uint64_t v;
	cJSON *o;
	int rc = 0;

	memset(e, 0, sizeof(*e));
	o = cJSON_ParseWithLength(text, len);
	if (!o || !cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return j_bad(msg, msglen, "not a JSON object (truncated?)");
	}
	nm = cJSON_GetObjectItemCaseSensitive(o, "name");
	if (j_num(o, "v", &v) || v != 1)
		rc = j_bad(msg, msglen, "unknown version");
	else if (j_str(o, "spool", e->spool, sizeof(e->spool)) ||
		 !j_safe_name(e->spool))
		rc = j_bad(msg, msglen, "bad spool name");
	else if (j_str(o, "parent_id", e->parent_id, sizeof(e->parent_id)) ||
		 j_str(o, "file_id", e->file_id, sizeof(e->file_id)) ||
		 (!e->parent_id[0] && !e->file_id[0]))
		rc = j_bad(msg, msglen, "bad target");
	else if (!cJSON_IsString(nm) || !nm->valuestring ||
		 !nm->valuestring[0])
		rc = j_bad(msg, msglen, "bad name");
	else if (j_num(o, "size", &e->size) || j_num(o, "mtime", &v) ||
		 j_str(o, "sha1", e->sha1, sizeof(e->sha1)))
		rc = j_bad(msg, msglen, "bad size, mtime or sha1");
	if (!rc) {
		e->mtime = (time_t)v;
		e->name = strdup(nm->valuestring);
		if (!e->name)
			rc = -ENOMEM;
	}
	s = cJSON_GetObjectItemCaseSensitive(o, "session");
	if (!rc && s)
		rc = cJSON_IsObject(s) ? j_decode_session(s, e, msg, msglen) :
		     j_bad(msg, msglen, "bad session");
	cJSON_Delete(o);
	if (rc)
		journal_entry_free(e);
	return rc;
}

void journal_entry_free(struct journal_entry *e)
{
	free(e->name);
	free(e->parts);
	e->name = NULL;
	e->parts = NULL;
	e->nparts = 0;
}

static int j_write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int j_fsync_dir(void)
{
	int fd = open(j_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd))
		rc = -errno;
	close(fd);
	return rc;
}

int journal_write(const struct journal_entry *e)
{
	char *txt, *tmp = NULL, *dst = NULL;
	int fd = -1, rc;

	if (!j_dir || !j_safe_name(e->spool))
		return -EINVAL;
	txt = journal_encode(e);
	if (!txt)
		return -ENOMEM;
	if (asprintf(&tmp, "%s/.%s.tmp", j_dir, e->spool) < 0)
		tmp = NULL;
	if (asprintf(&dst, "%s/%s.json", j_dir, e->spool) < 0)
		dst = NULL;
	rc = tmp && dst ? 0 : -ENOMEM;
	if (!rc) {
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0)
			rc = -errno;
	}
	if (!rc)
		rc = j_write_all(fd, txt, strlen(txt));
	if (!rc && fsync(fd))
		rc = -errno;
	if (fd >= 0 && close(fd) && !rc)
		rc = -errno;
	if (!rc && rename(tmp, dst))
		rc = -errno;
	if (!rc)
		rc = j_fsync_dir();
	if (rc) {
		if (tmp)
			unlink(tmp);
		log_err("journal: cannot write the entry of %s: %s", e->spool,
			strerror(-rc));
	}
	free(tmp);
	free(dst);
	free(txt);
	return rc;
}

void journal_remove(const char *spool)
{
	char *p;

	if (!j_dir || !j_safe_name(spool) ||
	    asprintf(&p, "%s/%s.json", j_dir, spool) < 0)
		return;
	if (unlink(p) == 0)
		j_fsync_dir();
	else if (errno != ENOENT)
		log_warn("journal: cannot remove %s: %s", p, strerror(errno));
	free(p);
}

int journal_has(const char *spool)
{
	struct stat st;
	char *p;
	int has;

	if (!j_dir || !j_safe_name(spool) ||
	    asprintf(&p, "%s/%s.json", j_dir, spool) < 0)
		return 0;
	has = stat(p, &st) == 0;
	free(p);
	return has;
}

int journal_read(const char *path, struct journal_entry *e, char *msg,
		 size_t msglen)
{
	struct stat st;
	char *buf;
	ssize_t n;
	size_t got = 0;
	int fd, rc;

	memset(e, 0, sizeof(*e));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || st.st_size > J_MAX_BYTES) {
		close(fd);
		return j_bad(msg, msglen, "unreadable or too large");
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	rc = journal_decode(buf, got, e, msg, msglen);
	free(buf);
	return rc;
}
