/* r3map mount: the parts every frontend shares.
 *
 * cmd_mount.c parses the options, opens the remote and the cache, opens
 * the region over them, and handles signals; a frontend (mount_fuse.c, and
 * later the NBD device) only presents the region.  Adding a frontend is a
 * struct mount_frontend and one line in the table in cmd_mount.c. */
#ifndef R3M_CLI_MOUNT_H
#define R3M_CLI_MOUNT_H

#include <stdbool.h>
#include <stdint.h>

#include <r3map/r3map.h>

#include "commands.h"

struct mount_ctx {
  const struct cli_command *cmd;
  const char *remote_uri;
  const char *at;               /* --at: where to present it */
  const char *name;             /* the file's name (FUSE) */
  bool read_only;
  bool quiet;
  struct r3m_region *region;

  /* FUSE options (--threads, --readahead, --writeback-cache, ...). */
  struct r3m_fuse_options fuse;

  bool started;                 /* the frontend presents the region */

  /* What the frontend presents, for the line printed on stdout. */
  char path[4096];
  void *frontend_state;         /* the frontend's own */
};

struct mount_frontend {
  const char *name;             /* --frontend NAME */
  /* Present ctx->region at ctx->at and fill ctx->path.  Returns a
   * CLI_EXIT_* status after printing why it failed. */
  int (*start) (struct mount_ctx *ctx);
  /* Block until the presentation is gone: taken down by `unmount` or from
   * outside (e.g. fusermount3 -u).  Runs on a thread of its own. */
  void (*wait) (struct mount_ctx *ctx);
  /* Take the presentation down, writing back everything it holds into the
   * region first; `signalled`: because of a signal, so it must go even if
   * a program still uses it.  Makes `wait` return.  A CLI_EXIT_* status. */
  int (*unmount) (struct mount_ctx *ctx, bool signalled);
  /* Release everything (after `wait` has returned).  A CLI_EXIT_* status. */
  int (*close) (struct mount_ctx *ctx);
};

extern const struct mount_frontend mount_frontend_fuse;

#endif
