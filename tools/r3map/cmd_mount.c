/* r3map mount REMOTE --at DIR: present a remote region locally, on demand,
 * until unmounted or signalled.
 *
 * REMOTE (any backend URI) becomes a region's remote; --cache (default: a
 * memory: cache of REMOTE's size, which costs only what is pulled) its
 * cache.  Reads fetch the chunks they touch (post-copy), --pull-workers
 * fetch the rest in the background (pre-copy), written chunks go back
 * every --push-interval and on fsync, close and unmount.  A frontend
 * (--frontend; see mount.h) presents the region.
 *
 * Threads: main blocks SIGINT, SIGTERM, SIGHUP and SIGUSR1 before any
 * thread exists (the region's and the frontend's threads inherit the
 * mask), starts the frontend, prints the path and sleeps in sigwaitinfo.
 * A waiter thread blocks in the frontend's wait and sends main SIGUSR1
 * when the presentation is gone (unmounted from outside).  On a signal,
 * main unmounts (which makes the waiter return), joins the waiter, closes
 * the frontend, then the region (the final push), then the backends. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <r3map/r3map.h>

#include "util/size.h"

#include "cli.h"
#include "mount.h"
#include "options.h"
#include "progress.h"

#define MAX_CHUNK (64u << 20)
#define MAX_WORKERS 256
#define MAX_WINDOW 4096
#define MAX_PUSH_MS (24u * 3600 * 1000)

static const struct mount_frontend *const frontends[] = {
  &mount_frontend_fuse,
};
#define NFRONTENDS (sizeof frontends / sizeof frontends[0])

struct mount_opts {
  struct r3m_region_options region;
  const struct mount_frontend *frontend;
  const char *cache_uri;        /* NULL: memory of the remote's size */
  const char *pid_file;
  char name[256];
};

void
cli_mount_help (FILE *out)
{
  struct r3m_region_options d;
  r3m_region_options_init (&d);
  struct r3m_fuse_options f;
  r3m_fuse_options_init (&f);
  char chunk[32], ra[32];
  cli_format_size_exact (d.chunk_size, chunk, sizeof chunk);
  cli_format_size_exact (f.readahead, ra, sizeof ra);
  fprintf (out,
"Usage: r3map mount [OPTIONS] REMOTE --at DIR\n"
"\n"
"Present backend REMOTE (any backend URI, typically an NBD server such as\n"
"'r3map serve') on this host, and keep it in sync, until it is unmounted\n"
"(fusermount3 -u DIR, umount DIR) or r3map gets SIGINT, SIGTERM or SIGHUP.\n"
"Reads fetch the chunks they touch from REMOTE; background workers fetch\n"
"the rest; written chunks go back to REMOTE every --push-interval and on\n"
"fsync, msync, close and unmount.  Prints the path of the file on\n"
"standard output once it can be used.\n"
"\n"
"Options:\n"
"  -a, --at=DIR             where to present it (required): the mount point,\n"
"                           an existing directory that is not a mount point\n"
"  -f, --frontend=NAME      how to present it: fuse (default), one file\n"
"                           named --name in a FUSE mount at DIR; use it with\n"
"                           pread/pwrite or mmap MAP_SHARED\n"
"  -n, --name=NAME          the file's name (default: the export name of an\n"
"                           NBD REMOTE, the base name of a file: or dir:\n"
"                           REMOTE, else \"region\")\n"
"  -C, --cache=BACKEND      where pulled chunks are kept (default: memory of\n"
"                           REMOTE's size, which costs only what is pulled);\n"
"                           \"none\": no cache, every read asks REMOTE\n"
"  -c, --chunk-size=SIZE    unit of transfer, a power of two from 4K to 64M\n"
"                           (default %s)\n"
"  -w, --pull-workers=N     threads pulling the rest of REMOTE in the\n"
"                           background, 0 to %u; 0 pulls only what is read\n"
"                           (default %u)\n"
"  -W, --pull-window=N      background fetches in flight, 1 to %u (default\n"
"                           %u)\n"
"      --pull-first         fetch all of REMOTE before presenting it (the\n"
"                           path is printed once everything is local)\n"
"  -p, --push-interval=DUR  how often written chunks go back to REMOTE, e.g.\n"
"                           500ms, 5s, 1m; 0: only on fsync, close and\n"
"                           unmount (default %ums)\n"
"  -r, --read-only          refuse writes (REMOTE is opened read-only)\n"
"      --threads=N          FUSE request threads, 1 to 256 (default %u)\n"
"      --readahead=SIZE     kernel read-ahead of the mount, up to 64M; small\n"
"                           values pull less for sparse readers such as\n"
"                           databases (default %s; 0: the kernel's own)\n"
"      --writeback-cache    let the kernel gather small writes (a write past\n"
"                           the end then fails at fsync, not at write)\n"
"      --direct-io          reads and writes bypass the page cache (mmap\n"
"                           still works on Linux 6.6 and later)\n"
"      --splice             move request data through pipes (measured no\n"
"                           faster here; see docs/fuse.md)\n"
"      --allow-other        let other users use the mount\n"
"      --pid-file=FILE      write the pid once the file can be used\n"
"  -q, --quiet              print only errors (the path is still printed)\n"
"  -h, --help               show this help\n"
"\n"
"At the end, unless --quiet, one line on stderr says what moved, e.g.\n"
"  r3map: mount: 12 of 1024 chunks local (12 fetched on demand, 0 in the\n"
"  background, 768.0 KiB), 3 chunks pushed (192.0 KiB)\n"
"\n"
"Exit status: 0 unmounted with everything pushed, 1 runtime failure\n"
"(cannot mount, REMOTE failed, the final push failed), 2 usage error.\n"
"\n"
"Examples:\n"
"  r3map mount nbd://db-host/sales --at /mnt/r3      -> /mnt/r3/sales\n"
"  r3map mount --pull-workers 0 --readahead 64K nbd+unix:///?socket=/tmp/s \\\n"
"      --at /mnt/r3 --name db.sqlite\n"
"  r3map mount file:/tmp/disk.img --cache file:/var/cache/disk.img --at /mnt\n",
           chunk, MAX_WORKERS, d.pull_workers, MAX_WINDOW, d.pull_window,
           d.push_interval_ms, f.threads, ra);
}

/* The default file name: the last path element of REMOTE without its
 * query, e.g. the export of nbd://host/export or the file of file:/a/b.
 * Characters a shell or a path would trip on become '_'. */
static void
default_name (const char *uri, char *out, size_t cap)
{
  size_t end = strcspn (uri, "?#");
  const char *scheme_end = strchr (uri, ':');
  size_t start = 0;
  for (size_t i = 0; i < end; i++)
    if (uri[i] == '/')
      start = i + 1;
  if (!scheme_end || start == 0 || start >= end || end - start >= cap) {
    snprintf (out, cap, "region");
    return;
  }
  size_t n = 0;
  for (size_t i = start; i < end; i++) {
    char c = uri[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
    out[n++] = ok ? c : '_';
  }
  out[n] = '\0';
  if (strcmp (out, ".") == 0 || strcmp (out, "..") == 0)
    snprintf (out, cap, "region");
}

static const struct mount_frontend *
find_frontend (const char *name)
{
  for (size_t i = 0; i < NFRONTENDS; i++)
    if (strcmp (frontends[i]->name, name) == 0)
      return frontends[i];
  return NULL;
}

enum {
  OPT_THREADS = 0x100, OPT_READAHEAD, OPT_WRITEBACK, OPT_DIRECT,
  OPT_ALLOW_OTHER, OPT_PID_FILE, OPT_SPLICE, OPT_PULL_FIRST,
};

static int
parse_option (const struct cli_command *cmd, int c, struct mount_ctx *ctx,
              struct mount_opts *o)
{
  uint64_t v;
  switch (c) {
  case 'a': ctx->at = optarg; return 0;
  case 'n': snprintf (o->name, sizeof o->name, "%s", optarg);
    return strlen (optarg) < sizeof o->name ? 0
      : cli_usage_error (cmd, "--name '%s' is too long", optarg);
  case 'C': o->cache_uri = optarg; return 0;
  case 'r': ctx->read_only = true; return 0;
  case 'q': ctx->quiet = true; return 0;
  case OPT_WRITEBACK: ctx->fuse.writeback_cache = true; return 0;
  case OPT_DIRECT: ctx->fuse.direct_io = true; return 0;
  case OPT_SPLICE: ctx->fuse.splice = true; return 0;
  case OPT_PULL_FIRST: o->region.pull_first = true; return 0;
  case OPT_ALLOW_OTHER: ctx->fuse.allow_other = true; return 0;
  case OPT_PID_FILE: o->pid_file = optarg; return 0;
  case 'f':
    o->frontend = find_frontend (optarg);
    return o->frontend ? 0
      : cli_usage_error (cmd, "--frontend '%s' is not one of: fuse", optarg);
  case 'c':
    if (cli_parse_size (cmd, "--chunk-size", optarg, 4096, MAX_CHUNK,
                        CLI_SIZE_POW2, &v) < 0)
      return CLI_EXIT_USAGE;
    o->region.chunk_size = (uint32_t) v;
    return 0;
  case 'w':
    if (cli_parse_count (cmd, "--pull-workers", optarg, 0, MAX_WORKERS, &v)
        < 0)
      return CLI_EXIT_USAGE;
    o->region.pull_workers = (unsigned) v;
    return 0;
  case 'W':
    if (cli_parse_count (cmd, "--pull-window", optarg, 1, MAX_WINDOW, &v) < 0)
      return CLI_EXIT_USAGE;
    o->region.pull_window = (unsigned) v;
    return 0;
  case 'p':
    if (cli_parse_duration (cmd, "--push-interval", optarg, 0, MAX_PUSH_MS,
                            &v) < 0)
      return CLI_EXIT_USAGE;
    if (v == 0)
      o->region.push_window = 0;
    else
      o->region.push_interval_ms = (uint32_t) v;
    return 0;
  case OPT_THREADS:
    if (cli_parse_count (cmd, "--threads", optarg, 1, 256, &v) < 0)
      return CLI_EXIT_USAGE;
    ctx->fuse.threads = (unsigned) v;
    return 0;
  case OPT_READAHEAD:
    if (cli_parse_size (cmd, "--readahead", optarg, 0, 64u << 20, 0, &v) < 0)
      return CLI_EXIT_USAGE;
    if (v % 4096)
      return cli_usage_error (cmd, "--readahead %s is not a multiple of 4K",
                              optarg);
    ctx->fuse.readahead = (uint32_t) v;
    return 0;
  }
  return CLI_EXIT_USAGE;
}

static int
parse (const struct cli_command *cmd, int argc, char **argv,
       struct mount_ctx *ctx, struct mount_opts *o)
{
  static const struct option longopts[] = {
    { "at", required_argument, NULL, 'a' },
    { "frontend", required_argument, NULL, 'f' },
    { "name", required_argument, NULL, 'n' },
    { "cache", required_argument, NULL, 'C' },
    { "chunk-size", required_argument, NULL, 'c' },
    { "pull-workers", required_argument, NULL, 'w' },
    { "pull-window", required_argument, NULL, 'W' },
    { "push-interval", required_argument, NULL, 'p' },
    { "read-only", no_argument, NULL, 'r' },
    { "threads", required_argument, NULL, OPT_THREADS },
    { "readahead", required_argument, NULL, OPT_READAHEAD },
    { "writeback-cache", no_argument, NULL, OPT_WRITEBACK },
    { "direct-io", no_argument, NULL, OPT_DIRECT },
    { "splice", no_argument, NULL, OPT_SPLICE },
    { "pull-first", no_argument, NULL, OPT_PULL_FIRST },
    { "allow-other", no_argument, NULL, OPT_ALLOW_OTHER },
    { "pid-file", required_argument, NULL, OPT_PID_FILE },
    { "quiet", no_argument, NULL, 'q' },
    CLI_OPTION_HELP,
    { NULL, 0, NULL, 0 },
  };
  int c, status;
  while ((c = cli_getopt (cmd, argc, argv, "a:f:n:C:c:w:W:p:rqh", longopts,
                          &status)) != -1) {
    if (c == CLI_OPT_STOP)
      return status;
    if ((status = parse_option (cmd, c, ctx, o)) != 0)
      return status;
  }
  if (cli_operands (cmd, argc, argv, 1, "REMOTE") < 0)
    return CLI_EXIT_USAGE;
  ctx->remote_uri = argv[optind];
  if (!ctx->at)
    return cli_usage_error (cmd, "--at DIR is required: where to present "
                            "%s", ctx->remote_uri);
  if (!o->name[0])
    default_name (ctx->remote_uri, o->name, sizeof o->name);
  ctx->name = o->name;
  return -1;
}

/* ---- running ------------------------------------------------------------ */

struct waiter {
  struct mount_ctx *ctx;
  const struct mount_frontend *fe;
  pthread_t main;
  atomic_bool gone;             /* the presentation is gone */
};

static void *
waiter_main (void *arg)
{
  struct waiter *w = arg;
  w->fe->wait (w->ctx);
  atomic_store (&w->gone, true);
  pthread_kill (w->main, SIGUSR1);
  return NULL;
}

static int
write_pid_file (const struct cli_command *cmd, const char *path)
{
  FILE *f = fopen (path, "w");
  if (!f || fprintf (f, "%ld\n", (long) getpid ()) < 0 || fclose (f) != 0) {
    cli_error ("%s: writing the pid file %s: %s", cmd->name, path,
               strerror (errno));
    return CLI_EXIT_FAILURE;
  }
  return CLI_EXIT_OK;
}

static void
print_summary (struct r3m_region *region)
{
  struct r3m_region_status st;
  r3m_region_status (region, &st);
  char fetched[32], pushed[32];
  util_format_size (st.bytes_fetched, fetched, sizeof fetched);
  util_format_size (st.bytes_pushed, pushed, sizeof pushed);
  fprintf (stderr, "r3map: mount: %" PRIu64 " of %" PRIu64 " chunks local "
           "(%" PRIu64 " fetched on demand, %" PRIu64 " in the background, "
           "%s), %" PRIu64 " chunks pushed (%s)\n", st.chunks_local,
           st.chunks, st.fetches_demand, st.fetches_background, fetched,
           st.pushes, pushed);
}

/* Serve until unmounted or signalled; the region stays open. */
static int
serve (const struct mount_opts *o, struct mount_ctx *ctx,
       const sigset_t *sigs)
{
  const struct mount_frontend *fe = o->frontend;
  int status = fe->start (ctx);
  if (status != CLI_EXIT_OK)
    return status;
  ctx->started = true;
  struct waiter w = { .ctx = ctx, .fe = fe, .main = pthread_self () };
  pthread_t t;
  bool waiting = pthread_create (&t, NULL, waiter_main, &w) == 0;

  printf ("%s\n", ctx->path);
  fflush (stdout);
  if (o->pid_file)
    status = write_pid_file (ctx->cmd, o->pid_file);

  int sig = SIGUSR1;
  while (status == CLI_EXIT_OK && waiting && !atomic_load (&w.gone)) {
    sig = sigwaitinfo (sigs, NULL);
    if (sig > 0 && sig != SIGUSR1)
      break;                    /* SIGUSR1 from elsewhere is ignored */
  }
  if (sig != SIGUSR1 && !ctx->quiet)
    fprintf (stderr, "r3map: mount: %s: unmounting %s\n", strsignal (sig),
             ctx->path);
  int ust = fe->unmount (ctx, true);
  if (waiting)
    pthread_join (t, NULL);
  int cst = fe->close (ctx);
  if (o->pid_file)
    unlink (o->pid_file);
  return status != CLI_EXIT_OK ? status : ust != CLI_EXIT_OK ? ust : cst;
}

/* Open REMOTE, the cache and the region; run; close in reverse order. */
static int
run (const struct mount_opts *o, struct mount_ctx *ctx, const sigset_t *sigs)
{
  const struct cli_command *cmd = ctx->cmd;
  struct r3m_backend *remote = NULL, *cache = NULL;
  struct r3m_error err = { 0 };
  int r = r3m_backend_open (ctx->remote_uri,
                            ctx->read_only ? R3M_OPEN_READ_ONLY : 0, &remote,
                            &err);
  if (r < 0)
    return cli_report (cmd, r, &err, ctx->remote_uri);
  if (!o->cache_uri || strcmp (o->cache_uri, "none") != 0) {
    char mem[64];
    snprintf (mem, sizeof mem, "memory:%" PRIu64, r3m_backend_size (remote));
    const char *uri = o->cache_uri ? o->cache_uri : mem;
    if ((r = r3m_backend_open (uri, 0, &cache, &err)) < 0) {
      int status = cli_report (cmd, r, &err, uri);
      r3m_backend_close (remote);
      return status;
    }
  }
  if ((r = r3m_region_open (remote, cache, &o->region, &ctx->region, &err))
      < 0) {
    int status = cli_report (cmd, r, &err, "region");
    r3m_backend_close (cache);
    r3m_backend_close (remote);
    return status;
  }

  int status = serve (o, ctx, sigs);

  if (!ctx->quiet && ctx->started)
    print_summary (ctx->region);
  r3m_error_clear (&err);
  r = r3m_region_close (ctx->region, &err);
  if (r < 0) {
    cli_error ("%s: closing the region over %s failed (final push, flush "
               "or fetches in flight): %s", cmd->name, ctx->remote_uri,
               err.msg[0] ? err.msg : strerror (-r));
    status = CLI_EXIT_FAILURE;
  }
  /* A call the region gave up waiting for still runs: leave the backends
   * to the exit rather than free them under it. */
  if (r != -ETIMEDOUT) {
    r3m_backend_close (cache);
    r3m_backend_close (remote);
  }
  return status;
}

int
cli_mount_run (const struct cli_command *cmd, int argc, char **argv)
{
  struct mount_ctx ctx = { .cmd = cmd };
  struct mount_opts o = { .frontend = &mount_frontend_fuse };
  r3m_region_options_init (&o.region);
  r3m_fuse_options_init (&ctx.fuse);
  int status = parse (cmd, argc, argv, &ctx, &o);
  if (status >= 0)
    return status;

  /* Before any thread exists, so that all of them inherit the mask and
   * only sigwaitinfo in main sees these signals. */
  sigset_t sigs;
  sigemptyset (&sigs);
  sigaddset (&sigs, SIGINT);
  sigaddset (&sigs, SIGTERM);
  sigaddset (&sigs, SIGHUP);
  sigaddset (&sigs, SIGUSR1);
  pthread_sigmask (SIG_BLOCK, &sigs, NULL);
  return run (&o, &ctx, &sigs);
}
