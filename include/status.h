/* status.h - the `boxfs status MOUNTPOINT [--watch]` client.
 *
 * Reads the JSON in the xattr user.boxfs.status of the mount root (served
 * by the daemon, see stats.h) and prints uploads in flight with a progress
 * bar, queued and failed uploads with reasons, and the counters. No IPC
 * channel besides the file system itself.
 *
 * Owner: status.c. */
#ifndef BOXFS_STATUS_H
#define BOXFS_STATUS_H

/* argv[0] is "status". Returns the process exit code: 0, 1 when the path is
 * not a boxfs mount or cannot be read, 2 for a usage error. */
int status_main(int argc, char *argv[]);

#endif
