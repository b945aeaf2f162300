/* log.h - levelled logging to stderr (foreground) or syslog (daemon).
 *
 * Never pass a token, a refresh token or an Authorization header to these
 * functions: the log is meant to be pasted into bug reports. */
#ifndef BOXFS_LOG_H
#define BOXFS_LOG_H

enum log_level { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Set the threshold and the sink (use_syslog: 1 after daemonizing). */
void log_setup(enum log_level max, int use_syslog);
void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_err(...)   log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
