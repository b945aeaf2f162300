/* predict.h - predicted final size of a file a program copies into the mount.
 *
 * cp, cat, dd and pv never announce the size they are about to write, but
 * they copy from a regular file whose size is the final size. When the
 * writing process (the FUSE request's pid) holds exactly one regular file
 * open for reading outside the mount, whose size is plausible and whose read
 * position tracks our write offset, that size is the prediction: fsops
 * declares it (upload_declare_size) and the file streams as if the program
 * had announced it. A prediction is verified on every write (sequential,
 * never past it) and the source re-checked every PREDICT_RECHECK bytes and at
 * the last byte; on a mismatch fsops withdraws it (the existing fallback:
 * session aborted, the file sent from the spool at close). The final-size
 * check at commit applies as for any declared size.
 *
 * Only /proc is read (PTRACE_MODE_READ: the writer's own user, or root);
 * files on our own mount are recognised by mnt_id / path without stat(), so
 * the daemon never calls into itself.
 *
 * Owner: predict.c. Thread-safe: the settings are written once by
 * predict_init before the FUSE loop; each struct predict has its own lock. */
#ifndef BOXFS_PREDICT_H
#define BOXFS_PREDICT_H

#include <stdint.h>
#include <sys/types.h>

/* The read position may run ahead of the write by this much (a 1 MiB dd
 * block reaches us as several FUSE writes; pv and cat read ahead). */
#define PREDICT_WINDOW (8ULL << 20)
/* Bytes written between two re-checks of the source. */
#define PREDICT_RECHECK (1ULL << 20)

/* The source file a prediction came from, to re-check it later. */
struct predict_src {
	int fd;            /* its fd number in the writer */
	dev_t dev;
	ino_t ino;
	uint64_t size;     /* the prediction */
};

/* proc_root: "/proc" (unit tests pass a fake tree with the same layout:
 * PID/fd/N links, PID/fdinfo/N, self/mountinfo). mountpoint: our mount (its
 * mnt_id is looked up in proc_root/self/mountinfo; paths under it are
 * skipped too). min: nothing is predicted below this size (chunked_min:
 * a smaller file is one request at close anyway). Call after mounting. */
void predict_init(const char *proc_root, const char *mountpoint, uint64_t min);

/* The mount id of the last mount at `mountpoint` in a mountinfo file, or
 * -1. Octal escapes (\040) of the file are understood. */
int predict_mount_id(const char *mountinfo, const char *mountpoint);

/* Predicted final size of the file `pid` is writing [off, off+len) to, or 0
 * (no or several readable regular files, a source too small, positions that
 * do not track). *src (may be NULL) describes the source. */
uint64_t predict_size(pid_t pid, uint64_t off, uint64_t len,
		      struct predict_src *src);

/* 0 when the source still has the predicted size and the read position
 * tracks [off, off+len), -1 otherwise (closed, replaced, resized, ...). */
int predict_check(pid_t pid, const struct predict_src *src, uint64_t off,
		  uint64_t len);

/* Per writer fd state, allocated on the first prediction (*pp starts NULL;
 * free with predict_free). */
struct predict;

enum predict_action {
	PREDICT_NONE,     /* nothing to do */
	PREDICT_DECLARE,  /* *size is the prediction: declare it */
	PREDICT_DROP,     /* the prediction is wrong: withdraw it now */
};

/* Called before each write of `len` bytes at `off`; cur_size is the file's
 * size before the write, declared the size announced so far (0: none). A
 * prediction is attempted on a write at offset 0 to an empty file with no
 * declared size. A write past the prediction needs no action (the upload
 * drops the session itself); after it and after PREDICT_DROP nothing more
 * happens until the file is written from offset 0 again while empty. */
enum predict_action predict_write(struct predict **pp, pid_t pid, uint64_t off,
				  uint64_t len, uint64_t cur_size,
				  uint64_t declared, uint64_t *size);
void predict_free(struct predict *p);

#endif
