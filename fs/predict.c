/* predict.c - predicted sizes from the writer's source file (see predict.h).
 *
 * Everything comes from /proc/PID/fd (links) and /proc/PID/fdinfo (pos,
 * flags, mnt_id, ino). A fd is read and judged in this order, so that a
 * file on our own mount is never stat()ed (that would call into this
 * daemon): fdinfo (readable, not on our mount) -> readlink (not under the
 * mountpoint) -> stat (a regular file; same inode as fdinfo said, else the
 * fd was replaced between the two reads). Any failure skips the fd: a fd
 * closed meanwhile is simply not a candidate. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "predict.h"

static struct {
	char root[PATH_MAX];   /* "/proc" or a unit test's fake tree */
	char mnt[PATH_MAX];    /* our mountpoint, "" if unknown */
	int mnt_id;            /* our mount's id, -1 if unknown */
	uint64_t min;
} pr = { .root = "/proc", .mnt_id = -1 };

enum pr_state { PR_OFF, PR_ON };

struct predict {
	pthread_mutex_t lock;
	enum pr_state state;
	pid_t pid;
	struct predict_src src;
	uint64_t next;      /* where the next write must start */
	uint64_t checked;   /* written end at the last look at the source */
};

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *d = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 4;
		} else {
			*d++ = *s++;
		}
	}
	*d = '\0';
}

int predict_mount_id(const char *mountinfo, const char *mountpoint)
{
	char line[4096], path[PATH_MAX];
	int id, found = -1;
	FILE *f;

	f = fopen(mountinfo, "re");
	if (!f)
		return -1;
	/* "ID PARENT MAJ:MIN ROOT MOUNTPOINT ...": the last match is on top */
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%d %*d %*s %*s %4095s", &id, path) != 2)
			continue;
		unescape(path);
		if (!strcmp(path, mountpoint))
			found = id;
	}
	fclose(f);
	return found;
}

void predict_init(const char *proc_root, const char *mountpoint, uint64_t min)
{
	char mi[PATH_MAX + 32];

	snprintf(pr.root, sizeof(pr.root), "%s", proc_root);
	snprintf(pr.mnt, sizeof(pr.mnt), "%s", mountpoint ? mountpoint : "");
	pr.min = min;
	pr.mnt_id = -1;
	if (pr.mnt[0]) {
		snprintf(mi, sizeof(mi), "%s/self/mountinfo", pr.root);
		pr.mnt_id = predict_mount_id(mi, pr.mnt);
	}
	log_debug("predict: mount id %d for %s", pr.mnt_id,
		  pr.mnt[0] ? pr.mnt : "(none)");
}

/* What fdinfo says about one fd. */
struct fdinfo {
	uint64_t pos;
	unsigned int flags;
	int mnt_id;      /* -1: not given */
	int64_t ino;     /* -1: not given */
};

static int read_fdinfo(pid_t pid, int fd, struct fdinfo *fi)
{
	char path[PATH_MAX + 64], buf[1024], *line, *next;
	unsigned long long v;
	int got = 0, ifd;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%d/fdinfo/%d", pr.root, (int)pid, fd);
	ifd = open(path, O_RDONLY | O_CLOEXEC);
	if (ifd < 0)
		return -1;
	n = read(ifd, buf, sizeof(buf) - 1);
	close(ifd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	fi->mnt_id = -1;
	fi->ino = -1;
	for (line = buf; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (sscanf(line, "pos: %llu", &v) == 1)
			fi->pos = v, got |= 1;
		else if (sscanf(line, "flags: %llo", &v) == 1)
			fi->flags = (unsigned int)v, got |= 2;
		else if (sscanf(line, "mnt_id: %llu", &v) == 1)
			fi->mnt_id = (int)v;
		else if (sscanf(line, "ino: %llu", &v) == 1)
			fi->ino = (int64_t)v;
	}
	return got == 3 ? 0 : -1;
}

/* 0 (st and fi filled) when fd is a readable regular file outside our mount. */
static int source_of(pid_t pid, int fd, struct stat *st, struct fdinfo *fi)
{
	char link[PATH_MAX + 64], target[PATH_MAX];
	size_t ml = strlen(pr.mnt);
	ssize_t n;

	if (read_fdinfo(pid, fd, fi))
		return -1;
	if ((fi->flags & O_ACCMODE) == O_WRONLY || (fi->flags & O_PATH))
		return -1;
	if (pr.mnt_id >= 0 && fi->mnt_id == pr.mnt_id)
		return -1;
	snprintf(link, sizeof(link), "%s/%d/fd/%d", pr.root, (int)pid, fd);
	n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0)
		return -1;
	target[n] = '\0';
	if (target[0] != '/')
		return -1;  /* pipe:[..], socket:[..], anon_inode:.. */
	if (ml && !strncmp(target, pr.mnt, ml) &&
	    (target[ml] == '/' || target[ml] == '\0' || ml == 1))
		return -1;
	if (stat(link, st) || !S_ISREG(st->st_mode))
		return -1;
	if (fi->ino >= 0 && (uint64_t)fi->ino != (uint64_t)st->st_ino)
		return -1;  /* closed and reused between the two reads */
	return 0;
}

/* The source's size fits a copy that has written up to `end`, with the
 * read position `pos`. */
static int plausible(uint64_t size, uint64_t pos, uint64_t end)
{
	return size >= pr.min && size >= pos && size >= end && pos >= end &&
	       pos - end <= PREDICT_WINDOW;
}

uint64_t predict_size(pid_t pid, uint64_t off, uint64_t len,
		      struct predict_src *src)
{
	char path[PATH_MAX + 32];
	struct predict_src one = { .fd = -1 };
	struct fdinfo fi, one_fi = { 0 };
	struct dirent *de;
	struct stat st;
	int n = 0;
	DIR *d;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "%s/%d/fd", pr.root, (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d)) && n < 2) {
		char *end;
		long fd = strtol(de->d_name, &end, 10);

		if (de->d_name[0] < '0' || de->d_name[0] > '9' || *end ||
		    fd > INT_MAX)
			continue;
		if (source_of(pid, (int)fd, &st, &fi))
			continue;
		n++;
		one.fd = (int)fd;
		one.dev = st.st_dev;
		one.ino = st.st_ino;
		one.size = (uint64_t)st.st_size;
		one_fi = fi;
	}
	closedir(d);
	if (n != 1) {
		log_debug("predict: pid %d reads %s regular file: no prediction",
			  (int)pid, n ? "more than one" : "no");
		return 0;
	}
	if (!plausible(one.size, one_fi.pos, off + len)) {
		log_debug("predict: pid %d fd %d: size %" PRIu64 " at %" PRIu64
			  " does not fit a write to %" PRIu64, (int)pid, one.fd,
			  one.size, one_fi.pos, off + len);
		return 0;
	}
	if (src)
		*src = one;
	return one.size;
}

int predict_check(pid_t pid, const struct predict_src *src, uint64_t off,
		  uint64_t len)
{
	struct fdinfo fi;
	struct stat st;

	if (source_of(pid, src->fd, &st, &fi) || st.st_dev != src->dev ||
	    st.st_ino != src->ino || (uint64_t)st.st_size != src->size ||
	    !plausible(src->size, fi.pos, off + len))
		return -1;
	return 0;
}

/* A first write to an empty file: try to predict. */
static enum predict_action predict_start(struct predict **pp, pid_t pid,
					 uint64_t len, uint64_t *size)
{
	struct predict_src src;
	struct predict *p = *pp, *exp = NULL;
	uint64_t n;

	n = predict_size(pid, 0, len, &src);
	if (!n)
		return PREDICT_NONE;
	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p)
			return PREDICT_NONE;
		pthread_mutex_init(&p->lock, NULL);
		/* two first writes on one fd at once: one of them wins */
		if (!__atomic_compare_exchange_n(pp, &exp, p, 0, __ATOMIC_ACQ_REL,
						 __ATOMIC_ACQUIRE)) {
			predict_free(p);
			return PREDICT_NONE;
		}
	}
	pthread_mutex_lock(&p->lock);
	p->state = PR_ON;
	p->pid = pid;
	p->src = src;
	p->next = len;
	p->checked = len;
	pthread_mutex_unlock(&p->lock);
	*size = n;
	log_debug("predict: pid %d copies fd %d: %" PRIu64 " bytes predicted",
		  (int)pid, src.fd, n);
	return PREDICT_DECLARE;
}

/* A later write while a prediction stands. Called with p->lock. */
static enum predict_action predict_verify(struct predict *p, pid_t pid,
					  uint64_t off, uint64_t len)
{
	uint64_t end = off + len;
	const char *why = NULL;

	if (end > p->src.size) {
		/* the upload drops the session itself (and counts it) */
		p->state = PR_OFF;
		log_debug("predict: write past the predicted %" PRIu64 " bytes",
			  p->src.size);
		return PREDICT_NONE;
	}
	if (pid != p->pid)
		why = "another process writes";
	else if (off != p->next)
		why = "the writes are not sequential";
	else if ((end - p->checked >= PREDICT_RECHECK || end == p->src.size) &&
		 predict_check(pid, &p->src, off, len))
		why = "the source changed";
	if (why) {
		p->state = PR_OFF;
		log_debug("predict: %s at %" PRIu64 ": prediction withdrawn", why,
			  off);
		return PREDICT_DROP;
	}
	if (end - p->checked >= PREDICT_RECHECK)
		p->checked = end;
	p->next = end;
	return PREDICT_NONE;
}

enum predict_action predict_write(struct predict **pp, pid_t pid, uint64_t off,
				  uint64_t len, uint64_t cur_size,
				  uint64_t declared, uint64_t *size)
{
	struct predict *p = __atomic_load_n(pp, __ATOMIC_ACQUIRE);
	enum predict_action act = PREDICT_NONE;
	int fresh = off == 0 && cur_size == 0 && len > 0, was_on = 0;

	if (p) {
		pthread_mutex_lock(&p->lock);
		was_on = p->state == PR_ON;
		if (was_on && !fresh)
			act = predict_verify(p, pid, off, len);
		else if (was_on)  /* emptied and written again: predict anew */
			p->state = PR_OFF;
		pthread_mutex_unlock(&p->lock);
	}
	if (!fresh)
		return act;
	if (declared && !was_on)
		return PREDICT_NONE;  /* the program announced its size */
	act = predict_start(pp, pid, len, size);
	return act == PREDICT_NONE && was_on ? PREDICT_DROP : act;
}

void predict_free(struct predict *p)
{
	if (!p)
		return;
	pthread_mutex_destroy(&p->lock);
	free(p);
}
