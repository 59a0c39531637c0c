/* r3map copy SRC DST: copy one backend into another through the region
 * engine.
 *
 * SRC is opened read-only and becomes the region's remote; DST becomes its
 * cache.  The region's background puller fetches every chunk of SRC into
 * DST with a window of requests in flight, each request a run of adjacent
 * chunks (--request-size), exactly as a mount pre-copies a remote region,
 * so this command is also the simplest way to measure the puller.  Nothing is ever written back to SRC (nothing is dirty), and
 * closing the region flushes DST.  --verify then reads both sides again,
 * independently of the engine (verify.c).
 *
 * The main thread only waits: it wakes every CLI_PROGRESS_INTERVAL_MS to
 * redraw the bar from the region's status and to see whether SIGINT or
 * SIGTERM came (interrupt.h); then it closes the region, which stops the
 * pull and flushes what DST already holds, says how far the copy got and
 * exits with 128 + the signal's number. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <r3map/r3map.h>

#include "util/size.h"
#include "util/time.h"
#include "util/uri.h"

#include "cli.h"
#include "interrupt.h"
#include "options.h"
#include "progress.h"
#include "verify.h"

#define MAX_CHUNK (64u << 20)
#define MAX_WORKERS 256
#define MAX_WINDOW 4096
#define MAX_REQUEST (64u << 20)

enum progress_mode { PROGRESS_AUTO, PROGRESS_ON, PROGRESS_OFF };

struct copy_opts {
  struct r3m_region_options region;
  bool verify;
  bool quiet;
  enum progress_mode progress;
  const char *src, *dst;
  const char *dst_opened;    /* dst as opened (with size= added), which
                                library messages quote */
};

/* A library message with the DST URI as the user typed it. */
static const char *
tidy (const struct copy_opts *o, const char *msg, char *buf, size_t cap)
{
  return cli_replace (msg, o->dst_opened ? o->dst_opened : "", o->dst, buf,
                      cap);
}

void
cli_copy_help (FILE *out)
{
  struct r3m_region_options d;
  r3m_region_options_init (&d);
  char chunk[32];
  cli_format_size_exact (d.chunk_size, chunk, sizeof chunk);
  char request[32];
  cli_format_size_exact (d.pull_request_size, request, sizeof request);
  fprintf (out,
"Usage: r3map copy [OPTIONS] SRC DST\n"
"\n"
"Copy every byte of backend SRC into backend DST through the region engine\n"
"(SRC is the region's remote, DST its cache), then flush DST.  SRC is only\n"
"read.  SRC and DST are backend URIs (see 'r3map --help').\n"
"\n"
"A file: or dir: DST without size= gets SRC's size: a missing file or\n"
"directory is created, a smaller file is extended, a larger one keeps its\n"
"bytes past SRC's end.  A new dir: DST gets chunk= the --chunk-size.  Any\n"
"other DST smaller than SRC is refused, and so is a DST that is SRC.\n"
"\n"
"Options:\n"
"  -c, --chunk-size=SIZE  unit of transfer, a power of two from 512 to 64M\n"
"                         (default: the engine's, %s)\n"
"  -w, --workers=N        threads storing fetched chunks into DST, 1 to %u\n"
"                         (default: %u; one for a regular file, whose\n"
"                         writes take turns anyway)\n"
"  -W, --window=N         requests in flight against SRC, 1 to %u\n"
"                         (default: %u; grown up to 4x when SRC's round\n"
"                         trip is 20 ms or more)\n""                         (--pull-workers and --pull-window, as in\n"
"                         r3map mount, are accepted too)\n"
"  -r, --request-size=SIZE\n"
"                         largest request to SRC: runs of adjacent chunks\n"
"                         up to SIZE go as one request, so up to window x\n"
"                         SIZE bytes are in flight; 512 to 64M, at least\n"
"                         one chunk (default: %s)\n"
"      --verify           after the copy, open SRC and DST again and read\n"
"                         them, each on its own thread (an NBD side with\n"
"                         32 MiB of reads in flight); compare XXH3-64\n"
"                         hashes chunk by chunk, report the first chunk\n"
"                         that differs and exit with status 3\n"
"      --progress         draw a progress bar on stderr (percent, bytes,\n"
"                         rate, ETA), redrawn every %u ms (default when\n"
"                         stderr is a terminal)\n"
"      --no-progress      no bar; print one summary line at the end\n"
"                         (default when stderr is not a terminal)\n"
"  -q, --quiet            print nothing but errors\n"
"  -h, --help             show this help\n"
"\n"
"Output (stderr), at the end unless --quiet:\n"
"  r3map: copied 1.00 GiB in 0.84 s (1.19 GiB/s), verified in 0.31 s\n"
"\n"
"Exit status: 0 copied (and verified), 1 runtime failure (the message\n"
"names the backend and the operation; DST may be partly written),\n"
"2 usage error (bad option or URI, DST too small, DST is SRC),\n"
"3 --verify found a difference, 130 / 143 stopped by SIGINT (Ctrl-C) /\n"
"SIGTERM (what DST got so far is flushed, and the message says how far\n"
"the copy got; a second signal a few seconds later ends r3map at once).\n"
"\n"
"Examples:\n"
"  r3map copy pattern:1G file:/tmp/disk.img\n"
"  r3map copy --verify --chunk-size 1M file:/tmp/disk.img dir:/tmp/chunks\n"
"  r3map copy --workers 4 --window 256 dir:/tmp/chunks file:/tmp/back.img\n"
"  r3map copy pattern:4G memory:4G     (measures: memory: is gone at exit)\n",
           chunk, MAX_WORKERS, d.pull_workers, MAX_WINDOW, d.pull_window,
           request, CLI_PROGRESS_INTERVAL_MS);
}

enum { OPT_VERIFY = 0x100, OPT_PROGRESS, OPT_NO_PROGRESS };

static int
parse (const struct cli_command *cmd, int argc, char **argv,
       struct copy_opts *o)
{
  static const struct option longopts[] = {
    { "chunk-size", required_argument, NULL, 'c' },
    { "workers", required_argument, NULL, 'w' },
    { "window", required_argument, NULL, 'W' },
    /* mount's names for the same settings, so either spelling works */
    { "pull-workers", required_argument, NULL, 'w' },
    { "pull-window", required_argument, NULL, 'W' },
    { "request-size", required_argument, NULL, 'r' },
    { "verify", no_argument, NULL, OPT_VERIFY },
    { "progress", no_argument, NULL, OPT_PROGRESS },
    { "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
    { "quiet", no_argument, NULL, 'q' },
    CLI_OPTION_HELP,
    { NULL, 0, NULL, 0 },
  };
  memset (o, 0, sizeof *o);
  r3m_region_options_init (&o->region);
  int c, status;
  uint64_t v;
  while ((c = cli_getopt (cmd, argc, argv, "c:w:W:r:qh", longopts, &status))
         != -1) {
    switch (c) {
    case CLI_OPT_STOP:
      return status;
    case 'c':
      if (cli_parse_size (cmd, "--chunk-size", optarg, 512, MAX_CHUNK,
                          CLI_SIZE_POW2, &v) < 0)
        return CLI_EXIT_USAGE;
      o->region.chunk_size = (uint32_t) v;
      break;
    case 'w':
      if (cli_parse_count (cmd, "--workers", optarg, 1, MAX_WORKERS, &v) < 0)
        return CLI_EXIT_USAGE;
      o->region.pull_workers = (unsigned) v;
      break;
    case 'W':
      if (cli_parse_count (cmd, "--window", optarg, 1, MAX_WINDOW, &v) < 0)
        return CLI_EXIT_USAGE;
      o->region.pull_window = (unsigned) v;
      break;
    case 'r':
      if (cli_parse_size (cmd, "--request-size", optarg, 512, MAX_REQUEST,
                          0, &v) < 0)
        return CLI_EXIT_USAGE;
      o->region.pull_request_size = (uint32_t) v;
      break;
    case OPT_VERIFY:
      o->verify = true;
      break;
    case OPT_PROGRESS:
      o->progress = PROGRESS_ON;
      break;
    case OPT_NO_PROGRESS:
      o->progress = PROGRESS_OFF;
      break;
    case 'q':
      o->quiet = true;
      break;
    }
  }
  if (cli_operands (cmd, argc, argv, 2, "SRC DST") < 0)
    return CLI_EXIT_USAGE;
  o->src = argv[optind];
  o->dst = argv[optind + 1];
  if (strcmp (o->src, o->dst) == 0)
    return cli_usage_error (cmd, "SRC and DST are the same backend (%s)",
                            o->src);
  /* Only pull: nothing is written through the region, so nothing is ever
   * dirty; a zero push window keeps the pusher thread away. */
  o->region.pull_first = false;
  o->region.push_window = 0;
  /* The final flush of a large DST (gigabytes of page cache going to a
   * slow disk) may rightly take minutes; a copy waits for it as cp would,
   * and whoever finds it too long interrupts r3map. */
  o->region.close_timeout_ms = UINT32_MAX;
  return -1;
}

/* ---- DST sizing and identity ------------------------------------------- */

/* Path of a file: or dir: URI (malloc'd), or NULL for other schemes. */
static char *
local_path (const char *uri, const char **scheme, bool *has_size,
            bool *has_chunk)
{
  struct util_uri u;
  char *path = NULL;
  *scheme = NULL;
  if (util_uri_parse (uri, &u, NULL) == 0
      && (strcmp (u.scheme, "file") == 0 || strcmp (u.scheme, "dir") == 0)) {
    *scheme = u.scheme[0] == 'f' ? "file" : "dir";
    *has_size = util_uri_param (&u, "size") != NULL;
    *has_chunk = util_uri_param (&u, "chunk") != NULL;
    path = strdup (u.path);
  }
  util_uri_free (&u);
  return path;
}

/* Refuse SRC and DST naming the same file or directory by different
 * spellings (file:/a/../x and file:/x); identical URIs were refused
 * already. */
static int
check_distinct (const struct cli_command *cmd, const struct copy_opts *o)
{
  const char *s1, *s2;
  bool x, y;
  char *p1 = local_path (o->src, &s1, &x, &y);
  char *p2 = local_path (o->dst, &s2, &x, &y);
  struct stat a, b;
  bool same = p1 && p2 && stat (p1, &a) == 0 && stat (p2, &b) == 0
              && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
  free (p1);
  free (p2);
  if (same)
    return cli_usage_error (cmd, "SRC (%s) and DST (%s) are the same %s",
                            o->src, o->dst,
                            S_ISDIR (a.st_mode) ? "directory" : "file");
  return 0;
}

/* Whether a dir: DST at `path` is new (so it needs size= and chunk=):
 * missing, or an empty directory.  A directory with anything in it is left
 * to the dir backend, which reads its own metadata or explains what is
 * wrong. */
static bool
dir_is_new (const char *path)
{
  DIR *d = opendir (path);
  if (!d)
    return errno == ENOENT;
  bool empty = true;
  struct dirent *e;
  while (empty && (e = readdir (d)) != NULL)
    empty = strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0;
  closedir (d);
  return empty;
}

/* The URI to open DST with: a file: or dir: DST without size= gets SRC's
 * size (see the help).  Returns a malloc'd string or NULL (ENOMEM). */
static char *
dst_uri (const char *dst, uint64_t size, uint32_t chunk)
{
  const char *scheme;
  bool has_size = true, has_chunk = true;
  char *path = local_path (dst, &scheme, &has_size, &has_chunk);
  bool add_size = false, add_chunk = false;
  if (path && !has_size) {
    struct stat st;
    if (strcmp (scheme, "file") == 0)
      add_size = stat (path, &st) < 0
                 || (S_ISREG (st.st_mode) && (uint64_t) st.st_size < size);
    else if (dir_is_new (path)) {
      add_size = true;
      add_chunk = !has_chunk;
    }
  }
  free (path);

  char *out = NULL;
  const char *sep = strchr (dst, '?') ? "&" : "?";
  int n;
  if (add_size && add_chunk)
    n = asprintf (&out, "%s%ssize=%" PRIu64 "&chunk=%" PRIu32, dst, sep,
                  size, chunk);
  else if (add_size)
    n = asprintf (&out, "%s%ssize=%" PRIu64, dst, sep, size);
  else
    n = asprintf (&out, "%s", dst);
  return n < 0 ? NULL : out;
}

/* The path of a file: DST that does not exist yet (malloc'd), else NULL:
 * opening it creates the file, and a copy refused before writing anything
 * removes it again rather than leave an empty file behind. */
static char *
new_dst_file (const char *dst)
{
  const char *scheme;
  bool x, y;
  char *path = local_path (dst, &scheme, &x, &y);
  struct stat st;
  if (path && (strcmp (scheme, "file") != 0 || lstat (path, &st) == 0
               || errno != ENOENT)) {
    free (path);
    path = NULL;
  }
  return path;
}

/* ---- the copy ------------------------------------------------------------ */

/* Bytes of the region that are local, from its status. */
static uint64_t
bytes_done (struct r3m_region *region, uint64_t size)
{
  struct r3m_region_status st;
  r3m_region_status (region, &st);
  uint64_t done = st.chunks_local * (uint64_t) st.chunk_size;
  return done < size ? done : size;
}

/* The copy was interrupted by signal sig: say so at once (closing may wait
 * for a backend that does not answer, and a second signal then ends r3map),
 * stop, keep what DST has (closing the region flushes it).  Returns
 * 128 + sig. */
static int
interrupted (const struct cli_command *cmd, const struct copy_opts *o,
             struct r3m_region *region, struct cli_progress *bar,
             uint64_t size, int sig, bool *stuck)
{
  cli_progress_clear (bar);
  char have[32], all[32];
  util_format_size (bytes_done (region, size), have, sizeof have);
  util_format_size (size, all, sizeof all);
  cli_error ("%s: interrupted (%s) after %s of %s: %s holds part of %s",
             cmd->name, sig == SIGINT ? "SIGINT" : "SIGTERM", have, all,
             o->dst, o->src);
  struct r3m_error err = { 0 };
  int rc = r3m_region_close (region, &err);
  *stuck = rc == -ETIMEDOUT;
  cli_interrupt_disarm ();
  if (rc < 0)
    cli_error ("%s: flushing %s failed: %s", cmd->name, o->dst,
               err.msg[0] ? err.msg : strerror (-rc));
  return 128 + sig;
}

/* Pull all of src into dst, drawing progress; 0 or CLI_EXIT_FAILURE after
 * printing why.  The region is closed (dst flushed) before returning.
 * *stuck says that close gave up on a backend call that is still running:
 * the backends must then not be closed under it. */
static int
pull_all (const struct cli_command *cmd, const struct copy_opts *o,
          struct r3m_backend *src, struct r3m_backend *dst,
          struct cli_progress *bar, bool *stuck)
{
  struct r3m_error err = { 0 };
  struct r3m_region *region;
  uint64_t size = r3m_backend_size (src);
  char buf[R3M_ERROR_MSG_MAX + 256];
  int r = r3m_region_open (src, dst, &o->region, &region, &err);
  if (r < 0) {
    cli_progress_clear (bar);
    cli_error ("%s: %s", cmd->name, err.msg[0] ? tidy (o, err.msg, buf,
               sizeof buf) : strerror (-r));
    return CLI_EXIT_FAILURE;
  }

  cli_interrupt_arm ();
  int sig = 0;
  while ((r = r3m_region_wait_pulled (region, CLI_PROGRESS_INTERVAL_MS))
         == -ETIMEDOUT && !(sig = cli_interrupted ()))
    cli_progress_update (bar, bytes_done (region, size), util_now_ns (),
                         false);
  if (r == 0)
    cli_progress_update (bar, size, util_now_ns (), true);
  if (sig)
    return interrupted (cmd, o, region, bar, size, sig, stuck);
  cli_interrupt_disarm ();

  /* The status holds the message of what stopped the puller. */
  struct r3m_region_status st;
  r3m_region_status (region, &st);
  char msg[R3M_ERROR_MSG_MAX + 256];
  if (st.last_error_msg[0])
    tidy (o, st.last_error_msg, msg, sizeof msg);
  else
    snprintf (msg, sizeof msg, "%s", strerror (r < 0 ? -r : st.last_error));

  r3m_error_clear (&err);
  int rc = r3m_region_close (region, &err);
  *stuck = rc == -ETIMEDOUT;
  cli_progress_clear (bar);
  if (r < 0) {
    cli_error ("%s: copying %s to %s failed: %s", cmd->name, o->src, o->dst,
               msg);
    return CLI_EXIT_FAILURE;
  }
  if (rc < 0) {
    cli_error ("%s: finishing the copy into %s failed: %s", cmd->name,
               o->dst, err.msg[0] ? tidy (o, err.msg, buf, sizeof buf)
               : strerror (-rc));
    return CLI_EXIT_FAILURE;
  }
  return 0;
}

/* Open a backend again for --verify, so that it is read the way a new
 * user would read it: through a fresh file descriptor (a FUSE or network
 * file system caches what this process wrote while it stays open), a
 * fresh dir: fd cache, later a fresh connection.  A volatile backend
 * (memory:) would come back empty, so it is kept. */
static int
reopen (const struct cli_command *cmd, const struct copy_opts *o,
        struct r3m_backend **b, const char *uri, const char *shown)
{
  if (r3m_backend_get_info (*b)->flags & R3M_BACKEND_VOLATILE)
    return 0;
  r3m_backend_close (*b);
  *b = NULL;
  struct r3m_error err = { 0 };
  int r = r3m_backend_open (uri, R3M_OPEN_READ_ONLY, b, &err);
  if (r < 0) {
    char buf[R3M_ERROR_MSG_MAX + 256];
    cli_error ("%s: verify: reopening %s: %s", cmd->name, shown,
               err.msg[0] ? tidy (o, err.msg, buf, sizeof buf)
               : strerror (-r));
    return CLI_EXIT_FAILURE;
  }
  return 0;
}

/* Read both sides again, independently of the copy and of each other. */
static int
verify (const struct cli_command *cmd, const struct copy_opts *o,
        struct r3m_backend **src, struct r3m_backend **dst,
        const char *dst_uri)
{
  int status = reopen (cmd, o, src, o->src, o->src);
  if (status == 0)
    status = reopen (cmd, o, dst, dst_uri, o->dst);
  if (status != 0)
    return status;

  struct r3m_error err = { 0 };
  struct cli_verify_result res;
  int r = cli_verify (*src, *dst, r3m_backend_size (*src),
                      o->region.chunk_size, &res, &err);
  if (r < 0) {
    char buf[R3M_ERROR_MSG_MAX + 256];
    cli_error ("%s: verify: %s", cmd->name,
               err.msg[0] ? tidy (o, err.msg, buf, sizeof buf)
               : strerror (-r));
    return CLI_EXIT_FAILURE;
  }
  if (res.first_diff != CLI_VERIFY_SAME) {
    char chunk[32];
    cli_format_size_exact (o->region.chunk_size, chunk, sizeof chunk);
    cli_error ("%s: verify failed: %s and %s differ in the chunk at offset "
               "%" PRIu64 " (chunk size %s)", cmd->name, o->src, o->dst,
               res.first_diff, chunk);
    return CLI_EXIT_MISMATCH;
  }
  return 0;
}

static void
print_summary (uint64_t size, double copy_s, bool verified, double verify_s)
{
  char bytes[32], took[32], rate[32], vtook[32];
  util_format_size (size, bytes, sizeof bytes);
  cli_format_duration (copy_s, took, sizeof took);
  cli_format_rate (copy_s > 0 ? (double) size / copy_s : 0, rate,
                   sizeof rate);
  cli_format_duration (verify_s, vtook, sizeof vtook);
  fprintf (stderr, "r3map: copied %s in %s (%s)%s%s\n", bytes, took, rate,
           verified ? ", verified in " : "", verified ? vtook : "");
}

/* Copy between open backends: size check, pull, verify, summary.  The
 * handles may be replaced (reopened for --verify); the caller closes
 * whatever is left in *src and *dst. */
static int
copy (const struct cli_command *cmd, const struct copy_opts *o,
      struct r3m_backend **src, struct r3m_backend **dst,
      const char *dst_uri, bool *stuck, bool *refused)
{
  uint64_t size = r3m_backend_size (*src);
  if (r3m_backend_size (*dst) < size) {
    char have[32], need[32];
    util_format_size (r3m_backend_size (*dst), have, sizeof have);
    util_format_size (size, need, sizeof need);
    *refused = true;
    return cli_usage_error (cmd, "DST %s holds %s, less than the %s of SRC "
                            "%s", o->dst, have, need, o->src);
  }

  bool draw = !o->quiet
              && (o->progress == PROGRESS_ON
                  || (o->progress == PROGRESS_AUTO && isatty (STDERR_FILENO)));
  struct cli_progress bar;
  uint64_t t0 = util_now_ns ();
  cli_progress_init (&bar, stderr, draw, size, t0);
  cli_progress_update (&bar, 0, t0, true);

  int status = size > 0 ? pull_all (cmd, o, *src, *dst, &bar, stuck) : 0;
  if (status != 0)
    return status;
  double copy_s = (double) (util_now_ns () - t0) / 1e9;

  double verify_s = 0;
  if (o->verify) {
    uint64_t t1 = util_now_ns ();
    if ((status = verify (cmd, o, src, dst, dst_uri)) != 0)
      return status;
    verify_s = (double) (util_now_ns () - t1) / 1e9;
  }
  if (!o->quiet)
    print_summary (size, copy_s, o->verify, verify_s);
  return CLI_EXIT_OK;
}

int
cli_copy_run (const struct cli_command *cmd, int argc, char **argv)
{
  struct copy_opts o;
  int status = parse (cmd, argc, argv, &o);
  if (status >= 0)
    return status;
  if ((status = check_distinct (cmd, &o)) != 0)
    return status;

  struct r3m_error err = { 0 };
  struct r3m_backend *src = NULL, *dst = NULL;
  int r = r3m_backend_open (o.src, R3M_OPEN_READ_ONLY, &src, &err);
  if (r < 0)
    return cli_report (cmd, r, &err, o.src);

  char *uri = dst_uri (o.dst, r3m_backend_size (src), o.region.chunk_size);
  if (!uri) {
    r3m_backend_close (src);
    cli_error ("%s: %s", cmd->name, strerror (ENOMEM));
    return CLI_EXIT_FAILURE;
  }
  o.dst_opened = uri;
  char *created = new_dst_file (uri);
  r = r3m_backend_open (uri, 0, &dst, &err);
  if (r < 0) {
    /* The typed URI is a prefix of the opened one: never longer. */
    char buf[R3M_ERROR_MSG_MAX];
    tidy (&o, err.msg, buf, sizeof buf);
    memcpy (err.msg, buf, sizeof buf);
    status = cli_report (cmd, r, &err, o.dst);
  }
  bool stuck = false, refused = false;
  if (r == 0)
    status = copy (cmd, &o, &src, &dst, uri, &stuck, &refused);
  free (uri);
  if (!stuck) {
    r3m_backend_close (dst);
    r3m_backend_close (src);
  }
  if (refused && created)
    unlink (created);
  free (created);
  return status;
}
