/* fuzz_box_json - libFuzzer target for the JSON answers the daemon parses
 * (fs/box.c): item, {"entries":[item]} of an upload or commit, a folder
 * listing page, an upload session, a parts-list page, and a ClientError
 * body. The first byte picks the parser; the rest is the answer body, fed
 * through box_parse_json exactly as box.c does (escaped-NUL rewrite, then
 * cJSON with an explicit length). Checks the parsers' promises: NUL-free,
 * terminated, safe names and well-formed ids in whatever they return. */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "box.h"
#include "fuzz.h"
#include "codec.h"
#include "log.h"
#include "options.h"

struct boxfs_opts boxfs_opts;

static void check_item(const struct box_item *it)
{
	assert(it->type == BOX_FILE || it->type == BOX_FOLDER);
	assert(memchr(it->id, 0, sizeof(it->id)) && codec_id_ok(it->id));
	assert(memchr(it->parent_id, 0, sizeof(it->parent_id)));
	assert(!it->parent_id[0] || codec_id_ok(it->parent_id));
	assert(memchr(it->name, 0, sizeof(it->name)) && box_name_safe(it->name));
	assert(strlen(it->sha1) == 0 || strlen(it->sha1) == 40);
	assert(memchr(it->etag, 0, sizeof(it->etag)));
}

static int on_item(const struct box_item *it, void *arg)
{
	int *n = arg;

	check_item(it);
	/* a callback error must stop the listing and come back */
	return ++*n == 5000 ? -1234 : 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_setup(LOG_LVL_ERR, 0);	/* errors only (scripts/fuzz hides stderr) */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct box_item it;
	struct box_session s;
	struct box_part *v = NULL;
	char marker[256], code[64], msg[256], cid[BOX_ID_MAX];
	size_t n = 0, cap = 0, got = 0;
	uint64_t limit = 0;
	cJSON *j;
	char *body;
	int rc, count = 0;

	/* box.c parses bodies it owns (http.c NUL-terminates them) */
	body = fuzz_cstr(data, size);
	if (!body)
		return 0;
	if (data[0] % 6 == 5) {
		rc = box_parse_error(body, size - 1, code, sizeof(code), msg,
				     sizeof(msg), cid);
		assert(rc == 0 || rc == -1);
		assert(memchr(code, 0, sizeof(code)) && memchr(msg, 0, sizeof(msg)));
		assert(!cid[0] || codec_id_ok(cid));
		free(body);
		return 0;
	}
	j = box_parse_json(body, size - 1);
	switch (data[0] % 6) {
	case 0:
		rc = box_parse_item(j, &it);
		assert(rc == 0 || rc == 1 || rc == -EIO);
		if (!rc)
			check_item(&it);
		break;
	case 1:
		rc = box_parse_files(j, &it);
		if (!rc)
			check_item(&it);
		break;
	case 2:
		rc = box_parse_page(j, "/folders/0/items", on_item, &count,
				    marker, sizeof(marker));
		assert(rc == 0 || rc == -EIO || rc == -1234);
		if (!rc)
			assert(strlen(marker) < sizeof(marker));
		break;
	case 3:
		rc = box_parse_session(j, &s);
		if (!rc)
			assert(codec_id_ok(s.id) && s.part_size > 0);
		break;
	case 4:
		/* two pages into one list, as box_session_list_parts does */
		rc = box_parse_parts_page(j, "/parts", &v, &n, &cap, &got, &limit);
		if (!rc)
			rc = box_parse_parts_page(j, "/parts", &v, &n, &cap, &got,
						  &limit);
		assert(rc == 0 || rc == -EIO || rc == -ENOMEM);
		assert(n <= cap && (rc || limit > 0));
		for (size_t i = 0; i < n; i++)
			assert(memchr(v[i].part_id, 0, sizeof(v[i].part_id)) &&
			       (!v[i].sha1[0] || strlen(v[i].sha1) == 40));
		free(v);
		break;
	}
	cJSON_Delete(j);
	free(body);
	return 0;
}
