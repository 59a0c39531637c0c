/* r3map serve: export backends over NBD until SIGINT or SIGTERM.
 *
 * Threads: main blocks SIGINT/SIGTERM/SIGHUP before the server starts any
 * thread (so they all inherit the mask), starts serving, writes the pid
 * file (the readiness signal tests wait for), then sleeps in sigwaitinfo.
 * A signal runs the graceful shutdown: in-flight requests finish, every
 * writable backend is flushed, the pid file and Unix sockets are removed.
 * Clients still connected after --grace (default 5s) are cut off. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <r3map/r3map.h>
#include <r3map/nbd.h>

#include "cli.h"
#include "options.h"

#define MAX_EXPORTS 64
#define MAX_LISTEN 16

void
cli_serve_help (FILE *out)
{
  fprintf (out,
"Usage: r3map serve [OPTIONS] [BACKEND]\n"
"       r3map serve [OPTIONS] --export NAME=BACKEND [--export ...]\n"
"\n"
"Export backends over NBD (the Network Block Device protocol) until SIGINT\n"
"or SIGTERM.  Any NBD client can use them: the Linux kernel (nbd-client),\n"
"qemu, nbdinfo/nbdcopy/nbdfuse, fio, and r3map's own nbd:// backend.\n"
"Clients that ask get structured replies, block status (base:allocation)\n"
"and extended headers (64-bit lengths, NBD_OPT_EXTENDED_HEADERS).\n"
"A single BACKEND is the default export \"\" (nbd://HOST/ reaches it).\n"
"\n"
"Options:\n"
"  -e, --export NAME=BACKEND  export BACKEND as NAME (repeatable)\n"
"  -l, --listen URI           where to listen (repeatable); default\n"
"                             nbd://127.0.0.1:10809.  nbd://HOST:PORT (port 0\n"
"                             picks a free one), nbd+unix:///?socket=PATH;\n"
"                             nbds:// and nbds+unix:// require TLS there\n"
"  -r, --read-only            refuse writes (clients see a read-only disk)\n"
"      --min-block SIZE       refuse requests not aligned to SIZE (a power\n"
"                             of two up to 64K; default 1: any alignment)\n"
"      --no-multi-conn        do not advertise multi-connection support\n"
"      --tls MODE             off (default), on (clients may STARTTLS) or\n"
"                             require (every option needs TLS first)\n"
"      --tls-cert FILE        PEM server certificate (chain)\n"
"      --tls-key FILE         PEM private key (default: in --tls-cert)\n"
"      --tls-ca FILE          require client certificates signed by this CA\n"
"      --tls-psk FILE         let in clients that prove a pre-shared key of\n"
"                             FILE (lines user:hexkey, as psktool writes;\n"
"                             TLS 1.3), instead of or besides --tls-cert\n"
"      --workers N            threads per connection for backends that\n"
"                             block (file, remote); default 16\n"
"      --max-connections N    default 256\n"
"      --busy-poll USEC       memory: exports: poll for the next request this\n"
"                             long before sleeping, while the client keeps\n"
"                             sending (default 50; 0 = never)\n"
"      --batch-hold USEC      memory: exports: while replies wait,\n"
"                             poll this long for more requests to answer in\n"
"                             the same send (default 20; 0 = never)\n"
"      --grace DURATION       on SIGINT/SIGTERM, wait this long for clients\n"
"                             to finish before cutting them (500ms, 5s, 1m);\n"
"                             default 5s\n"
"      --pid-file FILE        write the pid once listening (readiness)\n"
"  -v, --verbose              log connections (twice: every option)\n"
"  -q, --quiet                log only errors\n"
"  -h, --help                 show this help\n"
"\n"
"Once listening, each address is printed on standard output as\n"
"  listening on nbd://127.0.0.1:10809\n"
"Serving to other hosts needs an explicit --listen; use --tls=require with\n"
"--tls-ca or --tls-psk for that.  On exit every writable backend is flushed.\n"
"\n"
"Examples:\n"
"  r3map serve memory:1G\n"
"  r3map serve --listen nbd+unix:///?socket=/tmp/r3.sock file:/var/disk.img\n"
"  r3map serve -e a=memory:64M -e b=file:/tmp/b.img --read-only\n"
"  r3map serve --tls=require --tls-cert server.pem --tls-key key.pem \\\n"
"      --tls-ca ca.pem --listen nbds://0.0.0.0 memory:4G\n"
"  r3map serve --tls=require --tls-psk keys.psk --listen nbds://0.0.0.0 \\\n"
"      memory:4G      (client: nbds://alice@HOST/?tls-psk-file=keys.psk)\n"
"\n"
"Exit status: 0 after a clean shutdown, 1 on a runtime failure (cannot\n"
"listen, a backend failed to flush), 2 on a usage error.\n"
"Protocol details: docs/protocol.md; server design: docs/nbd-server.md.\n");
}

static void
log_stderr (void *user, enum r3m_nbd_log_level level, const char *msg)
{
  static const char *const names[] = { "error", "warning", "info", "debug" };
  fprintf (stderr, "r3map: serve: %s: %s\n", names[level], msg);
}

struct export_arg {
  char *name;
  const char *uri;
  struct r3m_backend *backend;
};

struct serve_args {
  const struct cli_command *cmd;
  struct r3m_nbd_server_options so;
  struct r3m_nbd_export_options eo;
  struct export_arg exports[MAX_EXPORTS];
  size_t nexports;
  const char *listen[MAX_LISTEN];
  size_t nlisten;
  uint64_t grace_ms;
  const char *pid_file;
};

static int
parse_count (struct serve_args *a, const char *opt, const char *arg,
              uint64_t min, uint64_t max, unsigned *out)
{
  uint64_t v;
  if (cli_parse_count (a->cmd, opt, arg, min, max, &v) < 0)
    return CLI_EXIT_USAGE;
  *out = (unsigned) v;
  return 0;
}

static int
add_export (struct serve_args *a, const char *arg, bool named)
{
  if (a->nexports == MAX_EXPORTS)
    return cli_usage_error (a->cmd, "at most %d exports", MAX_EXPORTS);
  struct export_arg *e = &a->exports[a->nexports];
  const char *eq = named ? strchr (arg, '=') : NULL;
  if (named && !eq)
    return cli_usage_error (a->cmd, "--export wants NAME=BACKEND, not '%s'",
                            arg);
  e->name = named ? strndup (arg, (size_t) (eq - arg)) : strdup ("");
  e->uri = named ? eq + 1 : arg;
  if (!e->name) {
    cli_error ("%s: out of memory", a->cmd->name);
    return CLI_EXIT_FAILURE;
  }
  for (size_t i = 0; i < a->nexports; i++)
    if (strcmp (a->exports[i].name, e->name) == 0) {
      int r = cli_usage_error (a->cmd, "export '%s' is given twice",
                               e->name);
      free (e->name);
      e->name = NULL;
      return r;
    }
  a->nexports++;
  return 0;
}

static int
parse_tls_mode (struct serve_args *a, const char *arg,
                enum r3m_nbd_tls_mode *out)
{
  if (strcmp (arg, "off") == 0)
    *out = R3M_NBD_TLS_OFF;
  else if (strcmp (arg, "on") == 0)
    *out = R3M_NBD_TLS_ON;
  else if (strcmp (arg, "require") == 0)
    *out = R3M_NBD_TLS_REQUIRE;
  else
    return cli_usage_error (a->cmd, "--tls: '%s' is not off, on or require",
                            arg);
  return 0;
}

enum {
  OPT_MIN_BLOCK = 0x100, OPT_NO_MULTI_CONN, OPT_TLS, OPT_TLS_CERT,
  OPT_TLS_KEY, OPT_TLS_CA, OPT_TLS_PSK, OPT_WORKERS, OPT_MAX_CONN, OPT_GRACE, OPT_PID,
  OPT_BUSY_POLL,
  OPT_BATCH_HOLD,
};

static int
parse_option (struct serve_args *a, int c, const char *arg)
{
  switch (c) {
  case 'e':
    return add_export (a, arg, true);
  case 'l':
    if (a->nlisten == MAX_LISTEN)
      return cli_usage_error (a->cmd, "at most %d --listen", MAX_LISTEN);
    a->listen[a->nlisten++] = arg;
    return 0;
  case 'r':
    a->eo.read_only = true;
    return 0;
  case OPT_MIN_BLOCK: {
    uint64_t v;
    if (cli_parse_size (a->cmd, "--min-block", arg, 1, 65536, CLI_SIZE_POW2,
                        &v) < 0)
      return CLI_EXIT_USAGE;
    a->eo.min_block = (uint32_t) v;
    return 0;
  }
  case OPT_NO_MULTI_CONN:
    a->eo.no_multi_conn = true;
    return 0;
  case OPT_TLS:
    return parse_tls_mode (a, arg, &a->so.tls);
  case OPT_TLS_CERT:
    a->so.tls_cert = arg;
    return 0;
  case OPT_TLS_KEY:
    a->so.tls_key = arg;
    return 0;
  case OPT_TLS_PSK:
    a->so.tls_psk = arg;
    return 0;
  case OPT_TLS_CA:
    a->so.tls_ca = arg;
    return 0;
  case OPT_WORKERS:
    return parse_count (a, "--workers", arg, 1, 1024, &a->so.workers);
  case OPT_MAX_CONN:
    return parse_count (a, "--max-connections", arg, 1, 65536,
                        &a->so.max_connections);
  case OPT_BUSY_POLL:
    return parse_count (a, "--busy-poll", arg, 0, 10000,
                        &a->so.busy_poll_us);
  case OPT_BATCH_HOLD:
    return parse_count (a, "--batch-hold", arg, 0, 10000,
                        &a->so.batch_hold_us);
  case OPT_GRACE:
    return cli_parse_duration (a->cmd, "--grace", arg, 0, 3600 * 1000,
                               &a->grace_ms) < 0 ? CLI_EXIT_USAGE : 0;
  case OPT_PID:
    a->pid_file = arg;
    return 0;
  case 'v':
    if (a->so.log_level < R3M_NBD_LOG_DEBUG)
      a->so.log_level = a->so.log_level == R3M_NBD_LOG_ERROR
                        ? R3M_NBD_LOG_INFO : a->so.log_level + 1;
    return 0;
  case 'q':
    a->so.log_level = R3M_NBD_LOG_ERROR;
    return 0;
  default:
    return CLI_EXIT_USAGE;
  }
}

/* 0 to serve, or the status to exit with (*stop: after --help too). */
static int
parse_args (struct serve_args *a, int argc, char **argv, bool *stop)
{
  static const struct option longopts[] = {
    { "export", required_argument, NULL, 'e' },
    { "listen", required_argument, NULL, 'l' },
    { "read-only", no_argument, NULL, 'r' },
    { "min-block", required_argument, NULL, OPT_MIN_BLOCK },
    { "no-multi-conn", no_argument, NULL, OPT_NO_MULTI_CONN },
    { "tls", required_argument, NULL, OPT_TLS },
    { "tls-cert", required_argument, NULL, OPT_TLS_CERT },
    { "tls-key", required_argument, NULL, OPT_TLS_KEY },
    { "tls-ca", required_argument, NULL, OPT_TLS_CA },
    { "tls-psk", required_argument, NULL, OPT_TLS_PSK },
    { "workers", required_argument, NULL, OPT_WORKERS },
    { "max-connections", required_argument, NULL, OPT_MAX_CONN },
    { "busy-poll", required_argument, NULL, OPT_BUSY_POLL },
    { "batch-hold", required_argument, NULL, OPT_BATCH_HOLD },
    { "grace", required_argument, NULL, OPT_GRACE },
    { "pid-file", required_argument, NULL, OPT_PID },
    { "verbose", no_argument, NULL, 'v' },
    { "quiet", no_argument, NULL, 'q' },
    CLI_OPTION_HELP,
    { NULL, 0, NULL, 0 },
  };
  int c, status = 0;
  while ((c = cli_getopt (a->cmd, argc, argv, "e:l:rvqh", longopts,
                          &status)) != -1) {
    if (c == CLI_OPT_STOP) {
      *stop = true;
      return status;
    }
    int r = parse_option (a, c, optarg);
    if (r != 0)
      return r;
  }
  if (optind < argc - 1)
    return cli_usage_error (a->cmd, "one BACKEND at most (use --export for "
                            "more)");
  if (optind == argc - 1) {
    int r = add_export (a, argv[optind], false);
    if (r != 0)
      return r;
  }
  if (a->nexports == 0)
    return cli_usage_error (a->cmd, "nothing to serve: give a BACKEND or "
                            "--export");
  if (a->so.tls != R3M_NBD_TLS_OFF && !a->so.tls_cert && !a->so.tls_psk)
    return cli_usage_error (a->cmd, "--tls=%s needs --tls-cert or --tls-psk",
                            a->so.tls == R3M_NBD_TLS_ON ? "on" : "require");
  if (a->so.tls == R3M_NBD_TLS_OFF
      && (a->so.tls_cert || a->so.tls_ca || a->so.tls_psk))
    return cli_usage_error (a->cmd, "--tls-cert/--tls-ca/--tls-psk need "
                            "--tls=on or --tls=require");
  if (a->nlisten == 0)
    a->listen[a->nlisten++] = "nbd://127.0.0.1:10809";
  return 0;
}

static int
write_pid_file (const char *path)
{
  /* Write a temporary file and rename it, so whoever polls for the file
   * never reads it half written. */
  char tmp[PATH_MAX];
  snprintf (tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen (tmp, "w");
  if (!f)
    return -errno;
  fprintf (f, "%d\n", (int) getpid ());
  if (fclose (f) != 0 || rename (tmp, path) != 0) {
    int e = errno;
    unlink (tmp);
    return -e;
  }
  return 0;
}

static int
open_exports (struct serve_args *a, struct r3m_nbd_server *srv)
{
  for (size_t i = 0; i < a->nexports; i++) {
    struct export_arg *e = &a->exports[i];
    struct r3m_error err;
    r3m_error_clear (&err);
    int r = r3m_backend_open (e->uri, a->eo.read_only ? R3M_OPEN_READ_ONLY
                                                      : 0,
                              &e->backend, &err);
    if (r == 0) {
      struct r3m_nbd_export_options eo = a->eo;
      eo.description = e->uri;
      r = r3m_nbd_server_add_export (srv, e->name, e->backend, &eo, &err);
    }
    if (r < 0)
      return cli_report (a->cmd, r, &err, e->uri);
  }
  return 0;
}

static int
run_server (struct serve_args *a, const sigset_t *sigs)
{
  struct r3m_error err;
  r3m_error_clear (&err);
  struct r3m_nbd_server *srv;
  int r = r3m_nbd_server_new (&a->so, &srv, &err);
  if (r < 0)
    return cli_report (a->cmd, r, &err, "server");
  int status = open_exports (a, srv);
  for (size_t i = 0; status == 0 && i < a->nlisten; i++) {
    r = r3m_nbd_server_listen (srv, a->listen[i], &err);
    if (r < 0)
      status = cli_report (a->cmd, r, &err, a->listen[i]);
  }
  if (status == 0 && (r = r3m_nbd_server_start (srv, &err)) < 0)
    status = cli_report (a->cmd, r, &err, "start");
  if (status == 0) {
    for (size_t i = 0; i < r3m_nbd_server_address_count (srv); i++)
      printf ("listening on %s\n", r3m_nbd_server_address (srv, i));
    fflush (stdout);
    if (a->pid_file && (r = write_pid_file (a->pid_file)) < 0)
      status = cli_report (a->cmd, r, NULL, a->pid_file);
  }
  if (status == 0) {
    siginfo_t si;
    while (sigwaitinfo (sigs, &si) < 0 && errno == EINTR)
      ;
    if (a->so.log_level >= R3M_NBD_LOG_INFO)
      fprintf (stderr, "r3map: serve: %s: shutting down\n",
               strsignal (si.si_signo));
  }
  r3m_error_clear (&err);
  r = r3m_nbd_server_shutdown (srv, (unsigned) a->grace_ms, &err);
  if (r < 0 && status == 0) {
    cli_error ("%s: %s", a->cmd->name, err.msg);
    status = CLI_EXIT_FAILURE;
  }
  r3m_nbd_server_free (srv);
  if (a->pid_file)
    unlink (a->pid_file);
  return status;
}

int
cli_serve_run (const struct cli_command *cmd, int argc, char **argv)
{
  struct serve_args a;
  memset (&a, 0, sizeof a);
  a.cmd = cmd;
  r3m_nbd_server_options_init (&a.so);
  a.so.log = log_stderr;
  a.grace_ms = 5000;
  bool stop = false;
  int status = parse_args (&a, argc, argv, &stop);
  if (status == 0 && !stop) {
    sigset_t sigs;
    sigemptyset (&sigs);
    sigaddset (&sigs, SIGINT);
    sigaddset (&sigs, SIGTERM);
    sigaddset (&sigs, SIGHUP);
    pthread_sigmask (SIG_BLOCK, &sigs, NULL);
    signal (SIGPIPE, SIG_IGN);
    status = run_server (&a, &sigs);
  }
  for (size_t i = 0; i < a.nexports; i++) {
    r3m_backend_close (a.exports[i].backend);
    free (a.exports[i].name);
  }
  return status;
}
