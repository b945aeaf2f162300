/* reader.c - windowed ranged reads with read-ahead on the worker pool. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "box.h"
#include "log.h"
#include "reader.h"
#include "worker.h"

#define WIN_MIN (128 * 1024)
#define WIN_MAX (8 * 1024 * 1024)

enum pf_state { PF_NONE, PF_QUEUED, PF_RUNNING, PF_DONE };

struct reader {
	pthread_mutex_t mtx;
	pthread_cond_t cv;
	unsigned refs;          /* the fd, plus a queued/running prefetch */
	char id[BOX_ID_MAX];
	char sha1[41];
	uint64_t fsize;

	char *buf;              /* current window */
	size_t bcap;
	uint64_t boff;
	size_t blen;

	char *pbuf;             /* prefetched window */
	size_t pcap;
	uint64_t poff;
	size_t plen;
	enum pf_state pstate;
	int perr;

	uint64_t next;          /* where a sequential read would continue */
	size_t win;
};

struct reader *reader_new(void)
{
	struct reader *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	pthread_mutex_init(&r->mtx, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->refs = 1;
	r->win = WIN_MIN;
	return r;
}

static void reader_destroy(struct reader *r)
{
	pthread_mutex_destroy(&r->mtx);
	pthread_cond_destroy(&r->cv);
	free(r->buf);
	free(r->pbuf);
	free(r);
}

/* locked; returns 1 when r was freed (caller must not touch it) */
static int reader_unref(struct reader *r)
{
	if (--r->refs)
		return 0;
	pthread_mutex_unlock(&r->mtx);
	reader_destroy(r);
	return 1;
}

void reader_free(struct reader *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mtx);
	/* a queued prefetch is cancelled; it drops its own reference */
	if (r->pstate == PF_QUEUED)
		r->pstate = PF_NONE;
	if (!reader_unref(r))
		pthread_mutex_unlock(&r->mtx);
}

static void prefetch_job(void *arg)
{
	struct reader *r = arg;
	char id[BOX_ID_MAX];
	uint64_t off;
	size_t len, got = 0;
	int err;

	pthread_mutex_lock(&r->mtx);
	if (r->pstate != PF_QUEUED) {   /* cancelled */
		if (!reader_unref(r))
			pthread_mutex_unlock(&r->mtx);
		return;
	}
	r->pstate = PF_RUNNING;
	snprintf(id, sizeof(id), "%s", r->id);
	off = r->poff;
	len = r->plen;
	pthread_mutex_unlock(&r->mtx);

	/* pbuf belongs to this job while PF_RUNNING */
	err = box_download(id, off, len, r->pbuf, &got);

	pthread_mutex_lock(&r->mtx);
	r->plen = err ? 0 : got;
	r->perr = err;
	r->pstate = PF_DONE;
	pthread_cond_broadcast(&r->cv);
	if (!reader_unref(r))
		pthread_mutex_unlock(&r->mtx);
}

/* locked: wait until no prefetch is running */
static void wait_prefetch(struct reader *r)
{
	while (r->pstate == PF_RUNNING)
		pthread_cond_wait(&r->cv, &r->mtx);
}

static void drop_windows(struct reader *r)
{
	if (r->pstate == PF_QUEUED)
		r->pstate = PF_NONE;
	wait_prefetch(r);
	r->pstate = PF_NONE;
	r->blen = 0;
	r->plen = 0;
}

/* Make *buf hold at least len bytes (never more than a window): small
 * files get small buffers. 0 or -ENOMEM; the old content is dropped. */
static int ensure_cap(char **buf, size_t *cap, size_t len)
{
	char *n;

	if (*cap >= len)
		return 0;
	if (len < WIN_MIN)
		len = WIN_MIN;
	n = malloc(len);
	if (!n)
		return -ENOMEM;
	free(*buf);
	*buf = n;
	*cap = len;
	return 0;
}

/* locked: start fetching the window after the current one */
static void start_prefetch(struct reader *r)
{
	uint64_t off = r->boff + r->blen;
	size_t len = r->win;

	if (r->pstate != PF_NONE || off >= r->fsize)
		return;
	if (len > r->fsize - off)
		len = r->fsize - off;
	if (ensure_cap(&r->pbuf, &r->pcap, len))
		return;
	r->poff = off;
	r->plen = len;
	r->perr = 0;
	r->pstate = PF_QUEUED;
	r->refs++;
	if (worker_submit(prefetch_job, r)) {
		r->pstate = PF_NONE;
		r->refs--;
	}
}

static int in_window(uint64_t woff, size_t wlen, uint64_t off, size_t size)
{
	return off >= woff && off + size <= woff + wlen;
}

/* locked: make the current window hold [off, off+size) */
static int fill(struct reader *r, uint64_t off, size_t size, int seq)
{
	size_t len, got = 0;
	int err;

	if (in_window(r->boff, r->blen, off, size))
		return 0;
	/* a prefetch still waiting in the queue may sit behind part
	 * uploads: cancel it and fetch now rather than wait for a thread */
	if (r->pstate == PF_QUEUED)
		r->pstate = PF_NONE;
	wait_prefetch(r);
	if (r->pstate == PF_DONE && !r->perr &&
	    in_window(r->poff, r->plen, off, size)) {
		char *t = r->buf;
		size_t tc = r->bcap;

		r->buf = r->pbuf;
		r->bcap = r->pcap;
		r->pbuf = t;
		r->pcap = tc;
		r->boff = r->poff;
		r->blen = r->plen;
		r->pstate = PF_NONE;
		return 0;
	}
	if (r->pstate == PF_DONE)
		r->pstate = PF_NONE;

	len = seq ? r->win : WIN_MIN;
	if (len < size)
		len = size;
	if (len > r->fsize - off)
		len = r->fsize - off;
	r->blen = 0;
	if (ensure_cap(&r->buf, &r->bcap, len))
		return -ENOMEM;
	/* per-file lock only: other files keep reading meanwhile */
	err = box_download(r->id, off, len, r->buf, &got);
	if (err)
		return err;
	r->boff = off;
	r->blen = got;
	return 0;
}

void reader_read(struct reader *r, fuse_req_t req, const char *id,
		 const char *sha1, uint64_t fsize, size_t size, uint64_t off)
{
	int seq, err;
	size_t n;

	if (size > WIN_MAX)
		size = WIN_MAX;
	pthread_mutex_lock(&r->mtx);
	if (strcmp(r->id, id) || strcmp(r->sha1, sha1) || r->fsize != fsize) {
		drop_windows(r);
		snprintf(r->id, sizeof(r->id), "%s", id);
		snprintf(r->sha1, sizeof(r->sha1), "%s", sha1);
		r->fsize = fsize;
	}
	if (off >= fsize || !size) {
		pthread_mutex_unlock(&r->mtx);
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > fsize - off)
		size = fsize - off;
	seq = off == r->next;
	if (seq) {
		if (r->win < WIN_MAX && off > 0)
			r->win *= 2;
	} else {
		r->win = WIN_MIN;
	}
	err = fill(r, off, size, seq);
	if (err) {
		pthread_mutex_unlock(&r->mtx);
		log_warn("read of file %s at %llu failed: %s", id,
			 (unsigned long long)off, strerror(-err));
		fuse_reply_err(req, -err);
		return;
	}
	n = off >= r->boff + r->blen ? 0 : r->boff + r->blen - off;
	if (n > size)
		n = size;
	r->next = off + n;
	/* the next window is fetched while this one is consumed: waiting
	 * until half of it is read left the connection idle meanwhile */
	if (seq && r->boff + r->blen < fsize)
		start_prefetch(r);
	fuse_reply_buf(req, r->buf + (off - r->boff), n);
	pthread_mutex_unlock(&r->mtx);
}
