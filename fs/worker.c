/* worker.c - a fixed pool of threads running queued jobs (see worker.h).
 *
 * One mutex protects a FIFO of jobs; idle threads sleep on a condition
 * variable. The queue itself is unbounded: callers bound what a job holds
 * (upload reserves its part buffers in its own memory budget). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "log.h"
#include "worker.h"

struct worker_job {
	worker_fn fn;
	void *arg;
	struct worker_job *next;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct worker_job *head, *tail;
	pthread_t *threads;
	int nthreads;
	int running;    /* accepting jobs */
	int stopping;   /* threads exit once the queue is empty */
} wk = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

static void *worker_main(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&wk.lock);
	for (;;) {
		struct worker_job *j;

		while (!wk.head && !wk.stopping)
			pthread_cond_wait(&wk.cond, &wk.lock);
		j = wk.head;
		if (!j)
			break;  /* stopping and nothing left to run */
		wk.head = j->next;
		if (!wk.head)
			wk.tail = NULL;
		pthread_mutex_unlock(&wk.lock);
		j->fn(j->arg);
		free(j);
		pthread_mutex_lock(&wk.lock);
	}
	pthread_mutex_unlock(&wk.lock);
	return NULL;
}

int worker_init(int nthreads)
{
	sigset_t all, old;
	int i, rc = 0;

	if (nthreads < 1 || nthreads > 1024)
		return -EINVAL;
	pthread_mutex_lock(&wk.lock);
	if (wk.running) {
		pthread_mutex_unlock(&wk.lock);
		return -EALREADY;
	}
	wk.threads = calloc(nthreads, sizeof(*wk.threads));
	if (!wk.threads) {
		pthread_mutex_unlock(&wk.lock);
		return -ENOMEM;
	}
	wk.stopping = 0;
	pthread_mutex_unlock(&wk.lock);

	/* Workers must not take the signals FUSE's main loop waits for. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < nthreads; i++) {
		rc = -pthread_create(&wk.threads[i], NULL, worker_main, NULL);
		if (rc)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	pthread_mutex_lock(&wk.lock);
	wk.nthreads = i;
	if (rc && i == 0) {
		pthread_mutex_unlock(&wk.lock);
		free(wk.threads);
		wk.threads = NULL;
		log_err("worker: cannot start threads (error %d)", -rc);
		return rc;
	}
	if (rc)
		log_warn("worker: started only %d of %d threads", i, nthreads);
	wk.running = 1;
	pthread_mutex_unlock(&wk.lock);
	return 0;
}

int worker_submit(worker_fn fn, void *arg)
{
	struct worker_job *j;

	if (!fn)
		return -EINVAL;
	j = malloc(sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->fn = fn;
	j->arg = arg;
	j->next = NULL;
	pthread_mutex_lock(&wk.lock);
	if (!wk.running) {
		pthread_mutex_unlock(&wk.lock);
		free(j);
		return -ESHUTDOWN;
	}
	if (wk.tail)
		wk.tail->next = j;
	else
		wk.head = j;
	wk.tail = j;
	pthread_cond_signal(&wk.cond);
	pthread_mutex_unlock(&wk.lock);
	return 0;
}

void worker_shutdown(void)
{
	int i, n;

	pthread_mutex_lock(&wk.lock);
	if (!wk.running) {
		pthread_mutex_unlock(&wk.lock);
		return;
	}
	wk.running = 0;
	wk.stopping = 1;
	n = wk.nthreads;
	pthread_cond_broadcast(&wk.cond);
	pthread_mutex_unlock(&wk.lock);

	for (i = 0; i < n; i++)
		pthread_join(wk.threads[i], NULL);

	pthread_mutex_lock(&wk.lock);
	free(wk.threads);
	wk.threads = NULL;
	wk.nthreads = 0;
	wk.stopping = 0;
	pthread_mutex_unlock(&wk.lock);
}
