/* Unit tests of predict.c against a fake /proc tree: PID/fd/N are symlinks
 * to real files (stat follows them like the kernel's magic links),
 * PID/fdinfo/N hold pos/flags/mnt_id/ino as the kernel writes them. */
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "predict.h"

#define MIN 1000
#define PID 4242
#define MNT_ID 77

static char top[64];     /* mkdtemp'd: proc/, files/ and "m nt/" */

static void mkpath(char *out, const char *fmt, ...)
{
	char rel[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	snprintf(out, PATH_MAX, "%s/%s", top, rel);
}

/* A real file of `size` bytes under files/ (or mnt/ when name says so). */
static void make_file(const char *name, off_t size)
{
	char p[PATH_MAX];
	int fd;

	mkpath(p, "%s", name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	close(fd);
}

/* fd N of PID points at `name` (relative to top) with read position pos,
 * open flags (octal in fdinfo), on mount `mnt`. */
static void add_fd(int pid, int n, const char *name, uint64_t pos,
		   int flags, int mnt)
{
	char link[PATH_MAX], target[PATH_MAX], info[PATH_MAX];
	struct stat st;
	FILE *f;

	mkpath(link, "proc/%d/fd/%d", pid, n);
	mkpath(target, "%s", name);
	unlink(link);
	assert_int_equal(symlink(target, link), 0);
	mkpath(info, "proc/%d/fdinfo/%d", pid, n);
	f = fopen(info, "w");
	assert_non_null(f);
	fprintf(f, "pos:\t%llu\nflags:\t0%o\nmnt_id:\t%d\n",
		(unsigned long long)pos, flags, mnt);
	if (stat(target, &st) == 0)
		fprintf(f, "ino:\t%llu\n", (unsigned long long)st.st_ino);
	fclose(f);
}

static void rm_fd(int pid, int n)
{
	char p[PATH_MAX];

	mkpath(p, "proc/%d/fd/%d", pid, n);
	unlink(p);
	mkpath(p, "proc/%d/fdinfo/%d", pid, n);
	unlink(p);
}

static void clear_fds(int pid)
{
	int n;

	for (n = 0; n < 16; n++)
		rm_fd(pid, n);
}

static int run(const char *cmd)
{
	return system(cmd);
}

static int setup(void **state)
{
	static const char *const dirs[] = {
		"proc", "proc/self", "proc/%d", "proc/%d/fd", "proc/%d/fdinfo",
		"files", "m nt",
	};
	char p[PATH_MAX], mnt[PATH_MAX];
	FILE *f;
	int i;

	(void)state;
	snprintf(top, sizeof(top), "/tmp/boxfs-predict-XXXXXX");
	assert_non_null(mkdtemp(top));
	for (i = 0; i < (int)(sizeof(dirs) / sizeof(dirs[0])); i++) {
		mkpath(p, dirs[i], PID);
		assert_int_equal(mkdir(p, 0700), 0);
	}
	mkpath(mnt, "m nt");
	mkpath(p, "proc/self/mountinfo");
	f = fopen(p, "w");
	assert_non_null(f);
	fprintf(f, "22 1 0:21 / /proc rw - proc proc rw\n");
	fprintf(f, "%d 22 0:50 / %s/m\\040nt rw - fuse.boxfs boxfs rw\n",
		MNT_ID, top);
	fclose(f);
	mkpath(p, "proc");
	predict_init(p, mnt, MIN);
	make_file("files/src", 5000);
	make_file("files/other", 5000);
	make_file("files/small", 500);
	make_file("m nt/onmount", 5000);
	mkpath(p, "files/fifo");
	assert_int_equal(mkfifo(p, 0600), 0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	return run(cmd) ? -1 : 0;
}

static void test_mount_id(void **state)
{
	char mi[PATH_MAX], mnt[PATH_MAX];

	(void)state;
	mkpath(mi, "proc/self/mountinfo");
	mkpath(mnt, "m nt");
	assert_int_equal(predict_mount_id(mi, mnt), MNT_ID);
	assert_int_equal(predict_mount_id(mi, "/proc"), 22);
	assert_int_equal(predict_mount_id(mi, "/nowhere"), -1);
	assert_int_equal(predict_mount_id("/nonexistent/mountinfo", mnt), -1);
}

/* cp: stdin a pipe, fd 3 the source (read), fd 4 the target (write-only,
 * on our mount). */
static void cp_like(uint64_t pos)
{
	clear_fds(PID);
	add_fd(PID, 0, "files/fifo", 0, O_RDONLY, 5);
	add_fd(PID, 3, "files/src", pos, O_RDONLY, 5);
	add_fd(PID, 4, "m nt/onmount", 0, O_WRONLY, MNT_ID);
}

static void test_one_source(void **state)
{
	struct predict_src src;

	(void)state;
	cp_like(128);
	assert_int_equal(predict_size(PID, 0, 128, &src), 5000);
	assert_int_equal(src.fd, 3);
	assert_int_equal(src.size, 5000);
	/* the source read ahead a bit (pv, dd blocks split by FUSE) */
	cp_like(4096);
	assert_int_equal(predict_size(PID, 0, 128, NULL), 5000);
	/* O_RDWR sources count as readable */
	clear_fds(PID);
	add_fd(PID, 5, "files/src", 100, O_RDWR, 5);
	assert_int_equal(predict_size(PID, 0, 100, NULL), 5000);
	/* no such process / nothing open */
	assert_int_equal(predict_size(99999, 0, 100, NULL), 0);
	assert_int_equal(predict_size(0, 0, 100, NULL), 0);
	clear_fds(PID);
	assert_int_equal(predict_size(PID, 0, 100, NULL), 0);
}

static void test_ambiguous(void **state)
{
	(void)state;
	cp_like(128);
	add_fd(PID, 5, "files/other", 128, O_RDONLY, 5);
	assert_int_equal(predict_size(PID, 0, 128, NULL), 0);
	/* a second fd on the same file is still two readers: no guess */
	add_fd(PID, 5, "files/src", 128, O_RDONLY, 5);
	assert_int_equal(predict_size(PID, 0, 128, NULL), 0);
	/* a write-only second file does not count */
	add_fd(PID, 5, "files/other", 0, O_WRONLY | O_APPEND, 5);
	assert_int_equal(predict_size(PID, 0, 128, NULL), 5000);
	/* nor does an O_PATH one */
	add_fd(PID, 5, "files/other", 0, O_PATH, 5);
	assert_int_equal(predict_size(PID, 0, 128, NULL), 5000);
}

static void test_positions(void **state)
{
	(void)state;
	cp_like(100);   /* read less than written: not the source */
	assert_int_equal(predict_size(PID, 0, 128, NULL), 0);
	cp_like(128);   /* the first write must start the copy... */
	assert_int_equal(predict_size(PID, 0, 128, NULL), 5000);
	assert_int_equal(predict_size(PID, 256, 128, NULL), 0);
	clear_fds(PID);  /* read far ahead of the writes */
	make_file("files/big", 40ULL << 20);
	add_fd(PID, 3, "files/big", (20ULL << 20), O_RDONLY, 5);
	assert_int_equal(predict_size(PID, 0, 128, NULL), 0);
	add_fd(PID, 3, "files/big", (20ULL << 20), O_RDONLY, 5);
	assert_int_equal(predict_size(PID, (20ULL << 20) - 128, 128, NULL),
			 40ULL << 20);
	/* a source smaller than chunked_min: nothing to gain */
	clear_fds(PID);
	add_fd(PID, 3, "files/small", 128, O_RDONLY, 5);
	assert_int_equal(predict_size(PID, 0, 128, NULL), 0);
	/* position past the size (the file shrank under the reader) */
	clear_fds(PID);
	add_fd(PID, 3, "files/src", 6000, O_RDONLY, 5);
	assert_int_equal(predict_size(PID, 0, 5000, NULL), 0);
}

static void test_skipped_fds(void **state)
{
	(void)state;
	/* only write-only fds */
	clear_fds(PID);
	add_fd(PID, 3, "files/src", 128, O_WRONLY, 5);
	assert_int_equal(predict_size(PID, 0, 128, NULL), 0);
	/* a file on our mount, recognised by mnt_id... */
	clear_fds(PID);
	add_fd(PID, 3, "files/src", 128, O_RDONLY, MNT_ID);
	assert_int_equal(predict_size(PID, 0, 128, NULL), 0);
	/* ...or by its path when the mount id does not say so */
	add_fd(PID, 3, "m nt/onmount", 128, O_RDONLY, 5);
	assert_int_equal(predict_size(PID, 0, 128, NULL), 0);
	/* a pipe is no source, and does not make the real one ambiguous */
	clear_fds(PID);
	add_fd(PID, 0, "files/fifo", 0, O_RDONLY, 5);
	assert_int_equal(predict_size(PID, 0, 128, NULL), 0);
	add_fd(PID, 3, "files/src", 128, O_RDONLY, 5);
	assert_int_equal(predict_size(PID, 0, 128, NULL), 5000);
}

static void test_races(void **state)
{
	char p[PATH_MAX], target[PATH_MAX];

	(void)state;
	/* the fd was closed between readdir and fdinfo: skipped */
	cp_like(128);
	mkpath(p, "proc/%d/fdinfo/3", PID);
	unlink(p);
	assert_int_equal(predict_size(PID, 0, 128, NULL), 0);
	/* closed between fdinfo and stat (the link dangles) */
	cp_like(128);
	make_file("files/gone", 5000);
	add_fd(PID, 3, "files/gone", 128, O_RDONLY, 5);
	mkpath(p, "files/gone");
	unlink(p);
	assert_int_equal(predict_size(PID, 0, 128, NULL), 0);
	/* closed and reused by another file: fdinfo's ino disagrees */
	cp_like(128);
	mkpath(p, "proc/%d/fd/3", PID);
	unlink(p);
	mkpath(target, "files/other");
	assert_int_equal(symlink(target, p), 0);
	assert_int_equal(predict_size(PID, 0, 128, NULL), 0);
	/* a garbled fdinfo */
	cp_like(128);
	mkpath(p, "proc/%d/fdinfo/3", PID);
	assert_int_equal(truncate(p, 3), 0);
	assert_int_equal(predict_size(PID, 0, 128, NULL), 0);
}

static void test_check(void **state)
{
	struct predict_src src;

	(void)state;
	cp_like(128);
	assert_int_equal(predict_size(PID, 0, 128, &src), 5000);
	cp_like(2048);
	assert_int_equal(predict_check(PID, &src, 1920, 128), 0);
	assert_int_equal(predict_check(PID, &src, 2048, 128), -1);  /* pos */
	make_file("files/src", 6000);  /* grew */
	cp_like(2048);
	assert_int_equal(predict_check(PID, &src, 1920, 128), -1);
	make_file("files/src", 5000);
	cp_like(2048);
	assert_int_equal(predict_check(PID, &src, 1920, 128), 0);
	rm_fd(PID, 3);   /* closed */
	assert_int_equal(predict_check(PID, &src, 1920, 128), -1);
	cp_like(2048);   /* fd 3 now another file of the same size */
	add_fd(PID, 3, "files/other", 2048, O_RDONLY, 5);
	assert_int_equal(predict_check(PID, &src, 1920, 128), -1);
}

/* The per-fd state machine: the first write predicts, later ones verify. */
static void test_write_flow(void **state)
{
	struct predict *p = NULL;
	uint64_t n = 0;

	(void)state;
	cp_like(128);
	/* not the first write of an empty file: nothing */
	assert_int_equal(predict_write(&p, PID, 0, 128, 10, 0, &n), PREDICT_NONE);
	assert_int_equal(predict_write(&p, PID, 128, 128, 0, 0, &n), PREDICT_NONE);
	/* a size announced by the program wins */
	assert_int_equal(predict_write(&p, PID, 0, 128, 0, 777, &n), PREDICT_NONE);
	assert_null(p);
	assert_int_equal(predict_write(&p, PID, 0, 128, 0, 0, &n),
			 PREDICT_DECLARE);
	assert_int_equal(n, 5000);
	assert_non_null(p);
	cp_like(256);
	assert_int_equal(predict_write(&p, PID, 128, 128, 128, 5000, &n),
			 PREDICT_NONE);
	/* a seek: withdrawn at once, then quiet */
	cp_like(1024);
	assert_int_equal(predict_write(&p, PID, 896, 128, 256, 5000, &n),
			 PREDICT_DROP);
	assert_int_equal(predict_write(&p, PID, 1024, 128, 1024, 0, &n),
			 PREDICT_NONE);
	/* emptied and copied again: a new prediction */
	cp_like(128);
	assert_int_equal(predict_write(&p, PID, 0, 128, 0, 0, &n),
			 PREDICT_DECLARE);
	/* another process writes to the fd */
	cp_like(256);
	assert_int_equal(predict_write(&p, PID + 1, 128, 128, 128, 5000, &n),
			 PREDICT_DROP);
	predict_free(p);
}

static void test_write_verifies_source(void **state)
{
	struct predict *p = NULL;
	uint64_t n = 0, off;

	(void)state;
	make_file("files/big", 3ULL << 20);
	clear_fds(PID);
	add_fd(PID, 3, "files/big", 65536, O_RDONLY, 5);
	assert_int_equal(predict_write(&p, PID, 0, 65536, 0, 0, &n),
			 PREDICT_DECLARE);
	assert_int_equal(n, 3ULL << 20);
	/* the source shrinks: noticed at the next re-check, not before */
	make_file("files/big", 2ULL << 20);
	for (off = 65536; off < PREDICT_RECHECK; off += 65536) {
		add_fd(PID, 3, "files/big", off + 65536, O_RDONLY, 5);
		assert_int_equal(predict_write(&p, PID, off, 65536, off,
					       n, &n), PREDICT_NONE);
	}
	add_fd(PID, 3, "files/big", off + 65536, O_RDONLY, 5);
	assert_int_equal(predict_write(&p, PID, off, 65536, off, n, &n),
			 PREDICT_DROP);
	predict_free(p);

	/* a copy that runs to the end: verified at the last byte */
	p = NULL;
	make_file("files/big", 3ULL << 20);
	clear_fds(PID);
	add_fd(PID, 3, "files/big", 1ULL << 20, O_RDONLY, 5);
	assert_int_equal(predict_write(&p, PID, 0, 1ULL << 20, 0, 0, &n),
			 PREDICT_DECLARE);
	add_fd(PID, 3, "files/big", 2ULL << 20, O_RDONLY, 5);
	assert_int_equal(predict_write(&p, PID, 1ULL << 20, 1ULL << 20,
				       1ULL << 20, n, &n), PREDICT_NONE);
	add_fd(PID, 3, "files/big", 3ULL << 20, O_RDONLY, 5);
	assert_int_equal(predict_write(&p, PID, 2ULL << 20, 1ULL << 20,
				       2ULL << 20, n, &n), PREDICT_NONE);
	/* the source grew after all: the write past the prediction is the
	 * upload's business (it drops the session itself) */
	assert_int_equal(predict_write(&p, PID, 3ULL << 20, 10, 3ULL << 20,
				       n, &n), PREDICT_NONE);
	assert_int_equal(predict_write(&p, PID, (3ULL << 20) + 10, 10,
				       (3ULL << 20) + 10, n, &n), PREDICT_NONE);
	predict_free(p);
	predict_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mount_id),
		cmocka_unit_test(test_one_source),
		cmocka_unit_test(test_ambiguous),
		cmocka_unit_test(test_positions),
		cmocka_unit_test(test_skipped_fds),
		cmocka_unit_test(test_races),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_write_flow),
		cmocka_unit_test(test_write_verifies_source),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
