/* Unit tests of the daemon's name rules (dir.c) and inode table (inode.c):
 * Box name checks, case folding, case-insensitive clashes, id map, moves,
 * detach/free. box_* and upload_free are stubbed: nothing here talks HTTP. */
#include <errno.h>
#include <locale.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "box.h"
#include "dir.h"
#include "inode.h"
#include "options.h"
#include "upload.h"

struct boxfs_opts boxfs_opts = { .dir_ttl = 10, .attr_ttl = 1 };

/* stubs of the modules dir.c and inode.c call */
void upload_free(struct upload *u) { (void)u; }
int box_space(uint64_t *t, uint64_t *u) { *t = 1 << 30; *u = 1 << 20; return 0; }
static struct box_item listing[3];
static int nlisting;
int box_list_folder(const char *id, box_list_cb cb, void *arg)
{
	int i, r;

	(void)id;
	for (i = 0; i < nlisting; i++)
		if ((r = cb(&listing[i], arg)))
			return r;
	return 0;
}

static void test_name_rules(void **state)
{
	char n255[256], n256[257];

	(void)state;
	memset(n255, 'n', 255);
	n255[255] = '\0';
	memset(n256, 'n', 256);
	n256[256] = '\0';
	assert_int_equal(dir_check_name("ok.txt"), 0);
	assert_int_equal(dir_check_name("  leading"), 0);
	assert_int_equal(dir_check_name("日本語"), 0);
	assert_int_equal(dir_check_name(n255), 0);
	assert_int_equal(dir_check_name(n256), -ENAMETOOLONG);
	assert_int_equal(dir_check_name("trailing "), -EINVAL);
	assert_int_equal(dir_check_name("back\\slash"), -EINVAL);
	assert_int_equal(dir_check_name("tab\there"), -EINVAL);
	assert_int_equal(dir_check_name("del\x7f"), -EINVAL);
	assert_int_equal(dir_check_name("."), -EINVAL);
	assert_int_equal(dir_check_name(".."), -EINVAL);
	assert_int_equal(dir_check_name("bad\xff utf8"), -EINVAL);
	assert_true(dir_name_safe("a b"));
	assert_false(dir_name_safe("a/b"));
	assert_false(dir_name_safe(".."));
	assert_false(dir_name_safe(""));
}

/* 255 characters of 3 bytes each are still a legal name */
static void test_name_length_counts_characters(void **state)
{
	char s[255 * 3 + 4];
	int i;

	(void)state;
	for (i = 0; i < 255; i++)
		memcpy(s + 3 * i, "\xe2\x9c\x93", 3);
	s[255 * 3] = '\0';
	assert_int_equal(dir_check_name(s), 0);
	memcpy(s + 255 * 3, "\xe2\x9c\x93", 4);
	assert_int_equal(dir_check_name(s), -ENAMETOOLONG);
}

static void test_fold(void **state)
{
	char *f;

	(void)state;
	f = inode_fold("Report.TXT");
	assert_string_equal(f, "report.txt");
	free(f);
	f = inode_fold("ÜNÏCÖDÉ");
	assert_string_equal(f, "ünïcödé");
	free(f);
}

static struct box_item item(const char *id, const char *name,
			    enum box_type t)
{
	struct box_item it;

	memset(&it, 0, sizeof(it));
	it.type = t;
	snprintf(it.id, sizeof(it.id), "%s", id);
	snprintf(it.name, sizeof(it.name), "%s", name);
	it.size = 5;
	it.mtime = 1500000000;
	return it;
}

static void test_table(void **state)
{
	struct box_item a = item("11", "Photos", BOX_FOLDER);
	struct box_item b = item("12", "a.txt", BOX_FILE);
	struct inode *pa, *pb, *x;
	uint64_t ino_b;

	(void)state;
	assert_int_equal(inode_init("0"), 0);
	inode_lock();
	pa = inode_from_item(1, &a);
	pb = inode_from_item(1, &b);
	assert_non_null(pa);
	assert_non_null(pb);
	ino_b = pb->ino;
	assert_ptr_equal(inode_child(1, "Photos"), pa);
	assert_null(inode_child(1, "photos"));
	assert_ptr_equal(inode_clash(1, "PHOTOS", NULL), pa);
	assert_null(inode_clash(1, "photos", pa));
	assert_ptr_equal(inode_by_id("12"), pb);
	/* a move keeps the inode and the id */
	assert_int_equal(inode_move(pb, pa->ino, "b.txt"), 0);
	assert_null(inode_child(1, "a.txt"));
	assert_ptr_equal(inode_child(pa->ino, "b.txt"), pb);
	/* the same id seen elsewhere moves it, no second inode */
	b = item("12", "c.txt", BOX_FILE);
	x = inode_from_item(1, &b);
	assert_ptr_equal(x, pb);
	assert_ptr_equal(inode_child(1, "c.txt"), pb);
	/* detached and unused: freed */
	inode_detach(pb);
	assert_null(inode_find(ino_b));
	assert_null(inode_by_id("12"));
	inode_unlock();
	inode_cleanup();
}

static void test_refresh_applies_listing(void **state)
{
	struct inode *in;
	uint64_t ino;

	(void)state;
	assert_int_equal(inode_init("0"), 0);
	listing[0] = item("21", "x", BOX_FILE);
	listing[1] = item("22", "y", BOX_FOLDER);
	listing[2] = item("23", "bad/name", BOX_FILE);
	nlisting = 3;
	assert_int_equal(dir_refresh(1, 1), 0);
	inode_lock();
	assert_non_null(inode_child(1, "x"));
	assert_non_null(inode_child(1, "y"));
	assert_null(inode_by_id("23"));         /* unsafe name hidden */
	in = inode_child(1, "x");
	in->nlookup = 1;                        /* the kernel knows it */
	ino = in->ino;
	in = inode_new_local(1, "local");       /* not committed yet */
	assert_non_null(in);
	inode_unlock();
	/* x vanished on the server; the local file stays */
	nlisting = 1;
	listing[0] = item("22", "y", BOX_FOLDER);
	assert_int_equal(dir_refresh(1, 1), 0);
	inode_lock();
	assert_null(inode_child(1, "x"));
	in = inode_find(ino);
	assert_non_null(in);                    /* still looked up */
	assert_int_equal(in->parent, 0);
	assert_non_null(inode_child(1, "local"));
	inode_unlock();
	inode_forget(ino, 1);
	inode_lock();
	assert_null(inode_find(ino));
	inode_unlock();
	inode_cleanup();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_rules),
		cmocka_unit_test(test_name_length_counts_characters),
		cmocka_unit_test(test_fold),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_refresh_applies_listing),
	};

	setlocale(LC_CTYPE, "C.UTF-8");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
