/* status.c - `boxfs status MOUNTPOINT [--watch]`: print what the daemon says
 * in the xattr user.boxfs.status of the mount root. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "status.h"

#define STATUS_XATTR "user.boxfs.status"
#define STATUS_MAX   65536
#define STATUS_BAR   24

static volatile sig_atomic_t status_stop;

static void status_on_signal(int sig)
{
	(void)sig;
	status_stop = 1;
}

static double status_num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *status_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) && v->valuestring ? v->valuestring : "";
}

/* Human size: "12.3 MiB". */
static const char *status_size(double b, char *buf, size_t len)
{
	static const char *const u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int i = 0;

	while (b >= 1024 && i < 4) {
		b /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, len, "%.0f B", b);
	else
		snprintf(buf, len, "%.1f %s", b, u[i]);
	return buf;
}

static void status_upload(const cJSON *o)
{
	double sent = status_num(o, "bytes"), total = status_num(o, "total");
	double rate = status_num(o, "rate");
	double frac = total > 0 ? sent / total : 0;
	char bar[STATUS_BAR + 1], a[32], b[32], r[32], eta[32];
	int i, fill;

	if (frac > 1)
		frac = 1;
	fill = (int)(frac * STATUS_BAR);
	for (i = 0; i < STATUS_BAR; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[STATUS_BAR] = '\0';
	if (rate > 0 && total > sent)
		snprintf(eta, sizeof(eta), "%.0fs", (total - sent) / rate + 0.5);
	else
		snprintf(eta, sizeof(eta), "-");
	printf("  %s\n    [%s] %3.0f%%  %s / %s  parts %.0f/%.0f  %s/s  ETA %s  %s\n",
	       status_str(o, "name"), bar, frac * 100,
	       status_size(sent, a, sizeof(a)), status_size(total, b, sizeof(b)),
	       status_num(o, "parts_done"), status_num(o, "parts_total"),
	       status_size(rate, r, sizeof(r)), eta, status_str(o, "state"));
}

static void status_list(const cJSON *root, const char *key, const char *title)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, key);
	const cJSON *o;
	char a[32];

	printf("%s: %d\n", title, cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0);
	cJSON_ArrayForEach(o, arr) {
		if (!strcmp(key, "in_flight"))
			status_upload(o);
		else if (!strcmp(key, "failed"))
			printf("  %s  %s  failed: %s\n", status_str(o, "name"),
			       status_size(status_num(o, "total"), a, sizeof(a)),
			       status_str(o, "reason"));
		else
			printf("  %s  %s  waiting\n", status_str(o, "name"),
			       status_size(status_num(o, "total"), a, sizeof(a)));
	}
}

static void status_print(const cJSON *root)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "counters");
	char a[32];

	printf("auth: %s\n", status_str(root, "auth"));
	status_list(root, "in_flight", "uploading");
	status_list(root, "queued", "queued");
	status_list(root, "failed", "failed");
	printf("counters: uploaded %s (%.0f bytes), parts %.0f, retries %.0f, "
	       "re-sends %.0f, commits %.0f, errors %.0f\n",
	       status_size(status_num(c, "bytes_uploaded"), a, sizeof(a)),
	       status_num(c, "bytes_uploaded"), status_num(c, "parts"),
	       status_num(c, "retries"), status_num(c, "resends"),
	       status_num(c, "commits"), status_num(c, "errors"));
}

/* Read and print once. 0, or 1 with a message on stderr. */
static int status_once(const char *mnt, char *buf)
{
	ssize_t n = getxattr(mnt, STATUS_XATTR, buf, STATUS_MAX);
	cJSON *root;

	if (n < 0) {
		if (errno == ENODATA || errno == ENOTSUP)
			fprintf(stderr, "boxfs status: %s is not a boxfs mount\n",
				mnt);
		else
			fprintf(stderr, "boxfs status: %s: %s\n", mnt,
				strerror(errno));
		return 1;
	}
	buf[n] = '\0';
	root = cJSON_Parse(buf);
	if (!root || !cJSON_IsObject(root)) {
		fprintf(stderr, "boxfs status: %s: unreadable status (not a "
			"boxfs mount?)\n", mnt);
		cJSON_Delete(root);
		return 1;
	}
	status_print(root);
	cJSON_Delete(root);
	fflush(stdout);
	return 0;
}

static void status_usage(void)
{
	fprintf(stderr, "usage: boxfs status MOUNTPOINT [--watch]\n");
}

int status_main(int argc, char *argv[])
{
	const char *mnt = NULL;
	struct sigaction sa;
	char *buf;
	int watch = 0, i, rc;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--watch") || !strcmp(argv[i], "-w"))
			watch = 1;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("usage: boxfs status MOUNTPOINT [--watch]\n");
			return 0;
		} else if (argv[i][0] != '-' && !mnt)
			mnt = argv[i];
		else {
			status_usage();
			return 2;
		}
	}
	if (!mnt) {
		status_usage();
		return 2;
	}
	buf = malloc(STATUS_MAX + 1);
	if (!buf) {
		fprintf(stderr, "boxfs status: out of memory\n");
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = status_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	for (;;) {
		if (watch && isatty(STDOUT_FILENO))
			printf("\033[H\033[2J");  /* clear the screen */
		rc = status_once(mnt, buf);
		if (rc || !watch || status_stop)
			break;
		printf("\n");
		fflush(stdout);
		sleep(1);  /* a signal cuts it short */
		if (status_stop)
			break;
	}
	free(buf);
	return rc;
}
