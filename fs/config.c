/* config.c - the config file, and the argv words mount.fuse3 adds.
 *
 * The file is turned into "-o opt" words placed before the command line's
 * own words: fuse_opt keeps the last value of an option, so the command
 * line wins without any merging code here. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* FUSE mount options (libfuse 3.14 mount.c / fuse_parse_cmdline) and the
 * words mount(8) and fstab use; the latter are discarded by main. */
static const char *const fuse_flags[] = {
	"allow_other", "allow_root", "auto_unmount", "default_permissions",
	"ro", "rw", "dev", "nodev", "suid", "nosuid", "exec", "noexec",
	"async", "sync", "atime", "noatime", "nodiratime", "dirsync",
	"clone_fd", "debug", "_netdev", "nofail", "noauto", "auto", "user",
	"users", "nouser", NULL
};
static const char *const fuse_valued[] = {
	"max_read", "fsname", "subtype", "max_idle_threads", "max_threads",
	"context", "fscontext", "defcontext", "rootcontext", NULL
};
/* never in a config file: it is read by more than its owner, and backed up */
static const char *const secrets[] = {
	"token", "access_token", "refresh_token", "client_secret",
	"box_token", "password", NULL
};

/* where each option of the file came from, for error messages about its
 * value (which main checks later) */
struct origin {
	char *key, *val;
	int line;
};
static struct origin *origins;
static size_t n_origins;
static char *origin_path;

static int remember(const char *key, const char *val, int line)
{
	struct origin *o = realloc(origins, (n_origins + 1) * sizeof(*o));

	if (!o)
		return -1;
	origins = o;
	o += n_origins;
	o->key = strdup(key);
	o->val = strdup(val ? val : "");
	o->line = line;
	if (!o->key || !o->val) {
		free(o->key);
		free(o->val);
		return -1;
	}
	n_origins++;
	return 0;
}

const char *config_origin(const char *key, const char *val, int *line)
{
	size_t i = n_origins;

	while (i-- > 0)
		if (!strcmp(origins[i].key, key)) {
			/* a different value came from the command line */
			if (!val || strcmp(origins[i].val, val))
				return NULL;
			*line = origins[i].line;
			return origin_path;
		}
	return NULL;
}

void config_free(void)
{
	size_t i;

	for (i = 0; i < n_origins; i++) {
		free(origins[i].key);
		free(origins[i].val);
	}
	free(origins);
	origins = NULL;
	n_origins = 0;
	free(origin_path);
	origin_path = NULL;
}

static int in_list(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (!strcmp(*list, s))
			return 1;
	return 0;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int config_parse_line(char *line, char **key, char **val, const char **why)
{
	char *s = trim(line), *eq, *p;

	*key = *val = NULL;
	if (!*s || *s == '#')
		return 0;
	eq = strchr(s, '=');
	if (eq) {
		*eq = '\0';
		*val = trim(eq + 1);
		s = trim(s);
	}
	if (!*s) {
		*why = "missing option name before '='";
		return -1;
	}
	for (p = s; *p; p++)
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) &&
		    *p != '_') {
			*why = "an option name is lower-case letters, digits "
			       "and '_' (one option per line)";
			return -1;
		}
	if (*val && !**val) {
		*why = "missing value after '='";
		return -1;
	}
	*key = s;
	return 1;
}

int config_known(const struct fuse_opt *spec, const char *key,
		 const char *val, const char **why)
{
	char opt[CONFIG_LINE_MAX + 2];

	if (in_list(secrets, key)) {
		*why = "secrets do not belong in the config file; put the "
		       "token in a 0600 file and use token_file=PATH";
		return 0;
	}
	if (!strcmp(key, "config")) {
		*why = "config= cannot be used inside a config file";
		return 0;
	}
	if (val ? in_list(fuse_valued, key) : in_list(fuse_flags, key))
		return 1;
	snprintf(opt, sizeof(opt), "%s%s%s", key, val ? "=" : "",
		 val ? val : "");
	if (fuse_opt_match(spec, opt))
		return 1;
	if (val && in_list(fuse_flags, key))
		*why = "this option takes no value";
	else if (!val && in_list(fuse_valued, key))
		*why = "this option needs a value (option=value)";
	else {
		snprintf(opt, sizeof(opt), "%s=x", key);
		*why = fuse_opt_match(spec, opt) ?
		       "this option needs a value (option=value)" :
		       "unknown option (see boxfs --help)";
	}
	return 0;
}

/* "-o" plus the option with ',' and '\' escaped for fuse_opt's splitter */
static int add_opt(struct fuse_args *out, const char *key, const char *val)
{
	size_t n = strlen(key) + (val ? 2 * strlen(val) + 2 : 1);
	char *buf = malloc(n), *p = buf;
	int err;

	if (!buf)
		return -1;
	p = stpcpy(p, key);
	if (val) {
		*p++ = '=';
		for (; *val; val++) {
			if (*val == ',' || *val == '\\')
				*p++ = '\\';
			*p++ = *val;
		}
	}
	*p = '\0';
	err = fuse_opt_add_arg(out, "-o") || fuse_opt_add_arg(out, buf);
	free(buf);
	return err ? -1 : 0;
}

static int load_file(const char *path, FILE *f, const struct fuse_opt *spec,
		     struct fuse_args *out)
{
	char line[CONFIG_LINE_MAX + 2];
	int no = 0;

	while (fgets(line, sizeof(line), f)) {
		const char *why = NULL;
		char *key, *val;
		int r;

		no++;
		if (!strchr(line, '\n') && !feof(f)) {
			fprintf(stderr, "boxfs: %s:%d: line longer than %d "
				"bytes\n", path, no, CONFIG_LINE_MAX);
			return -1;
		}
		r = config_parse_line(line, &key, &val, &why);
		if (r == 0)
			continue;
		if (r < 0 || !config_known(spec, key, val, &why)) {
			fprintf(stderr, "boxfs: %s:%d: %s%s%s\n", path, no,
				key ? key : "", key ? ": " : "", why);
			return -1;
		}
		if (add_opt(out, key, val) || remember(key, val, no)) {
			fprintf(stderr, "boxfs: out of memory\n");
			return -1;
		}
	}
	if (ferror(f)) {
		fprintf(stderr, "boxfs: %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Value of the last config= in the -o words of argv (escapes are not
 * undone: a config path with a comma is not supported), or NULL. */
static char *find_config_arg(int argc, char *argv[])
{
	char *found = NULL;
	int i;

	for (i = 1; i < argc; i++) {
		const char *o = NULL, *p;

		if (!strcmp(argv[i], "-o") && i + 1 < argc)
			o = argv[++i];
		else if (!strncmp(argv[i], "-o", 2))
			o = argv[i] + 2;
		for (p = o; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
			if (!strncmp(p, "config=", 7)) {
				size_t n = strcspn(p + 7, ",");

				free(found);
				found = strndup(p + 7, n);
				if (!found)
					return NULL;
			}
		}
	}
	return found;
}

static char *default_path(void)
{
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	char *p = NULL;

	if (xdg && xdg[0] == '/') {
		if (asprintf(&p, "%s/boxfs/config", xdg) < 0)
			return NULL;
	} else if (home && home[0]) {
		if (asprintf(&p, "%s/.config/boxfs/config", home) < 0)
			return NULL;
	}
	return p;
}

static int add_config(int argc, char *argv[], const struct fuse_opt *spec,
		      struct fuse_args *out)
{
	char *path = find_config_arg(argc, argv);
	int explicit = path != NULL, ret;
	FILE *f;

	if (!path)
		path = default_path();
	if (!path)
		return 0;       /* no HOME: no default file */
	f = fopen(path, "re");
	if (!f) {
		ret = 0;
		/* the default file is optional; a named one is not */
		if (explicit || errno != ENOENT) {
			fprintf(stderr, "boxfs: config file %s: %s\n", path,
				strerror(errno));
			ret = -1;
		}
		free(path);
		return ret;
	}
	ret = load_file(path, f, spec, out);
	fclose(f);
	free(origin_path);
	origin_path = path;     /* kept for config_origin */
	return ret;
}

/* Positional words (not options, not the argument of -o). mount.fuse3
 * runs `TYPE SOURCE MOUNTPOINT -o OPTS`: with exactly two, the first is
 * that source and means nothing to boxfs (the server comes from api_url). */
static int source_index(int argc, char *argv[])
{
	int i, n = 0, first = -1;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-o")) {
			i++;
			continue;
		}
		if (argv[i][0] == '-')
			continue;
		if (!n++)
			first = i;
	}
	return n == 2 ? first : -1;
}

int config_build_args(int argc, char *argv[], const struct fuse_opt *spec,
		      struct fuse_args *out)
{
	int i, skip = source_index(argc, argv);

	out->argc = 0;
	out->argv = NULL;
	out->allocated = 0;
	if (fuse_opt_add_arg(out, argc > 0 ? argv[0] : "boxfs"))
		goto oom;
	if (add_config(argc, argv, spec, out))
		return -1;
	for (i = 1; i < argc; i++)
		if (i != skip && fuse_opt_add_arg(out, argv[i]))
			goto oom;
	return 0;
oom:
	fprintf(stderr, "boxfs: out of memory\n");
	return -1;
}
