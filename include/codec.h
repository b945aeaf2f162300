/* codec.h - small pure encoders/decoders used by the Box client.
 *
 * No allocation unless stated, no global state: safe from any thread and
 * easy to unit-test (tests/unit/fs/test_codec.c).
 *
 * Owner: codec.c. */
#ifndef BOXFS_CODEC_H
#define BOXFS_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Length of the base64 text (with padding, without NUL) of n bytes. */
#define CODEC_B64_LEN(n) ((((n) + 2) / 3) * 4)

/* Standard base64 with '=' padding. out needs CODEC_B64_LEN(len) + 1 bytes.
 * Returns the text length, or -1 when outlen is too small. */
int codec_b64_encode(const unsigned char *in, size_t len, char *out,
		     size_t outlen);
/* Decode standard base64 (padding required, no whitespace). Returns the
 * number of bytes written, or -1 on bad input or a too small buffer. */
int codec_b64_decode(const char *in, unsigned char *out, size_t outlen);

/* Lower-case hex of len bytes into out (2 * len + 1 bytes). */
void codec_hex_encode(const unsigned char *in, size_t len, char *out);
/* Exactly 2 * outlen hex digits (either case) into outlen bytes. 0 or -1. */
int codec_hex_decode(const char *in, unsigned char *out, size_t outlen);

/* SHA-1 of a buffer. */
void codec_sha1(const void *buf, size_t len, unsigned char md[20]);

/* RFC 3339 in UTC, "2017-04-08T00:58:08Z"; buf needs 21 bytes. Returns 0,
 * -1 when buflen is too small or t is before 1970 or after 9999. */
int codec_time_format(time_t t, char *buf, size_t buflen);
/* Parse RFC 3339 ("YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)"; 't' and
 * 'z' accepted in lower case). Fractions are dropped (1 s precision).
 * 0 or -1 on anything malformed. */
int codec_time_parse(const char *s, time_t *out);

/* Percent-encode everything but RFC 3986 unreserved characters. Returns the
 * length written (NUL-terminated) or -1 when outlen is too small. */
int codec_url_escape(const char *in, char *out, size_t outlen);

/* 1 when s is a plausible Box id to put in a URL path: 1..63 characters of
 * [0-9A-Za-z_-]. Ids from the kernel side or the server are checked with it
 * before building URLs, so no id can change the path. */
int codec_id_ok(const char *s);

#endif
