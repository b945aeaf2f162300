/* Unit tests of box.c's JSON handling: items, errors, errno mapping, and
 * http.c's retry policy helpers. No network. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "box.h"
#include "http.h"
#include "log.h"
#include "options.h"

struct boxfs_opts boxfs_opts;

static int parse(const char *json, struct box_item *it)
{
	cJSON *j = cJSON_Parse(json);
	int rc;

	assert_non_null(j);
	rc = box_parse_item(j, it);
	cJSON_Delete(j);
	return rc;
}

static void test_item_file(void **state)
{
	struct box_item it;

	(void)state;
	assert_int_equal(parse("{\"type\":\"file\",\"id\":\"12345\",\"name\":\"a.txt\","
		"\"size\":25000001,\"sha1\":\"85136C79CBF9FE36BB9D05D0639C70C265C18D37\","
		"\"etag\":\"3\",\"content_modified_at\":\"2017-04-08T00:58:08Z\","
		"\"modified_at\":\"2012-12-12T10:53:43-08:00\","
		"\"parent\":{\"type\":\"folder\",\"id\":\"0\"},\"item_status\":\"active\"}",
		&it), 0);
	assert_int_equal(it.type, BOX_FILE);
	assert_string_equal(it.id, "12345");
	assert_string_equal(it.name, "a.txt");
	assert_string_equal(it.parent_id, "0");
	assert_int_equal(it.size, 25000001);
	/* hex is normalised to lower case */
	assert_string_equal(it.sha1, "85136c79cbf9fe36bb9d05d0639c70c265c18d37");
	assert_string_equal(it.etag, "3");
	assert_int_equal(it.mtime, 1491613088);
	assert_int_equal(it.ctime, 1355338423);
}

static void test_item_folder(void **state)
{
	struct box_item it;

	(void)state;
	/* root: etag null, no times, huge size in exponent form */
	assert_int_equal(parse("{\"type\":\"folder\",\"id\":\"0\",\"sequence_id\":null,"
		"\"etag\":null,\"name\":\"All Files\",\"size\":1.2e+10}", &it), 0);
	assert_int_equal(it.type, BOX_FOLDER);
	assert_string_equal(it.etag, "");
	assert_string_equal(it.parent_id, "");
	assert_string_equal(it.sha1, "");
	assert_true(it.size == 12000000000ull);
	assert_int_equal(it.mtime, 0);
	/* size as a string is accepted, a negative one is not trusted */
	assert_int_equal(parse("{\"type\":\"file\",\"id\":\"7\",\"name\":\"x\","
			       "\"size\":\"42\"}", &it), 0);
	assert_int_equal(it.size, 42);
	assert_int_equal(parse("{\"type\":\"file\",\"id\":\"7\",\"name\":\"x\","
			       "\"size\":-5}", &it), 0);
	assert_int_equal(it.size, 0);
}

static void test_item_skipped(void **state)
{
	struct box_item it;

	(void)state;
	assert_int_equal(parse("{\"type\":\"web_link\",\"id\":\"9\",\"name\":\"w\"}", &it), 1);
	assert_int_equal(parse("{\"type\":\"file\",\"id\":\"9\",\"name\":\"t\","
			       "\"item_status\":\"trashed\"}", &it), 1);
	assert_int_equal(parse("{\"type\":\"file\",\"id\":\"9\",\"name\":\"a/b\"}", &it), 1);
	assert_int_equal(parse("{\"type\":\"file\",\"id\":\"9\",\"name\":\".\"}", &it), 1);
	assert_int_equal(parse("{\"type\":\"folder\",\"id\":\"9\",\"name\":\"..\"}", &it), 1);
	assert_int_equal(parse("{\"type\":\"file\",\"id\":\"9\",\"name\":\"\"}", &it), 1);
	/* malformed: no id, bad id, no name, not an object, id as number */
	assert_int_equal(parse("{\"type\":\"file\",\"name\":\"x\"}", &it), -EIO);
	assert_int_equal(parse("{\"type\":\"file\",\"id\":\"1/../2\",\"name\":\"x\"}", &it), -EIO);
	assert_int_equal(parse("{\"type\":\"file\",\"id\":\"1\"}", &it), -EIO);
	assert_int_equal(parse("[1,2]", &it), -EIO);
	assert_int_equal(parse("{\"type\":\"file\",\"id\":5,\"name\":\"x\"}", &it), -EIO);
	/* bad sha1 and time are dropped, not fatal */
	assert_int_equal(parse("{\"type\":\"file\",\"id\":\"9\",\"name\":\"n\","
			       "\"sha1\":\"xyz\",\"modified_at\":\"yesterday\"}", &it), 0);
	assert_string_equal(it.sha1, "");
	assert_int_equal(it.ctime, 0);
}

static void test_nul_name(void **state)
{
	char body[] = "{\"entries\":[{\"type\":\"file\",\"id\":\"1\",\"name\":\"a\\u0000b\"},"
		"{\"type\":\"file\",\"id\":\"2\",\"name\":\"c\\\\u0000\"}]}";
	struct box_item it;
	cJSON *j = box_parse_json(body, strlen(body));
	const cJSON *e;

	(void)state;
	assert_non_null(j);
	e = cJSON_GetObjectItem(j, "entries");
	/* "a<NUL>b" must not become "a": it is skipped */
	assert_int_equal(box_parse_item(cJSON_GetArrayItem(e, 0), &it), 1);
	/* an escaped backslash followed by the text u0000 is a fine name */
	assert_int_equal(box_parse_item(cJSON_GetArrayItem(e, 1), &it), 0);
	assert_string_equal(it.name, "c\\u0000");
	cJSON_Delete(j);
	assert_null(box_parse_json(body, 5));
}

static void test_error(void **state)
{
	char code[64], msg[128], cid[BOX_ID_MAX];
	const char *obj = "{\"type\":\"error\",\"status\":409,\"code\":\"item_name_in_use\","
		"\"context_info\":{\"conflicts\":{\"type\":\"file\",\"id\":\"517752619323\"}},"
		"\"message\":\"Item with the same name already exists\"}";
	const char *arr = "{\"type\":\"error\",\"status\":\"409\",\"code\":\"item_name_in_use\","
		"\"context_info\":{\"conflicts\":[{\"type\":\"folder\",\"id\":\"77\"}]},"
		"\"message\":\"m\"}";

	(void)state;
	assert_int_equal(box_parse_error(obj, strlen(obj), code, sizeof(code), msg,
					 sizeof(msg), cid), 0);
	assert_string_equal(code, "item_name_in_use");
	assert_string_equal(msg, "Item with the same name already exists");
	assert_string_equal(cid, "517752619323");
	assert_int_equal(box_parse_error(arr, strlen(arr), code, sizeof(code), msg,
					 sizeof(msg), cid), 0);
	assert_string_equal(cid, "77");
	/* length is honoured: the body is not NUL-terminated for cJSON */
	assert_int_equal(box_parse_error(obj, 10, code, sizeof(code), msg,
					 sizeof(msg), cid), -1);
	assert_string_equal(code, "");
	assert_string_equal(cid, "");
	assert_int_equal(box_parse_error("", 0, code, sizeof(code), NULL, 0, NULL), -1);
	assert_int_equal(box_parse_error("<html>", 6, code, sizeof(code), NULL, 0, NULL), -1);
}

static void test_errno(void **state)
{
	(void)state;
	assert_int_equal(box_errno(404, "not_found", 0), -ENOENT);
	assert_int_equal(box_errno(404, "not_found", 1), -ESTALE);
	assert_int_equal(box_errno(410, "session_expired", 1), -ESTALE);
	assert_int_equal(box_errno(409, "item_name_in_use", 0), -EEXIST);
	assert_int_equal(box_errno(400, "folder_not_empty", 0), -ENOTEMPTY);
	assert_int_equal(box_errno(401, "", 0), -EACCES);
	assert_int_equal(box_errno(403, "access_denied_insufficient_permissions", 0), -EACCES);
	assert_int_equal(box_errno(403, "storage_limit_exceeded", 0), -ENOSPC);
	assert_int_equal(box_errno(400, "item_name_too_long", 0), -ENAMETOOLONG);
	assert_int_equal(box_errno(400, "item_name_invalid", 0), -EINVAL);
	assert_int_equal(box_errno(400, "digest_mismatch", 0), -EIO);
	assert_int_equal(box_errno(503, "unavailable", 0), -EIO);
	assert_int_equal(box_errno(507, "", 0), -ENOSPC);
}

static void test_retry_policy(void **state)
{
	(void)state;
	assert_int_equal(http_backoff_ms(0, 0.5), 500);
	assert_int_equal(http_backoff_ms(1, 0.5), 1000);
	assert_int_equal(http_backoff_ms(3, 0.5), 4000);
	assert_int_equal(http_backoff_ms(30, 0.5), 30000);
	assert_int_equal(http_backoff_ms(0, 0.0), 250);
	assert_true(http_backoff_ms(0, 0.999) < 750);
	assert_int_equal(http_parse_retry_after(" 5\r\n"), 5);
	assert_int_equal(http_parse_retry_after("0"), 0);
	/* a date in the past: come back at once */
	assert_int_equal(http_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), 0);
	assert_int_equal(http_parse_retry_after("-3"), -1);
	assert_int_equal(http_parse_retry_after("99999999999999"), 86400);
}

/* Retry-After as an HTTP-date (RFC 9110 5.6.7): all three forms */
static void test_retry_after_date(void **state)
{
	time_t t, now = 784111777;	/* Sun, 06 Nov 1994 08:49:37 GMT */

	(void)state;
	assert_int_equal(http_parse_date("Sun, 06 Nov 1994 08:49:37 GMT", &t), 0);
	assert_int_equal(t, now);
	assert_int_equal(http_parse_date("Sunday, 06-Nov-94 08:49:37 GMT", &t), 0);
	assert_int_equal(t, now);
	assert_int_equal(http_parse_date("Sun Nov  6 08:49:37 1994", &t), 0);
	assert_int_equal(t, now);
	assert_int_equal(http_parse_date("Thu, 01 Jan 2037 00:00:00 GMT", &t), 0);
	assert_int_equal(t, 2114380800);
	/* malformed: refused, never guessed */
	assert_int_equal(http_parse_date("Sun, 6 Nov 1994 08:49:37 GMT", &t), -1);
	assert_int_equal(http_parse_date("Sun, 06 nov 1994 08:49:37 GMT", &t), -1);
	assert_int_equal(http_parse_date("Sun, 31 Feb 1994 08:49:37 GMT", &t), -1);
	assert_int_equal(http_parse_date("Sun, 06 Nov 1994 24:00:00 GMT", &t), -1);
	assert_int_equal(http_parse_date("Sun, 06 Nov 1994 08:49:37 UTC", &t), -1);
	assert_int_equal(http_parse_date("Sun, 06 Nov 1994 08:49:37 GMTx", &t), -1);
	assert_int_equal(http_parse_date("Sun, 01 Jan 1960 00:00:00 GMT", &t), -1);
	assert_int_equal(http_parse_date("", &t), -1);
	/* seconds from now until the date; past -> 0; far -> capped */
	assert_int_equal(http_parse_retry_after_at("Sun, 06 Nov 1994 08:50:07 GMT", now), 30);
	assert_int_equal(http_parse_retry_after_at(" Sun, 06 Nov 1994 08:49:47 GMT\r\n", now), 10);
	assert_int_equal(http_parse_retry_after_at("Sunday, 06-Nov-94 08:49:40 GMT", now), 3);
	assert_int_equal(http_parse_retry_after_at("Sun Nov  6 08:49:38 1994", now), 1);
	assert_int_equal(http_parse_retry_after_at("Sun, 06 Nov 1994 08:49:00 GMT", now), 0);
	assert_int_equal(http_parse_retry_after_at("Thu, 01 Jan 2037 00:00:00 GMT", now), 86400);
	assert_int_equal(http_parse_retry_after_at("Sun, 06 Nov 1994 08:49:37", now), -1);
	assert_int_equal(http_parse_retry_after_at("tomorrow", now), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_item_file),
		cmocka_unit_test(test_item_folder),
		cmocka_unit_test(test_item_skipped),
		cmocka_unit_test(test_nul_name),
		cmocka_unit_test(test_error),
		cmocka_unit_test(test_errno),
		cmocka_unit_test(test_retry_policy),
		cmocka_unit_test(test_retry_after_date),
	};
	log_setup(LOG_LVL_ERR, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
