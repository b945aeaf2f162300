/* main.c - command line, startup checks, the FUSE session loop.
 *
 * Order matters: the server and token are checked before anything is
 * mounted (fail fast, one line), and threads (workers) start only after
 * fuse_daemonize() forked. */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <locale.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "box.h"
#include "config.h"
#include "fsops.h"
#include "inode.h"
#include "log.h"
#include "options.h"
#include "predict.h"
#include "status.h"
#include "upload.h"
#include "worker.h"

struct boxfs_opts boxfs_opts;

/* Raw option strings; validated after parsing so every bad value gets one
 * clear line naming the option. */
struct raw_opts {
	char *api_url, *upload_url, *root_id, *token_file, *cafile, *cache_dir;
	char *attr_ttl, *dir_ttl, *connect_timeout, *io_timeout, *retries, *timeout;
	char *part_parallel, *upload_threads, *mem_budget, *spool_max;
	char *chunked_min, *config, *predict, *writeback, *unmount, *auth_wait;
	char *read_ahead_kb;
	int help, version;
};

#define OPT(t, p) { t, offsetof(struct raw_opts, p), 1 }
static const struct fuse_opt opt_spec[] = {
	OPT("api_url=%s", api_url),
	OPT("upload_url=%s", upload_url),
	OPT("root_id=%s", root_id),
	OPT("token_file=%s", token_file),
	OPT("cafile=%s", cafile),
	OPT("cache_dir=%s", cache_dir),
	OPT("attr_ttl=%s", attr_ttl),
	OPT("dir_ttl=%s", dir_ttl),
	OPT("connect_timeout=%s", connect_timeout),
	OPT("io_timeout=%s", io_timeout),
	OPT("retries=%s", retries),
	OPT("timeout=%s", timeout),
	OPT("part_parallel=%s", part_parallel),
	OPT("upload_threads=%s", upload_threads),
	OPT("mem_budget=%s", mem_budget),
	OPT("spool_max=%s", spool_max),
	OPT("chunked_min=%s", chunked_min),
	OPT("config=%s", config),
	OPT("predict=%s", predict),
	OPT("writeback=%s", writeback),
	OPT("unmount=%s", unmount),
	OPT("auth_wait=%s", auth_wait),
	OPT("read_ahead_kb=%s", read_ahead_kb),
	/* fstab words mount(8) may leave in the options: not for the kernel */
	FUSE_OPT_KEY("_netdev", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nofail", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("noauto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("auto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("user", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("users", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nouser", FUSE_OPT_KEY_DISCARD),
	{ "-h", offsetof(struct raw_opts, help), 1 },
	{ "--help", offsetof(struct raw_opts, help), 1 },
	{ "-V", offsetof(struct raw_opts, version), 1 },
	{ "--version", offsetof(struct raw_opts, version), 1 },
	FUSE_OPT_END
};

static void usage(const char *prog)
{
	printf("usage: %s [options] [SOURCE] MOUNTPOINT\n\n"
"Mounts a Box folder (or any server speaking the Box content API).\n"
"The access token comes from -o token_file=PATH or the BOX_TOKEN\n"
"environment variable; it is never accepted on the command line.\n\n"
"boxfs options:\n"
"    -o api_url=URL         API root (default https://api.box.com/2.0)\n"
"    -o upload_url=URL      upload root (default https://upload.box.com/api/2.0)\n"
"    -o root_id=ID          Box folder mounted at the root (default 0)\n"
"    -o token_file=PATH     file holding the access token (default: $BOX_TOKEN)\n"
"    -o cafile=PATH         extra CA bundle for TLS (default: system CAs)\n"
"    -o cache_dir=PATH      spool directory (default $XDG_CACHE_HOME/boxfs\n"
"                           or ~/.cache/boxfs)\n"
"    -o attr_ttl=SECONDS    kernel attribute cache (default 1)\n"
"    -o dir_ttl=SECONDS     folder listing cache (default 10)\n"
"    -o connect_timeout=S   seconds to connect (default 10)\n"
"    -o io_timeout=S        seconds without progress before a transfer\n"
"                           fails (default 30)\n"
"    -o retries=N           attempts for 429/5xx/network errors (default 5)\n"
"    -o timeout=S           no retry starts that could end after S seconds\n"
"                           (a dead or hung server fails a call within S,\n"
"                           default 60)\n"
"    -o part_parallel=N     parts in flight per file (default 4)\n"
"    -o upload_threads=N    upload worker threads (default 8)\n"
"    -o mem_budget=SIZE     bytes of parts queued or in flight, all files (default 256M)\n"
"    -o spool_max=SIZE      spool disk use, all files (default 0 = free disk)\n"
"    -o chunked_min=SIZE    files from this size use upload sessions\n"
"                           (default 20000000)\n"
"    -o predict=on|off      stream plain copies (cp, cat, dd, pv) with the\n"
"                           size of the file they read (default on)\n"
"    -o writeback=SECONDS   write-back mode: close() returns once the data is\n"
"                           safe in the spool and journal; the upload is\n"
"                           committed after SECONDS without changes, resumed\n"
"                           after a crash (default 0 = off: close() waits)\n"
"    -o unmount=wait|refuse what unmount does while uploads are pending:\n"
"                           upload them first (wait, default) or fail with\n"
"                           EBUSY until they are done (refuse)\n"
"    -o auth_wait=SECONDS   how long close() waits for a refused token to be\n"
"                           fixed in token_file before it fails with EACCES\n"
"                           (default 60; write-back uploads wait forever)\n"
"    -o read_ahead_kb=N     kernel read-ahead of the mount, set through sysfs\n"
"                           when allowed (root); 0 keeps the kernel's 128\n"
"                           (default 1024)\n"
"    -o config=PATH         config file, one option per line (default\n"
"                           $XDG_CONFIG_HOME/boxfs/config or\n"
"                           ~/.config/boxfs/config); -o options override it\n"
"    SIZE: bytes, or with a K, M, G or T suffix (powers of 1024).\n\n"
"general options:\n"
"    -f                     stay in the foreground\n"
"    -d                     debug output (implies -f)\n"
"    -s                     single-threaded\n"
"    -h, --help             this help\n"
"    -V, --version          version\n"
"    -o OPT[,OPT...]        FUSE mount options (e.g. allow_other, ro)\n",
	       prog);
}

static int bad(const char *opt, const char *val, const char *why)
{
	int line;
	const char *file = config_origin(opt, val, &line);

	if (file)       /* name the line the user has to fix */
		fprintf(stderr, "boxfs: %s:%d: ", file, line);
	else
		fprintf(stderr, "boxfs: ");
	fprintf(stderr, "invalid value '%s' for %s: %s\n", val, opt, why);
	return -1;
}

static int parse_size(const char *opt, const char *s, uint64_t *out)
{
	unsigned long long v;
	uint64_t mul = 1;
	char *end;

	if (!s)
		return 0;
	if (*s < '0' || *s > '9')
		return bad(opt, s, "expected a size such as 1048576 or 64M");
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return bad(opt, s, "too large");
	switch (*end) {
	case 'k': case 'K':
		mul = 1ULL << 10;
		break;
	case 'm': case 'M':
		mul = 1ULL << 20;
		break;
	case 'g': case 'G':
		mul = 1ULL << 30;
		break;
	case 't': case 'T':
		mul = 1ULL << 40;
		break;
	case '\0':
		break;
	default:
		return bad(opt, s, "unknown size suffix (use K, M, G or T)");
	}
	if (*end) {
		end++;
		if (!strcmp(end, "iB") || !strcmp(end, "B"))
			end += strlen(end);
	}
	if (*end)
		return bad(opt, s, "unknown size suffix (use K, M, G or T)");
	if (v > UINT64_MAX / mul)
		return bad(opt, s, "too large");
	*out = v * mul;
	return 0;
}

static int parse_int(const char *opt, const char *s, int min, int *out)
{
	long v;
	char *end;

	if (!s)
		return 0;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > INT_MAX) {
		char why[64];

		snprintf(why, sizeof(why), "expected an integer >= %d", min);
		return bad(opt, s, why);
	}
	*out = (int)v;
	return 0;
}

static int parse_onoff(const char *opt, const char *s, int *out)
{
	if (!s)
		return 0;
	if (!strcmp(s, "on") || !strcmp(s, "1") || !strcmp(s, "yes"))
		*out = 1;
	else if (!strcmp(s, "off") || !strcmp(s, "0") || !strcmp(s, "no"))
		*out = 0;
	else
		return bad(opt, s, "expected on or off");
	return 0;
}

static int parse_secs(const char *opt, const char *s, double *out)
{
	double v;
	char *end;

	if (!s)
		return 0;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0) || v > 1e9)
		return bad(opt, s, "expected a number of seconds >= 0");
	*out = v;
	return 0;
}

static int parse_url(const char *opt, char *s, char **out)
{
	size_t n;

	if (!s)
		return 0;
	if (strncmp(s, "http://", 7) && strncmp(s, "https://", 8))
		return bad(opt, s, "expected an http:// or https:// URL");
	n = strlen(s);
	while (n > 0 && s[n - 1] == '/')
		s[--n] = '\0';
	*out = s;
	return 0;
}

static char *default_cache_dir(void)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char *p = NULL;
	int n;

	if (xdg && xdg[0] == '/')
		n = asprintf(&p, "%s/boxfs", xdg);
	else if (home && home[0])
		n = asprintf(&p, "%s/.cache/boxfs", home);
	else
		n = asprintf(&p, "/tmp/boxfs-%u", (unsigned)getuid());
	return n < 0 ? NULL : p;
}

static void set_defaults(void)
{
	struct boxfs_opts *o = &boxfs_opts;

	o->api_url = "https://api.box.com/2.0";
	o->upload_url = "https://upload.box.com/api/2.0";
	o->root_id = "0";
	o->attr_ttl = 1;
	o->dir_ttl = 10;
	o->connect_timeout = 10;
	o->io_timeout = 30;
	o->retries = 5;
	o->timeout = 60;
	o->part_parallel = 4;
	o->upload_threads = 8;
	o->mem_budget = 256ULL << 20;
	o->spool_max = 0;
	o->chunked_min = 20000000;
	o->predict = 1;
	o->auth_wait = 60;
	o->read_ahead_kb = 1024;
}

/* Replace *path by its absolute form. 1 on success, 0 with errno set. */
static int absolutize(char **path)
{
	char *abs = realpath(*path, NULL);

	if (!abs)
		return 0;
	free(*path);
	*path = abs;
	return 1;
}

/* The spool holds file contents: an existing cache_dir that another user
 * owns or that group/others can enter is refused (upload.c creates a
 * missing one 0700). */
static int check_private(const char *dir)
{
	struct stat st;

	if (stat(dir, &st) || !S_ISDIR(st.st_mode))
		return 0;	/* upload_init creates it or says why not */
	if (st.st_uid != geteuid())
		return bad("cache_dir", dir, "owned by another user; use a "
			   "private directory");
	if (st.st_mode & 077) {
		char why[96];

		snprintf(why, sizeof(why), "open to group or others (mode "
			 "%03o); chmod 700 it", (unsigned)(st.st_mode & 0777));
		return bad("cache_dir", dir, why);
	}
	return 0;
}

/* Strings in raw stay allocated (owned by main until exit). */
static int apply(struct raw_opts *r)
{
	struct boxfs_opts *o = &boxfs_opts;

	if (parse_url("api_url", r->api_url, &o->api_url) ||
	    parse_url("upload_url", r->upload_url, &o->upload_url) ||
	    parse_secs("attr_ttl", r->attr_ttl, &o->attr_ttl) ||
	    parse_secs("dir_ttl", r->dir_ttl, &o->dir_ttl) ||
	    parse_int("connect_timeout", r->connect_timeout, 1,
		      &o->connect_timeout) ||
	    parse_int("io_timeout", r->io_timeout, 1, &o->io_timeout) ||
	    parse_int("retries", r->retries, 0, &o->retries) ||
	    parse_int("timeout", r->timeout, 1, &o->timeout) ||
	    parse_int("part_parallel", r->part_parallel, 1,
		      &o->part_parallel) ||
	    parse_int("upload_threads", r->upload_threads, 1,
		      &o->upload_threads) ||
	    parse_size("mem_budget", r->mem_budget, &o->mem_budget) ||
	    parse_size("spool_max", r->spool_max, &o->spool_max) ||
	    parse_size("chunked_min", r->chunked_min, &o->chunked_min) ||
	    parse_onoff("predict", r->predict, &o->predict) ||
	    parse_secs("writeback", r->writeback, &o->writeback) ||
	    parse_int("auth_wait", r->auth_wait, 0, &o->auth_wait) ||
	    parse_int("read_ahead_kb", r->read_ahead_kb, 0, &o->read_ahead_kb))
		return -1;
	if (o->read_ahead_kb > 65536)
		return bad("read_ahead_kb", r->read_ahead_kb,
			   "expected at most 65536");
	if (r->unmount) {
		if (strcmp(r->unmount, "wait") && strcmp(r->unmount, "refuse"))
			return bad("unmount", r->unmount,
				   "expected wait or refuse");
		o->unmount_refuse = !strcmp(r->unmount, "refuse");
	}
	if (r->root_id) {
		if (!r->root_id[0] || strlen(r->root_id) >= BOX_ID_MAX ||
		    strspn(r->root_id, "0123456789") != strlen(r->root_id))
			return bad("root_id", r->root_id,
				   "expected a Box folder id (digits)");
		o->root_id = r->root_id;
	}
	if (r->mem_budget && !o->mem_budget)
		return bad("mem_budget", r->mem_budget, "must not be 0");
	if (r->token_file) {
		struct stat st;

		if (stat(r->token_file, &st) || access(r->token_file, R_OK))
			return bad("token_file", r->token_file,
				   strerror(errno));
		/* a token others can read is a leaked token */
		if (st.st_mode & 077)
			return bad("token_file", r->token_file,
				   "readable by group or others (chmod 600)");
		/* absolute: the daemon runs in / after fuse_daemonize() */
		if (!absolutize(&r->token_file))
			return bad("token_file", r->token_file, strerror(errno));
		o->token_file = r->token_file;
	} else if (!getenv("BOX_TOKEN") || !getenv("BOX_TOKEN")[0]) {
		fprintf(stderr, "boxfs: no access token: set BOX_TOKEN or "
			"use -o token_file=PATH\n");
		return -1;
	}
	if (r->cafile) {
		if (access(r->cafile, R_OK) || !absolutize(&r->cafile))
			return bad("cafile", r->cafile, strerror(errno));
		o->cafile = r->cafile;
	}
	if (r->cache_dir) {
		if (r->cache_dir[0] != '/')
			return bad("cache_dir", r->cache_dir,
				   "expected an absolute path");
		o->cache_dir = r->cache_dir;
	} else {
		o->cache_dir = default_cache_dir();
		if (!o->cache_dir) {
			fprintf(stderr, "boxfs: out of memory\n");
			return -1;
		}
	}
	return check_private(o->cache_dir);
}

static void free_raw(struct raw_opts *r)
{
	free(r->api_url);
	free(r->upload_url);
	free(r->root_id);
	free(r->token_file);
	free(r->cafile);
	free(r->cache_dir);
	free(r->attr_ttl);
	free(r->dir_ttl);
	free(r->connect_timeout);
	free(r->io_timeout);
	free(r->retries);
	free(r->timeout);
	free(r->part_parallel);
	free(r->upload_threads);
	free(r->mem_budget);
	free(r->spool_max);
	free(r->chunked_min);
	free(r->config);
	free(r->predict);
	free(r->writeback);
	free(r->unmount);
	free(r->auth_wait);
	free(r->read_ahead_kb);
}

/* What parsing the command line allocated (tests/fuzz/fuzz_options.c
 * uses it too). */
static void parse_free(struct fuse_args *args, struct fuse_cmdline_opts *co,
		       struct raw_opts *raw)
{
	free(co->mountpoint);
	fuse_opt_free_args(args);
	if (!raw->cache_dir && boxfs_opts.cache_dir)
		free(boxfs_opts.cache_dir);
	free_raw(raw);
	config_free();
}

/* Our fixed mount options; the user's -o options come after and win. */
static int add_mount_opts(struct fuse_args *args)
{
	return fuse_opt_add_arg(args, "-o") ||
	       fuse_opt_add_arg(args,
				"default_permissions,fsname=boxfs,subtype=boxfs");
}

/* The folder to mount must exist (and be a folder) before mounting. */
static int check_root(char *msg, size_t len)
{
	struct box_item it;
	struct inode *root;
	int err;

	memset(&it, 0, sizeof(it));
	err = box_get_item(BOX_FOLDER, boxfs_opts.root_id, &it);
	if (err) {
		snprintf(msg, len, "cannot mount folder %s: %s",
			 boxfs_opts.root_id,
			 err == -ENOENT ? "no such folder" : strerror(-err));
		return err;
	}
	inode_lock();
	root = inode_find(FUSE_ROOT_ID);
	if (root && it.mtime)
		root->mtime = it.mtime;
	if (root && it.ctime)
		root->ctime = it.ctime;
	inode_unlock();
	return 0;
}

/* The startup check must end in exactly one line: retry chatter from the
 * HTTP layer is hidden unless -d asked for it. */
static int quiet_check(char *msg, size_t len)
{
	int saved = -1, nul, err, retries;

	if (!boxfs_opts.debug) {
		fflush(stderr);
		saved = dup(STDERR_FILENO);
		nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (saved >= 0 && nul >= 0)
			dup2(nul, STDERR_FILENO);
		if (nul >= 0)
			close(nul);
	}
	/* fail fast: a server that is down or refuses us at mount time gets
	 * two more tries, not the full retry budget meant for uploads */
	retries = boxfs_opts.retries;
	if (boxfs_opts.retries > 2)
		boxfs_opts.retries = 2;
	err = box_check(msg, len);
	if (!err)
		err = check_root(msg, len);
	boxfs_opts.retries = retries;
	if (saved >= 0) {
		fflush(stderr);
		dup2(saved, STDERR_FILENO);
		close(saved);
	}
	return err;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo: undo it in
 * place. */
static void unescape_octal(char *s)
{
	char *d = s;

	for (; *s; s++, d++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*d = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				    (s[3] - '0'));
			s += 3;
		} else {
			*d = *s;
		}
	}
	*d = 0;
}

/* The kernel caps a FUSE mount's read-ahead at its bdi default (128 KiB),
 * so sequential reads arrive as 128 KiB requests; 1 MiB cuts the round trips
 * eightfold (docs/PERFORMANCE.md). sysfs is writable by root only: anyone
 * else keeps the default (said at debug level). */
static void set_read_ahead_now(const char *mnt, int kb)
{
	char dev[32] = "", path[80];
	char *line = NULL;
	size_t cap = 0;
	int ok, e;
	FILE *f;

	if (kb <= 0 || !(f = fopen("/proc/self/mountinfo", "re")))
		return;
	while (getline(&line, &cap, f) > 0) {
		char d[32], *mp = malloc(strlen(line) + 1);

		/* id parent major:minor root mountpoint ...; the last match
		 * is the newest mount on that path: ours */
		if (mp && sscanf(line, "%*s %*s %31s %*s %s", d, mp) == 2) {
			unescape_octal(mp);
			if (!strcmp(mp, mnt))
				snprintf(dev, sizeof(dev), "%s", d);
		}
		free(mp);
	}
	free(line);
	fclose(f);
	if (!dev[0] || strchr(dev, '/')) {
		log_debug("read-ahead: %s not found in mountinfo", mnt);
		return;
	}
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
	f = fopen(path, "we");
	ok = f && fprintf(f, "%d\n", kb) > 0;
	e = errno;
	if (f && fclose(f)) {
		ok = 0;
		e = errno;
	}
	if (ok)
		log_debug("read-ahead: %d KiB (%s)", kb, path);
	else
		log_debug("read-ahead: cannot set %s: %s", path, strerror(e));
}

/* The kernel sets the read-ahead from our answer to its INIT request, so
 * ours goes after that: a worker job waits for op_init, gives libfuse a
 * moment to send the answer, then writes sysfs. */
static const char *ra_mnt;

static void set_read_ahead_job(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < 3000 && !fsops_initialized(); i++)
		usleep(10000);
	if (!fsops_initialized())
		return;
	usleep(100000);
	set_read_ahead_now(ra_mnt, boxfs_opts.read_ahead_kb);
}

static void set_read_ahead(const char *mnt, int kb)
{
	if (kb <= 0)
		return;
	ra_mnt = mnt;
	if (worker_submit(set_read_ahead_job, NULL))
		log_debug("read-ahead: left at the kernel's default");
}

static int run(struct fuse_args *args, struct fuse_cmdline_opts *co)
{
	struct fuse_loop_config lc = { .clone_fd = 0, .max_idle_threads = 10 };
	struct fuse_session *se;
	char msg[512] = "";
	int ret = 1, err;

	if (inode_init(boxfs_opts.root_id)) {
		fprintf(stderr, "boxfs: out of memory\n");
		return 1;
	}
	/* first, so that a bad mount option fails before any request */
	se = fuse_session_new(args, &fsops_ops, sizeof(fsops_ops), NULL);
	if (!se)
		goto out_inode;         /* libfuse printed why */
	err = box_init();
	if (err)	/* box/auth logged the one line that says why */
		goto out_session;
	err = quiet_check(msg, sizeof(msg));
	if (err) {
		fprintf(stderr, "boxfs: %s\n", msg[0] ? msg : strerror(-err));
		goto out_box;
	}
	err = upload_init();
	if (err) {
		fprintf(stderr, "boxfs: cannot use cache_dir %s: %s\n",
			boxfs_opts.cache_dir, strerror(-err));
		goto out_box;
	}
	if (fuse_set_signal_handlers(se))
		goto out_upload;
	if (fuse_session_mount(se, co->mountpoint))
		goto out_signals;
	fuse_daemonize(co->foreground);
	if (!co->foreground)
		log_setup(boxfs_opts.debug ? LOG_LVL_DEBUG : LOG_LVL_INFO, 1);
	predict_init("/proc", co->mountpoint, boxfs_opts.chunked_min);

	/* threads only now: fork() above keeps just the calling thread */
	err = worker_init(boxfs_opts.upload_threads);
	if (err) {
		log_err("cannot start worker threads: %s", strerror(-err));
		goto out_unmount;
	}
	set_read_ahead(co->mountpoint, boxfs_opts.read_ahead_kb);
	err = fsops_start(co->mountpoint);
	if (err) {
		log_err("cannot start the write-back thread: %s", strerror(-err));
		worker_shutdown();
		goto out_unmount;
	}
	log_info("mounted %s (folder %s at %s)", co->mountpoint,
		 boxfs_opts.root_id, boxfs_opts.api_url);
	if (co->singlethread)
		ret = fuse_session_loop(se);
	else
		ret = fuse_session_loop_mt(se, &lc);
	ret = ret ? 1 : 0;
	fsops_unmount();        /* write-back: upload what is pending now */
	worker_shutdown();
	fsops_shutdown();
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_upload:
	/* write states go before the upload module they belong to */
	inode_cleanup();
	upload_shutdown();
out_box:
	box_cleanup();
out_session:
	fuse_session_destroy(se);
out_inode:
	inode_cleanup();
	return ret;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_cmdline_opts co;
	struct raw_opts raw;
	int ret = 1;

	/* `boxfs status MOUNTPOINT`: a client, no FUSE option parsing */
	if (argc >= 2 && !strcmp(argv[1], "status"))
		return status_main(argc - 1, argv + 1);
	memset(&raw, 0, sizeof(raw));
	memset(&co, 0, sizeof(co));
	signal(SIGPIPE, SIG_IGN);
	/* case-insensitive name comparison needs towlower on Unicode */
	if (!setlocale(LC_CTYPE, "C.UTF-8"))
		setlocale(LC_CTYPE, "");
	set_defaults();

	/* the config file's options first, so the command line wins */
	if (config_build_args(argc, argv, opt_spec, &args))
		goto out;
	if (fuse_opt_parse(&args, &raw, opt_spec, NULL) == -1)
		goto out;
	if (raw.help) {
		usage(argv[0]);
		printf("\nFUSE options:\n");
		fuse_lowlevel_help();
		ret = 0;
		goto out;
	}
	if (raw.version) {
		printf("boxfs %s\nFUSE library %s\n", BOXFS_VERSION,
		       fuse_pkgversion());
		ret = 0;
		goto out;
	}
	if (apply(&raw))
		goto out;
	if (fuse_parse_cmdline(&args, &co))
		goto out;
	if (!co.mountpoint) {
		fprintf(stderr, "boxfs: no mountpoint given (try --help)\n");
		goto out;
	}
	boxfs_opts.debug = co.debug;
	boxfs_opts.foreground = co.foreground;
	log_setup(co.debug ? LOG_LVL_DEBUG : LOG_LVL_INFO, 0);
	if (add_mount_opts(&args)) {
		fprintf(stderr, "boxfs: out of memory\n");
		goto out;
	}
	ret = run(&args, &co);
out:
	parse_free(&args, &co, &raw);
	return ret;
}
