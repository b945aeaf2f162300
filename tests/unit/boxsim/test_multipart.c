/* Unit tests of boxsim's streaming multipart/form-data parser: the same
 * body is fed in every chunk size from 1 byte up, so boundaries split across
 * chunks and partial delimiter matches inside the data are exercised. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "parse.h"

struct got {
	char names[4][64];
	char files[4][64];
	int has_fn[4];
	char data[4][4096];
	size_t len[4];
	int n, ends, fail_begin;
};

static int on_begin(void *ctx, const char *name, const char *fn, int has)
{
	struct got *g = ctx;

	if (g->fail_begin || g->n >= 4)
		return -1;
	snprintf(g->names[g->n], 64, "%s", name);
	snprintf(g->files[g->n], 64, "%s", fn);
	g->has_fn[g->n] = has;
	g->n++;
	return 0;
}

static int on_data(void *ctx, const char *b, size_t n)
{
	struct got *g = ctx;
	int i = g->n - 1;

	if (g->len[i] + n > sizeof(g->data[i]))
		return -1;
	memcpy(g->data[i] + g->len[i], b, n);
	g->len[i] += n;
	return 0;
}

static int on_end(void *ctx)
{
	((struct got *)ctx)->ends++;
	return 0;
}

static const struct mp_cb cb = { on_begin, on_data, on_end };

/* Data that nearly contains the delimiter several times. */
static const char tricky[] = "line1\r\n--XY not quite\r\n--XY\r\r\n-\r\n--XZ"
			     "\r\r\n--X\r\n-";

static size_t build(char *buf, size_t cap)
{
	int n = snprintf(buf, cap,
		"preamble ignored\r\n"
		"--XYZ\r\n"
		"Content-Disposition: form-data; name=\"attributes\"\r\n\r\n"
		"{\"name\":\"a.txt\",\"parent\":{\"id\":\"0\"}}\r\n"
		"--XYZ\r\n"
		"Content-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
		"Content-Type: application/octet-stream\r\n\r\n"
		"%s\r\n"
		"--XYZ--\r\nepilogue", tricky);

	return (size_t)n;
}

static void test_all_chunk_sizes(void **st)
{
	char body[1024];
	size_t len = build(body, sizeof(body)), chunk, off;

	(void)st;
	for (chunk = 1; chunk <= len; chunk++) {
		struct mp_parser p;
		struct got g;

		memset(&g, 0, sizeof(g));
		assert_int_equal(parse_mp_init(&p, "XYZ", &cb, &g), 0);
		for (off = 0; off < len; off += chunk) {
			size_t n = len - off < chunk ? len - off : chunk;

			assert_int_equal(parse_mp_feed(&p, body + off, n), 0);
		}
		assert_true(parse_mp_done(&p));
		assert_int_equal(g.n, 2);
		assert_int_equal(g.ends, 2);
		assert_string_equal(g.names[0], "attributes");
		assert_int_equal(g.has_fn[0], 0);
		assert_int_equal(g.len[0], strlen("{\"name\":\"a.txt\",\"parent\":{\"id\":\"0\"}}"));
		assert_string_equal(g.names[1], "file");
		assert_string_equal(g.files[1], "a.txt");
		assert_int_equal(g.has_fn[1], 1);
		assert_int_equal(g.len[1], strlen(tricky));
		assert_memory_equal(g.data[1], tricky, strlen(tricky));
	}
}

static void test_no_preamble_binary(void **st)
{
	char body[600];
	unsigned char bin[256];
	struct mp_parser p;
	struct got g;
	size_t n = 0;
	int i;

	(void)st;
	for (i = 0; i < 256; i++)
		bin[i] = (unsigned char)i;
	n += (size_t)sprintf(body, "--b\r\nContent-Disposition: form-data; "
			     "name=\"f\"; filename=\"x\"\r\n\r\n");
	memcpy(body + n, bin, 256);
	n += 256;
	memcpy(body + n, "\r\n--b--", 7);
	n += 7;
	memset(&g, 0, sizeof(g));
	assert_int_equal(parse_mp_init(&p, "b", &cb, &g), 0);
	assert_int_equal(parse_mp_feed(&p, body, n), 0);
	assert_true(parse_mp_done(&p));
	assert_int_equal(g.len[0], 256);
	assert_memory_equal(g.data[0], bin, 256);
}

static void test_errors(void **st)
{
	struct mp_parser p;
	struct got g;
	static const char nocd[] = "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--";
	static const char badafter[] = "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--bXX";
	static const char ok[] = "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--b--";
	static const char trunc[] = "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx";

	(void)st;
	memset(&g, 0, sizeof(g));
	assert_int_equal(parse_mp_init(&p, "b", &cb, &g), 0);
	assert_int_equal(parse_mp_feed(&p, nocd, strlen(nocd)), -1);

	memset(&g, 0, sizeof(g));
	assert_int_equal(parse_mp_init(&p, "b", &cb, &g), 0);
	assert_int_equal(parse_mp_feed(&p, badafter, strlen(badafter)), -1);

	memset(&g, 0, sizeof(g));
	g.fail_begin = 1;	/* a callback error stops the parser */
	assert_int_equal(parse_mp_init(&p, "b", &cb, &g), 0);
	assert_int_equal(parse_mp_feed(&p, ok, strlen(ok)), -1);

	memset(&g, 0, sizeof(g));
	assert_int_equal(parse_mp_init(&p, "b", &cb, &g), 0);
	assert_int_equal(parse_mp_feed(&p, trunc, strlen(trunc)), 0);
	assert_false(parse_mp_done(&p));

	assert_int_equal(parse_mp_init(&p, "", &cb, &g), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_chunk_sizes),
		cmocka_unit_test(test_no_preamble_binary),
		cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
