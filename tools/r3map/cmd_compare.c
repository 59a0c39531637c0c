/* r3map compare A B: do two backends hold the same bytes?
 *
 * Both are opened read-only and read independently through cli_verify (one
 * thread per side, pipelined reads on a remote side, XXH3-64 per chunk),
 * the same code `r3map copy --verify` uses.  The verdict goes to stdout;
 * errors to stderr. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include <r3map/r3map.h>

#include "util/size.h"

#include "cli.h"
#include "options.h"
#include "progress.h"
#include "verify.h"

#define DEFAULT_CHUNK (64u << 10)

void
cli_compare_help (FILE *out)
{
  fprintf (out,
"Usage: r3map compare [OPTIONS] A B\n"
"\n"
"Tell whether backends A and B hold the same bytes.  Both are opened\n"
"read-only and read independently, each on its own thread (an NBD backend\n"
"with 32 MiB of reads in flight, so a long link costs little); every chunk\n"
"is hashed with XXH3-64 and the hashes are compared.  A and B are backend\n"
"URIs (see 'r3map --help').\n"
"\n"
"Options:\n"
"  -c, --chunk-size=SIZE  compare chunks of SIZE bytes; a difference is\n"
"                         reported as the offset of the first chunk that\n"
"                         differs (default: %u KiB)\n"
"  -l, --length=SIZE      compare only the first SIZE bytes (default: all;\n"
"                         backends of different sizes are different)\n"
"  -q, --quiet            print nothing; the exit status tells\n"
"  -h, --help             show this help\n"
"\n"
"Output (stdout):\n"
"  identical: 1.00 GiB (1073741824 bytes), XXH3-64 39ccff1c0338d398\n"
"  different: the chunk at offset 65536 differs (chunk size 64 KiB)\n"
"\n"
"Exit status: 0 identical, 1 a read failed, 2 usage error, 3 different.\n"
"\n"
"Examples:\n"
"  r3map compare pattern:1G file:/tmp/disk.img\n"
"  r3map compare --length 4M file:/dev/loop0 file:/tmp/disk.img\n",
           DEFAULT_CHUNK >> 10);
}

struct compare_opts {
  uint64_t chunk;
  uint64_t length;           /* 0 = all */
  bool has_length;
  bool quiet;
};

static int
parse (const struct cli_command *cmd, int argc, char **argv,
       struct compare_opts *o)
{
  static const struct option longopts[] = {
    { "chunk-size", required_argument, NULL, 'c' },
    { "length", required_argument, NULL, 'l' },
    { "quiet", no_argument, NULL, 'q' },
    CLI_OPTION_HELP,
    { NULL, 0, NULL, 0 },
  };
  *o = (struct compare_opts) { .chunk = DEFAULT_CHUNK };
  int c, status;
  while ((c = cli_getopt (cmd, argc, argv, "c:l:qh", longopts, &status))
         != -1) {
    switch (c) {
    case CLI_OPT_STOP:
      return status;
    case 'c':
      if (cli_parse_size (cmd, "--chunk-size", optarg, 512, 64u << 20,
                          CLI_SIZE_POW2, &o->chunk) < 0)
        return CLI_EXIT_USAGE;
      break;
    case 'l':
      if (cli_parse_size (cmd, "--length", optarg, 0, UINT64_MAX, 0,
                          &o->length) < 0)
        return CLI_EXIT_USAGE;
      o->has_length = true;
      break;
    case 'q':
      o->quiet = true;
      break;
    }
  }
  if (cli_operands (cmd, argc, argv, 2, "A B") < 0)
    return CLI_EXIT_USAGE;
  return -1;
}

/* Compare and print the verdict; both backends are open. */
static int
compare (const struct cli_command *cmd, const struct compare_opts *o,
         struct r3m_backend *a, struct r3m_backend *b)
{
  uint64_t sa = r3m_backend_size (a), sb = r3m_backend_size (b);
  uint64_t len = sa < sb ? sa : sb;
  if (o->has_length) {
    if (o->length > len) {
      char want[32], have[32];
      util_format_size (o->length, want, sizeof want);
      util_format_size (len, have, sizeof have);
      return cli_usage_error (cmd, "--length %s is more than %s holds (%s)",
                              want, sa < sb ? r3m_backend_describe (a)
                              : r3m_backend_describe (b), have);
    }
    len = o->length;
  }

  struct r3m_error err = { 0 };
  struct cli_verify_result res;
  int r = cli_verify (a, b, len, (uint32_t) o->chunk, &res, &err);
  if (r < 0)
    return cli_report (cmd, r, &err, "compare");

  char size[32], chunk[32];
  util_format_size (len, size, sizeof size);
  cli_format_size_exact (o->chunk, chunk, sizeof chunk);
  if (res.first_diff != CLI_VERIFY_SAME) {
    if (!o->quiet)
      printf ("different: the chunk at offset %" PRIu64 " differs (chunk "
              "size %s)\n", res.first_diff, chunk);
    return CLI_EXIT_MISMATCH;
  }
  if (!o->has_length && sa != sb) {
    if (!o->quiet)
      printf ("different: sizes differ (%" PRIu64 " and %" PRIu64 " bytes); "
              "the first %" PRIu64 " bytes are identical\n", sa, sb, len);
    return CLI_EXIT_MISMATCH;
  }
  if (!o->quiet)
    printf ("identical: %s (%" PRIu64 " bytes), XXH3-64 %016" PRIx64 "\n",
            size, len, res.hash_a);
  return CLI_EXIT_OK;
}

int
cli_compare_run (const struct cli_command *cmd, int argc, char **argv)
{
  struct compare_opts o;
  int status = parse (cmd, argc, argv, &o);
  if (status >= 0)
    return status;

  const char *ua = argv[optind], *ub = argv[optind + 1];
  struct r3m_error err = { 0 };
  struct r3m_backend *a = NULL, *b = NULL;
  int r = r3m_backend_open (ua, R3M_OPEN_READ_ONLY, &a, &err);
  if (r < 0)
    return cli_report (cmd, r, &err, ua);
  r = r3m_backend_open (ub, R3M_OPEN_READ_ONLY, &b, &err);
  if (r < 0) {
    r3m_backend_close (a);
    return cli_report (cmd, r, &err, ub);
  }
  status = compare (cmd, &o, a, b);
  r3m_backend_close (a);
  r3m_backend_close (b);
  return status;
}
