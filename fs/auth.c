/* auth.c - access token from a 0600 file or BOX_TOKEN (see auth.h). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "auth.h"
#include "codec.h"
#include "http.h"
#include "log.h"
#include "options.h"

#define AUTH_TOKEN_MAX 2048

static pthread_mutex_t auth_mutex = PTHREAD_MUTEX_INITIALIZER;
static char auth_token[AUTH_TOKEN_MAX];
static unsigned auth_gen;

/* OAuth2 state (token file in JSON form) */
enum auth_kind { AUTH_STATIC, AUTH_REFRESH, AUTH_CCG };
static enum auth_kind auth_kind;
static cJSON *auth_conf;        /* the token file's object */
static int auth_lock_fd = -1;   /* flock on <token_file>.lock */
static time_t auth_expires;     /* OAuth access token end, 0 unknown */
static char auth_fail[128];     /* last refresh failure, "" none */
static int auth_blocked;        /* refused and not renewable: uploads wait */

/* Token characters are printable ASCII without blanks: anything else would
 * let a token file inject header lines. */
static int auth_token_ok(const char *t)
{
	if (!*t)
		return 0;
	for (; *t; t++)
		if (!isgraph((unsigned char)*t))
			return 0;
	return 1;
}

/* Strip blanks around the first line of s in place; returns its start. */
static char *auth_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	e = s + strcspn(s, "\r\n");
	*e = '\0';
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return s;
}

/* ---- OAuth2: rotating refresh tokens and Client Credentials Grant ---- */

static const char *auth_cstr(const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(auth_conf, k);

	return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* Rewrite the token file atomically: tmp file (0600), fsync, rename, fsync
 * of the directory. Box refresh tokens are single-use, so the new one must
 * be on disk before the access token it came with is used. */
static int auth_persist(const char *path)
{
	char tmp[4096], dir[4096], *slash, *text;
	size_t len, off = 0;
	int fd, rc = 0;

	text = cJSON_Print(auth_conf);
	if (!text)
		return -ENOMEM;
	len = strlen(text);
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = w < 0 ? -errno : -EIO;
			break;
		}
		off += (size_t)w;
	}
	if (!rc && (write(fd, "\n", 1) != 1 || fsync(fd)))
		rc = errno ? -errno : -EIO;
	if (close(fd) && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path))
		rc = -errno;
	if (rc) {
		unlink(tmp);
		goto out;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash) {
		*(slash == dir ? slash + 1 : slash) = '\0';
		int dfd = open(slash == dir ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
out:
	explicit_bzero(text, len);
	free(text);
	return rc;
}

/* The token endpoint: the API root's host + /oauth2/token, unless the
 * token file says "token_url". */
static int auth_token_url(char *buf, size_t len)
{
	const char *u = auth_cstr("token_url");
	const char *api = boxfs_opts.api_url ? boxfs_opts.api_url :
		"https://api.box.com/2.0";
	size_t n;

	if (u)
		return snprintf(buf, len, "%s", u) < (int)len ? 0 : -ENAMETOOLONG;
	n = strlen(api);
	while (n && api[n - 1] == '/')
		n--;
	if (n >= 4 && !strncmp(api + n - 4, "/2.0", 4))
		n -= 4;
	return snprintf(buf, len, "%.*s/oauth2/token", (int)n, api) < (int)len ?
		0 : -ENAMETOOLONG;
}

/* Append "&key=escaped(value)" to the form body. */
static int auth_form_add(char *buf, size_t len, const char *k, const char *v)
{
	size_t n = strlen(buf);
	int e;

	if (!v)
		return -EINVAL;
	if (snprintf(buf + n, len - n, "%s%s=", n ? "&" : "", k) >= (int)(len - n))
		return -ENAMETOOLONG;
	n = strlen(buf);
	e = codec_url_escape(v, buf + n, len - n);
	return e < 0 ? -ENAMETOOLONG : 0;
}

/* Called with auth_mutex held. Gets a new access token; for refresh-token
 * grants persists the rotated refresh token first. */
static int auth_oauth_fetch(void)
{
	char url[1024], form[4096] = "";
	struct http_req rq = { .method = "POST", .url = url,
		.logpath = "/oauth2/token", .retry = HTTP_UNSENT, .fd = -1,
		.no_auth = 1, .has_body = 1 };
	struct http_resp rs;
	struct curl_slist *hdr;
	cJSON *j = NULL;
	const char *at, *rt;
	int rc;

	rc = auth_token_url(url, sizeof(url));
	if (!rc && auth_kind == AUTH_REFRESH)
		rc = auth_form_add(form, sizeof(form), "grant_type", "refresh_token") ?:
		     auth_form_add(form, sizeof(form), "refresh_token", auth_cstr("refresh_token"));
	else if (!rc)
		rc = auth_form_add(form, sizeof(form), "grant_type", "client_credentials") ?:
		     auth_form_add(form, sizeof(form), "box_subject_type",
				   auth_cstr("box_subject_type") ?: "enterprise") ?:
		     auth_form_add(form, sizeof(form), "box_subject_id",
				   auth_cstr("box_subject_id"));
	if (!rc)
		rc = auth_form_add(form, sizeof(form), "client_id", auth_cstr("client_id")) ?:
		     auth_form_add(form, sizeof(form), "client_secret",
				   auth_cstr("client_secret"));
	if (rc) {
		log_err("auth: token file lacks client_id/client_secret/"
			"refresh_token (or box_subject_id)");
		goto out;
	}
	hdr = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
	if (!hdr) {
		rc = -ENOMEM;
		goto out;
	}
	rq.headers = hdr;
	rq.pre = form;
	rq.pre_len = strlen(form);
	rc = http_request(&rq, &rs);
	curl_slist_free_all(hdr);
	if (!rc && rs.status != 200) {
		/* once: while uploads wait for a fixed token file, each new
		 * try is only a debug line */
		if (auth_blocked)
			log_debug("auth: token endpoint still answers HTTP %ld",
				  rs.status);
		else
			log_err("auth: token endpoint answered HTTP %ld; the "
				"refresh token or client credentials were "
				"refused", rs.status);
		rc = -EACCES;
	}
	if (rc) {
		time_t now = time(NULL);
		struct tm tm;
		localtime_r(&now, &tm);
		snprintf(auth_fail, sizeof(auth_fail), "refresh failed (%s%ld) at "
			 "%02d:%02d:%02d", rs.status ? "HTTP " : "error ",
			 rs.status ? rs.status : (long)-rc, tm.tm_hour, tm.tm_min,
			 tm.tm_sec);
	} else {
		auth_fail[0] = '\0';
	}
	if (!rc && !(j = cJSON_ParseWithLength(rs.body, rs.len)))
		rc = -EIO;
	if (rs.body)
		explicit_bzero(rs.body, rs.len);
	http_resp_free(&rs);
	if (rc)
		goto out;
	at = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "access_token"));
	rt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "refresh_token"));
	if (!at || strlen(at) >= AUTH_TOKEN_MAX || !auth_token_ok(at)) {
		log_err("auth: token endpoint gave no usable access token");
		rc = -EIO;
		goto out;
	}
	if (auth_kind == AUTH_REFRESH) {
		if (!rt || !auth_token_ok(rt)) {
			log_err("auth: token endpoint gave no new refresh token");
			rc = -EIO;
			goto out;
		}
		cJSON *nv = cJSON_CreateString(rt);
		if (!nv || !cJSON_ReplaceItemInObjectCaseSensitive(auth_conf,
							"refresh_token", nv)) {
			cJSON_Delete(nv);
			rc = -ENOMEM;
			goto out;
		}
		rc = auth_persist(boxfs_opts.token_file);
		if (rc) {
			/* the old refresh token is spent: say so loudly */
			log_err("auth: cannot save the new refresh token to %s (%s); "
				"the next mount will need a new authorisation",
				boxfs_opts.token_file, strerror(-rc));
		}
	}
	strcpy(auth_token, at);
	auth_gen++;
	const cJSON *ei = cJSON_GetObjectItemCaseSensitive(j, "expires_in");
	auth_expires = cJSON_IsNumber(ei) && ei->valuedouble > 0 &&
		ei->valuedouble < 1e9 ? time(NULL) + (time_t)ei->valuedouble : 0;
	rc = 0;
out:
	explicit_bzero(form, sizeof(form));
	cJSON_Delete(j);
	return rc;
}

/* Read the token file's JSON object into *out. 0 or -errno (msg says). */
static int auth_read_json(const char *path, cJSON **out, char *msg,
			  size_t msglen)
{
	char *text = NULL;
	struct stat st;
	int fd, rc = 0;
	ssize_t n;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) || st.st_size > 65536 ||
	    !(text = calloc(1, (size_t)st.st_size + 1))) {
		rc = fd < 0 ? -errno : -EINVAL;
		snprintf(msg, msglen, "cannot read token file %s", path);
		goto out;
	}
	n = read(fd, text, (size_t)st.st_size);
	if (n < 0 || !(*out = cJSON_ParseWithLength(text, (size_t)n)) ||
	    !cJSON_IsObject(*out)) {
		snprintf(msg, msglen, "token file %s: not a valid JSON object", path);
		cJSON_Delete(*out);
		*out = NULL;
		rc = -EINVAL;
	}
out:
	if (fd >= 0)
		close(fd);
	if (text) {
		explicit_bzero(text, strlen(text));
		free(text);
	}
	return rc;
}

static int auth_oauth_load(const char *path, char *msg, size_t msglen)
{
	char lock[4096];
	int rc = 0;

	if (snprintf(lock, sizeof(lock), "%s.lock", path) >= (int)sizeof(lock))
		return -ENAMETOOLONG;
	/* one mount per token file: two would spend each other's tokens */
	auth_lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (auth_lock_fd < 0 || flock(auth_lock_fd, LOCK_EX | LOCK_NB)) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		snprintf(msg, msglen, "token file %s is in use by another boxfs "
			 "mount (lock %s)", path, lock);
		if (auth_lock_fd >= 0)
			close(auth_lock_fd);
		auth_lock_fd = -1;
		return rc;
	}
	rc = auth_read_json(path, &auth_conf, msg, msglen);
	if (rc)
		goto out;
	auth_kind = auth_cstr("refresh_token") ? AUTH_REFRESH : AUTH_CCG;
	if (!auth_cstr("client_id") || !auth_cstr("client_secret") ||
	    (auth_kind == AUTH_CCG && !auth_cstr("box_subject_id"))) {
		snprintf(msg, msglen, "token file %s needs client_id, client_secret "
			 "and refresh_token (OAuth2) or box_subject_id (client "
			 "credentials)", path);
		rc = -EINVAL;
		goto out;
	}
	rc = auth_oauth_fetch();
	if (rc)
		snprintf(msg, msglen, "could not get an access token with the "
			 "OAuth2 settings of %s (see the log)", path);
out:
	if (rc) {
		cJSON_Delete(auth_conf);
		auth_conf = NULL;
		auth_kind = AUTH_STATIC;
		close(auth_lock_fd);
		auth_lock_fd = -1;
	}
	return rc;
}

static int auth_read_file(const char *path, char *msg, size_t msglen)
{
	char buf[AUTH_TOKEN_MAX + 2];
	struct stat st;
	ssize_t n;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		rc = -errno;
		snprintf(msg, msglen, "cannot open token file %s: %s", path,
			 strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(msg, msglen, "token file %s is not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(msg, msglen, "token file %s is accessible by group or "
			 "others (mode %03o); fix it with: chmod 600 %s", path,
			 (unsigned)(st.st_mode & 0777), path);
		close(fd);
		return -EACCES;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		rc = -errno;
		close(fd);
		snprintf(msg, msglen, "cannot read token file %s: %s", path,
			 strerror(-rc));
		return rc;
	}
	close(fd);
	buf[(size_t)n] = '\0';
	char *t = auth_trim(buf);
	if (*t == '{') {
		/* OAuth2 settings: re-read whole, the first line is not all */
		explicit_bzero(buf, sizeof(buf));
		return auth_oauth_load(path, msg, msglen);
	}
	if (!*t) {
		snprintf(msg, msglen, "token file %s is empty; put the access "
			 "token on its first line", path);
		rc = -EINVAL;
	} else if (strlen(t) >= AUTH_TOKEN_MAX || !auth_token_ok(t)) {
		snprintf(msg, msglen, "token file %s does not hold a valid "
			 "token (one line of printable characters, at most %d)",
			 path, AUTH_TOKEN_MAX - 1);
		rc = -EINVAL;
	} else {
		strcpy(auth_token, t);
	}
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

int auth_init(char *msg, size_t msglen)
{
	const char *env;
	int rc = 0;

	pthread_mutex_lock(&auth_mutex);
	explicit_bzero(auth_token, sizeof(auth_token));
	if (boxfs_opts.token_file) {
		rc = auth_read_file(boxfs_opts.token_file, msg, msglen);
	} else if ((env = getenv("BOX_TOKEN")) != NULL) {
		char *copy = strdup(env);
		/* children and /proc/<pid>/environ (which shows the initial
		 * environment block, whatever unsetenv does) must not see it */
		explicit_bzero((char *)env, strlen(env));
		unsetenv("BOX_TOKEN");
		if (!copy) {
			rc = -ENOMEM;
			snprintf(msg, msglen, "out of memory");
		} else {
			char *t = auth_trim(copy);
			if (strlen(t) >= AUTH_TOKEN_MAX || !auth_token_ok(t)) {
				snprintf(msg, msglen, "BOX_TOKEN is empty or not "
					 "a valid token");
				rc = -EINVAL;
			} else {
				strcpy(auth_token, t);
			}
			explicit_bzero(copy, strlen(copy));
			free(copy);
		}
	} else {
		snprintf(msg, msglen, "no access token: give -o token_file=FILE "
			 "(mode 600) or set BOX_TOKEN");
		rc = -ENOKEY;
	}
	if (!rc)
		auth_gen++;
	pthread_mutex_unlock(&auth_mutex);
	return rc;
}

void auth_cleanup(void)
{
	pthread_mutex_lock(&auth_mutex);
	explicit_bzero(auth_token, sizeof(auth_token));
	cJSON_Delete(auth_conf);
	auth_conf = NULL;
	auth_kind = AUTH_STATIC;
	if (auth_lock_fd >= 0)
		close(auth_lock_fd);
	auth_lock_fd = -1;
	pthread_mutex_unlock(&auth_mutex);
}

int auth_header(char *buf, size_t len, unsigned *gen)
{
	int rc = 0, n;

	pthread_mutex_lock(&auth_mutex);
	/* renew a minute before the end instead of eating a 401 */
	if (auth_kind != AUTH_STATIC && auth_expires &&
	    time(NULL) >= auth_expires - 60 && auth_oauth_fetch()) {
		log_warn("auth: early token renewal failed, going on");
		auth_expires = 0;	/* the 401 path will try again */
	}
	if (!auth_token[0]) {
		rc = -ENOKEY;
	} else {
		n = snprintf(buf, len, "Authorization: Bearer %s", auth_token);
		if (n < 0 || (size_t)n >= len) {
			explicit_bzero(buf, len);
			rc = -ENAMETOOLONG;
		}
	}
	if (gen)
		*gen = auth_gen;
	pthread_mutex_unlock(&auth_mutex);
	return rc;
}

int auth_refresh(unsigned gen)
{
	int rc;

	pthread_mutex_lock(&auth_mutex);
	/* someone else already replaced the token we were refused with */
	if (gen != auth_gen)
		rc = 0;
	else if (auth_kind == AUTH_STATIC)
		rc = -EACCES;
	else	/* under the lock: one refresh at a time spends the token */
		rc = auth_oauth_fetch() ? -EACCES : 0;
	/* a token file can be fixed by its user: wait for that (BOX_TOKEN
	 * cannot change, a refusal there is final) */
	if (!rc)
		auth_blocked = 0;
	if (rc && boxfs_opts.token_file && !auth_blocked) {
		auth_blocked = 1;
		if (auth_kind == AUTH_STATIC)
			snprintf(auth_fail, sizeof(auth_fail), "access token of "
				 "%s refused", boxfs_opts.token_file);
		log_err("auth: %s; uploads wait and retry, re-reading %s (fix "
			"the token there)", auth_fail[0] ? auth_fail :
			"token refused", boxfs_opts.token_file);
	}
	pthread_mutex_unlock(&auth_mutex);
	if (rc)
		log_debug("auth: token refused and not renewed");
	return rc;
}

int auth_waiting(char *reason, size_t len)
{
	int b;

	pthread_mutex_lock(&auth_mutex);
	b = auth_blocked;
	if (b && reason && len)
		snprintf(reason, len, "%s", auth_fail[0] ? auth_fail :
			 "token refused");
	pthread_mutex_unlock(&auth_mutex);
	return b;
}

/* Static token file: take its (new) first line. */
static int auth_retry_static(void)
{
	char msg[256] = "", old[AUTH_TOKEN_MAX];
	int rc;

	memcpy(old, auth_token, sizeof(old));
	rc = auth_read_file(boxfs_opts.token_file, msg, sizeof(msg));
	if (!rc && !strcmp(old, auth_token))
		rc = -EACCES;   /* the same refused token */
	if (rc) {
		memcpy(auth_token, old, sizeof(old));
		if (msg[0])
			snprintf(auth_fail, sizeof(auth_fail), "%.120s", msg);
	}
	explicit_bzero(old, sizeof(old));
	return rc;
}

/* OAuth token file: read it again (the user may have put a new refresh
 * token or credentials there) and try to get an access token. */
static int auth_retry_oauth(void)
{
	char msg[256] = "";
	cJSON *nc = NULL;
	int rc = auth_read_json(boxfs_opts.token_file, &nc, msg, sizeof(msg));

	if (rc) {
		snprintf(auth_fail, sizeof(auth_fail), "%.120s", msg);
		return rc;
	}
	cJSON_Delete(auth_conf);
	auth_conf = nc;
	return auth_oauth_fetch() ? -EACCES : 0;
}

int auth_retry(void)
{
	int rc = 0;

	pthread_mutex_lock(&auth_mutex);
	if (auth_blocked) {
		rc = auth_kind == AUTH_STATIC ? auth_retry_static() :
		     auth_retry_oauth();
		if (!rc) {
			auth_blocked = 0;
			auth_fail[0] = '\0';
			auth_gen++;
			log_info("auth: %s works again: uploads go on",
				 boxfs_opts.token_file);
		}
	}
	pthread_mutex_unlock(&auth_mutex);
	return rc ? -EACCES : 0;
}

int auth_state(char *buf, size_t len)
{
	int n;

	pthread_mutex_lock(&auth_mutex);
	if (auth_blocked)
		n = snprintf(buf, len, "waiting for authentication: %s",
			     auth_fail[0] ? auth_fail : "token refused");
	else if (auth_kind == AUTH_STATIC)
		n = snprintf(buf, len, "%s", auth_token[0] ? "static token" :
			     "no token");
	else if (auth_fail[0])
		n = snprintf(buf, len, "%s: %s", auth_kind == AUTH_CCG ?
			     "client credentials" : "oauth2", auth_fail);
	else
		n = snprintf(buf, len, "%s: ok, expires in %ld s",
			     auth_kind == AUTH_CCG ? "client credentials" : "oauth2",
			     auth_expires ? (long)(auth_expires - time(NULL)) : -1L);
	pthread_mutex_unlock(&auth_mutex);
	return n < 0 ? 0 : n;
}
