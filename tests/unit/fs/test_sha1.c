/* Unit tests of sha1.c: single and fused (two-digest) SHA-1 against
 * OpenSSL, on the SHA-NI path (when the CPU has it) and on the fallback,
 * with random data cut at random points. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "sha1.h"

#define DATA (3 * 1024 * 1024 + 77)

static unsigned char *data;
static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}

static void ref(const unsigned char *p, size_t n, unsigned char md[20])
{
	unsigned int len = 0;

	assert_true(EVP_Digest(p, n, md, &len, EVP_sha1(), NULL));
	assert_int_equal(len, 20);
}

static char *hex(const unsigned char md[20], char out[41])
{
	int i;

	for (i = 0; i < 20; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return out;
}

static int setup(void **state)
{
	size_t i;

	(void)state;
	data = malloc(DATA);
	if (!data)
		return -1;
	for (i = 0; i < DATA; i++)
		data[i] = (unsigned char)rnd();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(data);
	sha1_force_generic(0);
	return 0;
}

/* whether the group runs on the fallback */
static int generic_setup(void **state)
{
	sha1_force_generic(*state != NULL);
	return 0;
}

static void test_vectors(void **state)
{
	struct sha1 c;
	unsigned char md[20];
	char h[41];
	int i;

	(void)state;
	sha1_init(&c);
	sha1_final(&c, md);
	assert_string_equal(hex(md, h), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	sha1_update(&c, "abc", 3);
	sha1_final(&c, md);
	assert_string_equal(hex(md, h), "a9993e364706816aba3e25717850c26c9cd0d89d");
	sha1_init(&c);
	sha1_update(&c, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56);
	sha1_final(&c, md);
	assert_string_equal(hex(md, h), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
	sha1_init(&c);
	for (i = 0; i < 1000; i++) {
		char a[1000];

		memset(a, 'a', sizeof(a));
		sha1_update(&c, a, sizeof(a));
	}
	sha1_final(&c, md);
	assert_string_equal(hex(md, h), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

/* every length around the padding boundaries, and random cuts */
static void test_single(void **state)
{
	unsigned char md[20], want[20];
	struct sha1 c;
	size_t n, off;
	int r;

	(void)state;
	for (n = 0; n <= 300; n++) {
		sha1_init(&c);
		sha1_update(&c, data + 3, n);
		sha1_final(&c, md);
		ref(data + 3, n, want);
		assert_memory_equal(md, want, 20);
	}
	for (r = 0; r < 20; r++) {
		size_t len = rnd() % DATA;

		sha1_init(&c);
		for (off = 0; off < len; ) {
			size_t k = rnd() % 200000;

			if (k > len - off)
				k = len - off;
			sha1_update(&c, data + off, k);
			off += k;
		}
		sha1_final(&c, md);
		ref(data, len, want);
		assert_memory_equal(md, want, 20);
	}
}

/* Two contexts take the same bytes: a has taken a prefix before (aligned
 * or not with b), b starts fresh; both must equal OpenSSL's digests of
 * their own streams, and final must not disturb a context. */
static void test_fused(void **state)
{
	static const size_t pre[] = { 0, 64, 128 * 1024, 1, 63, 100 };
	unsigned char ma[20], mb[20], want[20];
	size_t i;
	int r;

	(void)state;
	for (i = 0; i < sizeof(pre) / sizeof(pre[0]); i++) {
		for (r = 0; r < 6; r++) {
			size_t len = rnd() % (DATA - pre[i]), off = 0;
			struct sha1 a, b;

			sha1_init(&a);
			sha1_init(&b);
			sha1_update(&a, data, pre[i]);
			while (off < len) {
				size_t k = r % 2 ? rnd() % 300000 : 131072;

				if (k > len - off)
					k = len - off;
				sha1_update2(&a, &b, data + pre[i] + off, k);
				off += k;
				if (rnd() % 4 == 0) {  /* a peek in between */
					sha1_final(&b, mb);
					ref(data + pre[i], off, want);
					assert_memory_equal(mb, want, 20);
				}
			}
			sha1_final(&a, ma);
			sha1_final(&b, mb);
			ref(data, pre[i] + len, want);
			assert_memory_equal(ma, want, 20);
			ref(data + pre[i], len, want);
			assert_memory_equal(mb, want, 20);
		}
	}
}

/* a part hash restarted every part_size bytes next to a whole-file hash,
 * as upload.c runs them */
static void test_parts(void **state)
{
	const size_t ps = 256 * 1024;
	unsigned char md[20], want[20];
	struct sha1 whole, part;
	size_t off;

	(void)state;
	sha1_init(&whole);
	sha1_init(&part);
	for (off = 0; off < DATA; ) {
		size_t k = 4096 + rnd() % 70000, pend = (off / ps + 1) * ps;

		if (k > DATA - off)
			k = DATA - off;
		if (off + k > pend)
			k = pend - off;
		sha1_update2(&whole, &part, data + off, k);
		off += k;
		if (off % ps == 0 || off == DATA) {
			size_t start = (off - 1) / ps * ps;

			sha1_final(&part, md);
			ref(data + start, off - start, want);
			assert_memory_equal(md, want, 20);
			sha1_init(&part);
		}
	}
	sha1_final(&whole, md);
	ref(data, DATA, want);
	assert_memory_equal(md, want, 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_prestate_setup_teardown(test_vectors, generic_setup, NULL, NULL),
		cmocka_unit_test_prestate_setup_teardown(test_single, generic_setup, NULL, NULL),
		cmocka_unit_test_prestate_setup_teardown(test_fused, generic_setup, NULL, NULL),
		cmocka_unit_test_prestate_setup_teardown(test_parts, generic_setup, NULL, NULL),
		cmocka_unit_test_prestate_setup_teardown(test_vectors, generic_setup, NULL, (void *)1),
		cmocka_unit_test_prestate_setup_teardown(test_single, generic_setup, NULL, (void *)1),
		cmocka_unit_test_prestate_setup_teardown(test_fused, generic_setup, NULL, (void *)1),
		cmocka_unit_test_prestate_setup_teardown(test_parts, generic_setup, NULL, (void *)1),
	};

	fprintf(stderr, "# sha1: SHA-NI %s on this CPU\n",
		sha1_accelerated() ? "used" : "not available");
	return cmocka_run_group_tests(tests, setup, teardown);
}
