/* boxsim - a strict Box-compatible local server for tests and demos.
 * See README.md for the CLI, the endpoints and the rules it enforces. */
#include "bs.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct bs_conf bs_conf;
struct bs_stats bs_stats;
pthread_mutex_t bs_stats_lock = PTHREAD_MUTEX_INITIALIZER;

static void usage(void)
{
	fprintf(stderr,
"usage: boxsim [--listen 127.0.0.1:PORT] [--data DIR] [--token TOKEN]\n"
"              [--part-size BYTES] [--chunked-min BYTES]\n"
"              [--tls-cert F --tls-key F] [--fault SPEC]... [--log FILE]\n"
"              [--client-id ID --client-secret S] [--refresh-token R]\n"
"              [--token-ttl SECONDS]\n");
}

static int copy_opt(char *dst, size_t len, const char *v, const char *name)
{
	if (strlen(v) >= len || !*v) {
		fprintf(stderr, "boxsim: bad %s\n", name);
		return -1;
	}
	strcpy(dst, v);
	return 0;
}

static int num_opt(const char *v, uint64_t *out, const char *name)
{
	if (parse_u64(v, out)) {
		fprintf(stderr, "boxsim: %s: not a number: '%s'\n", name, v);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "data", required_argument, NULL, 'd' },
		{ "token", required_argument, NULL, 't' },
		{ "part-size", required_argument, NULL, 'p' },
		{ "chunked-min", required_argument, NULL, 'm' },
		{ "tls-cert", required_argument, NULL, 'c' },
		{ "tls-key", required_argument, NULL, 'k' },
		{ "fault", required_argument, NULL, 'f' },
		{ "log", required_argument, NULL, 'L' },
		{ "client-id", required_argument, NULL, 'i' },
		{ "client-secret", required_argument, NULL, 's' },
		{ "refresh-token", required_argument, NULL, 'r' },
		{ "token-ttl", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *listen = "127.0.0.1:0", *cert = NULL, *key = NULL;
	const char *logpath = NULL;
	char err[256];
	int c, rc;

	snprintf(bs_conf.token, sizeof(bs_conf.token), "boxsim-token");
	bs_conf.chunked_min = 20000000;
	bs_conf.token_ttl = 3600;
	srandom((unsigned)time(NULL) ^ (unsigned)getpid() << 16);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'l': listen = optarg; break;
		case 'd':
			if (copy_opt(bs_conf.data, sizeof(bs_conf.data), optarg,
				     "--data"))
				return 2;
			break;
		case 't':
			if (copy_opt(bs_conf.token, sizeof(bs_conf.token),
				     optarg, "--token"))
				return 2;
			break;
		case 'p':
			if (num_opt(optarg, &bs_conf.part_size, "--part-size"))
				return 2;
			if (!bs_conf.part_size) {
				fprintf(stderr, "boxsim: --part-size must be > 0\n");
				return 2;
			}
			break;
		case 'm':
			if (num_opt(optarg, &bs_conf.chunked_min,
				    "--chunked-min"))
				return 2;
			break;
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 'f':
			if (fault_add(optarg, err, sizeof(err)) < 0) {
				fprintf(stderr, "boxsim: --fault: %s\n", err);
				return 2;
			}
			break;
		case 'L': logpath = optarg; break;
		case 'i':
			if (copy_opt(bs_conf.client_id,
				     sizeof(bs_conf.client_id), optarg,
				     "--client-id"))
				return 2;
			break;
		case 's':
			if (copy_opt(bs_conf.client_secret,
				     sizeof(bs_conf.client_secret), optarg,
				     "--client-secret"))
				return 2;
			break;
		case 'r':
			if (strlen(optarg) > 64 || !*optarg) {
				fprintf(stderr, "boxsim: bad --refresh-token\n");
				return 2;
			}
			oauth_add_refresh(optarg);
			break;
		case 'T':
			if (num_opt(optarg, &bs_conf.token_ttl, "--token-ttl"))
				return 2;
			break;
		case 'h':
			usage();
			return 0;
		default:
			usage();
			return 2;
		}
	}
	if (optind != argc || (!cert) != (!key)) {
		usage();
		return 2;
	}
	if (!bs_conf.data[0]) {
		snprintf(bs_conf.data, sizeof(bs_conf.data),
			 "/tmp/boxsim-XXXXXX");
		if (!mkdtemp(bs_conf.data)) {
			perror("boxsim: mkdtemp");
			return 1;
		}
		bs_conf.tmp_data = 1;
	}
	if (store_init())
		return 1;
	upl_init();
	rc = http_run(listen, cert, key, logpath);
	store_cleanup();
	return rc;
}
