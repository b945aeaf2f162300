/* fuzz_options - libFuzzer target for the option parser: the config file
 * (fs/config.c) and the command line as main.c parses them (config words
 * first, fuse_opt with main's table, the value checks of apply(), then
 * fuse_parse_cmdline), up to the point where main would contact the server.
 * main.c is compiled in with its main() renamed, so the table and the
 * checks are the real ones.
 *
 * Input: the config file's text, then (after the first NUL byte) the
 * command line words, NUL-separated. Words naming another config= are
 * dropped (a FIFO or /dev/stdin would block, as it would for a user). */
#define main boxfs_main
#include "../../fs/main.c"
#undef main

#include <stdint.h>

static char cfg_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int fd;

	(void)argc;
	(void)argv;
	snprintf(cfg_path, sizeof(cfg_path), "/tmp/boxfs-fuzz-cfg-XXXXXX");
	fd = mkstemp(cfg_path);
	if (fd < 0)
		abort();
	close(fd);
	/* apply() goes on past the token check to cafile and cache_dir */
	setenv("BOX_TOKEN", "fuzz", 1);
	return 0;
}

#define MAX_WORDS 24

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[MAX_WORDS + 4], *buf, *p, *end, opt[80];
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_cmdline_opts co;
	struct raw_opts raw;
	size_t cfg_len;
	int argc = 0;
	FILE *f;

	buf = malloc(size + 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	cfg_len = strlen(buf);
	f = fopen(cfg_path, "we");
	if (!f || fwrite(buf, 1, cfg_len, f) != cfg_len) {
		if (f)
			fclose(f);
		free(buf);
		return 0;
	}
	fclose(f);
	snprintf(opt, sizeof(opt), "config=%s", cfg_path);
	argv[argc++] = "boxfs";
	argv[argc++] = "-o";
	argv[argc++] = opt;
	end = buf + size;
	for (p = buf + cfg_len; p < end && argc < MAX_WORDS + 3; ) {
		p++;	/* the NUL before the word */
		if (p <= end && !strstr(p, "config="))
			argv[argc++] = p;
		p += strlen(p);
	}
	argv[argc] = NULL;

	memset(&raw, 0, sizeof(raw));
	memset(&co, 0, sizeof(co));
	memset(&boxfs_opts, 0, sizeof(boxfs_opts));
	set_defaults();
	if (config_build_args(argc, argv, opt_spec, &args) ||
	    fuse_opt_parse(&args, &raw, opt_spec, NULL) == -1 ||
	    raw.help || raw.version || apply(&raw))
		goto out;
	if (fuse_parse_cmdline(&args, &co))
		goto out;
	/* what main does next with a mountpoint: add its mount options */
	if (co.mountpoint && add_mount_opts(&args))
		abort();
out:
	parse_free(&args, &co, &raw);
	free(buf);
	return 0;
}
