/* options.h - the daemon's settings, filled once by main before mounting.
 *
 * Owner: main.c parses the command line (fuse_opt) into the one global
 * `boxfs_opts`; every other module only reads it. Strings are heap copies
 * owned by main and live until exit. */
#ifndef BOXFS_OPTIONS_H
#define BOXFS_OPTIONS_H

#include <stdint.h>

struct boxfs_opts {
	char *api_url;          /* default https://api.box.com/2.0 */
	char *upload_url;       /* default https://upload.box.com/api/2.0 */
	char *root_id;          /* Box folder id mounted at the root, default "0" */
	char *token_file;       /* file holding the access token (0600), or NULL */
	char *cafile;           /* extra CA bundle for TLS verification, or NULL */
	char *cache_dir;        /* spool directory, default ~/.cache/boxfs */
	double attr_ttl;        /* kernel attribute/entry cache, seconds (default 1) */
	double dir_ttl;         /* folder listing cache, seconds (default 10) */
	int connect_timeout;    /* seconds to connect (default 10) */
	int io_timeout;         /* seconds without progress before a transfer fails (default 30) */
	int retries;            /* attempts for 429/5xx/network errors (default 5) */
	int timeout;            /* seconds one request may take with its retries when
				   the server makes no progress (default 60) */
	int part_parallel;      /* parts in flight per file (default 4) */
	int upload_threads;     /* worker threads = global cap of parts in flight (default 8) */
	uint64_t mem_budget;    /* bytes of parts queued or in flight, all files (default 256 MiB) */
	uint64_t spool_max;     /* bytes of spool on disk, all files (default 0 = free disk) */
	uint64_t chunked_min;   /* files >= this use upload sessions (default 20000000) */
	int predict;            /* predict the size of plain copies (default 1) */
	double writeback;       /* >0: write-back mode, commit after this many idle seconds (default 0 = off) */
	int auth_wait;          /* seconds close() waits for a refused token to be fixed (default 60) */
	int read_ahead_kb;      /* kernel read-ahead of the mount, KiB, set through sysfs (default 1024, 0 = kernel's) */
	int unmount_refuse;     /* -o unmount=refuse: keep the mount busy while uploads are pending */
	int debug;              /* -d: debug logging */
	int foreground;         /* -f */
};

extern struct boxfs_opts boxfs_opts;

#endif
