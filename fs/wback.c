/* wback.c - the write-back scheduler (see wback.h).
 *
 * A list of pending items: inodes whose close() persisted their data, and
 * uploads resumed from the journal (no inode: they show in their folder
 * once committed). The thread wakes at the earliest due time (or every
 * second), commits one due item at a time without the lock, and on failure
 * schedules the next attempt 2 s, 4 s, ... 5 min later. Parts of one file
 * still go in parallel through the worker pool. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "box.h"
#include "inode.h"
#include "journal.h"
#include "log.h"
#include "options.h"
#include "upload.h"
#include "wback.h"

#define WB_BACKOFF_MIN 2.0
#define WB_BACKOFF_MAX 300.0

struct wb_item {
	struct inode *in;           /* NULL: resumed from the journal */
	struct upload *u;           /* resumed: owned */
	char parent_id[BOX_ID_MAX]; /* resumed: target */
	char *name;
	time_t mtime;
	double not_before;          /* monotonic; retry backoff */
	double backoff;
	int busy;                   /* being committed */
	int again;                  /* persisted again while busy */
	int err;                    /* last failure, 0 none */
	struct wb_item *next;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct wb_item *items;
	wback_commit_fn commit;
	char *mnt;
	pthread_t thr;
	int started, stop, in_open;
	int busy_fd;
} wb = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.busy_fd = -1,
};

static double wb_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int wback_on(void)
{
	return boxfs_opts.writeback > 0;
}

/* locked */
static struct wb_item *wb_find(struct inode *in)
{
	struct wb_item *it;

	for (it = wb.items; it; it = it->next)
		if (it->in == in)
			return it;
	return NULL;
}

/* locked */
static void wb_unlink(struct wb_item *x)
{
	struct wb_item **pp;

	for (pp = &wb.items; *pp; pp = &(*pp)->next) {
		if (*pp == x) {
			*pp = x->next;
			return;
		}
	}
}

static void wb_item_free(struct wb_item *it)
{
	if (it->in)
		inode_put(it->in);
	if (it->u)
		upload_free(it->u);  /* keeps a journaled dirty state */
	free(it->name);
	free(it);
}

void wback_add(struct inode *in)
{
	struct wb_item *it;

	pthread_mutex_lock(&wb.lock);
	it = wb_find(in);
	if (it) {
		it->again = it->busy;
		it->err = 0;
		it->backoff = 0;
		it->not_before = 0;
	} else if ((it = calloc(1, sizeof(*it)))) {
		inode_lock();
		in->refs++;
		inode_unlock();
		it->in = in;
		it->next = wb.items;
		wb.items = it;
	} else {
		log_err("writeback: out of memory: %s is committed by the next "
			"close or at unmount", in->name);
	}
	pthread_cond_broadcast(&wb.cond);
	pthread_mutex_unlock(&wb.lock);
}

/* locked: when the item may be committed (monotonic seconds); -1 when it
 * has nothing left to do (committed meanwhile, or unlinked). */
static double wb_due(struct wb_item *it)
{
	struct upload *u;
	double t;
	int gone;

	if (!it->in)
		return it->not_before;
	inode_lock();
	u = it->in->up;
	gone = !it->in->parent || !u || !upload_dirty(u);
	t = gone ? -1 : upload_changed_at(u) + boxfs_opts.writeback;
	inode_unlock();
	if (t >= 0 && it->not_before > t)
		t = it->not_before;
	return t;
}

static int wb_commit_item(struct wb_item *it)
{
	int rc;

	/* a refused token: try the token file again before any upload */
	if (auth_retry())
		return -EACCES;
	if (it->in)
		return wb.commit ? wb.commit(it->in) : -EIO;
	rc = upload_resume_sync(it->u);
	if (!rc) {
		struct box_item out;

		memset(&out, 0, sizeof(out));
		rc = upload_commit(it->u, it->parent_id, it->name, it->mtime,
				   &out);
		if (!rc)
			log_info("writeback: %s (from the journal) committed as %s",
				 it->name, out.id);
	}
	return rc;
}

/* locked: account the result of a commit attempt */
static void wb_done(struct wb_item *it, int rc, double now)
{
	it->busy = 0;
	if (!rc && !it->again) {
		wb_unlink(it);
		pthread_mutex_unlock(&wb.lock);
		wb_item_free(it);
		pthread_mutex_lock(&wb.lock);
		return;
	}
	it->again = 0;
	if (rc) {
		it->err = rc;
		it->backoff = it->backoff ? it->backoff * 2 : WB_BACKOFF_MIN;
		if (it->backoff > WB_BACKOFF_MAX)
			it->backoff = WB_BACKOFF_MAX;
		it->not_before = now + it->backoff;
		if (rc == -EACCES && auth_waiting(NULL, 0))
			log_debug("writeback: still waiting for authentication; "
				  "next attempt in %.0f s", it->backoff);
		else
			log_warn("writeback: upload failed (%s); next attempt in "
				 "%.0f s", strerror(-rc), it->backoff);
	}
}

/* Outside the lock: hold the mount busy while anything is pending. */
static void wb_busy_hold(int pending)
{
	if (!boxfs_opts.unmount_refuse || !wb.mnt)
		return;
	if (pending && wb.busy_fd < 0) {
		int fd;

		/* never start the open once unmount began: it would wait for
		 * a session loop that no longer runs */
		pthread_mutex_lock(&wb.lock);
		if (wb.stop) {
			pthread_mutex_unlock(&wb.lock);
			return;
		}
		wb.in_open = 1;
		pthread_mutex_unlock(&wb.lock);
		fd = open(wb.mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		pthread_mutex_lock(&wb.lock);
		wb.in_open = 0;
		if (fd >= 0 && wb.stop) {
			close(fd);
			fd = -1;
		}
		wb.busy_fd = fd;
		pthread_mutex_unlock(&wb.lock);
		if (fd < 0 && !wb.stop)
			log_warn("writeback: cannot hold %s busy: %s", wb.mnt,
				 strerror(errno));
	} else if (!pending && wb.busy_fd >= 0) {
		close(wb.busy_fd);
		wb.busy_fd = -1;
	}
}

static void *wb_thread(void *arg)
{
	struct upload *u;
	char pid[BOX_ID_MAX];
	char *name;
	time_t mtime;

	(void)arg;
	/* uploads an earlier run left in the journal: due at once */
	while ((u = upload_resume_next(pid, &name, &mtime))) {
		struct wb_item *it = calloc(1, sizeof(*it));

		if (!it) {
			upload_free(u);
			free(name);
			continue;
		}
		it->u = u;
		it->name = name;
		it->mtime = mtime;
		snprintf(it->parent_id, sizeof(it->parent_id), "%s", pid);
		pthread_mutex_lock(&wb.lock);
		it->next = wb.items;
		wb.items = it;
		pthread_mutex_unlock(&wb.lock);
	}
	pthread_mutex_lock(&wb.lock);
	while (!wb.stop) {
		struct wb_item *it, *pick = NULL, *next;
		double now = wb_now(), wake = now + 1, due;
		struct timespec ts;
		int pending = 0, rc;

		for (it = wb.items; it; it = next) {
			next = it->next;
			if (it->busy)
				continue;
			due = wb_due(it);
			if (due < 0) {  /* committed by fsync/close, or unlinked */
				wb_unlink(it);
				pthread_mutex_unlock(&wb.lock);
				wb_item_free(it);
				pthread_mutex_lock(&wb.lock);
				next = wb.items;  /* the list may have changed */
				pending = 0;
				pick = NULL;
				continue;
			}
			pending++;
			if (due <= now && !pick)
				pick = it;
			else if (due < wake)
				wake = due;
		}
		pthread_mutex_unlock(&wb.lock);
		wb_busy_hold(pending);
		pthread_mutex_lock(&wb.lock);
		if (wb.stop)
			break;
		if (pick) {
			pick->busy = 1;
			pick->again = 0;
			pthread_mutex_unlock(&wb.lock);
			rc = wb_commit_item(pick);
			pthread_mutex_lock(&wb.lock);
			wb_done(pick, rc, wb_now());
			pthread_cond_broadcast(&wb.cond);
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		wake -= now;
		if (wake < 0.01)
			wake = 0.01;
		ts.tv_sec += (time_t)wake;
		ts.tv_nsec += (long)((wake - (double)(time_t)wake) * 1e9);
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&wb.cond, &wb.lock, &ts);
	}
	pthread_mutex_unlock(&wb.lock);
	return NULL;
}

int wback_start(const char *mountpoint, wback_commit_fn commit)
{
	pthread_condattr_t a;
	int rc;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&wb.cond, &a);
	pthread_condattr_destroy(&a);
	wb.commit = commit;
	if (mountpoint && !(wb.mnt = strdup(mountpoint)))
		return -ENOMEM;
	rc = pthread_create(&wb.thr, NULL, wb_thread, NULL);
	if (rc)
		return -rc;
	wb.started = 1;
	return 0;
}

size_t wback_pending(void)
{
	struct wb_item *it;
	size_t n = 0;

	pthread_mutex_lock(&wb.lock);
	for (it = wb.items; it; it = it->next)
		n++;
	pthread_mutex_unlock(&wb.lock);
	return n;
}

int wback_state(struct inode *in, const char *upstate, char *buf, size_t len)
{
	struct wb_item *it;
	double left;
	int n = 0;

	pthread_mutex_lock(&wb.lock);
	it = wb_find(in);
	if (it && !it->busy) {
		char auth[160];

		if (it->err && auth_waiting(auth, sizeof(auth))) {
			left = it->not_before - wb_now();
			n = snprintf(buf, len, "waiting for authentication: %s "
				     "(retry in %.0fs)", auth, left > 0 ? left : 0);
		} else if (it->err) {
			const char *why = upstate;

			if (!strncmp(why, "failed: ", 8))
				why += 8;
			left = it->not_before - wb_now();
			n = snprintf(buf, len, "failed, retry in %.0fs: %s",
				     left > 0 ? left : 0, why);
		} else {
			left = wb_due(it) - wb_now();  /* wback -> inode order */
			n = snprintf(buf, len, "pending (commit in %.0fs)",
				     left > 0 ? left : 0);
		}
	}
	pthread_mutex_unlock(&wb.lock);
	if (n < 0)
		return 0;
	return (size_t)n >= len ? (int)(len ? len - 1 : 0) : n;
}

void wback_unmount(void)
{
	struct wb_item *it, *list;
	int n = 0, i = 0, failed = 0, stuck;
	char name[256];

	pthread_mutex_lock(&wb.lock);
	wb.stop = 1;
	pthread_cond_broadcast(&wb.cond);
	for (;;) {   /* let a commit in progress finish */
		for (it = wb.items; it && !it->busy; it = it->next)
			;
		if (!it)
			break;
		pthread_cond_wait(&wb.cond, &wb.lock);
	}
	list = wb.items;
	wb.items = NULL;
	stuck = wb.in_open;
	pthread_mutex_unlock(&wb.lock);
	/* a thread stuck opening the mount root is left alone: the process
	 * ends after us and the mount is gone by then */
	if (wb.started && !stuck)
		pthread_join(wb.thr, NULL);
	wb.started = 0;
	if (wb.busy_fd >= 0)
		close(wb.busy_fd);
	wb.busy_fd = -1;

	for (it = list; it; it = it->next)
		n++;
	if (n) {
		fprintf(stderr, "boxfs: uploading %d pending file%s before "
			"unmount: ...\n", n, n == 1 ? "" : "s");
		log_info("writeback: uploading %d pending file(s) before unmount",
			 n);
	}
	while ((it = list)) {
		int rc;

		list = it->next;
		i++;
		if (it->in) {
			inode_lock();
			snprintf(name, sizeof(name), "%s", it->in->name);
			inode_unlock();
		} else {
			snprintf(name, sizeof(name), "%s", it->name);
		}
		rc = wb_commit_item(it);
		if (rc)
			failed++;
		fprintf(stderr, "boxfs: [%d/%d] %s: %s%s\n", i, n, name,
			rc ? "FAILED: " : "uploaded", rc ? strerror(-rc) : "");
		wb_item_free(it);
	}
	if (failed) {
		fprintf(stderr, "boxfs: %d file%s could not be uploaded; kept in "
			"the journal (%s) and uploaded at the next mount with the "
			"same cache_dir\n", failed, failed == 1 ? "" : "s",
			journal_dir() ? journal_dir() : "cache_dir/journal");
		log_err("writeback: %d file(s) not uploaded at unmount; kept in "
			"the journal for the next start", failed);
	} else if (n) {
		fprintf(stderr, "boxfs: all %d pending file%s uploaded\n", n,
			n == 1 ? "" : "s");
	}
	free(wb.mnt);
	wb.mnt = NULL;
}
