/* Unit tests of codec.c: base64, hex, SHA-1, RFC 3339, URL escaping, ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "codec.h"

static void test_b64(void **state)
{
	static const struct { const char *in, *out; } v[] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};
	char out[64];
	unsigned char back[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		int n = codec_b64_encode((const unsigned char *)v[i].in,
					 strlen(v[i].in), out, sizeof(out));
		assert_int_equal(n, strlen(v[i].out));
		assert_string_equal(out, v[i].out);
		n = codec_b64_decode(v[i].out, back, sizeof(back));
		assert_int_equal(n, strlen(v[i].in));
		assert_memory_equal(back, v[i].in, n);
	}
	/* too small an output buffer is refused, not overrun */
	assert_int_equal(codec_b64_encode((const unsigned char *)"foo", 3, out, 4), -1);
	assert_int_equal(codec_b64_decode("Zm9v", back, 2), -1);
	/* malformed input */
	assert_int_equal(codec_b64_decode("Zm9", back, sizeof(back)), -1);
	assert_int_equal(codec_b64_decode("Zm=v", back, sizeof(back)), -1);
	assert_int_equal(codec_b64_decode("Zm9*", back, sizeof(back)), -1);
	assert_int_equal(codec_b64_decode("====", back, sizeof(back)), -1);
}

static void test_sha1(void **state)
{
	unsigned char md[20], back[20];
	char hex[41], b64[CODEC_B64_LEN(20) + 1];

	(void)state;
	codec_sha1("abc", 3, md);
	codec_hex_encode(md, 20, hex);
	assert_string_equal(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
	codec_b64_encode(md, 20, b64, sizeof(b64));
	assert_string_equal(b64, "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
	codec_sha1("", 0, md);
	codec_hex_encode(md, 20, hex);
	assert_string_equal(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	assert_int_equal(codec_hex_decode("DA39A3EE5E6B4B0D3255BFEF95601890AFD80709",
					  back, 20), 0);
	assert_memory_equal(back, md, 20);
	assert_int_equal(codec_hex_decode("da39", back, 20), -1);
	assert_int_equal(codec_hex_decode("zz39a3ee5e6b4b0d3255bfef95601890afd80709",
					  back, 20), -1);
}

static void test_time(void **state)
{
	char buf[32];
	time_t t;

	(void)state;
	assert_int_equal(codec_time_format(0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1970-01-01T00:00:00Z");
	assert_int_equal(codec_time_format(1491613088, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2017-04-08T00:58:08Z");
	assert_int_equal(codec_time_format(1491613088, buf, 20), -1);
	assert_int_equal(codec_time_format(-1, buf, sizeof(buf)), -1);
	assert_int_equal(codec_time_format((time_t)300000000000LL, buf, sizeof(buf)), -1);

	assert_int_equal(codec_time_parse("2017-04-08T00:58:08Z", &t), 0);
	assert_int_equal(t, 1491613088);
	assert_int_equal(codec_time_parse("2012-12-12T10:53:43-08:00", &t), 0);
	assert_int_equal(t, 1355338423);
	assert_int_equal(codec_time_parse("2012-12-12T20:23:43+01:30", &t), 0);
	assert_int_equal(t, 1355338423);
	assert_int_equal(codec_time_parse("2017-04-08T00:58:08.123456Z", &t), 0);
	assert_int_equal(t, 1491613088);
	assert_int_equal(codec_time_parse("2017-04-08t00:58:08z", &t), 0);
	assert_int_equal(t, 1491613088);

	assert_int_equal(codec_time_parse("", &t), -1);
	assert_int_equal(codec_time_parse("2017-04-08", &t), -1);
	assert_int_equal(codec_time_parse("2017-04-08T00:58:08", &t), -1);
	assert_int_equal(codec_time_parse("2017-13-08T00:58:08Z", &t), -1);
	assert_int_equal(codec_time_parse("2017-04-08T25:58:08Z", &t), -1);
	assert_int_equal(codec_time_parse("2017-04-08T00:58:08Zjunk", &t), -1);
	assert_int_equal(codec_time_parse("2017-04-08T00:58:08+0100", &t), -1);
	assert_int_equal(codec_time_parse("2017-04-08T00:58:08.Z", &t), -1);
}

static void test_url(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(codec_url_escape("abc-._~XYZ09", out, sizeof(out)), 12);
	assert_string_equal(out, "abc-._~XYZ09");
	assert_int_equal(codec_url_escape("a b/c&d=e+\xc3\xa9", out, sizeof(out)), 26);
	assert_string_equal(out, "a%20b%2Fc%26d%3De%2B%C3%A9");
	assert_int_equal(codec_url_escape("abc", out, 3), -1);
	assert_int_equal(codec_url_escape("/", out, 3), -1);
	assert_int_equal(codec_url_escape("/", out, 4), 3);

	assert_true(codec_id_ok("0"));
	assert_true(codec_id_ok("12345"));
	assert_true(codec_id_ok("F971964745A5CD0C001BBE4E58196BFD"));
	assert_false(codec_id_ok(""));
	assert_false(codec_id_ok(NULL));
	assert_false(codec_id_ok("12/../34"));
	assert_false(codec_id_ok("1?x=2"));
	assert_false(codec_id_ok("1 2"));
	assert_false(codec_id_ok("1234567890123456789012345678901234567890123456789012345678901234"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64),
		cmocka_unit_test(test_sha1),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_url),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
