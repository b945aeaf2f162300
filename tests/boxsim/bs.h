/* bs.h - boxsim internal interfaces between its modules.
 *
 * http.c   MHD glue: request life cycle, auth, faults, log, responses
 * api.c    folders, files, users, preflight, download (api_*)
 * upl.c    simple uploads and upload sessions (upl_*)
 * store.c  items (files/folders), persistence, content paths (store_*)
 * fault.c  fault table (fault_*)
 * oauth.c  /oauth2/token and access-token checks (oauth_*)
 * parse.c  pure parsers (parse_*), linked by the unit tests too */
#ifndef BOXSIM_BS_H
#define BOXSIM_BS_H

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>

#include "codec.h"
#include "parse.h"

/* users/me max_upload_size and space_amount */
#define BS_MAX_UPLOAD 53687091200ULL
#define BS_SPACE 1099511627776ULL

struct bs_conf {
	char base[128];		/* e.g. http://127.0.0.1:41234 */
	char data[4096];	/* data directory */
	int tmp_data;		/* data dir made by us: remove at exit */
	char token[256];
	uint64_t part_size;	/* 0 = choose like Box */
	uint64_t chunked_min;
	char client_id[256], client_secret[256];
	uint64_t token_ttl;
};
extern struct bs_conf bs_conf;

struct bs_stats {
	uint64_t requests, faults_fired, bytes_received;
};
extern struct bs_stats bs_stats;
extern pthread_mutex_t bs_stats_lock;

/* ---- http.c ---- */
struct req;
typedef int (*req_data_fn)(struct req *r, const char *buf, size_t len);
typedef void (*req_done_fn)(struct req *r);

struct req {
	struct MHD_Connection *conn;
	char method[16];
	char path[2048];	/* without query */
	char query[4096];	/* re-encoded from MHD's arguments */
	const char *sub;	/* path below /2.0 or /api/2.0 */
	int upload_host;	/* request came on /api/2.0 */
	char arg[64];		/* a path id a handler keeps for later */
	int first_done;
	int sim;		/* /_sim control request: no log/faults */
	uint64_t bytes;
	char content_range[128];
	const char *fault;	/* kind name of the fired fault */
	int reset;		/* drop the connection after reset_after */
	uint64_t reset_after;
	uint64_t delay_ms;
	struct MHD_Response *resp;
	int status;
	req_data_fn on_data;	/* streaming body sink, NULL: buffer */
	req_done_fn on_done;	/* builds the response at the end */
	char *body;
	size_t blen, bcap;
	void *hctx;
	void (*hfree)(void *hctx);
	double t0;
};

const char *http_header(struct req *r, const char *name);
const char *http_arg(struct req *r, const char *name);
/* Set the response (first one wins; later calls are ignored). */
void http_respond(struct req *r, int status, struct MHD_Response *resp);
/* JSON response; takes ownership of obj (NULL: empty body). */
void http_json(struct req *r, int status, cJSON *obj);
void http_empty(struct req *r, int status);
/* Box ClientError; takes ownership of ctx (may be NULL). */
void http_error(struct req *r, int status, const char *code,
		const char *msg, cJSON *ctx);
void http_unauthorized(struct req *r);
/* Parsed JSON body (buffered) or NULL + 400 already set. */
cJSON *http_body_json(struct req *r, int required);
int http_run(const char *listen, const char *cert, const char *key,
	     const char *logpath);
void http_log_open(const char *path);

/* ---- store.c ---- */
struct item {
	uint64_t id;
	int folder;
	uint64_t parent;
	char *name;
	char *description;
	uint64_t size;
	char sha1[41];
	uint64_t seq;
	uint64_t version;
	int64_t created, modified, ccreated, cmodified;
};

int store_init(void);
void store_lock(void);
void store_unlock(void);
struct item *store_get(uint64_t id);	/* locked */
struct item *store_get_str(const char *id);
struct item *store_child(uint64_t parent, const char *name); /* ci */
/* Children sorted folders first then by name; caller frees the array. */
struct item **store_children(uint64_t parent, size_t *n);
struct item *store_add(int folder, uint64_t parent, const char *name);
void store_remove(struct item *it);	/* not recursive */
uint64_t store_new_id(void);
int store_path(const struct item *it, char *buf, size_t len);
int store_save(void);
uint64_t store_folder_size(uint64_t id);
int store_is_ancestor(uint64_t anc, uint64_t id);
void store_touch(struct item *it);
/* Scratch file path inside the data dir (same fs as tree/). */
int store_tmp_path(char *buf, size_t len, const char *tag);
uint64_t store_space_used(void);
void store_cleanup(void);

/* ---- fault.c ---- */
int fault_add(const char *spec, char *err, size_t errlen);
void fault_clear(void);
cJSON *fault_list(void);
/* Returns 1 and a copy of the firing fault if one fires for the request. */
int fault_check(const char *method, const char *path, struct fault_spec *f);

/* ---- oauth.c ---- */
void oauth_add_refresh(const char *rt);
int oauth_token_ok(const char *token);
void oauth_handle(struct req *r);

/* ---- api.c ---- */
void api_route(struct req *r);
void api_dl(struct req *r);
cJSON *api_file_json(struct item *it, const char *fields);
cJSON *api_item_mini(struct item *it);
int api_name_error(struct req *r, const char *name);
cJSON *api_conflict_ctx(struct item *c, int array);
int api_if_match(struct req *r, struct item *it);

/* ---- upl.c ---- */
/* Returns 1 if it handled the route. */
int upl_route(struct req *r, const char *sub);
int upl_expire_path(const char *path);
uint64_t upl_sessions_open(void);
void upl_init(void);

#endif
