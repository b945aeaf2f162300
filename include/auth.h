/* auth.h - where the access token comes from.
 *
 * Sources, in order:
 *   1. boxfs_opts.token_file. The file must not be accessible by group or
 *      others (refused with a message naming the file and `chmod 600`) and
 *      must not be empty. Two forms:
 *        - a plain access token (first line, surrounding blanks ignored):
 *          a static token;
 *        - a JSON object (first non-blank character '{'):
 *            {"client_id":..,"client_secret":..,"refresh_token":..}
 *              OAuth2 with Box's single-use rotating refresh tokens, or
 *            {"client_id":..,"client_secret":..,"box_subject_type":
 *             "enterprise"|"user","box_subject_id":..}
 *              Client Credentials Grant;
 *          optional "token_url" (default: the api_url's host +
 *          /oauth2/token, i.e. https://api.box.com/oauth2/token).
 *          The file is locked (flock on <file>.lock) so only one mount uses
 *          it; each new refresh token is written back (tmp file, fsync,
 *          rename, fsync of the directory) BEFORE the access token that
 *          came with it is used. Access tokens are renewed a minute before
 *          they expire and on a 401.
 *   2. the environment variable BOX_TOKEN (a static token; removed from the
 *      environment at once, so children of the daemon never inherit it).
 * A static token cannot be refreshed: auth_refresh returns -EACCES and the
 * caller reports the 401.
 *
 * Secrets never leave this module except inside the header line built by
 * auth_header (http.c hands it to libcurl and wipes it) and the form body
 * of the token request; none is ever logged.
 *
 * Owner: auth.c. */
#ifndef BOXFS_AUTH_H
#define BOXFS_AUTH_H

#include <stddef.h>

#define AUTH_HEADER_MAX 4096

/* Load the token (OAuth: fetch the first access token). On failure writes
 * a human message (naming the file and the fix, never a secret) into msg
 * and returns -errno: -EACCES for a file readable by others or refused
 * credentials, -ENOENT/-EINVAL for a missing/empty file, -EBUSY when
 * another mount holds the token file, -ENOKEY when there is no source. */
int auth_init(char *msg, size_t msglen);
/* Wipe the token, drop the OAuth state and the token file lock. */
void auth_cleanup(void);

/* "Authorization: Bearer <token>" into buf (thread-safe). *gen gets the
 * token generation, to pass to auth_refresh. 0, -ENOKEY when no token is
 * loaded, -ENAMETOOLONG when buf is too small. */
int auth_header(char *buf, size_t len, unsigned *gen);

/* The server refused the token of generation `gen`. Returns 0 when a new
 * token is available (another thread may already have refreshed it: then
 * nothing is done), -EACCES when it cannot be refreshed (static token). */
int auth_refresh(unsigned gen);

/* 1 while the token was refused and could not be renewed (an OAuth
 * refresh refused, or a static token from token_file refused): the
 * reason goes into reason[len] ("refresh failed (HTTP 400) at 12:03:04").
 * Logged once when it starts. BOX_TOKEN refusals are final (0 here). */
int auth_waiting(char *reason, size_t len);
/* While waiting: read token_file again and try it (a new static token, or
 * a new refresh token / credentials). 0 when uploads can go on (also when
 * nothing was waited for), -EACCES while still refused. */
int auth_retry(void);

/* One line about the token for status output: "static token", "oauth2:
 * ok, expires in 3540 s", "oauth2: refresh failed (HTTP 400) at 12:03:04".
 * Never a secret. Returns its length. */
int auth_state(char *buf, size_t len);

#endif
