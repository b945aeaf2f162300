/* fuzz_headers - libFuzzer target for the HTTP header values either side
 * parses: boxsim's Content-Range, Digest and Range (tests/boxsim/parse.c,
 * the strict referee of what the daemon sends) and the daemon's
 * Retry-After (fs/http.c: delta-seconds or an HTTP-date). The first byte
 * picks the parser; the rest is the header value. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuzz.h"
#include "http.h"
#include "log.h"
#include "options.h"
#include "parse.h"

struct boxfs_opts boxfs_opts;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t a, b, t;
	unsigned char md[20];
	time_t when;
	char *v;
	int rc;

	v = fuzz_cstr(data, size);
	if (!v)
		return 0;
	switch (data[0] % 5) {
	case 0:
		if (!parse_content_range(v, &a, &b, &t))
			assert(a <= b);
		break;
	case 1:
		parse_digest_sha1(v, md);
		break;
	case 2:
		t = size > 8 ? (uint64_t)data[1] << 16 | data[2] : 1000;
		rc = parse_byte_range(v, t, &a, &b);
		assert(rc >= -2 && rc <= 1);
		if (!rc)
			assert(a <= b && b < t);
		break;
	case 3:
		/* now fixed so that a crash reproduces */
		rc = http_parse_retry_after_at(v, 1700000000);
		assert(rc >= -1 && rc <= 86400);
		break;
	case 4:
		if (!http_parse_date(v, &when))
			assert(when >= 0);
		break;
	}
	free(v);
	return 0;
}
