/* parse.c - boxsim's pure parsers; see parse.h. */
#include "parse.h"
#include "codec.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || !*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (UINT64_MAX / 2 - 9) / 10)
			return -1;	/* keep it in int64 range */
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

/* Reads digits at *sp into *v; advances. */
static int take_num(const char **sp, uint64_t *v)
{
	const char *s = *sp;
	uint64_t n = 0;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (n > (UINT64_MAX / 2 - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	*v = n;
	*sp = s;
	return 0;
}

int parse_content_range(const char *s, uint64_t *first, uint64_t *last,
			uint64_t *total)
{
	if (!s || strncmp(s, "bytes ", 6))
		return -1;
	s += 6;
	if (take_num(&s, first) || *s++ != '-' || take_num(&s, last) ||
	    *s++ != '/' || take_num(&s, total) || *s)
		return -1;
	return *first <= *last ? 0 : -1;
}


int parse_digest_sha1(const char *s, unsigned char out[20])
{
	char buf[512], *save = NULL, *tok;

	if (!s || strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq, *v, *e;

		while (*tok == ' ' || *tok == '\t')
			tok++;
		eq = strchr(tok, '=');
		if (!eq)
			return -1;
		*eq = 0;
		if (strcasecmp(tok, "sha"))
			continue;
		v = eq + 1;
		e = v + strlen(v);
		while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
			*--e = 0;
		return codec_b64_decode(v, out, 20) == 20 ? 0 : -1;
	}
	return -1;
}

int parse_byte_range(const char *s, uint64_t size, uint64_t *start,
		     uint64_t *end)
{
	uint64_t a, b;

	if (!s)
		return 1;
	if (strncasecmp(s, "bytes=", 6))
		return -1;
	s += 6;
	if (strchr(s, ','))
		return 1;
	if (*s == '-') {
		s++;
		if (take_num(&s, &b) || *s)
			return -1;
		if (b == 0 || size == 0)
			return -2;
		*start = b >= size ? 0 : size - b;
		*end = size - 1;
		return 0;
	}
	if (take_num(&s, &a) || *s++ != '-')
		return -1;
	if (*s) {
		if (take_num(&s, &b) || *s || b < a)
			return -1;
	} else {
		b = UINT64_MAX;
	}
	if (a >= size)
		return -2;
	*start = a;
	*end = b >= size ? size - 1 : b;
	return 0;
}

static int digits(const char *s, int n, int *v)
{
	int i, x = 0;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		x = x * 10 + (s[i] - '0');
	}
	*v = x;
	return 0;
}

int parse_time(const char *s, int64_t *out)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31,
				     30, 31 };
	int Y, M, D, h, m, sec, oh = 0, om = 0, sign = 0;
	struct tm tm;
	int64_t t;

	if (!s || strlen(s) < 20)
		return -1;
	if (digits(s, 4, &Y) || s[4] != '-' || digits(s + 5, 2, &M) ||
	    s[7] != '-' || digits(s + 8, 2, &D) ||
	    (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &h) ||
	    s[13] != ':' || digits(s + 14, 2, &m) || s[16] != ':' ||
	    digits(s + 17, 2, &sec))
		return -1;
	s += 19;
	if (*s == '.') {
		s++;
		if (*s < '0' || *s > '9')
			return -1;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s == '+' ? 1 : -1;
		if (digits(s + 1, 2, &oh) || s[3] != ':' ||
		    digits(s + 4, 2, &om))
			return -1;
		s += 6;
		if (oh > 23 || om > 59)
			return -1;
	} else {
		return -1;
	}
	if (*s || M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || h > 23 ||
	    m > 59 || sec > 60)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = Y - 1900;
	tm.tm_mon = M - 1;
	tm.tm_mday = D;
	tm.tm_hour = h;
	tm.tm_min = m;
	tm.tm_sec = sec;
	t = (int64_t)timegm(&tm) - sign * (oh * 3600 + om * 60);
	if (t < 0)
		return -1;
	*out = t;
	return 0;
}

void parse_time_fmt(int64_t t, char *buf)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Length of a valid UTF-8 sequence at s, or 0. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n, i;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0 && s[0] >= 0xc2)
		n = 2;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 3;
	else if ((s[0] & 0xf8) == 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	for (i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

enum parse_name parse_name_check(const char *name)
{
	const unsigned char *s = (const unsigned char *)name;
	size_t chars = 0, len;

	if (!name || !*name || !strcmp(name, ".") || !strcmp(name, ".."))
		return NAME_INVALID;
	while (*s) {
		if (*s < 0x20 || *s == 0x7f || *s == '/' || *s == '\\')
			return NAME_INVALID;
		len = utf8_len(s);
		if (!len)
			return NAME_INVALID;
		s += len;
		chars++;
	}
	if (s[-1] == ' ')
		return NAME_INVALID;
	return chars > 255 ? NAME_TOO_LONG : NAME_OK;
}

int parse_form_get(const char *body, const char *key, char *out,
		   size_t outlen)
{
	size_t klen = strlen(key);
	const char *p = body;

	while (p && *p) {
		const char *amp = strchr(p, '&');
		const char *end = amp ? amp : p + strlen(p);

		if ((size_t)(end - p) > klen && !strncmp(p, key, klen) &&
		    p[klen] == '=') {
			const char *v = p + klen + 1;
			size_t o = 0;

			for (; v < end; v++) {
				char c = *v;

				if (c == '+') {
					c = ' ';
				} else if (c == '%') {
					char hx[3];
					unsigned char b;

					if (end - v < 3)
						return -1;
					hx[0] = v[1];
					hx[1] = v[2];
					hx[2] = 0;
					if (codec_hex_decode(hx, &b, 1))
						return -1;
					c = (char)b;
					v += 2;
				}
				if (o + 1 >= outlen)
					return -1;
				out[o++] = c;
			}
			out[o] = 0;
			return 0;
		}
		if ((size_t)(end - p) == klen && !strncmp(p, key, klen)) {
			if (outlen < 1)
				return -1;
			out[0] = 0;
			return 0;
		}
		p = amp ? amp + 1 : NULL;
	}
	return -1;
}

int parse_json_has_nul(const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (buf[i] == 0)
			return 1;
		if (buf[i] != '\\' || i + 1 >= len)
			continue;
		if (buf[i + 1] == 'u' && i + 5 < len &&
		    !memcmp(buf + i + 2, "0000", 4))
			return 1;
		i++;	/* skip the escaped character */
	}
	return 0;
}

/* Finds parameter `key` in a header value like `a; key="v"; b=c`. */
static int header_param(const char *h, const char *key, char *out,
			size_t outlen)
{
	size_t klen = strlen(key);
	const char *p = h;

	while ((p = strchr(p, ';')) != NULL) {
		size_t o = 0;

		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, key, klen) || p[klen] != '=')
			continue;
		p += klen + 1;
		if (*p == '"') {
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1])
					p++;
				if (o + 1 >= outlen)
					return -1;
				out[o++] = *p;
			}
			if (*p != '"')
				return -1;
		} else {
			for (; *p && *p != ';' && *p != ' ' && *p != '\t' &&
			       *p != '\r'; p++) {
				if (o + 1 >= outlen)
					return -1;
				out[o++] = *p;
			}
		}
		out[o] = 0;
		return 0;
	}
	return -1;
}

int parse_mp_boundary(const char *ctype, char *out, size_t outlen)
{
	if (!ctype || strncasecmp(ctype, "multipart/form-data", 19))
		return -1;
	if (header_param(ctype, "boundary", out, outlen) || !*out ||
	    strlen(out) > 70)
		return -1;
	return 0;
}

static int fault_kind(const char *v)
{
	static const char *names[] = { "status", "reset", "delay",
				       "commit202", "expire", "corrupt" };
	int i;

	for (i = 0; i < 6; i++)
		if (!strcmp(v, names[i]))
			return i + 1;
	return -1;
}

static int fault_num(const char *k, const char *v, uint64_t *out,
		     char *err, size_t errlen)
{
	if (parse_u64(v, out)) {
		snprintf(err, errlen, "%s: not a number: '%s'", k, v);
		return -1;
	}
	return 0;
}

/* One key=value of a fault spec. */
static int fault_kv(struct fault_spec *f, const char *k, const char *v,
		    char *err, size_t errlen)
{
	uint64_t n;

	if (!strcmp(k, "kind")) {
		int kind = fault_kind(v);

		if (kind < 0) {
			snprintf(err, errlen, "unknown kind '%s'", v);
			return -1;
		}
		f->kind = (enum fault_kind)kind;
	} else if (!strcmp(k, "method")) {
		if (!*v || strlen(v) >= sizeof(f->method))
			goto bad;
		strcpy(f->method, v);
	} else if (!strcmp(k, "path")) {
		if (!*v || strlen(v) >= sizeof(f->path))
			goto bad;
		strcpy(f->path, v);
	} else if (!strcmp(k, "nth")) {
		if (fault_num(k, v, &f->nth, err, errlen))
			return -1;
		if (!f->nth)
			goto bad;
	} else if (!strcmp(k, "count")) {
		return fault_num(k, v, &f->count, err, errlen);
	} else if (!strcmp(k, "status")) {
		if (fault_num(k, v, &n, err, errlen))
			return -1;
		if (n < 200 || n > 599)
			goto bad;
		f->status = (int)n;
		f->status_set = 1;
	} else if (!strcmp(k, "body")) {
		static const char *bodies[] = { "truncated", "notjson", "types",
			"missing", "huge", "deep", "length", "names" };
		int i;

		for (i = 0; i < 8 && strcmp(v, bodies[i]); i++)
			;
		if (i == 8)
			goto bad;
		f->body = (enum fault_body)(i + 1);
	} else if (!strcmp(k, "bytes")) {
		if (fault_num(k, v, &f->bytes, err, errlen))
			return -1;
		if (f->bytes > (1ULL << 30))
			goto bad;
	} else if (!strcmp(k, "retry_after")) {
		if (fault_num(k, v, &n, err, errlen))
			return -1;
		if (n > 86400)
			goto bad;
		f->retry_after = (int)n;
	} else if (!strcmp(k, "ms")) {
		if (fault_num(k, v, &f->ms, err, errlen))
			return -1;
		if (f->ms > 600000)
			goto bad;
	} else if (!strcmp(k, "after")) {
		return fault_num(k, v, &f->after, err, errlen);
	} else {
		snprintf(err, errlen, "unknown key '%s'", k);
		return -1;
	}
	return 0;
bad:
	snprintf(err, errlen, "bad value for %s: '%s'", k, v);
	return -1;
}

int parse_fault_spec(const char *s, struct fault_spec *f, char *err,
		     size_t errlen)
{
	char buf[1024], *save = NULL, *tok;

	memset(f, 0, sizeof(*f));
	f->nth = 1;
	f->count = 1;
	f->status = 503;
	f->retry_after = 1;
	if (!s || strlen(s) >= sizeof(buf)) {
		snprintf(err, errlen, "spec missing or too long");
		return -1;
	}
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');

		if (!eq) {
			snprintf(err, errlen, "expected key=value: '%s'", tok);
			return -1;
		}
		*eq = 0;
		if (fault_kv(f, tok, eq + 1, err, errlen))
			return -1;
	}
	if (!f->kind) {
		snprintf(err, errlen, "kind= is required");
		return -1;
	}
	if (f->kind == FK_CORRUPT && !f->body) {
		snprintf(err, errlen, "kind=corrupt needs body=");
		return -1;
	}
	if (f->kind == FK_CORRUPT && !f->status_set)
		f->status = 200;
	if (!f->bytes)
		f->bytes = 50000000;
	return 0;
}

/* ---- multipart ---- */

int parse_mp_init(struct mp_parser *p, const char *boundary,
		  const struct mp_cb *cb, void *ctx)
{
	size_t i, k;

	memset(p, 0, sizeof(*p));
	if (!*boundary || strlen(boundary) > 70)
		return -1;
	p->dlen = (size_t)snprintf(p->delim, sizeof(p->delim), "\r\n--%s",
				   boundary);
	/* KMP: fail[i] = length of the longest proper border of delim[0..i) */
	p->fail[0] = p->fail[1] = 0;
	for (i = 2, k = 0; i <= p->dlen; i++) {
		while (k && p->delim[i - 1] != p->delim[k])
			k = p->fail[k];
		if (p->delim[i - 1] == p->delim[k])
			k++;
		p->fail[i] = k;
	}
	p->cb = cb;
	p->ctx = ctx;
	p->st = MP_PREAMBLE;
	p->j = 2;	/* the body may start with "--boundary" directly */
	return 0;
}

/* Parses a header block; calls begin(). */
static int mp_headers(struct mp_parser *p)
{
	char name[256] = "", filename[1024] = "";
	int has_fn = 0, has_cd = 0;
	char *line, *save = NULL;

	p->hdr[p->hlen] = 0;
	for (line = strtok_r(p->hdr, "\r\n", &save); line;
	     line = strtok_r(NULL, "\r\n", &save)) {
		if (strncasecmp(line, "Content-Disposition:", 20))
			continue;
		has_cd = 1;
		if (header_param(line, "name", name, sizeof(name)))
			return -1;
		if (!header_param(line, "filename", filename, sizeof(filename)))
			has_fn = 1;
	}
	if (!has_cd)
		return -1;
	p->nparts++;
	return p->cb->begin(p->ctx, name, filename, has_fn);
}

static int mp_emit(struct mp_parser *p, const char *b, size_t n)
{
	if (!n || p->st != MP_DATA)
		return 0;
	return p->cb->data(p->ctx, b, n);
}

/* Data/preamble: match the delimiter with KMP, emitting everything else. */
static size_t mp_scan(struct mp_parser *p, const char *buf, size_t len,
		      int *found)
{
	size_t i = 0, run = 0;

	*found = 0;
	while (i < len) {
		char c = buf[i];

		if (p->j == 0) {
			const char *cr = memchr(buf + i, '\r', len - i);
			size_t skip = cr ? (size_t)(cr - (buf + i)) : len - i;

			i += skip;
			if (i >= len)
				break;
			if (mp_emit(p, buf + run, i - run))
				return (size_t)-1;
			p->j = 1;
			i++;
			run = i;
			continue;
		}
		if (c == p->delim[p->j]) {
			p->j++;
			i++;
			run = i;
			if (p->j == p->dlen) {
				p->j = 0;
				*found = 1;
				return i;
			}
			continue;
		}
		/* mismatch: release the bytes the border does not keep */
		{
			size_t k = p->fail[p->j];

			if (mp_emit(p, p->delim, p->j - k))
				return (size_t)-1;
			p->j = k;
			run = i;
		}
	}
	if (p->j == 0 && mp_emit(p, buf + run, len - run))
		return (size_t)-1;
	return len;
}

int parse_mp_feed(struct mp_parser *p, const char *buf, size_t len)
{
	size_t i = 0;

	while (i < len) {
		int found;
		size_t n;
		char c;

		switch (p->st) {
		case MP_PREAMBLE:
		case MP_DATA:
			n = mp_scan(p, buf + i, len - i, &found);
			if (n == (size_t)-1)
				goto err;
			i += n;
			if (found) {
				if (p->st == MP_DATA && p->cb->end(p->ctx))
					goto err;
				p->st = MP_AFTER_DELIM;
			}
			break;
		case MP_AFTER_DELIM:
			p->prev = buf[i++];
			p->st = MP_AFTER_DELIM2;
			break;
		case MP_AFTER_DELIM2:
			c = buf[i++];
			if (p->prev == '-' && c == '-') {
				p->st = MP_EPILOGUE;
			} else if (p->prev == '\r' && c == '\n') {
				p->st = MP_HEADERS;
				p->hlen = 0;
			} else if ((p->prev == ' ' || p->prev == '\t') &&
				   (c == ' ' || c == '\t' || c == '\r')) {
				p->prev = c;	/* transport padding */
			} else {
				goto err;
			}
			break;
		case MP_HEADERS:
			if (p->hlen + 1 >= sizeof(p->hdr))
				goto err;
			p->hdr[p->hlen++] = buf[i++];
			if ((p->hlen == 2 && !memcmp(p->hdr, "\r\n", 2)) ||
			    (p->hlen >= 4 &&
			     !memcmp(p->hdr + p->hlen - 4, "\r\n\r\n", 4))) {
				if (mp_headers(p))
					goto err;
				p->st = MP_DATA;
				p->j = 0;
			}
			break;
		case MP_EPILOGUE:
			return 0;
		default:
			goto err;
		}
	}
	return 0;
err:
	p->st = MP_ERROR;
	return -1;
}

int parse_mp_done(const struct mp_parser *p)
{
	return p->st == MP_EPILOGUE;
}
