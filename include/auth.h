/* auth.h - where the access token comes from.
 *
 * Sources, in order:
 *   1. boxfs_opts.token_file: a file holding the access token (first line,
 *      surrounding blanks ignored). The file must not be readable or
 *      writable by group/others (chmod 600) and must not be empty.
 *   2. the environment variable BOX_TOKEN (removed from the environment at
 *      once, so children of the daemon never inherit it).
 * A static token cannot be refreshed: auth_refresh returns -EACCES and the
 * caller reports the 401.
 *
 * Room for OAuth2 (issue 8): a refresh source would keep {client_id,
 * client_secret, refresh_token} in a locked (flock) 0600 state file and, in
 * auth_refresh, POST grant_type=refresh_token to <oauth url>, then write the
 * NEW refresh token to a temporary file, fsync, rename over the state file
 * BEFORE using the new access token (Box refresh tokens are single-use).
 * Client Credentials Grant would simply POST grant_type=client_credentials.
 * Both only change what auth_refresh does; callers see the same API.
 *
 * The token never leaves this module except inside the header line built
 * by auth_header, which http.c hands to libcurl and wipes.
 *
 * Owner: auth.c. */
#ifndef BOXFS_AUTH_H
#define BOXFS_AUTH_H

#include <stddef.h>

#define AUTH_HEADER_MAX 4096

/* Load the token. On failure writes a human message (naming the file and
 * the fix, never the token) into msg and returns -errno: -EACCES for a file
 * readable by others, -ENOENT/-EINVAL for missing/empty. */
int auth_init(char *msg, size_t msglen);
/* Wipe the token. */
void auth_cleanup(void);

/* "Authorization: Bearer <token>" into buf (thread-safe). *gen gets the
 * token generation, to pass to auth_refresh. 0, -ENOKEY when no token is
 * loaded, -ENAMETOOLONG when buf is too small. */
int auth_header(char *buf, size_t len, unsigned *gen);

/* The server refused the token of generation `gen`. Returns 0 when a new
 * token is available (another thread may already have refreshed it: then
 * nothing is done), -EACCES when it cannot be refreshed (static token). */
int auth_refresh(unsigned gen);

#endif
