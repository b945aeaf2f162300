/* parse.h - boxsim's pure parsers (no MHD, no I/O), unit-tested with cmocka.
 *
 * Every parser is strict: it returns -1 (or a negative code) on anything it
 * does not fully understand, so the server can answer 4xx instead of guessing. */
#ifndef BOXSIM_PARSE_H
#define BOXSIM_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* Strict decimal, no sign, no spaces, fits in 63 bits. 0 ok, -1 bad. */
int parse_u64(const char *s, uint64_t *out);

/* Content-Range of a part PUT: exactly "bytes A-B/T", A <= B. */
int parse_content_range(const char *s, uint64_t *first, uint64_t *last,
			uint64_t *total);

/* Digest header (RFC 3230): comma list of alg=value; picks "sha"
 * (case-insensitive) and base64-decodes it into 20 bytes.
 * 0 ok, -1 malformed or no sha entry. */
int parse_digest_sha1(const char *s, unsigned char out[20]);

/* Base64 and hex come from the daemon's codec (include/codec.h). */

/* Range request header "bytes=a-b" | "bytes=a-" | "bytes=-n" against a file
 * of `size` bytes.  0: satisfiable, [*start, *end] inclusive; 1: header
 * absent/ignored (multi-range) -> serve whole file; -1: malformed (ignored
 * like HTTP says); -2: unsatisfiable -> 416. */
int parse_byte_range(const char *s, uint64_t size, uint64_t *start,
		     uint64_t *end);

/* RFC 3339 "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)" -> epoch seconds
 * (fraction dropped: Box keeps 1 s).  0 ok, -1 bad or before 1970. */
int parse_time(const char *s, int64_t *out);
/* Epoch seconds -> "YYYY-MM-DDTHH:MM:SSZ"; buf must hold 32. */
void parse_time_fmt(int64_t t, char *buf);

/* Box item name rules. */
enum parse_name { NAME_OK = 0, NAME_INVALID = -1, NAME_TOO_LONG = -2 };
enum parse_name parse_name_check(const char *name);

/* application/x-www-form-urlencoded (also query strings): find `key`,
 * percent/plus-decode its value into out.  0 found, -1 absent or too long. */
int parse_form_get(const char *body, const char *key, char *out,
		   size_t outlen);

/* 1 if JSON text contains a \u0000 escape (cJSON would silently cut the
 * string there, turning "a\u0000b" into "a"). */
int parse_json_has_nul(const char *buf, size_t len);

/* multipart/form-data boundary from a Content-Type value. 0 ok, -1 none. */
int parse_mp_boundary(const char *ctype, char *out, size_t outlen);

/* Fault specification, see README.md. */
enum fault_kind { FK_STATUS = 1, FK_RESET, FK_DELAY, FK_COMMIT202,
		  FK_EXPIRE, FK_CORRUPT };
/* kind=corrupt: the malformed answer body sent instead of processing */
enum fault_body { FB_TRUNCATED = 1, FB_NOTJSON, FB_TYPES, FB_MISSING,
		  FB_HUGE, FB_DEEP, FB_LENGTH, FB_NAMES };
struct fault_spec {
	enum fault_kind kind;
	char method[16];	/* "" = any */
	char path[512];		/* fnmatch glob, "" = any */
	uint64_t nth;		/* 1-based */
	uint64_t count;		/* 0 = forever */
	int status;
	int retry_after;
	uint64_t ms;
	uint64_t after;
	enum fault_body body;	/* kind=corrupt (required) */
	uint64_t bytes;		/* body=huge: size (default 50 MB) */
	int status_set;		/* status= given (corrupt defaults to 200) */
};
/* 0 ok; -1 with a message in err. */
int parse_fault_spec(const char *s, struct fault_spec *f, char *err,
		     size_t errlen);

/* Streaming multipart/form-data parser: fed the body in arbitrary chunks,
 * calls back for each part.  Never buffers part data (only headers). */
struct mp_cb {
	/* headers parsed: form field name and filename ("" if none) */
	int (*begin)(void *ctx, const char *name, const char *filename,
		     int has_filename);
	int (*data)(void *ctx, const char *buf, size_t len);
	int (*end)(void *ctx);
};

enum mp_state { MP_PREAMBLE, MP_AFTER_DELIM, MP_AFTER_DELIM2, MP_LINE_END,
		MP_HEADERS, MP_DATA, MP_EPILOGUE, MP_ERROR };

struct mp_parser {
	enum mp_state st;
	char delim[80];		/* "\r\n--" boundary */
	size_t dlen;
	size_t fail[80];	/* KMP failure function of delim */
	size_t j;		/* bytes of delim matched */
	char hdr[8192];
	size_t hlen;
	char prev;		/* first byte after delimiter */
	const struct mp_cb *cb;
	void *ctx;
	int nparts;
};

int parse_mp_init(struct mp_parser *p, const char *boundary,
		  const struct mp_cb *cb, void *ctx);
/* 0 ok, -1 syntax error or a callback failed. */
int parse_mp_feed(struct mp_parser *p, const char *buf, size_t len);
/* 1 if the closing delimiter was seen. */
int parse_mp_done(const struct mp_parser *p);

#endif
