/* Unit tests of boxsim's header, query, time, name and fault parsers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "codec.h"
#include "parse.h"

static void test_content_range(void **st)
{
	uint64_t a, b, t;

	(void)st;
	assert_int_equal(parse_content_range("bytes 0-8388607/20000001", &a,
					     &b, &t), 0);
	assert_true(a == 0 && b == 8388607 && t == 20000001);
	assert_int_equal(parse_content_range("bytes 5-5/6", &a, &b, &t), 0);
	assert_true(a == 5 && b == 5 && t == 6);
	/* syntax errors */
	assert_int_equal(parse_content_range(NULL, &a, &b, &t), -1);
	assert_int_equal(parse_content_range("", &a, &b, &t), -1);
	assert_int_equal(parse_content_range("bytes=0-1/2", &a, &b, &t), -1);
	assert_int_equal(parse_content_range("bytes  0-1/2", &a, &b, &t), -1);
	assert_int_equal(parse_content_range("bytes 0-1/*", &a, &b, &t), -1);
	assert_int_equal(parse_content_range("bytes */2", &a, &b, &t), -1);
	assert_int_equal(parse_content_range("bytes 0-1/2 ", &a, &b, &t), -1);
	assert_int_equal(parse_content_range("bytes -1-2/3", &a, &b, &t), -1);
	assert_int_equal(parse_content_range("bytes 2-1/3", &a, &b, &t), -1);
	assert_int_equal(parse_content_range("Bytes 0-1/2", &a, &b, &t), -1);
	assert_int_equal(parse_content_range(
		"bytes 0-1/99999999999999999999999", &a, &b, &t), -1);
}

static void test_digest(void **st)
{
	unsigned char d[20], want[20];

	(void)st;
	/* sha1("abc") */
	assert_int_equal(codec_hex_decode("a9993e364706816aba3e25717850c26c9cd0d89d",
				     want, 20), 0);
	assert_int_equal(parse_digest_sha1("sha=qZk+NkcGgWq6PiVxeFDCbJzQ2J0=", d), 0);
	assert_memory_equal(d, want, 20);
	assert_int_equal(parse_digest_sha1("SHA=qZk+NkcGgWq6PiVxeFDCbJzQ2J0=", d), 0);
	assert_memory_equal(d, want, 20);
	assert_int_equal(parse_digest_sha1(
		"md5=xyz, sha=qZk+NkcGgWq6PiVxeFDCbJzQ2J0=", d), 0);
	assert_memory_equal(d, want, 20);
	assert_int_equal(parse_digest_sha1(NULL, d), -1);
	assert_int_equal(parse_digest_sha1("", d), -1);
	assert_int_equal(parse_digest_sha1("sha-256=qZk+NkcGgWq6PiVxeFDCbJzQ2J0=", d), -1);
	assert_int_equal(parse_digest_sha1("sha=qZk+NkcGgWq6PiVxeFDCbJzQ2J0", d), -1);
	assert_int_equal(parse_digest_sha1("sha=a9993e364706816aba3e25717850c26c9cd0d89d", d), -1);
	assert_int_equal(parse_digest_sha1("sha=AAAA", d), -1);	/* 3 bytes */
	assert_int_equal(parse_digest_sha1("sha", d), -1);
}

static void test_base64_hex(void **st)
{
	char out[64];
	unsigned char bin[8];

	(void)st;
	codec_b64_encode((const unsigned char *)"ab", 2, out, sizeof(out));
	assert_string_equal(out, "YWI=");
	codec_b64_encode((const unsigned char *)"abc", 3, out, sizeof(out));
	assert_string_equal(out, "YWJj");
	codec_b64_encode((const unsigned char *)"a", 1, out, sizeof(out));
	assert_string_equal(out, "YQ==");
	assert_int_equal(codec_b64_decode("YWI=", bin, sizeof(bin)), 2);
	assert_memory_equal(bin, "ab", 2);
	assert_int_equal(codec_b64_decode("YQ=a", bin, sizeof(bin)), -1);
	assert_int_equal(codec_b64_decode("Y===", bin, sizeof(bin)), -1);
	assert_int_equal(codec_b64_decode("YWJjYWJjYWJj", bin, sizeof(bin)), -1);
	codec_hex_encode((const unsigned char *)"\x01\xab", 2, out);
	assert_string_equal(out, "01ab");
	assert_int_equal(codec_hex_decode("01AB", bin, 2), 0);
	assert_memory_equal(bin, "\x01\xab", 2);
	assert_int_equal(codec_hex_decode("01A", bin, 2), -1);
	assert_int_equal(codec_hex_decode("01AG", bin, 2), -1);
}

static void test_byte_range(void **st)
{
	uint64_t a, b;

	(void)st;
	assert_int_equal(parse_byte_range(NULL, 10, &a, &b), 1);
	assert_int_equal(parse_byte_range("bytes=2-5", 10, &a, &b), 0);
	assert_true(a == 2 && b == 5);
	assert_int_equal(parse_byte_range("bytes=2-", 10, &a, &b), 0);
	assert_true(a == 2 && b == 9);
	assert_int_equal(parse_byte_range("bytes=5-100", 10, &a, &b), 0);
	assert_true(a == 5 && b == 9);
	assert_int_equal(parse_byte_range("bytes=-3", 10, &a, &b), 0);
	assert_true(a == 7 && b == 9);
	assert_int_equal(parse_byte_range("bytes=-30", 10, &a, &b), 0);
	assert_true(a == 0 && b == 9);
	assert_int_equal(parse_byte_range("bytes=10-", 10, &a, &b), -2);
	assert_int_equal(parse_byte_range("bytes=0-", 0, &a, &b), -2);
	assert_int_equal(parse_byte_range("bytes=5-2", 10, &a, &b), -1);
	assert_int_equal(parse_byte_range("items=0-1", 10, &a, &b), -1);
	assert_int_equal(parse_byte_range("bytes=0-1,3-4", 10, &a, &b), 1);
}

static void test_time(void **st)
{
	int64_t t;
	char buf[32];

	(void)st;
	assert_int_equal(parse_time("2020-01-02T03:04:05Z", &t), 0);
	assert_int_equal(t, 1577934245);
	assert_int_equal(parse_time("2020-01-02T03:04:05.999+01:00", &t), 0);
	assert_int_equal(t, 1577934245 - 3600);
	assert_int_equal(parse_time("2020-01-02T03:04:05-08:00", &t), 0);
	assert_int_equal(t, 1577934245 + 8 * 3600);
	parse_time_fmt(1577934245, buf);
	assert_string_equal(buf, "2020-01-02T03:04:05Z");
	assert_int_equal(parse_time("2020-01-02 03:04:05Z", &t), -1);
	assert_int_equal(parse_time("2020-01-02T03:04:05", &t), -1);
	assert_int_equal(parse_time("2020-13-02T03:04:05Z", &t), -1);
	assert_int_equal(parse_time("1969-12-31T23:59:59Z", &t), -1);
	assert_int_equal(parse_time("2020-01-02T03:04:05+0100", &t), -1);
	assert_int_equal(parse_time("garbage", &t), -1);
	assert_int_equal(parse_time(NULL, &t), -1);
}

static void test_names(void **st)
{
	char longname[300];

	(void)st;
	assert_int_equal(parse_name_check("report.pdf"), NAME_OK);
	assert_int_equal(parse_name_check(" leading space"), NAME_OK);
	assert_int_equal(parse_name_check("a<b>:c|?*"), NAME_OK);
	assert_int_equal(parse_name_check("caf\xc3\xa9"), NAME_OK);
	assert_int_equal(parse_name_check(""), NAME_INVALID);
	assert_int_equal(parse_name_check(NULL), NAME_INVALID);
	assert_int_equal(parse_name_check("."), NAME_INVALID);
	assert_int_equal(parse_name_check(".."), NAME_INVALID);
	assert_int_equal(parse_name_check("..."), NAME_OK);
	assert_int_equal(parse_name_check("a/b"), NAME_INVALID);
	assert_int_equal(parse_name_check("a\\b"), NAME_INVALID);
	assert_int_equal(parse_name_check("trailing "), NAME_INVALID);
	assert_int_equal(parse_name_check("tab\there"), NAME_INVALID);
	assert_int_equal(parse_name_check("del\x7f"), NAME_INVALID);
	assert_int_equal(parse_name_check("bad\xc3"), NAME_INVALID);
	memset(longname, 'x', 255);
	longname[255] = 0;
	assert_int_equal(parse_name_check(longname), NAME_OK);
	longname[255] = 'x';
	longname[256] = 0;
	assert_int_equal(parse_name_check(longname), NAME_TOO_LONG);
	/* 255 two-byte characters are 510 bytes but still 255 characters */
	{
		char u[600];
		int i;

		for (i = 0; i < 255; i++)
			memcpy(u + 2 * i, "\xc3\xa9", 2);
		u[510] = 0;
		assert_int_equal(parse_name_check(u), NAME_OK);
	}
}

static void test_form(void **st)
{
	char v[64];

	(void)st;
	assert_int_equal(parse_form_get("a=1&grant_type=refresh_token&b=2",
					"grant_type", v, sizeof(v)), 0);
	assert_string_equal(v, "refresh_token");
	assert_int_equal(parse_form_get("x=a%2Fb+c", "x", v, sizeof(v)), 0);
	assert_string_equal(v, "a/b c");
	assert_int_equal(parse_form_get("xx=1", "x", v, sizeof(v)), -1);
	assert_int_equal(parse_form_get("x", "x", v, sizeof(v)), 0);
	assert_string_equal(v, "");
	assert_int_equal(parse_form_get("x=%zz", "x", v, sizeof(v)), -1);
	assert_int_equal(parse_form_get("x=%2", "x", v, sizeof(v)), -1);
	assert_int_equal(parse_form_get("x=0123456789", "x", v, 5), -1);
	assert_int_equal(parse_form_get("", "x", v, sizeof(v)), -1);
}

static void test_boundary(void **st)
{
	char b[80];

	(void)st;
	assert_int_equal(parse_mp_boundary(
		"multipart/form-data; boundary=----abc", b, sizeof(b)), 0);
	assert_string_equal(b, "----abc");
	assert_int_equal(parse_mp_boundary(
		"multipart/form-data; charset=x; boundary=\"q u\"", b,
		sizeof(b)), 0);
	assert_string_equal(b, "q u");
	assert_int_equal(parse_mp_boundary("application/json", b, sizeof(b)), -1);
	assert_int_equal(parse_mp_boundary("multipart/form-data", b, sizeof(b)), -1);
	assert_int_equal(parse_mp_boundary(NULL, b, sizeof(b)), -1);
	assert_int_equal(parse_mp_boundary("multipart/form-data; boundary=\"\"",
					   b, sizeof(b)), -1);
}

static void test_fault_spec(void **st)
{
	struct fault_spec f;
	char err[128];

	(void)st;
	assert_int_equal(parse_fault_spec("kind=status", &f, err, sizeof(err)), 0);
	assert_int_equal(f.kind, FK_STATUS);
	assert_int_equal(f.status, 503);
	assert_true(f.nth == 1 && f.count == 1 && f.retry_after == 1);
	assert_string_equal(f.method, "");
	assert_int_equal(parse_fault_spec(
		"kind=status,method=PUT,path=/api/2.0/files/upload_sessions/*,nth=3,count=0,status=429,retry_after=7",
		&f, err, sizeof(err)), 0);
	assert_string_equal(f.method, "PUT");
	assert_string_equal(f.path, "/api/2.0/files/upload_sessions/*");
	assert_true(f.nth == 3 && f.count == 0 && f.status == 429 &&
		    f.retry_after == 7);
	assert_int_equal(parse_fault_spec("kind=reset,after=1000", &f, err,
					  sizeof(err)), 0);
	assert_true(f.kind == FK_RESET && f.after == 1000);
	assert_int_equal(parse_fault_spec("kind=delay,ms=250", &f, err,
					  sizeof(err)), 0);
	assert_true(f.kind == FK_DELAY && f.ms == 250);
	assert_int_equal(parse_fault_spec("kind=commit202,count=2", &f, err,
					  sizeof(err)), 0);
	assert_int_equal(f.kind, FK_COMMIT202);
	assert_int_equal(parse_fault_spec("kind=expire", &f, err, sizeof(err)), 0);
	assert_int_equal(f.kind, FK_EXPIRE);
	assert_int_equal(parse_fault_spec("kind=corrupt,body=types", &f, err,
					  sizeof(err)), 0);
	assert_true(f.kind == FK_CORRUPT && f.body == FB_TYPES && f.status == 200);
	assert_int_equal(parse_fault_spec("kind=corrupt,body=huge,bytes=1000,status=201",
					  &f, err, sizeof(err)), 0);
	assert_true(f.body == FB_HUGE && f.bytes == 1000 && f.status == 201);
	assert_int_equal(parse_fault_spec("kind=corrupt", &f, err, sizeof(err)), -1);
	assert_int_equal(parse_fault_spec("kind=corrupt,body=odd", &f, err, sizeof(err)), -1);
	/* errors */
	assert_int_equal(parse_fault_spec("", &f, err, sizeof(err)), -1);
	assert_int_equal(parse_fault_spec("method=PUT", &f, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "kind"));
	assert_int_equal(parse_fault_spec("kind=boom", &f, err, sizeof(err)), -1);
	assert_int_equal(parse_fault_spec("kind=status,nth=0", &f, err, sizeof(err)), -1);
	assert_int_equal(parse_fault_spec("kind=status,nth=x", &f, err, sizeof(err)), -1);
	assert_int_equal(parse_fault_spec("kind=status,status=99", &f, err, sizeof(err)), -1);
	assert_int_equal(parse_fault_spec("kind=status,frob=1", &f, err, sizeof(err)), -1);
	assert_int_equal(parse_fault_spec("kind=status,nth", &f, err, sizeof(err)), -1);
	assert_int_equal(parse_fault_spec(NULL, &f, err, sizeof(err)), -1);
}

static void test_json_nul(void **st)
{
	static const char nul[] = "{\"a\":\"x\\u0000y\"}";
	static const char esc[] = "{\"a\":\"x\\\\u0000y\"}";
	static const char one[] = "{\"a\":\"x\\u0001y\"}";

	assert_int_equal(parse_json_has_nul(nul, strlen(nul)), 1);
	assert_int_equal(parse_json_has_nul(esc, strlen(esc)), 0);
	assert_int_equal(parse_json_has_nul(one, strlen(one)), 0);
	(void)st;
	assert_int_equal(parse_json_has_nul("ab\0c", 4), 1);
	assert_int_equal(parse_json_has_nul("\\", 1), 0);
}

static void test_u64(void **st)
{
	uint64_t v;

	(void)st;
	assert_int_equal(parse_u64("0", &v), 0);
	assert_int_equal(parse_u64("12345", &v), 0);
	assert_true(v == 12345);
	assert_int_equal(parse_u64("", &v), -1);
	assert_int_equal(parse_u64("-1", &v), -1);
	assert_int_equal(parse_u64("1 ", &v), -1);
	assert_int_equal(parse_u64("99999999999999999999", &v), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_content_range),
		cmocka_unit_test(test_digest),
		cmocka_unit_test(test_base64_hex),
		cmocka_unit_test(test_byte_range),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_form),
		cmocka_unit_test(test_boundary),
		cmocka_unit_test(test_fault_spec),
		cmocka_unit_test(test_u64),
		cmocka_unit_test(test_json_nul),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
