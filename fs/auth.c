/* auth.c - access token from a 0600 file or BOX_TOKEN (see auth.h). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "log.h"
#include "options.h"

#define AUTH_TOKEN_MAX 2048

static pthread_mutex_t auth_mutex = PTHREAD_MUTEX_INITIALIZER;
static char auth_token[AUTH_TOKEN_MAX];
static unsigned auth_gen;

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
		/* children (and /proc/<pid>/environ readers after exec) must
		 * not see it */
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
	pthread_mutex_unlock(&auth_mutex);
}

int auth_header(char *buf, size_t len, unsigned *gen)
{
	int rc = 0, n;

	pthread_mutex_lock(&auth_mutex);
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
	rc = gen != auth_gen ? 0 : -EACCES;
	pthread_mutex_unlock(&auth_mutex);
	if (rc)
		log_debug("auth: static token refused, nothing to refresh");
	return rc;
}
