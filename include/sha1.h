/* sha1.h - SHA-1 contexts that can take the same bytes into two digests
 * in one pass.
 *
 * An upload needs two SHA-1s of every byte of a streamed file: the part's
 * (the Digest of its PUT) and the whole file's (the Digest of the commit).
 * They hash the same bytes, 64-byte aligned with each other when the part
 * size is a multiple of 64, so the message schedule can be shared and the
 * two round chains interleaved: with the x86 SHA extensions this costs
 * about what one pass costs (one SHA-1 is latency-bound there), where two
 * separate passes cost twice. Without them, every call falls back to
 * OpenSSL's SHA-1 block function, one context after the other.
 *
 * A context is a plain struct (no allocation, copyable); not thread-safe:
 * the caller serializes the use of a context.
 *
 * Owner: sha1.c. Tests: tests/unit/fs/test_sha1.c (against OpenSSL). */
#ifndef BOXFS_SHA1_H
#define BOXFS_SHA1_H

#include <stddef.h>
#include <stdint.h>

struct sha1 {
	uint32_t h[5];
	uint64_t len;               /* bytes taken so far */
	unsigned char buf[64];      /* len % 64 bytes not yet compressed */
};

void sha1_init(struct sha1 *c);
void sha1_update(struct sha1 *c, const void *p, size_t n);
/* The same n bytes into a and b. One pass when both have taken the same
 * number of bytes modulo 64 (else it is two sha1_update calls). a != b. */
void sha1_update2(struct sha1 *a, struct sha1 *b, const void *p, size_t n);
/* The digest of what c has taken so far; c is not changed (it can go on). */
void sha1_final(const struct sha1 *c, unsigned char md[20]);

/* 1 when the fused two-digest pass uses the CPU's SHA extensions. */
int sha1_accelerated(void);
/* Tests: force (1) or stop forcing (0) the OpenSSL fallback. */
void sha1_force_generic(int on);

#endif
