/* fuzz.h - helpers shared by the fuzz targets. */
#ifndef BOXFS_FUZZ_H
#define BOXFS_FUZZ_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The input after its first (selector) byte as a malloc'ed C string, as the
 * daemon's parsers get it (http.c NUL-terminates bodies and headers); NULL
 * when there is no selector byte or no memory. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s;

	if (size < 1 || !(s = malloc(size)))
		return NULL;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	return s;
}

#endif
