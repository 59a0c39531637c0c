/* A progress bar and a summary line for long transfers (r3map copy).
 *
 * The caller samples how many bytes are done and calls cli_progress_update
 * as often as it likes; the bar is redrawn on one line (carriage return,
 * clear to end of line) at most every CLI_PROGRESS_INTERVAL_MS.  The rate
 * shown and the ETA come from the last few seconds of samples, so they
 * follow changes in speed; the summary uses the overall average.  Times are
 * passed in (nanoseconds, monotonic) so rendering is testable. */
#ifndef R3M_CLI_PROGRESS_H
#define R3M_CLI_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CLI_PROGRESS_INTERVAL_MS 200
#define CLI_PROGRESS_SAMPLES 16  /* about 3 s of history at that interval */

struct cli_progress {
  FILE *out;
  bool bar;                  /* draw; otherwise updates only record */
  bool drawn;                /* a bar is on the line now */
  unsigned width;            /* terminal columns */
  uint64_t total;
  uint64_t start_ns, last_draw_ns;
  struct { uint64_t ns, bytes; } samples[CLI_PROGRESS_SAMPLES];
  unsigned nsamples, next;   /* ring of the latest samples */
};

/* Start at now_ns with 0 of `total` bytes done.  With `bar`, draw on `out`
 * (its width from the terminal, or 80). */
void cli_progress_init (struct cli_progress *p, FILE *out, bool bar,
                        uint64_t total, uint64_t now_ns);

/* `done` bytes are done at now_ns.  Redraws if due (or `force`). */
void cli_progress_update (struct cli_progress *p, uint64_t done,
                          uint64_t now_ns, bool force);

/* Erase the bar, so that a message or the summary can take the line. */
void cli_progress_clear (struct cli_progress *p);

/* Bytes per second over the recent samples (0 if unknown). */
double cli_progress_rate (const struct cli_progress *p);

/* One bar line for `width` columns, e.g.
 *   [=========>          ]  45%  460 MiB / 1.00 GiB  512 MiB/s  ETA 0:02
 * rate 0 shows "--" for the rate and the ETA.  Never wider than width-1
 * (so the cursor does not wrap); narrow terminals lose the bar first. */
void cli_progress_render (char *buf, size_t len, unsigned width,
                          uint64_t done, uint64_t total, double rate);

/* "0.84 s", "12.3 s", "2m05s", "1h02m": a duration for people. */
void cli_format_duration (double seconds, char *buf, size_t len);

/* A size that is a whole number of its unit exactly ("512 B", "64 KiB",
 * "1 MiB"), else as util_format_size ("1.50 MiB"): for chunk sizes and
 * limits, which are usually powers of two. */
void cli_format_size_exact (uint64_t bytes, char *buf, size_t len);

/* "1.19 GiB/s" */
void cli_format_rate (double bytes_per_s, char *buf, size_t len);

#endif
