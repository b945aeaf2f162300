/* log.c - levelled logging to stderr or syslog (see log.h). */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

static enum log_level log_max = LOG_LVL_INFO;
static int log_syslog;
/* One lock so lines of concurrent threads never interleave on stderr. */
static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;

void log_setup(enum log_level max, int use_syslog)
{
	log_max = max;
	log_syslog = use_syslog;
	if (use_syslog)
		openlog("boxfs", LOG_PID, LOG_DAEMON);
}

static const char *log_name(enum log_level lvl)
{
	switch (lvl) {
	case LOG_LVL_ERR:   return "error";
	case LOG_LVL_WARN:  return "warning";
	case LOG_LVL_INFO:  return "info";
	default:            return "debug";
	}
}

static int log_prio(enum log_level lvl)
{
	switch (lvl) {
	case LOG_LVL_ERR:   return LOG_ERR;
	case LOG_LVL_WARN:  return LOG_WARNING;
	case LOG_LVL_INFO:  return LOG_INFO;
	default:            return LOG_DEBUG;
	}
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	size_t n;

	if (lvl > log_max)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* a trailing newline from the caller would give empty lines */
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';

	if (log_syslog) {
		syslog(log_prio(lvl), "%s", line);
		return;
	}
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	pthread_mutex_lock(&log_mutex);
	fprintf(stderr, "%02d:%02d:%02d.%03ld boxfs %s: %s\n", tm.tm_hour,
		tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, log_name(lvl), line);
	pthread_mutex_unlock(&log_mutex);
}
