/* Unit tests of config.c: the config file's line parser and key checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"

struct raw { char *dir_ttl; };
static const struct fuse_opt spec[] = {
	{ "dir_ttl=%s", offsetof(struct raw, dir_ttl), 1 },
	FUSE_OPT_END
};

static int parse(const char *in, char **k, char **v, const char **why)
{
	static char buf[256];

	snprintf(buf, sizeof(buf), "%s", in);
	*why = NULL;
	return config_parse_line(buf, k, v, why);
}

static void test_lines(void **state)
{
	const char *why;
	char *k, *v;

	(void)state;
	assert_int_equal(parse("", &k, &v, &why), 0);
	assert_int_equal(parse("   \t\n", &k, &v, &why), 0);
	assert_int_equal(parse("# dir_ttl=5\n", &k, &v, &why), 0);
	assert_int_equal(parse("  # indented comment", &k, &v, &why), 0);
	assert_int_equal(parse("dir_ttl=5\n", &k, &v, &why), 1);
	assert_string_equal(k, "dir_ttl");
	assert_string_equal(v, "5");
	assert_int_equal(parse("  dir_ttl =  5 \r\n", &k, &v, &why), 1);
	assert_string_equal(k, "dir_ttl");
	assert_string_equal(v, "5");
	assert_int_equal(parse("allow_other\n", &k, &v, &why), 1);
	assert_string_equal(k, "allow_other");
	assert_null(v);
	/* a value may hold '=' and ',' */
	assert_int_equal(parse("fsname=a=b,c", &k, &v, &why), 1);
	assert_string_equal(v, "a=b,c");
}

static void test_bad_lines(void **state)
{
	const char *why;
	char *k, *v;

	(void)state;
	assert_int_equal(parse("=5", &k, &v, &why), -1);
	assert_non_null(why);
	assert_int_equal(parse("dir_ttl=", &k, &v, &why), -1);
	assert_non_null(strstr(why, "value"));
	assert_int_equal(parse("dir_ttl 5", &k, &v, &why), -1);
	assert_int_equal(parse("-o dir_ttl=5", &k, &v, &why), -1);
	assert_int_equal(parse("Dir_TTL=5", &k, &v, &why), -1);
	assert_int_equal(parse("a,b", &k, &v, &why), -1);
}

static void test_known(void **state)
{
	const char *why;

	(void)state;
	assert_true(config_known(spec, "dir_ttl", "5", &why));
	assert_true(config_known(spec, "allow_other", NULL, &why));
	assert_true(config_known(spec, "fsname", "x", &why));
	assert_true(config_known(spec, "_netdev", NULL, &why));
	why = NULL;
	assert_false(config_known(spec, "dir_ttl", NULL, &why));
	assert_non_null(strstr(why, "needs a value"));
	assert_false(config_known(spec, "allow_other", "1", &why));
	assert_non_null(strstr(why, "no value"));
	assert_false(config_known(spec, "bogus", "1", &why));
	assert_non_null(strstr(why, "unknown"));
	assert_false(config_known(spec, "token", "abc", &why));
	assert_non_null(strstr(why, "token_file"));
	assert_false(config_known(spec, "config", "/x", &why));
}

/* the file's options come first, the command line after (and wins), and
 * a mount.fuse3 source word is dropped */
static void test_build_args(void **state)
{
	char dir[] = "/tmp/boxfs-cfgtest-XXXXXX", path[64], opt[160];
	struct fuse_args a;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/cfg", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("# comment\ndir_ttl=7\nfsname=a,b\n", f);
	fclose(f);
	snprintf(opt, sizeof(opt), "config=%s,dir_ttl=3", path);
	{
		char *argv[] = { "boxfs", "box", "/mnt", "-o", opt, NULL };

		assert_int_equal(config_build_args(5, argv, spec, &a), 0);
	}
	assert_int_equal(a.argc, 8);
	assert_string_equal(a.argv[1], "-o");
	assert_string_equal(a.argv[2], "dir_ttl=7");
	assert_string_equal(a.argv[4], "fsname=a\\,b");
	assert_string_equal(a.argv[5], "/mnt");
	assert_string_equal(a.argv[7], opt);
	fuse_opt_free_args(&a);
	/* value errors can name the line that set the value... */
	{
		int line = 0;

		assert_string_equal(config_origin("dir_ttl", "7", &line), path);
		assert_int_equal(line, 2);
		/* ...but not a value the command line overrode */
		assert_null(config_origin("dir_ttl", "3", &line));
		assert_null(config_origin("attr_ttl", "1", &line));
	}
	config_free();

	f = fopen(path, "w");
	assert_non_null(f);
	fputs("dir_ttl=7\n\nnope=1\n", f);
	fclose(f);
	{
		char *argv[] = { "boxfs", "-o", opt, "/mnt", NULL };

		assert_int_equal(config_build_args(4, argv, spec, &a), -1);
	}
	fuse_opt_free_args(&a);
	config_free();
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_known),
		cmocka_unit_test(test_build_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
