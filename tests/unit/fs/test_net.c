/* Tests of the network layer (box.c on http.c/auth.c) against a real
 * boxsim: every call of box.h, retries and their request log, ambiguous
 * part uploads, 202 commits, timeouts, token files and OAuth2 rotation.
 * boxsim's path comes from env BOXSIM. Data is kept small (1 MiB parts). */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "auth.h"
#include "box.h"
#include "codec.h"
#include "http.h"
#include "log.h"
#include "options.h"

struct boxfs_opts boxfs_opts;

static pid_t sim_pid;
static char dir[64] = "/tmp/boxfs-net-XXXXXX";
static char base[128], api[160], upl[160], logf[128];
#define PART (1u << 20)

static int sim_start(void **state)
{
	const char *bin = getenv("BOXSIM");
	int p[2];
	char data[128];
	FILE *f;

	(void)state;
	if (!bin)
		bin = "build/tests/boxsim/boxsim";
	if (!mkdtemp(dir) || pipe(p))
		return -1;
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(logf, sizeof(logf), "%s/req.log", dir);
	sim_pid = fork();
	if (sim_pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		execl(bin, bin, "--listen", "127.0.0.1:0", "--data", data,
		      "--log", logf, "--part-size", "1048576", "--chunked-min",
		      "1000000", "--client-id", "cid", "--client-secret", "sec",
		      "--refresh-token", "R0", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	f = fdopen(p[0], "r");
	if (!f || !fgets(base, sizeof(base), f))
		return -1;
	fclose(f);
	base[strcspn(base, "\r\n")] = '\0';
	snprintf(api, sizeof(api), "%s/2.0", base);
	snprintf(upl, sizeof(upl), "%s/api/2.0", base);
	boxfs_opts.api_url = api;
	boxfs_opts.upload_url = upl;
	boxfs_opts.connect_timeout = 5;
	boxfs_opts.io_timeout = 5;
	boxfs_opts.retries = 3;
	setenv("BOX_TOKEN", "boxsim-token", 1);
	log_setup(getenv("NET_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_ERR, 0);
	return box_init();
}

static int sim_stop(void **state)
{
	char cmd[128];

	(void)state;
	box_cleanup();
	if (sim_pid > 0) {
		kill(sim_pid, SIGTERM);
		waitpid(sim_pid, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) ? -1 : 0;
}

static size_t sink(char *p, size_t s, size_t n, void *a)
{
	(void)p;
	(void)a;
	return s * n;
}

/* POST /_sim/faults (control endpoint, no auth). */
static void fault(const char *spec)
{
	char url[200], body[400];
	CURL *h = curl_easy_init();
	long st = 0;

	assert_non_null(h);
	snprintf(url, sizeof(url), "%s/_sim/faults", base);
	snprintf(body, sizeof(body), "{\"spec\":\"%s\"}", spec);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
	assert_int_equal(curl_easy_perform(h), CURLE_OK);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
	curl_easy_cleanup(h);
	assert_int_equal(st, 201);
}

/* Lines of the request log from line `from` on matching method/path glob/
 * status (0: any) and fault ("-": none, NULL: any). */
static int logcount(int from, const char *method, const char *glob, long status,
		    const char *fault_kind)
{
	char line[2048];
	int n = 0, i = 0;
	FILE *f;

	usleep(200000);	/* boxsim logs a request after answering it */
	f = fopen(logf, "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		cJSON *j;
		const cJSON *fk;
		if (i++ < from)
			continue;
		j = cJSON_Parse(line);
		assert_non_null(j);
		fk = cJSON_GetObjectItem(j, "fault");
		if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(j, "method")), method) &&
		    !fnmatch(glob, cJSON_GetStringValue(cJSON_GetObjectItem(j, "path")), 0) &&
		    (!status || cJSON_GetObjectItem(j, "status")->valuedouble == status) &&
		    (!fault_kind || (!strcmp(fault_kind, "-") ? cJSON_IsNull(fk) :
			cJSON_IsString(fk) && !strcmp(fk->valuestring, fault_kind))))
			n++;
		cJSON_Delete(j);
	}
	fclose(f);
	return n;
}

/* Lines in the log so far (boxsim logs a request after answering it). */
static int loglines(void)
{
	char line[2048];
	int n = 0;
	FILE *f;

	usleep(200000);
	f = fopen(logf, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n;
}

static void fill(unsigned char *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)((i * 2654435761u + seed) >> 13);
}

static int tmpfile_with(const void *b, size_t n)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/spoolXXXXXX", dir);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, b, n), (ssize_t)n);
	return fd;
}

static void test_folders(void **state)
{
	struct box_item d, it, sub;
	char cid[BOX_ID_MAX], msg[256];
	uint64_t tot, used;

	(void)state;
	assert_int_equal(box_check(msg, sizeof(msg)), 0);
	assert_int_equal(box_space(&tot, &used), 0);
	assert_true(tot >= used);
	assert_int_equal(box_get_item(BOX_FOLDER, "0", &it), 0);
	assert_int_equal(it.type, BOX_FOLDER);
	assert_int_equal(box_create_folder("0", "f1", &d, cid), 0);
	assert_string_equal(d.name, "f1");
	assert_string_equal(d.parent_id, "0");
	/* Box names clash case-insensitively; the clashing id comes back */
	assert_int_equal(box_create_folder("0", "F1", &it, cid), -EEXIST);
	assert_string_equal(cid, d.id);
	assert_int_equal(box_create_folder("0", "a/b", &it, cid), -EINVAL);
	assert_int_equal(box_get_item(BOX_FILE, "987654321", &it), -ENOENT);
	assert_int_equal(box_get_item(BOX_FILE, "../users/me", &it), -EINVAL);
	assert_int_equal(box_create_folder(d.id, "sub", &sub, cid), 0);
	assert_int_equal(box_delete(BOX_FOLDER, d.id, 0), -ENOTEMPTY);
	assert_int_equal(box_update(BOX_FOLDER, sub.id, "sub2", "0", 0, &it), 0);
	assert_string_equal(it.name, "sub2");
	assert_string_equal(it.parent_id, "0");
	assert_int_equal(box_delete(BOX_FOLDER, d.id, 0), 0);
	assert_int_equal(box_delete(BOX_FOLDER, sub.id, 1), 0);
	assert_int_equal(box_get_item(BOX_FOLDER, d.id, &it), -ENOENT);
}

static int count_cb(const struct box_item *it, void *arg)
{
	(void)it;
	(*(int *)arg)++;
	return 0;
}

static void test_listing_pages(void **state)
{
	struct box_item d, it;
	char cid[BOX_ID_MAX], nm[16];
	int i, n = 0, from;

	(void)state;
	assert_int_equal(box_create_folder("0", "many", &d, cid), 0);
	for (i = 0; i < 1005; i++) {
		snprintf(nm, sizeof(nm), "d%04d", i);
		assert_int_equal(box_create_folder(d.id, nm, &it, cid), 0);
	}
	from = loglines();
	assert_int_equal(box_list_folder(d.id, count_cb, &n), 0);
	assert_int_equal(n, 1005);
	/* limit 1000 + marker: exactly two pages */
	assert_int_equal(logcount(from, "GET", "/2.0/folders/*/items", 200, "-"), 2);
	assert_int_equal(box_delete(BOX_FOLDER, d.id, 1), 0);
}

static void test_simple_upload(void **state)
{
	size_t n = 100000, got;
	unsigned char *b = malloc(n), *r = malloc(n + 10), md[20];
	char hex[41], cid[BOX_ID_MAX];
	struct box_item f, it;
	int fd;

	(void)state;
	assert_non_null(b);
	assert_non_null(r);
	fill(b, n, 1);
	fd = tmpfile_with(b, n);
	codec_sha1(b, n, md);
	codec_hex_encode(md, 20, hex);
	assert_int_equal(box_upload_simple("0", NULL, "s.bin", fd, n, hex,
					   1491613088, &f, cid), 0);
	assert_string_equal(f.sha1, hex);
	assert_int_equal(f.size, n);
	assert_int_equal(f.mtime, 1491613088);
	assert_int_equal(box_upload_simple("0", NULL, "S.BIN", fd, n, hex, 0, &it,
					   cid), -EEXIST);
	assert_string_equal(cid, f.id);
	/* ranges, a short read at the end, nothing past it */
	assert_int_equal(box_download(f.id, 0, n + 10, r, &got), 0);
	assert_int_equal(got, n);
	assert_memory_equal(r, b, n);
	assert_int_equal(box_download(f.id, 777, 1000, r, &got), 0);
	assert_int_equal(got, 1000);
	assert_memory_equal(r, b + 777, 1000);
	assert_int_equal(box_download(f.id, n - 3, 100, r, &got), 0);
	assert_int_equal(got, 3);
	assert_int_equal(box_download(f.id, n + 1, 100, r, &got), 0);
	assert_int_equal(got, 0);
	/* new version keeps the id */
	b[0] ^= 0xff;
	assert_int_equal(pwrite(fd, b, 1, 0), 1);
	codec_sha1(b, n, md);
	codec_hex_encode(md, 20, hex);
	/* (a time before 1970 is left out, not an error) */
	assert_int_equal(box_upload_simple(NULL, f.id, "s.bin", fd, n, hex, -5,
					   &it, cid), 0);
	assert_string_equal(it.id, f.id);
	assert_string_equal(it.sha1, hex);
	/* a file shorter than announced is never sent short */
	assert_int_equal(box_upload_simple("0", NULL, "short.bin", fd, n + 1, hex,
					   0, &it, cid), -EIO);
	assert_int_equal(box_get_item(BOX_FILE, f.id, &it), 0);
	assert_int_equal(box_update(BOX_FILE, f.id, NULL, NULL, 1500000000, &it), 0);
	assert_int_equal(it.mtime, 1500000000);
	assert_int_equal(box_delete(BOX_FILE, f.id, 0), 0);
	close(fd);
	free(b);
	free(r);
}

static void clear_faults(void)
{
	char url[200];
	CURL *h = curl_easy_init();

	assert_non_null(h);
	snprintf(url, sizeof(url), "%s/_sim/faults", base);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
	assert_int_equal(curl_easy_perform(h), CURLE_OK);
	curl_easy_cleanup(h);
}

static void test_retries(void **state)
{
	struct box_item it;
	char msg[256];
	int from;

	(void)state;
	struct http_counters c0, c1;
	http_get_counters(&c0);
	from = loglines();
	fault("kind=status,status=503,method=GET,path=/2.0/folders/0,retry_after=1");
	assert_int_equal(box_get_item(BOX_FOLDER, "0", &it), 0);
	http_get_counters(&c1);
	assert_int_equal(c1.requests - c0.requests, 2);
	assert_int_equal(c1.retries - c0.retries, 1);
	assert_int_equal(c1.failures - c0.failures, 0);
	assert_int_equal(logcount(from, "GET", "/2.0/folders/0", 503, "status"), 1);
	assert_int_equal(logcount(from, "GET", "/2.0/folders/0", 200, "-"), 1);

	from = loglines();
	fault("kind=status,status=429,method=GET,path=/2.0/users/me,count=2,retry_after=1");
	assert_int_equal(box_check(msg, sizeof(msg)), 0);
	assert_int_equal(logcount(from, "GET", "/2.0/users/me", 429, "status"), 2);

	/* more failures than retries: the error comes back, no endless loop */
	from = loglines();
	fault("kind=status,status=500,method=GET,path=/2.0/folders/0,count=10");
	assert_int_equal(box_get_item(BOX_FOLDER, "0", &it), -EIO);
	assert_int_equal(logcount(from, "GET", "/2.0/folders/0", 500, NULL),
			 1 + boxfs_opts.retries);

	/* a static token cannot be refreshed: one 401, one retry-less error */
	clear_faults();
	from = loglines();
	fault("kind=status,status=401,method=GET,path=/2.0/folders/0,count=20");
	assert_int_equal(box_get_item(BOX_FOLDER, "0", &it), -EACCES);
	assert_int_equal(logcount(from, "GET", "/2.0/folders/0", 401, NULL), 1);
	clear_faults();
}

static void test_session(void **state)
{
	size_t n = 3 * PART + 12345, got;
	unsigned char *b = malloc(n), *r = malloc(n), md[20];
	struct box_part parts[8], p, *lp;
	struct box_session s;
	struct box_item f, it;
	char hex[41], cid[BOX_ID_MAX];
	size_t np = 0, nlp, off;
	int from;

	(void)state;
	clear_faults();
	assert_non_null(b);
	assert_non_null(r);
	fill(b, n, 7);
	assert_int_equal(box_session_create("0", NULL, "big.bin", n, &s, cid), 0);
	assert_int_equal(s.part_size, PART);
	assert_int_equal(s.total_parts, 4);
	assert_int_equal(s.file_size, n);
	from = loglines();
	/* part 2: the connection drops after 1000 body bytes (outcome unknown);
	 * part 3: a 500 */
	fault("kind=reset,method=PUT,path=/api/2.0/files/upload_sessions/*,nth=2,after=1000");
	fault("kind=status,status=500,method=PUT,path=/api/2.0/files/upload_sessions/*,nth=4");
	for (off = 0; off < n; off += PART) {
		size_t len = n - off < PART ? n - off : PART;
		codec_sha1(b + off, len, md);
		assert_int_equal(box_session_put_part(&s, off, b + off, len, md,
						      &parts[np]), 0);
		assert_int_equal(parts[np].offset, off);
		assert_int_equal(parts[np].size, len);
		np++;
	}
	/* the dropped part was checked by listing before being sent again.
	 * boxsim logs a dropped connection when MHD reports it closed, which
	 * can come after the later requests: give the line a moment. */
	for (int i = 0; i < 40 && !logcount(from, "PUT", "/api/2.0/files/upload_sessions/*", 0, "reset"); i++)
		usleep(50 * 1000);
	assert_int_equal(logcount(from, "PUT", "/api/2.0/files/upload_sessions/*", 0, "reset"), 1);
	/* Whether curl saw the drop while still sending (an incomplete body can
	 * never be a stored part: re-sent at once) or only after the body had
	 * gone out (outcome unknown: listed first) is up to the kernel's socket
	 * buffers, so at most one listing; never an overlap (416). */
	assert_in_range(logcount(from, "GET", "/api/2.0/files/upload_sessions/*/parts", 200, NULL), 0, 1);
	assert_int_equal(logcount(from, "PUT", "/api/2.0/files/upload_sessions/*", 416, NULL), 0);
	assert_int_equal(logcount(from, "PUT", "/api/2.0/files/upload_sessions/*", 200, "-"), 4);
	/* sending a stored part again is resolved by listing, not an error */
	codec_sha1(b, PART, md);
	assert_int_equal(box_session_put_part(&s, 0, b, PART, md, &p), 0);
	assert_string_equal(p.part_id, parts[0].part_id);
	/* a different part at a stored offset is refused */
	md[0] ^= 1;
	assert_int_equal(box_session_put_part(&s, 0, b + 1, PART, md, &p), -EIO);
	assert_int_equal(box_session_list_parts(&s, &lp, &nlp), 0);
	assert_int_equal(nlp, 4);
	for (size_t i = 0; i < nlp; i++)
		assert_string_equal(lp[i].part_id, parts[i].part_id);
	free(lp);
	codec_sha1(b, n, md);
	codec_hex_encode(md, 20, hex);
	from = loglines();
	fault("kind=commit202,count=2,retry_after=1");
	/* then the connection drops before the answer: committed again */
	fault("kind=reset,method=POST,path=/api/2.0/files/upload_sessions/*/commit,nth=3,after=10");
	assert_int_equal(box_session_commit(&s, parts, np, md, 1400000000, &f), 0);
	assert_int_equal(logcount(from, "POST", "/api/2.0/files/upload_sessions/*/commit", 202, NULL), 2);
	assert_int_equal(logcount(from, "POST", "/api/2.0/files/upload_sessions/*/commit", 0, "reset"), 1);
	assert_int_equal(logcount(from, "POST", "/api/2.0/files/upload_sessions/*/commit", 201, "-"), 1);
	assert_string_equal(f.sha1, hex);
	assert_int_equal(f.size, n);
	assert_int_equal(f.mtime, 1400000000);
	assert_int_equal(box_download(f.id, 0, n, r, &got), 0);
	assert_int_equal(got, n);
	assert_memory_equal(r, b, n);

	/* name taken; new version session; abort -> ESTALE */
	assert_int_equal(box_session_create("0", NULL, "BIG.bin", n, &s, cid), -EEXIST);
	assert_string_equal(cid, f.id);
	assert_int_equal(box_session_create(NULL, f.id, NULL, n, &s, cid), 0);
	box_session_abort(&s);
	codec_sha1(b, PART, md);
	assert_int_equal(box_session_put_part(&s, 0, b, PART, md, &p), -ESTALE);
	/* expired session */
	assert_int_equal(box_session_create(NULL, f.id, NULL, n, &s, cid), 0);
	fault("kind=expire,method=PUT,path=/api/2.0/files/upload_sessions/*");
	assert_int_equal(box_session_put_part(&s, 0, b, PART, md, &p), -ESTALE);
	box_session_abort(&s);
	assert_int_equal(box_get_item(BOX_FILE, f.id, &it), 0);
	assert_string_equal(it.sha1, hex);
	assert_int_equal(box_delete(BOX_FILE, f.id, 0), 0);
	free(b);
	free(r);
}

static void test_timeout(void **state)
{
	struct box_item it;
	time_t t0;
	int saved = boxfs_opts.io_timeout, sr = boxfs_opts.retries;

	(void)state;
	boxfs_opts.io_timeout = 1;
	boxfs_opts.retries = 1;
	fault("kind=delay,ms=4000,count=2,method=GET,path=/2.0/folders/0");
	t0 = time(NULL);
	assert_int_equal(box_get_item(BOX_FOLDER, "0", &it), -ETIMEDOUT);
	assert_true(time(NULL) - t0 < 8);
	boxfs_opts.io_timeout = saved;
	boxfs_opts.retries = sr;
	sleep(4);	/* let the delayed answers drain */
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void test_token_file(void **state)
{
	char path[160], msg[512];
	struct box_item it;

	(void)state;
	snprintf(path, sizeof(path), "%s/token", dir);
	auth_cleanup();
	boxfs_opts.token_file = path;
	write_file(path, "boxsim-token\n", 0644);
	assert_int_equal(auth_init(msg, sizeof(msg)), -EACCES);
	assert_non_null(strstr(msg, "chmod 600"));
	assert_non_null(strstr(msg, path));
	assert_null(strstr(msg, "boxsim-token"));
	write_file(path, " \n", 0600);
	assert_int_equal(auth_init(msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "empty"));
	unlink(path);
	assert_int_equal(auth_init(msg, sizeof(msg)), -ENOENT);
	write_file(path, "  boxsim-token  \n", 0600);
	assert_int_equal(auth_init(msg, sizeof(msg)), 0);
	assert_int_equal(box_get_item(BOX_FOLDER, "0", &it), 0);
	write_file(path, "wrong-token\n", 0600);
	assert_int_equal(auth_init(msg, sizeof(msg)), 0);
	assert_int_equal(box_get_item(BOX_FOLDER, "0", &it), -EACCES);
	assert_int_equal(box_check(msg, sizeof(msg)), -EACCES);
	assert_null(strstr(msg, "wrong-token"));
	/* BOX_TOKEN is taken and removed from the environment */
	boxfs_opts.token_file = NULL;
	setenv("BOX_TOKEN", "boxsim-token", 1);
	assert_int_equal(auth_init(msg, sizeof(msg)), 0);
	assert_null(getenv("BOX_TOKEN"));
	assert_int_equal(box_get_item(BOX_FOLDER, "0", &it), 0);
}

static char *slurp(const char *path)
{
	static char buf[4096];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n > 0);
	buf[n] = '\0';
	return buf;
}

static void test_oauth(void **state)
{
	char path[160], msg[512], rt1[128];
	struct box_item it;
	struct stat st;
	cJSON *j;
	int from;

	(void)state;
	snprintf(path, sizeof(path), "%s/oauth.json", dir);
	write_file(path, "{\"client_id\":\"cid\",\"client_secret\":\"sec\","
		   "\"refresh_token\":\"R0\"}", 0600);
	auth_cleanup();
	boxfs_opts.token_file = path;
	from = loglines();
	assert_int_equal(auth_init(msg, sizeof(msg)), 0);
	assert_int_equal(logcount(from, "POST", "/oauth2/token", 200, NULL), 1);
	/* the rotated refresh token is on disk, still 0600 */
	j = cJSON_Parse(slurp(path));
	assert_non_null(j);
	snprintf(rt1, sizeof(rt1), "%s",
		 cJSON_GetStringValue(cJSON_GetObjectItem(j, "refresh_token")));
	cJSON_Delete(j);
	assert_string_not_equal(rt1, "R0");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(box_get_item(BOX_FOLDER, "0", &it), 0);
	/* an expired access token: refreshed once, the call succeeds */
	fault("kind=status,status=401,method=GET,path=/2.0/folders/0");
	assert_int_equal(box_get_item(BOX_FOLDER, "0", &it), 0);
	assert_int_equal(logcount(from, "POST", "/oauth2/token", 200, NULL), 2);
	j = cJSON_Parse(slurp(path));
	assert_string_not_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "refresh_token")), rt1);
	cJSON_Delete(j);
	assert_true(auth_state(msg, sizeof(msg)) > 0);
	assert_non_null(strstr(msg, "oauth2: ok"));
	/* a second mount on the same token file is refused (another process:
	 * flock is per open file) */
	pid_t pid = fork();
	if (pid == 0) {
		char m2[512];
		log_setup(LOG_LVL_ERR, 0);
		_exit(auth_init(m2, sizeof(m2)) == -EBUSY &&
		      strstr(m2, "in use") ? 0 : 1);
	}
	int wst;
	assert_int_equal(waitpid(pid, &wst, 0), pid);
	assert_true(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
	/* restart: the rotated token on disk carries on */
	auth_cleanup();
	assert_int_equal(auth_init(msg, sizeof(msg)), 0);
	assert_int_equal(logcount(from, "POST", "/oauth2/token", 200, NULL), 3);
	assert_int_equal(box_get_item(BOX_FOLDER, "0", &it), 0);
	/* the spent token R0 is refused: a clear error, not a crash */
	auth_cleanup();
	write_file(path, "{\"client_id\":\"cid\",\"client_secret\":\"sec\","
		   "\"refresh_token\":\"R0\"}", 0600);
	assert_int_equal(auth_init(msg, sizeof(msg)), -EACCES);
	assert_non_null(strstr(msg, path));
	/* client credentials grant */
	write_file(path, "{\"client_id\":\"cid\",\"client_secret\":\"sec\","
		   "\"box_subject_type\":\"enterprise\",\"box_subject_id\":\"1\"}", 0600);
	assert_int_equal(auth_init(msg, sizeof(msg)), 0);
	assert_int_equal(box_get_item(BOX_FOLDER, "0", &it), 0);
	auth_cleanup();
	boxfs_opts.token_file = NULL;
	setenv("BOX_TOKEN", "boxsim-token", 1);
	assert_int_equal(auth_init(msg, sizeof(msg)), 0);
}

/* Start another boxsim with extra arguments; returns its pid, base URL in
 * out. */
static pid_t sim_spawn(const char *const *extra, char *out, size_t outlen)
{
	const char *bin = getenv("BOXSIM");
	const char *argv[24] = { NULL };
	int p[2], i = 0;
	pid_t pid;
	FILE *f;

	if (!bin)
		bin = "build/tests/boxsim/boxsim";
	argv[i++] = bin;
	argv[i++] = "--listen";
	argv[i++] = "127.0.0.1:0";
	while (*extra && i < 22)
		argv[i++] = *extra++;
	assert_int_equal(pipe(p), 0);
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	f = fdopen(p[0], "r");
	assert_non_null(f);
	assert_non_null(fgets(out, (int)outlen, f));
	fclose(f);
	out[strcspn(out, "\r\n")] = '\0';
	return pid;
}

/* TLS is verified: a self-signed server is refused until its certificate
 * is given as cafile. */
static void test_tls(void **state)
{
	char cmd[600], crt[160], key[160], data[160], tbase[160];
	char tapi[200], tupl[200], *sapi = boxfs_opts.api_url;
	char *supl = boxfs_opts.upload_url;
	struct box_item it;
	pid_t pid;

	(void)state;
	snprintf(crt, sizeof(crt), "%s/tls.crt", dir);
	snprintf(key, sizeof(key), "%s/tls.key", dir);
	snprintf(data, sizeof(data), "%s/tlsdata", dir);
	snprintf(cmd, sizeof(cmd), "openssl req -x509 -newkey rsa:2048 -nodes "
		 "-keyout %s -out %s -days 1 -subj /CN=127.0.0.1 -addext "
		 "subjectAltName=IP:127.0.0.1 >/dev/null 2>&1", key, crt);
	assert_int_equal(system(cmd), 0);
	const char *extra[] = { "--data", data, "--tls-cert", crt, "--tls-key",
				key, NULL };
	pid = sim_spawn(extra, tbase, sizeof(tbase));
	assert_memory_equal(tbase, "https://", 8);
	snprintf(tapi, sizeof(tapi), "%s/2.0", tbase);
	snprintf(tupl, sizeof(tupl), "%s/api/2.0", tbase);
	boxfs_opts.api_url = tapi;
	boxfs_opts.upload_url = tupl;
	boxfs_opts.retries = 0;
	assert_int_equal(box_get_item(BOX_FOLDER, "0", &it), -EIO);
	boxfs_opts.cafile = crt;
	assert_int_equal(box_get_item(BOX_FOLDER, "0", &it), 0);
	assert_int_equal(it.type, BOX_FOLDER);
	boxfs_opts.cafile = NULL;
	boxfs_opts.retries = 3;
	boxfs_opts.api_url = sapi;
	boxfs_opts.upload_url = supl;
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

struct par {
	const char *id;
	const unsigned char *want;
	size_t n;
	int bad;
};

static void *par_reader(void *arg)
{
	struct par *p = arg;
	unsigned char buf[4096];
	struct box_item it;
	size_t got;

	for (int i = 0; i < 20; i++) {
		size_t off = (size_t)(i * 997) % (p->n - sizeof(buf));
		if (box_download(p->id, off, sizeof(buf), buf, &got) ||
		    got != sizeof(buf) || memcmp(buf, p->want + off, got) ||
		    box_get_item(BOX_FILE, p->id, &it))
			p->bad++;
	}
	return NULL;
}

/* Threads share nothing but the token: each has its own curl handle. */
static void test_threads(void **state)
{
	size_t n = 200000;
	unsigned char *b = malloc(n), md[20];
	char hex[41], cid[BOX_ID_MAX];
	struct par p[4];
	pthread_t th[4];
	struct box_item f;
	int fd, i;

	(void)state;
	assert_non_null(b);
	fill(b, n, 3);
	fd = tmpfile_with(b, n);
	codec_sha1(b, n, md);
	codec_hex_encode(md, 20, hex);
	assert_int_equal(box_upload_simple("0", NULL, "par.bin", fd, n, hex, 0, &f,
					   cid), 0);
	for (i = 0; i < 4; i++) {
		p[i] = (struct par){ .id = f.id, .want = b, .n = n };
		assert_int_equal(pthread_create(&th[i], NULL, par_reader, &p[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(p[i].bad, 0);
	}
	assert_int_equal(box_delete(BOX_FILE, f.id, 0), 0);
	close(fd);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_folders),
		cmocka_unit_test(test_listing_pages),
		cmocka_unit_test(test_simple_upload),
		cmocka_unit_test(test_retries),
		cmocka_unit_test(test_session),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_token_file),
		cmocka_unit_test(test_oauth),
		cmocka_unit_test(test_tls),
		cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, sim_start, sim_stop);
}
