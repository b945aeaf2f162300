/* stats.c - upload counters and the registry of uploads in flight.
 *
 * A plain list under one mutex: there are few uploads at a time and the
 * status is read by a human, so simplicity beats speed. Failed uploads stay
 * listed (the last STATS_MAX_FAILED) so `boxfs status` can say why. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "http.h"
#include "stats.h"

#define STATS_MAX_FAILED 16
#define STATS_NAME_MAX   256

enum stats_st { ST_QUEUED, ST_UPLOADING, ST_COMMITTING, ST_FAILED };

struct stats_ent {
	struct stats_ent *next;
	const void *key;        /* NULL once failed: the upload may be freed */
	char name[STATS_NAME_MAX];
	enum stats_st st;
	uint64_t total, sent;
	uint32_t parts, done;
	double start;           /* monotonic seconds */
	time_t wall_start, wall_end;
	char reason[128];
};

static struct {
	pthread_mutex_t lock;
	struct stats_ent *head;
	int nfailed;
	uint64_t bytes, parts, resends, commits, errors, hashed_on_write;
} st = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

static double stats_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Under st.lock. */
static struct stats_ent *stats_find(const void *key)
{
	struct stats_ent *e;

	for (e = st.head; e; e = e->next)
		if (e->key == key && e->st != ST_FAILED)
			return e;
	return NULL;
}

/* Under st.lock: unlink and free e. */
static void stats_unlink(struct stats_ent *e)
{
	struct stats_ent **pp;

	for (pp = &st.head; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			if (e->st == ST_FAILED)
				st.nfailed--;
			free(e);
			return;
		}
	}
}

void stats_upload_begin(const void *key, const char *name, uint64_t total,
			uint32_t parts)
{
	struct stats_ent *e;

	pthread_mutex_lock(&st.lock);
	e = stats_find(key);
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e)
			goto out;
		e->key = key;
		e->start = stats_now();
		e->wall_start = time(NULL);
		e->next = st.head;
		st.head = e;
	}
	if (name && name[0])
		snprintf(e->name, sizeof(e->name), "%s", name);
	e->total = total;
	if (parts)
		e->parts = parts;
out:
	pthread_mutex_unlock(&st.lock);
}

void stats_upload_part(const void *key, uint64_t bytes, uint32_t done,
		       uint32_t parts)
{
	struct stats_ent *e;

	pthread_mutex_lock(&st.lock);
	st.bytes += bytes;
	st.parts++;
	e = stats_find(key);
	if (e) {
		e->sent += bytes;
		e->done = done;
		e->parts = parts;
		if (e->st == ST_QUEUED)
			e->st = ST_UPLOADING;
	}
	pthread_mutex_unlock(&st.lock);
}

void stats_upload_committing(const void *key)
{
	struct stats_ent *e;

	pthread_mutex_lock(&st.lock);
	e = stats_find(key);
	if (e)
		e->st = ST_COMMITTING;
	pthread_mutex_unlock(&st.lock);
}

/* Under st.lock: drop the oldest failures beyond the limit. */
static void stats_trim_failed(void)
{
	struct stats_ent *e, *last;

	while (st.nfailed > STATS_MAX_FAILED) {
		last = NULL;
		for (e = st.head; e; e = e->next)
			if (e->st == ST_FAILED)
				last = e;  /* the list is newest first */
		if (!last)
			return;
		stats_unlink(last);
	}
}

void stats_upload_end(const void *key, int rc, const char *reason)
{
	struct stats_ent *e;

	pthread_mutex_lock(&st.lock);
	e = stats_find(key);
	if (!rc) {
		st.commits++;
		if (e)
			stats_unlink(e);
		goto out;
	}
	st.errors++;
	if (!e)
		goto out;
	e->st = ST_FAILED;
	e->key = NULL;
	e->wall_end = time(NULL);
	snprintf(e->reason, sizeof(e->reason), "%s", reason ? reason : "error");
	st.nfailed++;
	stats_trim_failed();
out:
	pthread_mutex_unlock(&st.lock);
}

void stats_upload_forget(const void *key)
{
	struct stats_ent *e;

	pthread_mutex_lock(&st.lock);
	e = stats_find(key);
	if (e)
		stats_unlink(e);
	pthread_mutex_unlock(&st.lock);
}

void stats_resend(void)
{
	pthread_mutex_lock(&st.lock);
	st.resends++;
	pthread_mutex_unlock(&st.lock);
}

void stats_part_hashed_on_write(void)
{
	pthread_mutex_lock(&st.lock);
	st.hashed_on_write++;
	pthread_mutex_unlock(&st.lock);
}

void stats_bytes(uint64_t bytes)
{
	pthread_mutex_lock(&st.lock);
	st.bytes += bytes;
	pthread_mutex_unlock(&st.lock);
}

static const char *stats_st_name(enum stats_st s)
{
	switch (s) {
	case ST_QUEUED: return "queued";
	case ST_UPLOADING: return "uploading";
	case ST_COMMITTING: return "committing";
	default: return "failed";
	}
}

/* cJSON numbers are doubles: exact up to 2^53 bytes, plenty. */
static cJSON *stats_ent_json(const struct stats_ent *e, double now)
{
	cJSON *o = cJSON_CreateObject();
	double el = now - e->start;

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "name", e->name);
	cJSON_AddStringToObject(o, "state", stats_st_name(e->st));
	cJSON_AddNumberToObject(o, "bytes", (double)e->sent);
	cJSON_AddNumberToObject(o, "total", (double)e->total);
	cJSON_AddNumberToObject(o, "parts_done", e->done);
	cJSON_AddNumberToObject(o, "parts_total", e->parts);
	cJSON_AddNumberToObject(o, "started", (double)e->wall_start);
	if (e->st == ST_FAILED) {
		cJSON_AddStringToObject(o, "reason", e->reason);
		cJSON_AddNumberToObject(o, "failed_at", (double)e->wall_end);
	} else {
		cJSON_AddNumberToObject(o, "elapsed", el);
		cJSON_AddNumberToObject(o, "rate",
					el > 0.01 ? (double)e->sent / el : 0);
	}
	return o;
}

/* Under st.lock. */
static int stats_add_lists(cJSON *root)
{
	cJSON *fl = cJSON_AddArrayToObject(root, "in_flight");
	cJSON *ql = cJSON_AddArrayToObject(root, "queued");
	cJSON *xl = cJSON_AddArrayToObject(root, "failed");
	double now = stats_now();
	struct stats_ent *e;

	if (!fl || !ql || !xl)
		return -1;
	for (e = st.head; e; e = e->next) {
		cJSON *o = stats_ent_json(e, now);

		if (!o)
			return -1;
		if (e->st == ST_FAILED)
			cJSON_AddItemToArray(xl, o);
		else if (e->st == ST_QUEUED)
			cJSON_AddItemToArray(ql, o);
		else
			cJSON_AddItemToArray(fl, o);
	}
	return 0;
}

char *stats_json(const char *auth, const struct http_counters *hc)
{
	cJSON *root, *c;
	char *out = NULL;
	int rc;

	root = cJSON_CreateObject();
	if (!root)
		return NULL;
	cJSON_AddStringToObject(root, "auth", auth && auth[0] ? auth : "unknown");

	pthread_mutex_lock(&st.lock);
	rc = stats_add_lists(root);
	c = cJSON_AddObjectToObject(root, "counters");
	if (c) {
		cJSON_AddNumberToObject(c, "bytes_uploaded", (double)st.bytes);
		cJSON_AddNumberToObject(c, "parts", (double)st.parts);
		cJSON_AddNumberToObject(c, "retries", (double)hc->retries);
		cJSON_AddNumberToObject(c, "resends", (double)st.resends);
		cJSON_AddNumberToObject(c, "parts_hashed_on_write",
					(double)st.hashed_on_write);
		cJSON_AddNumberToObject(c, "commits", (double)st.commits);
		cJSON_AddNumberToObject(c, "errors", (double)st.errors);
		cJSON_AddNumberToObject(c, "requests", (double)hc->requests);
		cJSON_AddNumberToObject(c, "http_failures", (double)hc->failures);
	}
	pthread_mutex_unlock(&st.lock);
	if (!rc && c)
		out = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return out;
}
