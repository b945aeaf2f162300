/* upload.c - per-inode write state: spool, part hashing, upload sessions.
 *
 * The spool file is the source of truth: every write lands there first. On
 * top of it the state tracks
 *   - the written prefix: bytes [0, prefix) have all been written (writes
 *     beyond it are kept as a few extents until the gap closes);
 *   - a running whole-file SHA-1 over [0, sha_off), advanced as the prefix
 *     grows (recomputed from the spool at commit when a rewrite broke it);
 *   - an upload session (struct usess) when the final size was declared:
 *     every part whose bytes are all in the prefix is read back from the
 *     spool (page cache) by a worker and PUT while the program writes.
 * Anything the session cannot take kills it (its in-flight jobs finish
 * harmlessly) and the commit re-sends from the spool.
 *
 * Locking: one mutex per upload; one global mutex for the memory budget,
 * the spool accounting and a generation counter. Order: upload, then
 * global. Every state change bumps the generation and broadcasts; waiters
 * read the generation before checking their condition, drop the upload lock
 * and sleep until it changes (so a wake-up can never be missed). No lock is
 * held across a network call. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "box.h"
#include "codec.h"
#include "journal.h"
#include "log.h"
#include "options.h"
#include "sha1.h"
#include "stats.h"
#include "upload.h"
#include "worker.h"

#define UP_MAX_EXT       32           /* out-of-order extents tracked */
#define UP_LAG_PARTS     2            /* completed parts a writer may run ahead */
#define UP_IO_CHUNK      (1u << 20)   /* re-hash granularity */
#define UP_FETCH_CHUNK   (4u << 20)   /* ranged GETs of existing content */
#define UP_MAX_PARTS     100000u      /* sanity cap on a server's total_parts */
#define UP_DEF_BUDGET    (256ull << 20)
#define UP_DEF_CHUNKED   20000000ull
#define UP_DEF_PARALLEL  4

enum part_state { P_NONE, P_QUEUED, P_DONE, P_FAILED };

/* One upload session on the server, shared by the state and its jobs. */
struct usess {
	int refs;               /* state + jobs; under the upload's lock */
	int creating;           /* the create request is out */
	int ready;              /* created: bs, st and parts are valid */
	int dead;               /* dropped: job results are ignored */
	int err;                /* first failure (creation or a part) */
	char orig_id[BOX_ID_MAX];   /* file id asked for ("" = new file) */
	char file_id[BOX_ID_MAX];   /* actual target (conflict resolved) */
	char parent_id[BOX_ID_MAX];
	char *name;
	uint64_t size;          /* the file size the session was made for */
	struct box_session bs;
	unsigned char *st;      /* enum part_state per part */
	struct box_part *parts; /* accepted records, by part index */
	unsigned char (*pmd)[20];   /* part SHA-1s computed while written */
	unsigned char *pmd_ok;      /* pmd[k] matches the spool's part k */
	uint32_t ndone;
	uint32_t cursor;        /* parts below were queued (part 0: at commit
				 * when hold_first) */
	int hold_first;         /* part 0 waits for the commit */
	int inflight;
};

struct up_ext {
	uint64_t s, e;
};

struct upload {
	pthread_mutex_t lock;
	char file_id[BOX_ID_MAX];   /* "" until Box has the file */
	uint64_t remote_size;       /* Box's size while not fetched */
	int fetched;                /* the spool holds the content */
	int fetching;
	int fd;
	char *path;
	uint64_t size;
	uint64_t spool_bytes;       /* accounted in up.spool_used */
	int dirty;
	int committing;
	int committed;
	int jobs;                   /* worker jobs holding a pointer to us */
	int last_err;               /* of the last failed commit */
	uint64_t prefix;
	struct up_ext ext[UP_MAX_EXT];
	int next;
	int scattered;              /* too many holes to track: no streaming */
	struct sha1 sha;            /* whole file, [0, sha_off) */
	uint64_t sha_off;
	int sha_valid;
	struct sha1 psha;           /* part psha_k of sess, same pass */
	uint32_t psha_k;
	int psha_on;                /* psha is running; cleared by
				     * upload_sha_reset and upload_sess_drop
				     * (while !sha_valid nothing feeds it) */
	int declared_set;
	uint64_t declared;
	struct usess *sess;
	double changed_at;          /* monotonic time of the last change */
	/* write-back: the journal entry and the target it records */
	int journaled;
	char jparent[BOX_ID_MAX];
	char *jname;
	time_t jmtime;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t gen;
	uint64_t mem_used;
	uint64_t spool_used;
	int committing;
	unsigned long seq;
	char *dir;
	struct journal_entry *resume;   /* pending uploads of an earlier run */
	size_t nresume, resume_next;
} up = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

static pthread_once_t up_once = PTHREAD_ONCE_INIT;

static void up_once_init(void)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&up.cond, &a);
	pthread_condattr_destroy(&a);
}

/* ---- options with defaults ---- */

static uint64_t upload_chunked_min(void)
{
	return boxfs_opts.chunked_min ? boxfs_opts.chunked_min : UP_DEF_CHUNKED;
}

static uint64_t upload_budget(void)
{
	return boxfs_opts.mem_budget ? boxfs_opts.mem_budget : UP_DEF_BUDGET;
}

static int upload_parallel(void)
{
	return boxfs_opts.part_parallel > 0 ? boxfs_opts.part_parallel :
	       UP_DEF_PARALLEL;
}

/* ---- global generation, budget, spool accounting ---- */

static uint64_t upload_gen(void)
{
	uint64_t g;

	pthread_mutex_lock(&up.lock);
	g = up.gen;
	pthread_mutex_unlock(&up.lock);
	return g;
}

static void upload_notify(void)
{
	pthread_mutex_lock(&up.lock);
	up.gen++;
	pthread_cond_broadcast(&up.cond);
	pthread_mutex_unlock(&up.lock);
}

/* Sleep until the generation moves past `gen` (or a second passed: a
 * safety net, the callers re-check their condition anyway). */
static void upload_gen_wait(uint64_t gen)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += 1;
	pthread_mutex_lock(&up.lock);
	while (up.gen == gen) {
		if (pthread_cond_timedwait(&up.cond, &up.lock, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&up.lock);
}

/* Drop u's lock, wait for a change after `gen`, take the lock again. */
static void upload_wait(struct upload *u, uint64_t gen)
{
	pthread_mutex_unlock(&u->lock);
	upload_gen_wait(gen);
	pthread_mutex_lock(&u->lock);
}

/* Reserve part buffer memory; never fails for good, the caller retries.
 * A part larger than the whole budget still goes when nothing else is in
 * flight, so a tiny budget cannot deadlock. */
static int upload_budget_try(uint64_t n)
{
	int ok;

	pthread_mutex_lock(&up.lock);
	ok = up.mem_used == 0 || up.mem_used + n <= upload_budget();
	if (ok)
		up.mem_used += n;
	pthread_mutex_unlock(&up.lock);
	return ok;
}

static void upload_budget_release(uint64_t n)
{
	pthread_mutex_lock(&up.lock);
	up.mem_used -= n;
	up.gen++;
	pthread_cond_broadcast(&up.cond);
	pthread_mutex_unlock(&up.lock);
}

/* Account the spool growing to `end` bytes. 0, -EAGAIN when waiting for
 * another upload's commit can free space, or -ENOSPC. */
static int upload_spool_reserve(struct upload *u, uint64_t end)
{
	uint64_t delta;
	int rc = 0;

	if (end <= u->spool_bytes)
		return 0;
	delta = end - u->spool_bytes;
	pthread_mutex_lock(&up.lock);
	if (boxfs_opts.spool_max && up.spool_used + delta > boxfs_opts.spool_max) {
		if (up.committing > u->committing)
			rc = -EAGAIN;
		else
			rc = -ENOSPC;
	} else {
		up.spool_used += delta;
		u->spool_bytes = end;
	}
	pthread_mutex_unlock(&up.lock);
	if (rc == -ENOSPC)
		log_warn("upload: spool limit of %" PRIu64 " bytes reached and no "
			 "upload can drain it: write refused (ENOSPC)",
			 boxfs_opts.spool_max);
	return rc;
}

/* Give back spool accounting above `keep` bytes. */
static void upload_spool_release(struct upload *u, uint64_t keep)
{
	if (u->spool_bytes <= keep)
		return;
	pthread_mutex_lock(&up.lock);
	up.spool_used -= u->spool_bytes - keep;
	up.gen++;
	pthread_cond_broadcast(&up.cond);
	pthread_mutex_unlock(&up.lock);
	u->spool_bytes = keep;
}

/* ---- small helpers ---- */

static int upload_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			memset(p, 0, len);  /* a hole at the end reads as zeros */
			return 0;
		}
		p += n;
		len -= n;
		off += n;
	}
	return 0;
}

static ssize_t upload_pwrite_full(int fd, const void *buf, size_t len,
				  uint64_t off)
{
	const char *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, p + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return done ? (ssize_t)done : -errno;
		done += n;
	}
	return done;
}

/* The errno a program sees when a commit fails. */
static int upload_errno(int rc)
{
	switch (rc) {
	case -ENOSPC:
	case -EDQUOT:
		return -ENOSPC;
	case -EACCES:
	case -EPERM:
		return -EACCES;
	case -ENOENT:
	case -ENAMETOOLONG:
	case -ENOMEM:
	case -EFBIG:
		return rc;
	default:
		return -EIO;
	}
}

static const char *upload_reason(int rc)
{
	switch (rc) {
	case -ENOSPC: case -EDQUOT: return "quota exceeded or no space";
	case -EACCES: case -EPERM: return "access denied";
	case -ETIMEDOUT: return "server did not answer in time";
	case -ENOENT: return "folder or file gone on the server";
	case -EEXIST: return "name conflict";
	case -ESTALE: return "upload session expired";
	case -ENOMEM: return "out of memory";
	case -ENAMETOOLONG: return "name too long";
	case -EINVAL: return "refused by the server";
	default: return "server error";
	}
}

static double upload_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- the journal (write-back) ---- */

static const char *upload_spool_base(const struct upload *u)
{
	const char *b = strrchr(u->path, '/');

	return b ? b + 1 : u->path;
}

/* locked: describe u in e (e->name is borrowed, free only e->parts) */
static int upload_journal_fill(struct upload *u, struct journal_entry *e)
{
	struct usess *s = u->sess;
	uint32_t k;

	memset(e, 0, sizeof(*e));
	snprintf(e->spool, sizeof(e->spool), "%s", upload_spool_base(u));
	snprintf(e->parent_id, sizeof(e->parent_id), "%s", u->jparent);
	e->name = u->jname;
	snprintf(e->file_id, sizeof(e->file_id), "%s", u->file_id);
	e->size = u->size;
	e->mtime = u->jmtime;
	if (u->sha_valid && u->sha_off == u->size) {
		unsigned char md[20];

		sha1_final(&u->sha, md);
		codec_hex_encode(md, 20, e->sha1);
	}
	if (s && s->ready && !s->dead && !s->err && s->size == u->size) {
		e->sess = s->bs;
		e->parts = calloc(s->bs.total_parts, sizeof(*e->parts));
		if (!e->parts)
			return -ENOMEM;
		for (k = 0; k < s->bs.total_parts; k++)
			if (s->st[k] == P_DONE)
				e->parts[e->nparts++] = s->parts[k];
	}
	return 0;
}

/* locked: rewrite u's journal entry, if it has one */
static int upload_journal_update(struct upload *u)
{
	struct journal_entry e;
	int rc;

	if (!u->journaled || !u->path || !u->jname)
		return 0;
	rc = upload_journal_fill(u, &e);
	if (!rc)
		rc = journal_write(&e);
	free(e.parts);
	return rc;
}

/* ---- sessions ---- */

static struct usess *upload_sess_new(const char *file_id, const char *parent,
				     const char *name, uint64_t size)
{
	struct usess *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->name = strdup(name ? name : "");
	if (!s->name) {
		free(s);
		return NULL;
	}
	snprintf(s->orig_id, sizeof(s->orig_id), "%s", file_id ? file_id : "");
	snprintf(s->file_id, sizeof(s->file_id), "%s", file_id ? file_id : "");
	snprintf(s->parent_id, sizeof(s->parent_id), "%s", parent ? parent : "");
	s->size = size;
	s->refs = 1;
	return s;
}

static void upload_sess_put(struct usess *s)
{
	if (--s->refs > 0)
		return;
	free(s->st);
	free(s->parts);
	free(s->pmd);
	free(s->pmd_ok);
	free(s->name);
	free(s);
}

static void upload_abort_job(void *arg)
{
	struct box_session *bs = arg;

	box_session_abort(bs);
	free(bs);
}

/* DELETE a session from a worker (we may hold a lock here). */
static void upload_abort_async(const struct box_session *bs)
{
	struct box_session *c = malloc(sizeof(*c));

	if (!c) {
		log_warn("upload: cannot abort session %s (no memory); it expires "
			 "on its own", bs->id);
		return;
	}
	*c = *bs;
	if (worker_submit(upload_abort_job, c)) {
		log_warn("upload: cannot abort session %s now; it expires on its own",
			 bs->id);
		free(c);
	}
}

/* Forget the session. abort: also DELETE it on the server. */
static void upload_sess_drop(struct upload *u, int abort)
{
	struct usess *s = u->sess;

	if (!s)
		return;
	u->sess = NULL;
	u->psha_on = 0;
	s->dead = 1;
	if (abort && s->ready)
		upload_abort_async(&s->bs);
	upload_sess_put(s);
}

/* Check what the server said and set up the part tables. */
static int upload_sess_ready(struct usess *s, const struct box_session *bs)
{
	uint64_t n;

	if (!bs->part_size || bs->file_size != s->size) {
		log_err("upload: session %s has part_size %" PRIu64 " and file_size %"
			PRIu64 " for %" PRIu64 " bytes", bs->id, bs->part_size,
			bs->file_size, s->size);
		return -EIO;
	}
	n = (s->size + bs->part_size - 1) / bs->part_size;
	if (n != bs->total_parts || n == 0 || n > UP_MAX_PARTS) {
		log_err("upload: session %s announces %" PRIu32 " parts, expected %"
			PRIu64, bs->id, bs->total_parts, n);
		return -EIO;
	}
	s->st = calloc(n, 1);
	s->parts = calloc(n, sizeof(*s->parts));
	s->pmd = calloc(n, sizeof(*s->pmd));
	s->pmd_ok = calloc(n, 1);
	if (!s->st || !s->parts || !s->pmd || !s->pmd_ok) {
		free(s->st);
		free(s->parts);
		free(s->pmd);
		free(s->pmd_ok);
		s->st = NULL;
		s->parts = NULL;
		s->pmd = NULL;
		s->pmd_ok = NULL;
		return -ENOMEM;
	}
	s->bs = *bs;
	s->ready = 1;
	return 0;
}

/* Create the session on the server; a name clash on a new file turns into
 * a new version of the clashing file. Called without any lock; only the
 * caller touches s->file_id while s->creating is set. */
static int upload_sess_create(struct usess *s, struct box_session *bs)
{
	char conflict[BOX_ID_MAX] = "";
	int rc;

	rc = box_session_create(s->file_id[0] ? NULL : s->parent_id,
				s->file_id[0] ? s->file_id : NULL, s->name,
				s->size, bs, conflict);
	if (rc == -EEXIST && !s->file_id[0] && conflict[0]) {
		log_info("upload: %s exists on the server, uploading a new version "
			 "of %s", s->name, conflict);
		snprintf(s->file_id, sizeof(s->file_id), "%s", conflict);
		rc = box_session_create(NULL, s->file_id, s->name, s->size, bs,
					NULL);
	}
	return rc;
}

/* ---- part jobs ---- */

struct upload_pjob {
	struct upload *u;
	struct usess *s;
	uint32_t k;
	int md_ok;              /* md was computed while the part was written */
	unsigned char md[20];
};

static void upload_pump(struct upload *u, int all);

static void upload_part_range(const struct usess *s, uint32_t k,
			      uint64_t *off, uint64_t *len)
{
	*off = (uint64_t)k * s->bs.part_size;
	*len = s->bs.file_size - *off;
	if (*len > s->bs.part_size)
		*len = s->bs.part_size;
}

/* Part buffers are mapped, not malloc'ed: unmapping gives the memory back
 * to the system at once, so the resident size follows the budget instead
 * of whatever the allocator keeps cached per thread. */
static void *upload_buf_get(size_t len)
{
	void *p = mmap(NULL, len ? len : 1, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void upload_buf_put(void *p, size_t len)
{
	if (p)
		munmap(p, len ? len : 1);
}

static int upload_spool_covers(int fd, uint64_t end)
{
	struct stat st;

	return !fstat(fd, &st) && (uint64_t)st.st_size >= end;
}

/* SHA-1 of [off, off+len) of the spool, read in UP_IO_CHUNK pieces. */
static int upload_hash_range(int fd, uint64_t off, uint64_t len,
			     unsigned char md[20])
{
	void *tmp = malloc(len < UP_IO_CHUNK ? len : UP_IO_CHUNK);
	int rc = tmp ? 0 : -ENOMEM;
	struct sha1 c;

	sha1_init(&c);
	while (!rc && len) {
		size_t n = len < UP_IO_CHUNK ? len : UP_IO_CHUNK;

		rc = upload_pread_full(fd, tmp, n, off);
		if (!rc)
			sha1_update(&c, tmp, n);
		off += n;
		len -= n;
	}
	if (!rc)
		sha1_final(&c, md);
	free(tmp);
	return rc;
}

/* md_ok: md is the part's SHA-1, computed while it was written (no
 * write reached the part since, or the session would have been dropped) */
static int upload_part_send(struct upload *u, struct usess *s, uint32_t k,
			    int md_ok, unsigned char md[20], struct box_part *out)
{
	uint64_t off, len;
	char hex[41];
	void *buf;
	int rc;

	upload_part_range(s, k, &off, &len);
	if (upload_spool_covers(u->fd, off + len)) {
		/* hashed, then streamed from the spool: memory does not grow
		 * with the part size (64-128 MiB parts for big files) */
		rc = md_ok ? 0 : upload_hash_range(u->fd, off, len, md);
		if (!rc)
			rc = box_session_put_part_fd(&s->bs, off, u->fd, len, md, out);
	} else {
		/* the spool ends early (reads as zeros): send from memory */
		buf = upload_buf_get(len);
		if (!buf)
			return -ENOMEM;
		rc = upload_pread_full(u->fd, buf, len, off);
		if (!rc) {
			codec_sha1(buf, len, md);
			rc = box_session_put_part(&s->bs, off, buf, len, md, out);
		}
		upload_buf_put(buf, len);
	}
	if (rc)
		return rc;
	codec_hex_encode(md, 20, hex);
	if (out->offset != off || out->size != len ||
	    (out->sha1[0] && strcasecmp(out->sha1, hex))) {
		log_err("upload: session %s: server recorded part %" PRIu64 "+%"
			PRIu64 " sha1 %s, sent %" PRIu64 "+%" PRIu64 " sha1 %s",
			s->bs.id, out->offset, out->size, out->sha1, off, len, hex);
		return -EIO;
	}
	if (!out->sha1[0])
		memcpy(out->sha1, hex, sizeof(hex));
	return 0;
}

static void upload_part_job(void *arg)
{
	struct upload_pjob *j = arg;
	struct upload *u = j->u;
	struct usess *s = j->s;
	struct box_part part;
	uint64_t off, len;
	int rc;

	memset(&part, 0, sizeof(part));
	upload_part_range(s, j->k, &off, &len);
	rc = upload_part_send(u, s, j->k, j->md_ok, j->md, &part);
	upload_budget_release(len);

	pthread_mutex_lock(&u->lock);
	s->inflight--;
	if (!rc) {
		s->st[j->k] = P_DONE;
		s->parts[j->k] = part;
		s->ndone++;
		stats_upload_part(u, len, s->ndone, s->bs.total_parts);
		if (u->sess == s)
			upload_journal_update(u);
		log_debug("upload: session %s part %" PRIu32 " accepted (%" PRIu32
			  "/%" PRIu32 ")", s->bs.id, j->k, s->ndone,
			  s->bs.total_parts);
	} else {
		s->st[j->k] = P_FAILED;
		if (!s->err)
			s->err = rc;
		if (!s->dead)
			log_warn("upload: session %s part at %" PRIu64 " failed: %s",
				 s->bs.id, off, upload_reason(rc));
	}
	if (!s->dead && !u->committing && u->sess == s)
		upload_pump(u, 0);
	upload_sess_put(s);
	u->jobs--;
	pthread_mutex_unlock(&u->lock);
	upload_notify();  /* u may be gone from here on */
	free(j);
}

/* Queue the parts that can go now. all == 0 (streaming): parts whose bytes
 * are all written, in order, except the first when hold_first: it is held
 * back until the commit, so a header rewritten after the body (WAV, MP4, zip
 * writers) costs no re-send. all == 1 (commit): every part not done. At most
 * part_parallel in flight; memory reserved before a job exists. */
static void upload_pump(struct upload *u, int all)
{
	struct usess *s = u->sess;
	uint32_t k;

	if (!s || !s->ready || s->dead || s->err)
		return;
	if (!all && (u->scattered || !u->fetched || u->size > s->bs.file_size))
		return;
	for (k = all ? 0 : s->cursor; k < s->bs.total_parts; k++) {
		struct upload_pjob *j;
		uint64_t off, len;
		int rc;

		if (s->inflight >= upload_parallel())
			break;
		if (s->st[k] == P_QUEUED || s->st[k] == P_DONE ||
		    (!all && !k && s->hold_first))
			continue;
		upload_part_range(s, k, &off, &len);
		if (!all && u->prefix < off + len)
			break;
		if (!upload_budget_try(len))
			break;
		j = malloc(sizeof(*j));
		if (!j) {
			upload_budget_release(len);
			s->err = -ENOMEM;
			break;
		}
		j->u = u;
		j->s = s;
		j->k = k;
		j->md_ok = s->pmd_ok[k];
		memcpy(j->md, s->pmd[k], sizeof(j->md));
		s->st[k] = P_QUEUED;
		s->inflight++;
		s->refs++;
		u->jobs++;
		rc = worker_submit(upload_part_job, j);
		if (rc) {
			s->st[k] = P_NONE;
			s->inflight--;
			s->refs--;
			u->jobs--;
			upload_budget_release(len);
			free(j);
			s->err = rc;
			log_err("upload: cannot queue a part (error %d)", -rc);
			break;
		}
		if (!all)
			s->cursor = k + 1;
	}
}

/* Streaming writers wait while more than a couple of completed parts are
 * not on their way yet: memory (budget) or the per-file cap is the limit. */
static int upload_must_wait(struct upload *u)
{
	struct usess *s = u->sess;
	uint64_t ready;

	if (!s || !s->ready || s->dead || s->err || u->scattered || !u->fetched ||
	    u->size > s->bs.file_size)
		return 0;
	ready = u->prefix / s->bs.part_size;
	if (u->prefix >= s->bs.file_size)
		ready = s->bs.total_parts;
	return ready > (uint64_t)s->cursor + UP_LAG_PARTS;
}

/* ---- session creation job ---- */

struct upload_cjob {
	struct upload *u;
	struct usess *s;
};

static void upload_create_job(void *arg)
{
	struct upload_cjob *j = arg;
	struct upload *u = j->u;
	struct usess *s = j->s;
	struct box_session bs;
	int rc;

	memset(&bs, 0, sizeof(bs));
	rc = upload_sess_create(s, &bs);

	pthread_mutex_lock(&u->lock);
	s->creating = 0;
	if (rc) {
		s->err = rc;
		if (!s->dead)
			log_warn("upload: cannot start a session for %s (%s); the "
				 "data is sent at close", s->name, upload_reason(rc));
	} else if (s->dead) {
		upload_abort_async(&bs);
	} else {
		rc = upload_sess_ready(s, &bs);
		if (rc) {
			s->err = rc;
			upload_abort_async(&bs);
		} else {
			log_debug("upload: session %s for %s: %" PRIu32 " parts of %"
				  PRIu64, bs.id, s->name, bs.total_parts,
				  bs.part_size);
			if (u->sess == s)
				upload_journal_update(u);
			upload_pump(u, 0);
		}
	}
	upload_sess_put(s);
	u->jobs--;
	pthread_mutex_unlock(&u->lock);
	upload_notify();
	free(j);
}

/* ---- the spool ---- */

static int upload_spool_open(struct upload *u)
{
	char *path;
	unsigned long seq;
	int fd;

	if (u->fd >= 0)
		return 0;
	if (!up.dir)
		return -ENOENT;  /* upload_init was not called */
	pthread_mutex_lock(&up.lock);
	seq = ++up.seq;
	pthread_mutex_unlock(&up.lock);
	if (asprintf(&path, "%s/spool-%d-%lu", up.dir, (int)getpid(), seq) < 0)
		return -ENOMEM;
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;

		log_err("upload: cannot create a spool file in %s: %s", up.dir,
			strerror(e));
		free(path);
		return -e;
	}
	u->fd = fd;
	u->path = path;
	return 0;
}

static void upload_sha_reset(struct upload *u)
{
	sha1_init(&u->sha);
	u->sha_off = 0;
	u->sha_valid = 1;
	u->psha_on = 0;
}

/* Take [sha_off, sha_off + n) into the whole-file hash. While the hash
 * crosses the parts of a ready session in order, each part's SHA-1 is
 * taken in the same pass (sha1_update2): started at the part's first byte,
 * recorded in pmd at its last, so its PUT need not read the spool for the
 * Digest. A write into a part clears its pmd_ok (upload_mark_written). */
static void upload_sha_feed(struct upload *u, const unsigned char *p,
			    uint64_t n, int parts)
{
	struct usess *s = parts ? u->sess : NULL;

	if (s && (!s->ready || s->dead || s->bs.part_size % 64))
		s = NULL;
	if (!s)
		u->psha_on = 0;
	while (n) {
		uint64_t ps, k, pend, m = n;

		if (!s || u->sha_off >= s->bs.file_size) {
			sha1_update(&u->sha, p, n);
			u->sha_off += n;
			return;
		}
		ps = s->bs.part_size;
		k = u->sha_off / ps;
		pend = (k + 1) * ps;
		if (pend > s->bs.file_size)
			pend = s->bs.file_size;
		if (m > pend - u->sha_off)
			m = pend - u->sha_off;
		if (u->sha_off == k * ps) {
			sha1_init(&u->psha);
			u->psha_k = (uint32_t)k;
			u->psha_on = 1;
		}
		if (u->psha_on && u->psha_k == k)
			sha1_update2(&u->sha, &u->psha, p, m);
		else
			sha1_update(&u->sha, p, m);
		u->sha_off += m;
		p += m;
		n -= m;
		if (u->psha_on && u->psha_k == k && u->sha_off == pend) {
			sha1_final(&u->psha, s->pmd[k]);
			s->pmd_ok[k] = 1;
			u->psha_on = 0;
			stats_part_hashed_on_write();
		}
	}
}

/* Hash [sha_off, upto) into the running SHA-1, taking bytes from buf
 * (which holds [boff, boff + blen)) where it can and from the spool
 * otherwise. On trouble the running hash is just invalidated. parts: the
 * lock is held, part hashes may be taken along (upload_sha_feed). */
static void upload_sha_advance(struct upload *u, uint64_t upto,
			       const void *buf, uint64_t boff, uint64_t blen,
			       int parts)
{
	char *tmp = NULL;

	if (!u->sha_valid)
		return;
	while (u->sha_off < upto) {
		uint64_t n;

		if (buf && u->sha_off >= boff && u->sha_off < boff + blen) {
			n = boff + blen - u->sha_off;
			if (n > upto - u->sha_off)
				n = upto - u->sha_off;
			upload_sha_feed(u, (const unsigned char *)buf +
					(u->sha_off - boff), n, parts);
		} else {
			n = upto - u->sha_off;
			if (n > UP_IO_CHUNK)
				n = UP_IO_CHUNK;
			if (buf && u->sha_off < boff && boff < upto &&
			    n > boff - u->sha_off)
				n = boff - u->sha_off;
			if (!tmp)
				tmp = malloc(UP_IO_CHUNK);
			if (!tmp || upload_pread_full(u->fd, tmp, n, u->sha_off)) {
				u->sha_valid = 0;
				break;
			}
			upload_sha_feed(u, (const unsigned char *)tmp, n, parts);
		}
	}
	free(tmp);
}

/* Record that [off, end) was written: prefix, extents, session checks. */
static void upload_mark_written(struct upload *u, uint64_t off, uint64_t end,
				const void *buf)
{
	struct usess *s = u->sess;
	int i;

	if (s && s->ready) {
		uint64_t k0 = off / s->bs.part_size;
		uint64_t k1 = (end - 1) / s->bs.part_size;
		uint64_t k;

		for (k = k0; k <= k1 && k < s->bs.total_parts; k++) {
			if (s->st[k] != P_NONE) {
				log_info("upload: rewrite of part %" PRIu64 " already "
					 "sent: session %s dropped, the file is "
					 "re-sent at close", k, s->bs.id);
				stats_resend();
				upload_sess_drop(u, 1);
				break;
			}
			s->pmd_ok[k] = 0;  /* its digest (if any) is stale */
		}
	}
	s = u->sess;
	if (s && u->size > s->size) {
		log_info("upload: file grew past the declared size %" PRIu64
			 ": session dropped", s->size);
		stats_resend();
		upload_sess_drop(u, 1);
	}
	if (off < u->sha_off)
		u->sha_valid = 0;

	if (off <= u->prefix) {
		if (end > u->prefix)
			u->prefix = end;
	} else if (!u->scattered) {
		/* insert [off, end) sorted, merging neighbours */
		struct up_ext n = { off, end };
		int j = 0;

		for (i = 0; i < u->next; i++) {
			struct up_ext *e = &u->ext[i];

			if (e->e < n.s || e->s > n.e) {
				u->ext[j++] = *e;
				continue;
			}
			n.s = e->s < n.s ? e->s : n.s;
			n.e = e->e > n.e ? e->e : n.e;
		}
		u->next = j;
		if (u->next == UP_MAX_EXT) {
			u->scattered = 1;
		} else {
			for (i = u->next; i > 0 && u->ext[i - 1].s > n.s; i--)
				u->ext[i] = u->ext[i - 1];
			u->ext[i] = n;
			u->next++;
		}
	}
	while (u->next > 0 && u->ext[0].s <= u->prefix) {
		if (u->ext[0].e > u->prefix)
			u->prefix = u->ext[0].e;
		memmove(&u->ext[0], &u->ext[1], (u->next - 1) * sizeof(u->ext[0]));
		u->next--;
	}
	upload_sha_advance(u, u->prefix, buf, off, end - off, 1);
}

/* Bring Box's content [0, min(upto, remote_size)) into the spool. Called
 * with the lock held and !fetched && !fetching; drops the lock for the
 * downloads (others wait on `fetching`). */
static int upload_fetch(struct upload *u, uint64_t upto)
{
	uint64_t n = upto < u->remote_size ? upto : u->remote_size;
	uint64_t off = 0;
	char id[BOX_ID_MAX];
	char *buf = NULL;
	int rc;

	rc = upload_spool_open(u);
	if (!rc)
		rc = upload_spool_reserve(u, n);
	if (rc == -EAGAIN)
		rc = -ENOSPC;
	if (rc)
		return rc;
	if (n && !(buf = malloc(UP_FETCH_CHUNK)))
		return -ENOMEM;
	memcpy(id, u->file_id, sizeof(id));
	u->fetching = 1;
	upload_sha_reset(u);
	pthread_mutex_unlock(&u->lock);

	/* Only this thread touches the spool and the hash while fetching. */
	while (!rc && off < n) {
		size_t want = n - off > UP_FETCH_CHUNK ? UP_FETCH_CHUNK : n - off;
		size_t got = 0;
		ssize_t w;

		rc = box_download(id, off, want, buf, &got);
		if (rc)
			break;
		w = upload_pwrite_full(u->fd, buf, got, off);
		if (w < 0) {
			rc = (int)w;
			break;
		}
		sha1_update(&u->sha, buf, got);
		off += got;
		if (got < want)
			break;  /* the file is shorter than we were told */
	}
	if (!rc && ftruncate(u->fd, (off_t)off))
		rc = -errno;
	free(buf);

	pthread_mutex_lock(&u->lock);
	u->fetching = 0;
	if (rc) {
		log_err("upload: cannot fetch file %s into the spool: %s", id,
			upload_reason(rc));
		upload_sha_reset(u);
	} else {
		u->fetched = 1;
		u->size = off;
		u->prefix = off;
		u->next = 0;
		u->sha_off = off;
	}
	upload_notify();
	return rc;
}

/* Wait until no commit or fetch runs on u, then make sure the spool holds
 * the content (fetch_upto: how much of Box's content is needed). Returns
 * with the lock held; 0 or -errno. */
static int upload_settle(struct upload *u, uint64_t fetch_upto)
{
	for (;;) {
		uint64_t gen = upload_gen();
		int rc;

		if (u->committing || u->fetching) {
			upload_wait(u, gen);
			continue;
		}
		if (!u->fetched) {
			if (fetch_upto == 0) {
				/* truncate to 0: Box's content is not needed */
				u->fetched = 1;
				u->size = 0;
				u->prefix = 0;
				upload_sha_reset(u);
				return upload_spool_open(u);
			}
			rc = upload_fetch(u, fetch_upto);
			if (rc)
				return rc;
			continue;
		}
		return upload_spool_open(u);
	}
}

/* ---- public API ---- */

static int upload_mkdirs(const char *dir)
{
	char *p, *c = strdup(dir);
	int rc = 0;

	if (!c)
		return -ENOMEM;
	for (p = c + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char save = *p;

		*p = '\0';
		if (mkdir(c, 0700) && errno != EEXIST) {
			rc = -errno;
			break;
		}
		*p = save;
		if (!save)
			break;
	}
	free(c);
	return rc;
}

/* Read the journal: valid entries whose spool file exists are queued for
 * upload_resume_next; a corrupt entry is reported and skipped, its spool
 * file kept; leftovers of an interrupted journal write are removed. */
static void upload_load_journal(void)
{
	DIR *d = opendir(journal_dir());
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		struct journal_entry e, *n;
		char msg[128] = "", *path, *sp;
		size_t len = strlen(de->d_name);
		struct stat st;
		int rc;

		if (de->d_name[0] == '.' && len > 4 &&
		    !strcmp(de->d_name + len - 4, ".tmp")) {
			unlinkat(dirfd(d), de->d_name, 0);
			continue;
		}
		if (len < 6 || strcmp(de->d_name + len - 5, ".json"))
			continue;
		if (asprintf(&path, "%s/%s", journal_dir(), de->d_name) < 0)
			continue;
		rc = journal_read(path, &e, msg, sizeof(msg));
		if (rc) {
			log_err("upload: journal entry %s unusable (%s): skipped; "
				"its spool file is kept in %s", path,
				rc == -EINVAL ? msg : strerror(-rc), up.dir);
			free(path);
			continue;
		}
		if (strncmp(de->d_name, e.spool, len - 5) || e.spool[len - 5] ||
		    asprintf(&sp, "%s/%s", up.dir, e.spool) < 0) {
			log_err("upload: journal entry %s names another spool "
				"file: skipped", path);
			journal_entry_free(&e);
			free(path);
			continue;
		}
		if (stat(sp, &st) || !S_ISREG(st.st_mode)) {
			log_err("upload: journal entry %s: spool file %s is gone; "
				"%s cannot be uploaded", path, sp, e.name);
			journal_entry_free(&e);
			unlink(path);
			free(sp);
			free(path);
			continue;
		}
		free(sp);
		free(path);
		n = realloc(up.resume, (up.nresume + 1) * sizeof(*n));
		if (!n) {
			journal_entry_free(&e);
			continue;
		}
		up.resume = n;
		up.resume[up.nresume++] = e;
	}
	closedir(d);
	if (up.nresume)
		log_warn("upload: %zu pending upload(s) of an earlier run found "
			 "in the journal: resuming them", up.nresume);
}

/* Remove spool files whose daemon is gone, except those with a journal
 * entry (resumed). */
static void upload_clean_old(void)
{
	DIR *d = opendir(up.dir);
	struct dirent *de;
	int removed = 0;

	if (!d)
		return;
	while ((de = readdir(d))) {
		int pid;
		unsigned long seq;

		if (sscanf(de->d_name, "spool-%d-%lu", &pid, &seq) != 2)
			continue;
		if (pid != getpid() && pid > 0 &&
		    (kill(pid, 0) == 0 || errno == EPERM))
			continue;  /* another live daemon's */
		if (journal_has(de->d_name))
			continue;  /* pending: resumed */
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			removed++;
	}
	closedir(d);
	if (removed)
		log_warn("upload: removed %d spool file(s) of an earlier run in %s "
			 "(their data was never committed)", removed, up.dir);
}

int upload_init(void)
{
	struct stat st;
	char *dir;
	int rc;

	pthread_once(&up_once, up_once_init);
	if (boxfs_opts.cache_dir && boxfs_opts.cache_dir[0]) {
		dir = strdup(boxfs_opts.cache_dir);
	} else {
		const char *x = getenv("XDG_CACHE_HOME");
		const char *h = getenv("HOME");

		if (x && x[0] == '/')
			rc = asprintf(&dir, "%s/boxfs", x);
		else if (h && h[0] == '/')
			rc = asprintf(&dir, "%s/.cache/boxfs", h);
		else
			rc = asprintf(&dir, "/tmp/boxfs-%d", (int)getuid());
		if (rc < 0)
			dir = NULL;
	}
	if (!dir)
		return -ENOMEM;
	rc = upload_mkdirs(dir);
	if (!rc && stat(dir, &st))
		rc = -errno;
	if (!rc && !S_ISDIR(st.st_mode))
		rc = -ENOTDIR;
	if (rc) {
		log_err("upload: cannot use cache_dir %s: %s", dir, strerror(-rc));
		free(dir);
		return rc;
	}
	rc = journal_init(dir);
	if (rc) {
		log_err("upload: cannot create the journal in %s: %s", dir,
			strerror(-rc));
		free(dir);
		return rc;
	}
	free(up.dir);
	up.dir = dir;
	upload_load_journal();
	upload_clean_old();
	return 0;
}

void upload_shutdown(void)
{
	while (up.resume_next < up.nresume)
		journal_entry_free(&up.resume[up.resume_next++]);
	free(up.resume);
	up.resume = NULL;
	up.nresume = up.resume_next = 0;
	free(up.dir);
	up.dir = NULL;
}

struct upload *upload_new(const char *file_id, uint64_t size)
{
	struct upload *u;

	pthread_once(&up_once, up_once_init);
	if (file_id && strlen(file_id) >= BOX_ID_MAX)
		return NULL;
	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	if (pthread_mutex_init(&u->lock, NULL)) {
		free(u);
		return NULL;
	}
	u->fd = -1;
	u->changed_at = upload_mono();
	upload_sha_reset(u);
	if (file_id && file_id[0]) {
		snprintf(u->file_id, sizeof(u->file_id), "%s", file_id);
		u->remote_size = size;
		u->size = size;
		u->fetched = size == 0;
	} else {
		u->fetched = 1;
		u->dirty = 1;  /* Box does not have it yet, even empty */
	}
	return u;
}

void upload_free(struct upload *u)
{
	int keep;

	if (!u)
		return;
	pthread_mutex_lock(&u->lock);
	/* journaled data Box does not have yet stays for the next start,
	 * with its session (resumed then) */
	keep = u->journaled && u->dirty && u->path;
	upload_sess_drop(u, !keep);
	for (;;) {
		uint64_t gen = upload_gen();

		if (!u->jobs && !u->fetching && !u->committing)
			break;
		upload_wait(u, gen);
	}
	upload_spool_release(u, 0);
	pthread_mutex_unlock(&u->lock);
	stats_upload_forget(u);
	if (u->fd >= 0)
		close(u->fd);
	if (keep) {
		log_warn("upload: %s (%" PRIu64 " bytes) not uploaded yet: kept "
			 "in %s with its journal entry for the next start",
			 u->jname, u->size, u->path);
	} else if (u->path) {
		if (u->journaled)
			journal_remove(upload_spool_base(u));
		unlink(u->path);
	}
	free(u->path);
	free(u->jname);
	pthread_mutex_destroy(&u->lock);
	free(u);
	upload_notify();
}

ssize_t upload_write(struct upload *u, const void *buf, size_t len, off_t off)
{
	uint64_t end;
	ssize_t n;
	int rc;

	if (off < 0 || (uint64_t)off > UINT64_MAX - len ||
	    (uint64_t)off + len > (uint64_t)INT64_MAX)
		return -EFBIG;
	if (len == 0)
		return 0;
	end = (uint64_t)off + len;
	pthread_mutex_lock(&u->lock);
	for (;;) {
		uint64_t gen = upload_gen();

		rc = upload_settle(u, UINT64_MAX);
		if (rc)
			goto out;
		rc = upload_spool_reserve(u, end);
		if (rc != -EAGAIN)
			break;
		upload_wait(u, gen);
	}
	if (rc)
		goto out;
	n = upload_pwrite_full(u->fd, buf, len, (uint64_t)off);
	if (n <= 0) {
		rc = n < 0 ? (int)n : -EIO;
		goto out;
	}
	end = (uint64_t)off + n;
	if (end > u->size)
		u->size = end;
	u->dirty = 1;
	u->changed_at = upload_mono();
	u->last_err = 0;  /* new data: the next commit is a new attempt */
	upload_mark_written(u, (uint64_t)off, end, buf);
	for (;;) {
		uint64_t gen = upload_gen();

		upload_pump(u, 0);
		if (!upload_must_wait(u))
			break;
		upload_wait(u, gen);
	}
	pthread_mutex_unlock(&u->lock);
	return n;
out:
	pthread_mutex_unlock(&u->lock);
	return rc;
}

ssize_t upload_read(struct upload *u, void *buf, size_t len, off_t off)
{
	ssize_t n = 0;

	if (off < 0)
		return -EINVAL;
	pthread_mutex_lock(&u->lock);
	for (;;) {
		uint64_t gen = upload_gen();

		if (!u->fetching)
			break;
		upload_wait(u, gen);
	}
	if (!u->fetched) {
		/* Box holds the content: read it straight from there. */
		char id[BOX_ID_MAX];
		uint64_t size = u->remote_size;
		size_t got = 0;
		int rc;

		memcpy(id, u->file_id, sizeof(id));
		pthread_mutex_unlock(&u->lock);
		if ((uint64_t)off >= size)
			return 0;
		if (len > size - (uint64_t)off)
			len = size - (uint64_t)off;
		rc = box_download(id, (uint64_t)off, len, buf, &got);
		return rc ? rc : (ssize_t)got;
	}
	if ((uint64_t)off < u->size) {
		if (len > u->size - (uint64_t)off)
			len = u->size - (uint64_t)off;
		n = u->fd >= 0 ? upload_pread_full(u->fd, buf, len, (uint64_t)off) :
		    (memset(buf, 0, len), 0);
		if (n == 0)
			n = len;
	}
	pthread_mutex_unlock(&u->lock);
	return n;
}

int upload_truncate(struct upload *u, uint64_t size)
{
	struct usess *s;
	uint64_t old;
	int rc, i, j;

	if (size > (uint64_t)INT64_MAX)
		return -EFBIG;
	pthread_mutex_lock(&u->lock);
	old = u->size;
	rc = upload_settle(u, size);
	if (rc)
		goto out;
	if (ftruncate(u->fd, (off_t)size)) {
		rc = -errno;
		goto out;
	}
	s = u->sess;
	if (s && s->ready && size < s->size) {
		uint32_t k;

		/* parts that reach past the new end can no longer be right */
		for (k = size / s->bs.part_size; k < s->bs.total_parts; k++) {
			if (s->st[k] != P_NONE) {
				log_info("upload: truncate below sent data: session %s "
					 "dropped", s->bs.id);
				stats_resend();
				upload_sess_drop(u, 1);
				break;
			}
			s->pmd_ok[k] = 0;
		}
	}
	if (size < u->size)
		upload_spool_release(u, size);
	if (u->prefix > size)
		u->prefix = size;
	for (i = 0, j = 0; i < u->next; i++) {
		if (u->ext[i].s >= size)
			continue;
		if (u->ext[i].e > size)
			u->ext[i].e = size;
		u->ext[j++] = u->ext[i];
	}
	u->next = j;
	if (u->sha_off > size)
		u->sha_valid = 0;
	if (old != size || u->size != size) {
		u->dirty = 1;  /* same size: the content did not change */
		u->changed_at = upload_mono();
		u->last_err = 0;
	}
	u->size = size;
out:
	pthread_mutex_unlock(&u->lock);
	upload_notify();
	return rc;
}

int upload_declare_size(struct upload *u, uint64_t size,
			const char *parent_id, const char *name, int copy)
{
	struct upload_cjob *j;
	struct usess *s;
	int rc = 0;

	pthread_mutex_lock(&u->lock);
	for (;;) {
		uint64_t gen = upload_gen();

		if (!u->committing)
			break;
		upload_wait(u, gen);
	}
	s = u->sess;
	if (u->declared_set && u->declared == size && s && !s->dead && !s->err) {
		s->hold_first |= !copy;
		goto out;  /* already streaming for this size */
	}
	upload_sess_drop(u, 1);
	u->declared_set = 1;
	u->declared = size;
	if (size < upload_chunked_min() || u->size > size)
		goto out;  /* a single-request upload at close */
	if (!u->file_id[0] && (!parent_id || !name || !parent_id[0] || !name[0]))
		goto out;
	s = upload_sess_new(u->file_id[0] ? u->file_id : NULL, parent_id, name,
			    size);
	j = s ? malloc(sizeof(*j)) : NULL;
	if (!j) {
		if (s)
			upload_sess_put(s);
		goto out;  /* fall back to sending at close */
	}
	s->creating = 1;
	s->hold_first = !copy;
	s->refs++;
	u->jobs++;
	u->sess = s;
	stats_upload_begin(u, name, size, 0);
	j->u = u;
	j->s = s;
	rc = worker_submit(upload_create_job, j);
	if (rc) {
		log_warn("upload: cannot queue the session creation (error %d); the "
			 "data is sent at close", -rc);
		s->creating = 0;
		s->refs--;
		u->jobs--;
		free(j);
		upload_sess_drop(u, 0);
		rc = 0;
	}
out:
	pthread_mutex_unlock(&u->lock);
	return rc;
}

uint64_t upload_declared(struct upload *u)
{
	uint64_t n;

	pthread_mutex_lock(&u->lock);
	n = u->declared_set ? u->declared : 0;
	pthread_mutex_unlock(&u->lock);
	return n;
}

uint64_t upload_size(struct upload *u)
{
	uint64_t n;

	pthread_mutex_lock(&u->lock);
	n = u->size;
	pthread_mutex_unlock(&u->lock);
	return n;
}

int upload_failed(struct upload *u)
{
	int f;

	pthread_mutex_lock(&u->lock);
	f = u->dirty && u->last_err != 0;
	pthread_mutex_unlock(&u->lock);
	return f;
}

int upload_dirty(struct upload *u)
{
	int d;

	pthread_mutex_lock(&u->lock);
	d = u->dirty;
	pthread_mutex_unlock(&u->lock);
	return d;
}

/* Final whole-file SHA-1 of [0, size). Runs without the lock: `committing`
 * keeps every writer away from the spool and the hash meanwhile. */
static int upload_sha_final(struct upload *u, uint64_t size,
			    unsigned char md[20])
{
	int rc = 0;

	pthread_mutex_unlock(&u->lock);
	if (!u->sha_valid || u->sha_off > size)
		upload_sha_reset(u);
	upload_sha_advance(u, size, NULL, 0, 0, 0);
	if (!u->sha_valid)
		rc = -EIO;
	else
		sha1_final(&u->sha, md);
	pthread_mutex_lock(&u->lock);
	return rc;
}

static int upload_commit_simple(struct upload *u, const char *parent_id,
				const char *name, time_t mtime,
				const unsigned char md[20], struct box_item *out)
{
	char conflict[BOX_ID_MAX] = "";
	char id[BOX_ID_MAX];
	char hex[41];
	uint64_t size = u->size;
	int rc;

	if (u->sess)  /* declared chunked, ended small: one request instead */
		stats_resend();
	upload_sess_drop(u, 1);
	codec_hex_encode(md, 20, hex);
	memcpy(id, u->file_id, sizeof(id));
	stats_upload_committing(u);
	pthread_mutex_unlock(&u->lock);
	rc = box_upload_simple(parent_id, id[0] ? id : NULL, name, u->fd, size,
			       hex, mtime, out, conflict);
	if (rc == -EEXIST && !id[0] && conflict[0]) {
		log_info("upload: %s exists on the server, uploading a new version "
			 "of %s", name, conflict);
		rc = box_upload_simple(parent_id, conflict, name, u->fd, size, hex,
				       mtime, out, NULL);
	}
	if (!rc)
		stats_bytes(size);
	pthread_mutex_lock(&u->lock);
	return rc;
}

static int upload_sha_matches(const unsigned char md[20], const char *hex)
{
	char h[41];

	codec_hex_encode(md, 20, h);
	return !strcasecmp(h, hex);
}

/* Can the live session carry the file as it is now? */
static int upload_sess_usable(struct upload *u, const char *parent_id,
			      const char *name)
{
	struct usess *s = u->sess;

	if (!s || !s->ready || s->dead || s->err || s->size != u->size)
		return 0;
	if (u->file_id[0])
		return !strcmp(s->orig_id, u->file_id) ||
		       !strcmp(s->file_id, u->file_id);
	return !s->orig_id[0] && !strcmp(s->parent_id, parent_id ? parent_id : "")
	       && !strcmp(s->name, name ? name : "");
}

static int upload_commit_chunked(struct upload *u, const char *parent_id,
				 const char *name, time_t mtime,
				 const unsigned char md[20], struct box_item *out)
{
	struct box_part *parts = NULL;
	struct box_session bs;
	struct usess *s;
	int rc = 0;

	if (!upload_sess_usable(u, parent_id, name)) {
		struct box_session nbs;

		if (u->sess)  /* streamed parts are lost: all goes again */
			stats_resend();
		upload_sess_drop(u, 1);
		s = upload_sess_new(u->file_id[0] ? u->file_id : NULL, parent_id,
				    name, u->size);
		if (!s)
			return -ENOMEM;
		s->creating = 1;
		u->sess = s;
		memset(&nbs, 0, sizeof(nbs));
		pthread_mutex_unlock(&u->lock);
		rc = upload_sess_create(s, &nbs);
		pthread_mutex_lock(&u->lock);
		s->creating = 0;
		if (!rc) {
			rc = upload_sess_ready(s, &nbs);
			if (rc)
				upload_abort_async(&nbs);
		}
		if (rc) {
			upload_sess_drop(u, 0);
			return rc;
		}
		upload_journal_update(u);
	} else {
		log_debug("upload: committing the streamed session %s (%" PRIu32
			  "/%" PRIu32 " parts already up)", u->sess->bs.id,
			  u->sess->ndone, u->sess->bs.total_parts);
	}
	s = u->sess;
	for (;;) {
		uint64_t gen = upload_gen();

		if (s->err && !s->inflight) {
			rc = s->err;
			break;
		}
		if (s->ndone == s->bs.total_parts)
			break;
		upload_pump(u, 1);
		upload_wait(u, gen);
	}
	if (rc) {
		upload_sess_drop(u, 1);
		return rc;
	}
	parts = malloc(s->bs.total_parts * sizeof(*parts));
	if (!parts) {
		upload_sess_drop(u, 1);
		return -ENOMEM;
	}
	memcpy(parts, s->parts, s->bs.total_parts * sizeof(*parts));
	bs = s->bs;
	stats_upload_committing(u);
	pthread_mutex_unlock(&u->lock);
	/* parts[] is indexed by part number, hence sorted by offset */
	rc = box_session_commit(&bs, parts, bs.total_parts, md, mtime, out);
	free(parts);
	pthread_mutex_lock(&u->lock);
	upload_sess_drop(u, rc != 0);
	return rc;
}

int upload_commit(struct upload *u, const char *parent_id, const char *name,
		  time_t mtime, struct box_item *out)
{
	unsigned char md[20];
	int rc;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&u->lock);
	for (;;) {
		uint64_t gen = upload_gen();

		if (!u->committing && !u->fetching)
			break;
		upload_wait(u, gen);
	}
	if (!u->dirty) {
		/* nothing new: describe what Box has */
		out->type = BOX_FILE;
		snprintf(out->id, sizeof(out->id), "%s", u->file_id);
		out->size = u->size;
		pthread_mutex_unlock(&u->lock);
		return 0;
	}
	u->committing = 1;
	if (u->journaled && name && parent_id) {
		char *nm = strdup(name);

		if (nm) {   /* a folded rename/utimens is the target now */
			free(u->jname);
			u->jname = nm;
			snprintf(u->jparent, sizeof(u->jparent), "%s", parent_id);
			u->jmtime = mtime;
		}
	}
	stats_upload_begin(u, name, u->size, 0);
	pthread_mutex_lock(&up.lock);
	up.committing++;
	pthread_mutex_unlock(&up.lock);

	/* the creation job and in-flight parts must finish first */
	for (;;) {
		uint64_t gen = upload_gen();
		struct usess *s = u->sess;

		if (!s || (!s->creating && !s->inflight))
			break;
		upload_wait(u, gen);
	}
	rc = upload_spool_open(u);
	if (!rc)
		rc = upload_sha_final(u, u->size, md);
	if (!rc && u->size < upload_chunked_min()) {
		rc = upload_commit_simple(u, parent_id, name, mtime, md, out);
	} else if (!rc) {
		rc = upload_commit_chunked(u, parent_id, name, mtime, md, out);
		if (rc == -ESTALE) {
			/* the session expired or vanished: once more, anew */
			log_warn("upload: session of %s gone; sending again",
				 name ? name : u->file_id);
			stats_resend();
			rc = upload_commit_chunked(u, parent_id, name, mtime, md,
						   out);
		}
	}
	if (!rc && (out->size != u->size ||
		    (out->sha1[0] && !upload_sha_matches(md, out->sha1))))
		log_warn("upload: Box reports %" PRIu64 " bytes sha1 %s for %s, "
			 "sent %" PRIu64 " bytes", out->size, out->sha1,
			 name ? name : u->file_id, u->size);

	stats_upload_end(u, rc, rc ? upload_reason(rc) : NULL);
	if (rc) {
		log_err("upload: commit of %s (%" PRIu64 " bytes) failed: %s; the "
			"data stays in the spool", name ? name : u->file_id,
			u->size, upload_reason(rc));
		upload_sess_drop(u, 1);
		u->last_err = rc;
		rc = upload_errno(rc);
	} else {
		/* Box has it all now: the spool goes, later writes fetch again */
		log_debug("upload: %s committed as %s (%" PRIu64 " bytes)",
			  name ? name : "", out->id, out->size);
		snprintf(u->file_id, sizeof(u->file_id), "%s", out->id);
		if (u->journaled && u->path)
			journal_remove(upload_spool_base(u));
		u->journaled = 0;
		u->dirty = 0;
		u->committed = 1;
		u->last_err = 0;
		u->declared_set = 0;
		u->remote_size = u->size;
		u->fetched = u->size == 0;
		u->prefix = 0;
		u->next = 0;
		u->scattered = 0;
		upload_sha_reset(u);
		if (ftruncate(u->fd, 0) == 0)
			upload_spool_release(u, 0);
	}
	u->committing = 0;
	pthread_mutex_lock(&up.lock);
	up.committing--;
	pthread_mutex_unlock(&up.lock);
	pthread_mutex_unlock(&u->lock);
	upload_notify();
	return rc;
}

int upload_state(struct upload *u, char *buf, size_t len)
{
	struct usess *s;
	int n;

	pthread_mutex_lock(&u->lock);
	s = u->sess;
	if (s && s->ready && !s->dead && (u->committing || u->dirty))
		n = snprintf(buf, len, "uploading %" PRIu32 "/%" PRIu32 " parts",
			     s->ndone, s->bs.total_parts);
	else if (u->committing)
		n = snprintf(buf, len, "committing");
	else if (u->dirty && u->last_err)
		n = snprintf(buf, len, "failed: %s", upload_reason(u->last_err));
	else if (u->dirty)
		n = snprintf(buf, len, "writing");
	else if (u->committed)
		n = snprintf(buf, len, "committed");
	else
		n = snprintf(buf, len, "clean");
	pthread_mutex_unlock(&u->lock);
	if (n < 0)
		return 0;
	return (size_t)n >= len ? (int)(len ? len - 1 : 0) : n;
}

/* ---- write-back: persist, discard, resume ---- */

int upload_persist(struct upload *u, const char *parent_id, const char *name,
		   time_t mtime)
{
	char *nm = strdup(name ? name : "");
	int rc, was;

	if (!nm)
		return -ENOMEM;
	pthread_mutex_lock(&u->lock);
	for (;;) {
		uint64_t gen = upload_gen();

		if (!u->committing && !u->fetching)
			break;
		upload_wait(u, gen);
	}
	if (!u->dirty) {  /* a commit got there first */
		pthread_mutex_unlock(&u->lock);
		free(nm);
		return 0;
	}
	rc = upload_settle(u, UINT64_MAX);
	if (!rc && fsync(u->fd))
		rc = -errno;
	if (!rc) {
		was = u->journaled;
		free(u->jname);
		u->jname = nm;
		nm = NULL;
		snprintf(u->jparent, sizeof(u->jparent), "%s",
			 parent_id ? parent_id : "");
		u->jmtime = mtime;
		u->journaled = 1;
		u->changed_at = upload_mono();  /* close/rename/utimens count */
		rc = upload_journal_update(u);
		/* `boxfs status` lists it as queued until the commit */
		stats_upload_begin(u, u->jname, u->size, 0);
		if (rc && !was)
			u->journaled = 0;
	}
	pthread_mutex_unlock(&u->lock);
	free(nm);
	if (rc)
		log_err("upload: cannot make %s durable in the spool: %s",
			name ? name : "", strerror(-rc));
	return rc ? upload_errno(rc) : 0;
}

void upload_discard(struct upload *u)
{
	pthread_mutex_lock(&u->lock);
	if (u->journaled && u->path)
		journal_remove(upload_spool_base(u));
	u->journaled = 0;
	pthread_mutex_unlock(&u->lock);
}

int upload_adopt(struct upload *u, const char *file_id)
{
	int rc = 0;

	pthread_mutex_lock(&u->lock);
	if (u->file_id[0] || !file_id[0] || strlen(file_id) >= BOX_ID_MAX)
		rc = -EINVAL;
	else
		snprintf(u->file_id, sizeof(u->file_id), "%s", file_id);
	pthread_mutex_unlock(&u->lock);
	return rc;
}

static double upload_peek(struct upload *u, int *journaled)
{
	double t;

	pthread_mutex_lock(&u->lock);
	t = u->changed_at;
	*journaled = u->journaled;
	pthread_mutex_unlock(&u->lock);
	return t;
}

int upload_journaled(struct upload *u)
{
	int j;

	upload_peek(u, &j);
	return j;
}

double upload_changed_at(struct upload *u)
{
	int j;

	return upload_peek(u, &j);
}

/* A write state over the spool file of journal entry e (taken over). */
static struct upload *upload_from_entry(struct journal_entry *e)
{
	struct upload *u = upload_new(e->file_id[0] ? e->file_id : NULL, 0);
	struct stat st;
	struct usess *s;

	if (!u)
		return NULL;
	if (asprintf(&u->path, "%s/%s", up.dir, e->spool) < 0) {
		u->path = NULL;
		goto fail;
	}
	u->fd = open(u->path, O_RDWR | O_CLOEXEC);
	if (u->fd < 0 || fstat(u->fd, &st)) {
		log_err("upload: cannot open spool file %s: %s", u->path,
			strerror(errno));
		goto fail;
	}
	if ((uint64_t)st.st_size != e->size)
		log_warn("upload: %s: spool holds %" PRIu64 " bytes, journal "
			 "said %" PRIu64 " (written after the last close); "
			 "uploading what the spool holds", e->name,
			 (uint64_t)st.st_size, e->size);
	u->size = (uint64_t)st.st_size;
	u->prefix = u->size;
	u->fetched = 1;
	u->dirty = 1;
	u->sha_valid = 0;           /* hashed from the spool at commit */
	u->journaled = 1;
	u->jname = e->name;
	e->name = NULL;
	snprintf(u->jparent, sizeof(u->jparent), "%s", e->parent_id);
	u->jmtime = e->mtime;
	pthread_mutex_lock(&up.lock);
	up.spool_used += u->size;
	pthread_mutex_unlock(&up.lock);
	u->spool_bytes = u->size;
	if (e->sess.id[0] && e->sess.file_size == u->size) {
		s = upload_sess_new(e->file_id[0] ? e->file_id : NULL,
				    e->parent_id, u->jname, u->size);
		if (s && upload_sess_ready(s, &e->sess) == 0)
			u->sess = s;
		else if (s)
			upload_sess_put(s);
	}
	return u;
fail:
	/* the spool file and its entry stay for a later start */
	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
	free(u->path);
	u->path = NULL;
	upload_free(u);
	return NULL;
}

struct upload *upload_resume_next(char parent_id[BOX_ID_MAX], char **name,
				  time_t *mtime)
{
	while (up.resume_next < up.nresume) {
		struct journal_entry *e = &up.resume[up.resume_next++];
		struct upload *u;

		*name = strdup(e->name);
		snprintf(parent_id, BOX_ID_MAX, "%s", e->parent_id);
		*mtime = e->mtime;
		u = *name ? upload_from_entry(e) : NULL;
		journal_entry_free(e);
		if (u)
			return u;
		free(*name);
		*name = NULL;
	}
	return NULL;
}

/* Ask the server which parts of the resumed session it holds; keep those
 * whose SHA-1 matches the spool. A gone session is forgotten (the commit
 * creates a new one). */
int upload_resume_sync(struct upload *u)
{
	struct box_session bs;
	struct box_part *parts = NULL;
	size_t n = 0, i;
	struct usess *s;
	int rc;

	pthread_mutex_lock(&u->lock);
	s = u->sess;
	if (!s || !s->ready || s->dead) {
		pthread_mutex_unlock(&u->lock);
		return 0;
	}
	bs = s->bs;
	pthread_mutex_unlock(&u->lock);
	rc = box_session_list_parts(&bs, &parts, &n);
	pthread_mutex_lock(&u->lock);
	if (rc == -ESTALE || rc == -ENOENT) {
		log_warn("upload: session %s of %s expired meanwhile: a new "
			 "session sends the whole file", bs.id, u->jname);
		upload_sess_drop(u, 0);
		rc = 0;
	} else if (!rc && u->sess == s) {
		for (i = 0; i < n; i++) {
			uint64_t off, len, k = parts[i].offset / bs.part_size;
			unsigned char md[20];
			char hex[41];

			if (k >= bs.total_parts || s->st[k] == P_DONE)
				continue;
			upload_part_range(s, (uint32_t)k, &off, &len);
			if (off != parts[i].offset || len != parts[i].size)
				continue;
			/* in 1 MiB reads, not the whole part in memory */
			if (upload_hash_range(u->fd, off, len, md))
				continue;
			codec_hex_encode(md, 20, hex);
			if (!strcasecmp(hex, parts[i].sha1)) {
				s->st[k] = P_DONE;
				s->parts[k] = parts[i];
				memcpy(s->parts[k].sha1, hex, sizeof(hex));
				s->ndone++;
			}
		}
		log_info("upload: resuming %s: session %s holds %" PRIu32 " of %"
			 PRIu32 " parts", u->jname, bs.id, s->ndone,
			 bs.total_parts);
	}
	pthread_mutex_unlock(&u->lock);
	free(parts);
	return rc;
}
