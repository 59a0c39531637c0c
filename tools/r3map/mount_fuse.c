/* r3map mount --frontend fuse: the region as one file in a FUSE mount. */
#include <errno.h>
#include <string.h>

#include "cli.h"
#include "mount.h"

static int
fuse_start (struct mount_ctx *ctx)
{
  struct r3m_fuse_file f = {
    .name = ctx->name,
    .region = ctx->region,
    .read_only = ctx->read_only,
  };
  struct r3m_fuse *fs;
  struct r3m_error err = { 0 };
  int r = r3m_fuse_mount (ctx->at, &f, 1, &ctx->fuse, &fs, &err);
  if (r < 0)
    return cli_report (ctx->cmd, r, &err, "mount");
  ctx->frontend_state = fs;
  snprintf (ctx->path, sizeof ctx->path, "%s", r3m_fuse_path (fs, 0));
  return CLI_EXIT_OK;
}

static void
fuse_wait (struct mount_ctx *ctx)
{
  r3m_fuse_wait (ctx->frontend_state, -1);
}

static int
fuse_unmount (struct mount_ctx *ctx, bool signalled)
{
  struct r3m_error err = { 0 };
  /* After a signal the mount goes even if a program still has the file
   * open (it gets errors once the mount is closed); its data is written
   * back first. */
  int r = r3m_fuse_unmount (ctx->frontend_state, signalled, &err);
  return r < 0 ? cli_report (ctx->cmd, r, &err, "unmount") : CLI_EXIT_OK;
}

static int
fuse_close (struct mount_ctx *ctx)
{
  struct r3m_error err = { 0 };
  int r = r3m_fuse_close (ctx->frontend_state, &err);
  ctx->frontend_state = NULL;
  return r < 0 ? cli_report (ctx->cmd, r, &err, "unmount") : CLI_EXIT_OK;
}

const struct mount_frontend mount_frontend_fuse = {
  .name = "fuse",
  .start = fuse_start,
  .wait = fuse_wait,
  .unmount = fuse_unmount,
  .close = fuse_close,
};
