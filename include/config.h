/* config.h - the config file and the command line words around it.
 *
 * The config file (-o config=PATH, else $XDG_CONFIG_HOME/boxfs/config,
 * else ~/.config/boxfs/config) holds one mount option per line, exactly as
 * it would follow -o: "option=value" or a bare flag ("allow_other").
 * Blank lines and lines whose first non-blank character is '#' are
 * ignored; blanks around the option, the '=' and the value are trimmed.
 * Secrets never belong in it: keys such as token= are refused (use
 * token_file=). A bad line is reported as "FILE:LINE: why" and fails the
 * mount.
 *
 * config_build_args turns argv into the argument list main parses: the
 * file's options come first as "-o opt" words so the command line, which
 * follows, overrides them; a leading source word as mount.fuse3 passes it
 * ("boxfs#box" in fstab -> `boxfs box MNT -o ...`) is dropped.
 *
 * Owner: config.c (prefix config_). */
#ifndef BOXFS_CONFIG_H
#define BOXFS_CONFIG_H

#include <stddef.h>

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 35
#endif
#include <fuse_lowlevel.h>

#define CONFIG_LINE_MAX 4096

/* Parse one line in place. Returns 1 with *key (and *val, NULL for a bare
 * flag) pointing into line, 0 for a blank or comment line, -1 with *why
 * set to a static message for a malformed line. Does not judge whether
 * the key is a known option (config_known does). */
int config_parse_line(char *line, char **key, char **val, const char **why);

/* Whether key (with a value or not) is an option boxfs accepts in the file:
 * one of spec (main's fuse_opt table), a FUSE mount option, or an fstab
 * word that mount(8) keeps to itself (_netdev, nofail, noauto, ...). Sets
 * *why when not. */
int config_known(const struct fuse_opt *spec, const char *key,
		 const char *val, const char **why);

/* Build *out from argv: argv[0], the config file's options (each as "-o"
 * "opt", commas escaped), then argv[1..] without a mount.fuse3 source
 * word. Returns 0, or -1 after printing one line to stderr. *out must be
 * freed with fuse_opt_free_args in both cases. */
int config_build_args(int argc, char *argv[], const struct fuse_opt *spec,
		      struct fuse_args *out);

/* The config file and line that set option key to val, or NULL when val
 * did not come from the file (the command line overrode it). For error
 * messages about values, which main checks after parsing. */
const char *config_origin(const char *key, const char *val, int *line);

/* Free what config_build_args kept for config_origin. */
void config_free(void);

#endif
