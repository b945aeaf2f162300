/* test_journal.c - the write-back journal: entries round-trip, are written
 * atomically with the right modes, and a corrupt or truncated entry is a
 * clear error (never a crash or a half-read entry).
 *
 * Owner: wb. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "journal.h"
#include "log.h"

static char dir[] = "/tmp/boxfs-test-journal-XXXXXX";

static void sample(struct journal_entry *e, struct box_part *parts)
{
	memset(e, 0, sizeof(*e));
	strcpy(e->spool, "spool-42-7");
	strcpy(e->parent_id, "123");
	e->name = "r\xc3\xa9sum\xc3\xa9 \"q\".txt";
	e->size = 3 * 1048576 + 5;
	e->mtime = 1700000000;
	strcpy(e->sha1, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	strcpy(e->sess.id, "SESS1");
	e->sess.file_size = e->size;
	e->sess.part_size = 1048576;
	e->sess.total_parts = 4;
	e->sess.expires_at = 1800000000;
	memset(parts, 0, 2 * sizeof(*parts));
	strcpy(parts[0].part_id, "P0");
	parts[0].size = 1048576;
	strcpy(parts[0].sha1, "aa");
	strcpy(parts[1].part_id, "P2");
	parts[1].offset = 2 * 1048576;
	parts[1].size = 1048576;
	strcpy(parts[1].sha1, "bb");
	e->parts = parts;
	e->nparts = 2;
}

static void test_round_trip(void **st)
{
	struct journal_entry e, d;
	struct box_part parts[2];
	char *txt, msg[128];

	(void)st;
	sample(&e, parts);
	txt = journal_encode(&e);
	assert_non_null(txt);
	assert_int_equal(journal_decode(txt, strlen(txt), &d, msg, sizeof(msg)),
			 0);
	assert_string_equal(d.spool, e.spool);
	assert_string_equal(d.parent_id, "123");
	assert_string_equal(d.file_id, "");
	assert_string_equal(d.name, e.name);
	assert_int_equal(d.size, e.size);
	assert_int_equal(d.mtime, e.mtime);
	assert_string_equal(d.sha1, e.sha1);
	assert_string_equal(d.sess.id, "SESS1");
	assert_int_equal(d.sess.total_parts, 4);
	assert_int_equal(d.sess.part_size, 1048576);
	assert_int_equal(d.nparts, 2);
	assert_int_equal(d.parts[1].offset, 2 * 1048576);
	assert_string_equal(d.parts[1].part_id, "P2");
	journal_entry_free(&d);
	free(txt);
}

static void test_write_read_modes(void **st)
{
	struct journal_entry e, d;
	struct box_part parts[2];
	char path[256], msg[128];
	struct stat s;

	(void)st;
	sample(&e, parts);
	assert_int_equal(journal_write(&e), 0);
	assert_true(journal_has("spool-42-7"));
	assert_int_equal(stat(journal_dir(), &s), 0);
	assert_int_equal(s.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/spool-42-7.json", journal_dir());
	assert_int_equal(stat(path, &s), 0);
	assert_int_equal(s.st_mode & 0777, 0600);
	e.size = 9;              /* rewrite: replaced whole */
	e.sess.id[0] = '\0';
	assert_int_equal(journal_write(&e), 0);
	assert_int_equal(journal_read(path, &d, msg, sizeof(msg)), 0);
	assert_int_equal(d.size, 9);
	assert_string_equal(d.sess.id, "");
	assert_null(d.parts);
	journal_entry_free(&d);
	journal_remove("spool-42-7");
	assert_false(journal_has("spool-42-7"));
	/* names that could escape the directory are refused */
	strcpy(e.spool, "../x");
	assert_int_equal(journal_write(&e), -EINVAL);
}

static void test_corrupt_and_truncated(void **st)
{
	struct journal_entry e, d;
	struct box_part parts[2];
	char msg[128], *txt;
	size_t n, cut;
	static const char *bad[] = {
		"", "null", "[]", "{}", "{\"v\":2}",
		"{\"v\":1,\"spool\":\"../etc\",\"parent_id\":\"0\",\"name\":\"a\","
		"\"file_id\":\"\",\"size\":1,\"mtime\":0,\"sha1\":\"\"}",
		"{\"v\":1,\"spool\":\"s\",\"parent_id\":\"\",\"name\":\"a\","
		"\"file_id\":\"\",\"size\":1,\"mtime\":0,\"sha1\":\"\"}",
		"{\"v\":1,\"spool\":\"s\",\"parent_id\":\"0\",\"name\":\"a\","
		"\"file_id\":\"\",\"size\":-1,\"mtime\":0,\"sha1\":\"\"}",
		"{\"v\":1,\"spool\":\"s\",\"parent_id\":\"0\",\"name\":\"a\","
		"\"file_id\":\"\",\"size\":1,\"mtime\":0,\"sha1\":\"\","
		"\"session\":{\"id\":\"S\",\"file_size\":1,\"part_size\":0,"
		"\"total_parts\":1,\"expires_at\":0,\"parts\":[]}}",
	};

	(void)st;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		msg[0] = '\0';
		assert_int_equal(journal_decode(bad[i], strlen(bad[i]), &d, msg,
						sizeof(msg)), -EINVAL);
		assert_true(msg[0] != '\0');
		assert_null(d.name);
		assert_null(d.parts);
	}
	/* every truncation of a valid entry is refused, none crashes */
	sample(&e, parts);
	txt = journal_encode(&e);
	assert_non_null(txt);
	n = strlen(txt);
	for (cut = 0; cut < n; cut++)
		assert_int_equal(journal_decode(txt, cut, &d, msg, sizeof(msg)),
				 -EINVAL);
	free(txt);
}

static int setup(void **st)
{
	(void)st;
	log_setup(LOG_LVL_ERR, 0);
	if (!mkdtemp(dir))
		return -1;
	return journal_init(dir);
}

static int teardown(void **st)
{
	char cmd[128];

	(void)st;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) ? -1 : 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_write_read_modes),
		cmocka_unit_test(test_corrupt_and_truncated),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
