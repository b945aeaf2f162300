/* Unit tests of stats.c: the registry of uploads and its JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "stats.h"

static cJSON *snapshot(void)
{
	struct http_counters hc = { .retries = 3 };
	char *js = stats_json("static token", &hc);
	cJSON *root;

	assert_non_null(js);
	root = cJSON_Parse(js);
	free(js);
	assert_non_null(root);
	return root;
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	assert_true(cJSON_IsNumber(v));
	return v->valuedouble;
}

static int count(const cJSON *root, const char *list)
{
	return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, list));
}

/* The tests share the module's global state: they run in order. */
static void test_lifecycle(void **state)
{
	static int a, b;  /* only their addresses matter */
	cJSON *r, *o, *c;

	(void)state;
	stats_upload_begin(&a, "a.bin", 300, 0);
	stats_upload_begin(&b, "b.txt", 5, 0);
	r = snapshot();
	assert_int_equal(count(r, "queued"), 2);
	assert_int_equal(count(r, "in_flight"), 0);
	cJSON_Delete(r);

	stats_upload_part(&a, 100, 1, 3);
	r = snapshot();
	assert_int_equal(count(r, "queued"), 1);
	o = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "in_flight"), 0);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "name")->valuestring,
			    "a.bin");
	assert_true(num(o, "bytes") == 100 && num(o, "total") == 300);
	assert_true(num(o, "parts_done") == 1 && num(o, "parts_total") == 3);
	cJSON_Delete(r);

	stats_upload_part(&a, 100, 2, 3);
	stats_upload_part(&a, 100, 3, 3);
	stats_upload_committing(&a);
	stats_upload_end(&a, 0, NULL);
	stats_upload_committing(&b);
	stats_upload_end(&b, -13, "access denied");
	stats_resend();
	r = snapshot();
	assert_int_equal(count(r, "in_flight"), 0);
	assert_int_equal(count(r, "queued"), 0);
	assert_int_equal(count(r, "failed"), 1);
	o = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "failed"), 0);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "reason")->valuestring,
			    "access denied");
	c = cJSON_GetObjectItemCaseSensitive(r, "counters");
	assert_true(num(c, "bytes_uploaded") == 300 && num(c, "parts") == 3);
	assert_true(num(c, "commits") == 1 && num(c, "errors") == 1);
	assert_true(num(c, "resends") == 1 && num(c, "retries") == 3);
	cJSON_Delete(r);

	/* forget drops in-flight entries only; failed ones stay */
	stats_upload_begin(&b, "b.txt", 5, 0);
	stats_upload_forget(&b);
	r = snapshot();
	assert_int_equal(count(r, "queued"), 0);
	assert_int_equal(count(r, "failed"), 1);
	cJSON_Delete(r);
}

static void test_failed_bounded(void **state)
{
	static int keys[40];
	cJSON *r;
	int i;

	(void)state;
	for (i = 0; i < 40; i++) {
		stats_upload_begin(&keys[i], "x", 1, 0);
		stats_upload_end(&keys[i], -5, "server error");
	}
	/* updates of an unknown key are ignored, never a crash */
	stats_upload_part(&keys[0], 1, 1, 1);
	stats_upload_end(&keys[1], -5, NULL);
	r = snapshot();
	assert_int_equal(count(r, "failed"), 16);
	cJSON_Delete(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lifecycle),
		cmocka_unit_test(test_failed_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
