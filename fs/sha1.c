/* sha1.c - SHA-1 with a fused two-digest pass (sha1.h).
 *
 * The compression function is OpenSSL's (SHA1_Transform) unless the CPU
 * has the x86 SHA extensions; then our own, written with the SHA-NI
 * intrinsics: one block function for one context and one that runs two
 * contexts over the same block, sharing the message schedule
 * (sha1msg1/sha1msg2) and interleaving the two round chains
 * (sha1nexte/sha1rnds4). A single SHA-1 chain is bound by the latency of
 * sha1rnds4, so the second chain fills the idle issue slots: two digests
 * for about the price of one (tests/unit/fs/test_sha1.c checks both paths
 * against OpenSSL; docs/PERFORMANCE.md finding 7 has the figures). */
#define OPENSSL_SUPPRESS_DEPRECATED  /* SHA1_Transform: the fallback */
#include <openssl/sha.h>
#include <pthread.h>
#include <string.h>

#include "sha1.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define SHA1_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

static int sha1_hw;             /* the CPU has SHA-NI, SSSE3, SSE4.1 */
static int sha1_generic;        /* tests: use the fallback anyway */
static pthread_once_t sha1_once = PTHREAD_ONCE_INIT;

static void sha1_detect(void)
{
#ifdef SHA1_X86
	unsigned int a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSSE3) ||
	    !(c & bit_SSE4_1))
		return;
	if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_SHA))
		sha1_hw = 1;
#endif
}

static int sha1_use_hw(void)
{
	pthread_once(&sha1_once, sha1_detect);
	return sha1_hw && !__atomic_load_n(&sha1_generic, __ATOMIC_RELAXED);
}

int sha1_accelerated(void)
{
	return sha1_use_hw();
}

void sha1_force_generic(int on)
{
	__atomic_store_n(&sha1_generic, on ? 1 : 0, __ATOMIC_RELAXED);
}

/* ---- the fallback: OpenSSL's compression function ---- */

static void sha1_blocks_generic(uint32_t h[5], const unsigned char *p,
				size_t nblocks)
{
	SHA_CTX t;

	memset(&t, 0, sizeof(t));
	t.h0 = h[0];
	t.h1 = h[1];
	t.h2 = h[2];
	t.h3 = h[3];
	t.h4 = h[4];
	while (nblocks--) {
		SHA1_Transform(&t, p);
		p += 64;
	}
	h[0] = t.h0;
	h[1] = t.h1;
	h[2] = t.h2;
	h[3] = t.h3;
	h[4] = t.h4;
}

#ifdef SHA1_X86
/* ---- SHA-NI ----
 * State: ABCD in one register (A in the top lane), E in the top lane of
 * another. Message: four quads of big-endian words, word t of the block
 * in lane 3 - (t % 4). Quad i >= 4 comes from the four before it:
 * w[t] = rol1(w[t-3] ^ w[t-8] ^ w[t-14] ^ w[t-16]). Each STEP is four
 * rounds: E (+ the quad) from the ABCD of four rounds back (sha1nexte),
 * then sha1rnds4 with the round function/constant of rounds 20f..20f+19. */
#define SHA1_TGT __attribute__((target("sha,sse4.1,ssse3")))

SHA1_TGT static inline __m128i sha1_load(const unsigned char *p)
{
	const __m128i bswap = _mm_set_epi64x(0x0001020304050607ULL,
					     0x08090a0b0c0d0e0fULL);

	return _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p), bswap);
}

#define SHA1_NEXTW(m0, m1, m2, m3)                                      \
	m0 = _mm_sha1msg2_epu32(_mm_xor_si128(_mm_sha1msg1_epu32(m0, m1), \
					      m2), m3)

/* rounds 4..79 of one block, the message quads in w0..w3 */
#define SHA1_ROUNDS(STEP)                                               \
	STEP(w1, 0); STEP(w2, 0); STEP(w3, 0);                          \
	SHA1_NEXTW(w0, w1, w2, w3); STEP(w0, 0);                        \
	SHA1_NEXTW(w1, w2, w3, w0); STEP(w1, 1);                        \
	SHA1_NEXTW(w2, w3, w0, w1); STEP(w2, 1);                        \
	SHA1_NEXTW(w3, w0, w1, w2); STEP(w3, 1);                        \
	SHA1_NEXTW(w0, w1, w2, w3); STEP(w0, 1);                        \
	SHA1_NEXTW(w1, w2, w3, w0); STEP(w1, 1);                        \
	SHA1_NEXTW(w2, w3, w0, w1); STEP(w2, 2);                        \
	SHA1_NEXTW(w3, w0, w1, w2); STEP(w3, 2);                        \
	SHA1_NEXTW(w0, w1, w2, w3); STEP(w0, 2);                        \
	SHA1_NEXTW(w1, w2, w3, w0); STEP(w1, 2);                        \
	SHA1_NEXTW(w2, w3, w0, w1); STEP(w2, 2);                        \
	SHA1_NEXTW(w3, w0, w1, w2); STEP(w3, 3);                        \
	SHA1_NEXTW(w0, w1, w2, w3); STEP(w0, 3);                        \
	SHA1_NEXTW(w1, w2, w3, w0); STEP(w1, 3);                        \
	SHA1_NEXTW(w2, w3, w0, w1); STEP(w2, 3);                        \
	SHA1_NEXTW(w3, w0, w1, w2); STEP(w3, 3)

#define SHA1_STEP_A(w, f)                                               \
	do {                                                            \
		xa = _mm_sha1nexte_epu32(pa, w);                        \
		pa = a;                                                 \
		a = _mm_sha1rnds4_epu32(a, xa, f);                      \
	} while (0)

#define SHA1_STEP_AB(w, f)                                              \
	do {                                                            \
		xa = _mm_sha1nexte_epu32(pa, w);                        \
		xb = _mm_sha1nexte_epu32(pb, w);                        \
		pa = a;                                                 \
		pb = b;                                                 \
		a = _mm_sha1rnds4_epu32(a, xa, f);                      \
		b = _mm_sha1rnds4_epu32(b, xb, f);                      \
	} while (0)

SHA1_TGT static void sha1_blocks_ni(uint32_t h[5], const unsigned char *p,
				    size_t nblocks)
{
	__m128i a = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)h), 0x1B);
	__m128i ea = _mm_set_epi32((int)h[4], 0, 0, 0);

	while (nblocks--) {
		__m128i a0 = a, ea0 = ea, pa = a, xa;
		__m128i w0 = sha1_load(p), w1 = sha1_load(p + 16);
		__m128i w2 = sha1_load(p + 32), w3 = sha1_load(p + 48);

		xa = _mm_add_epi32(ea, w0);
		a = _mm_sha1rnds4_epu32(a, xa, 0);
		SHA1_ROUNDS(SHA1_STEP_A);
		ea = _mm_sha1nexte_epu32(pa, ea0);
		a = _mm_add_epi32(a, a0);
		p += 64;
	}
	_mm_storeu_si128((__m128i *)h, _mm_shuffle_epi32(a, 0x1B));
	h[4] = (uint32_t)_mm_extract_epi32(ea, 3);
}

SHA1_TGT static void sha1_blocks2_ni(uint32_t ha[5], uint32_t hb[5],
				     const unsigned char *p, size_t nblocks)
{
	__m128i a = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)ha), 0x1B);
	__m128i b = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)hb), 0x1B);
	__m128i ea = _mm_set_epi32((int)ha[4], 0, 0, 0);
	__m128i eb = _mm_set_epi32((int)hb[4], 0, 0, 0);

	while (nblocks--) {
		__m128i a0 = a, b0 = b, ea0 = ea, eb0 = eb;
		__m128i pa = a, pb = b, xa, xb;
		__m128i w0 = sha1_load(p), w1 = sha1_load(p + 16);
		__m128i w2 = sha1_load(p + 32), w3 = sha1_load(p + 48);

		xa = _mm_add_epi32(ea, w0);
		xb = _mm_add_epi32(eb, w0);
		a = _mm_sha1rnds4_epu32(a, xa, 0);
		b = _mm_sha1rnds4_epu32(b, xb, 0);
		SHA1_ROUNDS(SHA1_STEP_AB);
		ea = _mm_sha1nexte_epu32(pa, ea0);
		eb = _mm_sha1nexte_epu32(pb, eb0);
		a = _mm_add_epi32(a, a0);
		b = _mm_add_epi32(b, b0);
		p += 64;
	}
	_mm_storeu_si128((__m128i *)ha, _mm_shuffle_epi32(a, 0x1B));
	_mm_storeu_si128((__m128i *)hb, _mm_shuffle_epi32(b, 0x1B));
	ha[4] = (uint32_t)_mm_extract_epi32(ea, 3);
	hb[4] = (uint32_t)_mm_extract_epi32(eb, 3);
}
#endif

static void sha1_blocks(uint32_t h[5], const unsigned char *p, size_t n)
{
#ifdef SHA1_X86
	if (sha1_use_hw()) {
		sha1_blocks_ni(h, p, n);
		return;
	}
#endif
	sha1_blocks_generic(h, p, n);
}

static void sha1_blocks2(uint32_t ha[5], uint32_t hb[5],
			 const unsigned char *p, size_t n)
{
#ifdef SHA1_X86
	if (sha1_use_hw()) {
		sha1_blocks2_ni(ha, hb, p, n);
		return;
	}
#endif
	sha1_blocks_generic(ha, p, n);
	sha1_blocks_generic(hb, p, n);
}

/* ---- contexts ---- */

void sha1_init(struct sha1 *c)
{
	static const uint32_t iv[5] = {
		0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0
	};

	memcpy(c->h, iv, sizeof(iv));
	c->len = 0;
}

/* Top up c's partial block from p; returns the bytes taken. */
static size_t sha1_fill(struct sha1 *c, const unsigned char *p, size_t n)
{
	size_t have = (size_t)(c->len % 64), m = 64 - have;

	if (!have)
		return 0;
	if (m > n)
		m = n;
	memcpy(c->buf + have, p, m);
	c->len += m;
	if (have + m == 64)
		sha1_blocks(c->h, c->buf, 1);
	return m;
}

void sha1_update(struct sha1 *c, const void *p, size_t n)
{
	const unsigned char *q = p;
	size_t m = sha1_fill(c, q, n);

	q += m;
	n -= m;
	if (n >= 64) {
		sha1_blocks(c->h, q, n / 64);
		c->len += n / 64 * 64;
		q += n / 64 * 64;
		n %= 64;
	}
	memcpy(c->buf, q, n);
	c->len += n;
}

void sha1_update2(struct sha1 *a, struct sha1 *b, const void *p, size_t n)
{
	const unsigned char *q = p;
	size_t m;

	if (a->len % 64 != b->len % 64) {
		sha1_update(a, p, n);
		sha1_update(b, p, n);
		return;
	}
	m = sha1_fill(a, q, n);
	sha1_fill(b, q, n);
	q += m;
	n -= m;
	if (n >= 64) {
		sha1_blocks2(a->h, b->h, q, n / 64);
		a->len += n / 64 * 64;
		b->len += n / 64 * 64;
		q += n / 64 * 64;
		n %= 64;
	}
	memcpy(a->buf, q, n);
	memcpy(b->buf, q, n);
	a->len += n;
	b->len += n;
}

void sha1_final(const struct sha1 *c, unsigned char md[20])
{
	unsigned char pad[64 + 8] = { 0x80 };
	struct sha1 t = *c;
	uint64_t bits = c->len * 8;
	size_t have = (size_t)(c->len % 64);
	size_t padlen = have < 56 ? 56 - have : 120 - have;
	int i;

	for (i = 0; i < 8; i++)
		pad[padlen + i] = (unsigned char)(bits >> (56 - 8 * i));
	sha1_update(&t, pad, padlen + 8);
	for (i = 0; i < 5; i++) {
		md[4 * i] = (unsigned char)(t.h[i] >> 24);
		md[4 * i + 1] = (unsigned char)(t.h[i] >> 16);
		md[4 * i + 2] = (unsigned char)(t.h[i] >> 8);
		md[4 * i + 3] = (unsigned char)t.h[i];
	}
}
