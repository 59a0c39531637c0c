/* Progress bar and summary formatting (see progress.h). */
#include <math.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util/size.h"

#include "progress.h"

static unsigned
terminal_width (FILE *out)
{
  struct winsize ws;
  if (ioctl (fileno (out), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
    return ws.ws_col;
  return 80;
}

void
cli_progress_init (struct cli_progress *p, FILE *out, bool bar,
                   uint64_t total, uint64_t now_ns)
{
  memset (p, 0, sizeof *p);
  p->out = out;
  p->bar = bar;
  p->width = bar ? terminal_width (out) : 80;
  p->total = total;
  p->start_ns = now_ns;
  p->samples[0].ns = now_ns;
  p->nsamples = 1;
  p->next = 1;
}

double
cli_progress_rate (const struct cli_progress *p)
{
  if (p->nsamples < 2)
    return 0;
  unsigned newest = (p->next + CLI_PROGRESS_SAMPLES - 1) % CLI_PROGRESS_SAMPLES;
  unsigned oldest = p->nsamples < CLI_PROGRESS_SAMPLES ? 0 : p->next;
  uint64_t dt = p->samples[newest].ns - p->samples[oldest].ns;
  uint64_t db = p->samples[newest].bytes - p->samples[oldest].bytes;
  return dt ? (double) db * 1e9 / (double) dt : 0;
}

void
cli_format_duration (double s, char *buf, size_t len)
{
  if (s < 10)
    snprintf (buf, len, "%.2f s", s);
  else if (s < 60)
    snprintf (buf, len, "%.1f s", s);
  else if (s < 3600) {
    unsigned t = (unsigned) lround (s);
    snprintf (buf, len, "%um%02us", t / 60, t % 60);
  }
  else {
    unsigned long t = (unsigned long) lround (s / 60);
    snprintf (buf, len, "%luh%02lum", t / 60, t % 60);
  }
}

void
cli_format_size_exact (uint64_t bytes, char *buf, size_t len)
{
  static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB",
                                       "PiB", "EiB" };
  unsigned u = 0;
  uint64_t v = bytes;
  while (v >= 1024 && v % 1024 == 0 && u + 1 < sizeof units / sizeof units[0]) {
    v /= 1024;
    u++;
  }
  if (v >= 1024)
    util_format_size (bytes, buf, len);
  else
    snprintf (buf, len, "%llu %s", (unsigned long long) v, units[u]);
}

void
cli_format_rate (double bps, char *buf, size_t len)
{
  char size[32];
  util_format_size (bps > 0 && bps < 1.8e19 ? (uint64_t) bps : 0, size,
                    sizeof size);
  snprintf (buf, len, "%s/s", size);
}

/* ETA as m:ss or h:mm:ss; "--:--" when unknown or absurd. */
static void
format_eta (double s, char *buf, size_t len)
{
  if (!(s >= 0) || s > 100 * 3600) {
    snprintf (buf, len, "--:--");
    return;
  }
  unsigned long t = (unsigned long) ceil (s);
  if (t >= 3600)
    snprintf (buf, len, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
  else
    snprintf (buf, len, "%lu:%02lu", t / 60, t % 60);
}

void
cli_progress_render (char *buf, size_t len, unsigned width, uint64_t done,
                     uint64_t total, double rate)
{
  if (done > total)
    done = total;
  unsigned pct = total ? (unsigned) (done * 100.0 / (double) total) : 100;
  char d[32], t[32], r[32], eta[32];
  util_format_size (done, d, sizeof d);
  util_format_size (total, t, sizeof t);
  if (rate > 0) {
    cli_format_rate (rate, r, sizeof r);
    format_eta ((double) (total - done) / rate, eta, sizeof eta);
  }
  else {
    snprintf (r, sizeof r, "-- B/s");
    format_eta (-1, eta, sizeof eta);
  }

  char text[160];
  int n = snprintf (text, sizeof text, "%3u%%  %s / %s  %s  ETA %s", pct, d, t,
                    r, eta);
  if (n < 0)
    n = 0;
  /* The bar takes what is left, 10 to 40 cells, or nothing. */
  int cells = (int) width - 1 - n - 4;
  if (cells > 40)
    cells = 40;
  if (cells < 10) {
    snprintf (buf, len, "%.*s", width > 1 ? (int) width - 1 : 0, text);
    return;
  }
  char bar[48];
  int full = total ? (int) ((double) done / (double) total * cells) : cells;
  for (int i = 0; i < cells; i++)
    bar[i] = i < full ? '=' : i == full ? '>' : ' ';
  bar[cells] = '\0';
  snprintf (buf, len, "[%s]  %s", bar, text);
}

void
cli_progress_update (struct cli_progress *p, uint64_t done, uint64_t now_ns,
                     bool force)
{
  if (!force && now_ns - p->last_draw_ns
      < (uint64_t) CLI_PROGRESS_INTERVAL_MS * 1000000u)
    return;
  p->last_draw_ns = now_ns;
  p->samples[p->next].ns = now_ns;
  p->samples[p->next].bytes = done;
  p->next = (p->next + 1) % CLI_PROGRESS_SAMPLES;
  if (p->nsamples < CLI_PROGRESS_SAMPLES)
    p->nsamples++;
  if (!p->bar)
    return;
  char line[256];
  cli_progress_render (line, sizeof line, p->width, done, p->total,
                       cli_progress_rate (p));
  fprintf (p->out, "\r%s\033[K", line);
  fflush (p->out);
  p->drawn = true;
}

void
cli_progress_clear (struct cli_progress *p)
{
  if (p->drawn) {
    fprintf (p->out, "\r\033[K");
    fflush (p->out);
    p->drawn = false;
  }
}
