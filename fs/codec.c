/* codec.c - base64, hex, SHA-1, RFC 3339 time and URL escaping (codec.h). */
#include <ctype.h>
#include <string.h>
#include <openssl/evp.h>

#include "codec.h"

static const char codec_b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int codec_b64_encode(const unsigned char *in, size_t len, char *out,
		     size_t outlen)
{
	size_t i, o = 0;

	if (outlen < CODEC_B64_LEN(len) + 1)
		return -1;
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = codec_b64[v >> 18];
		out[o++] = codec_b64[(v >> 12) & 63];
		out[o++] = codec_b64[(v >> 6) & 63];
		out[o++] = codec_b64[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		out[o++] = codec_b64[v >> 18];
		out[o++] = codec_b64[(v >> 12) & 63];
		out[o++] = i + 1 < len ? codec_b64[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return (int)o;
}

static int codec_b64_val(char c)
{
	const char *p;

	if (!c)
		return -1;
	p = strchr(codec_b64, c);
	return p ? (int)(p - codec_b64) : -1;
}

int codec_b64_decode(const char *in, unsigned char *out, size_t outlen)
{
	size_t len = strlen(in), i, o = 0;

	if (len % 4)
		return -1;
	for (i = 0; i < len; i += 4) {
		int v[4], k, pad = 0;
		for (k = 0; k < 4; k++) {
			if (in[i + k] == '=' && i + 4 == len && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad)	/* data after padding */
				return -1;
			v[k] = codec_b64_val(in[i + k]);
			if (v[k] < 0)
				return -1;
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
			     (uint32_t)v[2] << 6 | (uint32_t)v[3];
		if (o + 3 - pad > outlen)
			return -1;
		out[o++] = w >> 16;
		if (pad < 2)
			out[o++] = (w >> 8) & 0xff;
		if (pad < 1)
			out[o++] = w & 0xff;
	}
	return (int)o;
}

void codec_hex_encode(const unsigned char *in, size_t len, char *out)
{
	static const char hx[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = hx[in[i] >> 4];
		out[2 * i + 1] = hx[in[i] & 15];
	}
	out[2 * len] = '\0';
}

static int codec_hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int codec_hex_decode(const char *in, unsigned char *out, size_t outlen)
{
	size_t i;

	if (strlen(in) != 2 * outlen)
		return -1;
	for (i = 0; i < outlen; i++) {
		int h = codec_hex_val(in[2 * i]), l = codec_hex_val(in[2 * i + 1]);
		if (h < 0 || l < 0)
			return -1;
		out[i] = (unsigned char)(h << 4 | l);
	}
	return 0;
}

void codec_sha1(const void *buf, size_t len, unsigned char md[20])
{
	unsigned int mdlen = 20;

	if (!EVP_Digest(buf, len, md, &mdlen, EVP_sha1(), NULL))
		memset(md, 0, 20);	/* only on OpenSSL allocation failure */
}

int codec_time_format(time_t t, char *buf, size_t buflen)
{
	struct tm tm;

	/* Box has no dates before 1970 */
	if (buflen < 21 || t < 0 || !gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999)
		return -1;
	return strftime(buf, buflen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 20 ? 0 : -1;
}

/* n decimal digits at *s, advancing it. -1 when not all digits. */
static int codec_digits(const char **s, int n)
{
	int v = 0;

	while (n--) {
		if (!isdigit((unsigned char)**s))
			return -1;
		v = v * 10 + (*(*s)++ - '0');
	}
	return v;
}

static int codec_expect(const char **s, const char *set)
{
	if (!**s || !strchr(set, **s))
		return -1;
	(*s)++;
	return 0;
}

int codec_time_parse(const char *s, time_t *out)
{
	struct tm tm = { 0 };
	int y, mo, d, h, mi, sec, off = 0;

	if ((y = codec_digits(&s, 4)) < 0 || codec_expect(&s, "-") ||
	    (mo = codec_digits(&s, 2)) < 0 || codec_expect(&s, "-") ||
	    (d = codec_digits(&s, 2)) < 0 || codec_expect(&s, "Tt ") ||
	    (h = codec_digits(&s, 2)) < 0 || codec_expect(&s, ":") ||
	    (mi = codec_digits(&s, 2)) < 0 || codec_expect(&s, ":") ||
	    (sec = codec_digits(&s, 2)) < 0)
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -1;
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return -1;
		while (isdigit((unsigned char)*s))
			s++;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		int sign = *s++ == '-' ? -1 : 1, oh, om;
		if ((oh = codec_digits(&s, 2)) < 0 || codec_expect(&s, ":") ||
		    (om = codec_digits(&s, 2)) < 0 || oh > 23 || om > 59)
			return -1;
		off = sign * (oh * 3600 + om * 60);
	} else {
		return -1;
	}
	if (*s)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	*out = timegm(&tm) - off;
	return 0;
}

int codec_url_escape(const char *in, char *out, size_t outlen)
{
	static const char hx[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *in; in++) {
		unsigned char c = (unsigned char)*in;
		if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
			if (o + 1 >= outlen)
				return -1;
			out[o++] = (char)c;
		} else {
			if (o + 3 >= outlen)
				return -1;
			out[o++] = '%';
			out[o++] = hx[c >> 4];
			out[o++] = hx[c & 15];
		}
	}
	if (o >= outlen)
		return -1;
	out[o] = '\0';
	return (int)o;
}

int codec_id_ok(const char *s)
{
	size_t n;

	if (!s)
		return 0;
	for (n = 0; s[n]; n++)
		if (!isalnum((unsigned char)s[n]) && s[n] != '_' && s[n] != '-')
			return 0;
	return n > 0 && n < 64;
}
