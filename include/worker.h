/* worker.h - a fixed pool of threads running queued jobs.
 *
 * Used for part uploads and read-ahead. Jobs never run on a FUSE thread. The
 * pool does not bound memory: callers that queue buffers (upload) account for
 * them in their own budget before submitting. */
#ifndef BOXFS_WORKER_H
#define BOXFS_WORKER_H

typedef void (*worker_fn)(void *arg);

/* Start `nthreads` workers. Returns 0 or -errno. */
int worker_init(int nthreads);
/* Queue fn(arg). Returns 0, or -errno if the job could not be queued (then
 * fn is not called). Jobs run in FIFO order as threads become free. */
int worker_submit(worker_fn fn, void *arg);
/* Run every queued job, then stop and join the threads. */
void worker_shutdown(void);

#endif
