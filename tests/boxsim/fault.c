/* fault.c - deterministic fault injection table (see README.md). */
#include "bs.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

struct fault {
	int id;
	char spec[1024];
	struct fault_spec f;
	uint64_t seen;		/* matching requests so far */
	uint64_t hits;		/* times fired */
	struct fault *next;
};

static struct fault *faults, **faults_tail = &faults;
static int next_id = 1;
static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;

int fault_add(const char *spec, char *err, size_t errlen)
{
	struct fault *n = calloc(1, sizeof(*n));
	int id;

	if (!n) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (parse_fault_spec(spec, &n->f, err, errlen)) {
		free(n);
		return -1;
	}
	snprintf(n->spec, sizeof(n->spec), "%s", spec);
	pthread_mutex_lock(&fault_lock);
	id = n->id = next_id++;
	*faults_tail = n;
	faults_tail = &n->next;
	pthread_mutex_unlock(&fault_lock);
	return id;
}

void fault_clear(void)
{
	struct fault *f, *nx;

	pthread_mutex_lock(&fault_lock);
	for (f = faults; f; f = nx) {
		nx = f->next;
		free(f);
	}
	faults = NULL;
	faults_tail = &faults;
	pthread_mutex_unlock(&fault_lock);
}

cJSON *fault_list(void)
{
	cJSON *a = cJSON_CreateArray(), *o;
	struct fault *f;

	if (!a)
		return NULL;
	pthread_mutex_lock(&fault_lock);
	for (f = faults; f; f = f->next) {
		o = cJSON_CreateObject();
		if (!o)
			break;
		cJSON_AddNumberToObject(o, "id", f->id);
		cJSON_AddStringToObject(o, "spec", f->spec);
		cJSON_AddNumberToObject(o, "hits", (double)f->hits);
		cJSON_AddItemToArray(a, o);
	}
	pthread_mutex_unlock(&fault_lock);
	return a;
}

/* commit202 only targets commits, expire only session requests. */
static int kind_applies(const struct fault_spec *f, const char *path)
{
	size_t n = strlen(path);

	if (f->kind == FK_COMMIT202)
		return n > 7 && !strcmp(path + n - 7, "/commit");
	if (f->kind == FK_EXPIRE)
		return strstr(path, "/files/upload_sessions/") != NULL;
	return 1;
}

int fault_check(const char *method, const char *path, struct fault_spec *out)
{
	struct fault *f;
	int fired = 0;

	pthread_mutex_lock(&fault_lock);
	for (f = faults; f; f = f->next) {
		if (f->f.method[0] && strcmp(f->f.method, method))
			continue;
		if (f->f.path[0] && fnmatch(f->f.path, path, 0))
			continue;
		if (!kind_applies(&f->f, path))
			continue;
		f->seen++;
		if (fired || f->seen < f->f.nth)
			continue;
		if (f->f.count && f->seen >= f->f.nth + f->f.count)
			continue;
		f->hits++;
		*out = f->f;
		fired = 1;
	}
	pthread_mutex_unlock(&fault_lock);
	return fired;
}
