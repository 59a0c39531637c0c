/* Ctrl-C and SIGTERM during a long transfer: see interrupt.h. */
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "interrupt.h"

static volatile sig_atomic_t caught;
static volatile sig_atomic_t caught_at;   /* CLOCK_MONOTONIC seconds */

static const int signals[] = { SIGINT, SIGTERM };

static sig_atomic_t
now_s (void)
{
  struct timespec t;
  clock_gettime (CLOCK_MONOTONIC, &t);   /* async-signal-safe */
  return (sig_atomic_t) t.tv_sec;
}

static void
on_signal (int sig)
{
  if (!caught) {
    caught_at = now_s ();
    caught = sig;
    return;
  }
  /* A later signal ends the process the ordinary way.  One within about a
   * second is the same request delivered twice: timeout(1), for one, sends
   * it to the command and then to its whole process group. */
  if (now_s () - caught_at >= 2) {
    signal (sig, SIG_DFL);
    raise (sig);
  }
}

/* Set the action of every signal we handle that is not ignored. */
static void
set_action (void (*handler) (int))
{
  for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
    struct sigaction old;
    if (sigaction (signals[i], NULL, &old) != 0 || old.sa_handler == SIG_IGN)
      continue;
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset (&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction (signals[i], &sa, NULL);
  }
}

void
cli_interrupt_arm (void)
{
  caught = 0;
  set_action (on_signal);
}

void
cli_interrupt_disarm (void)
{
  set_action (SIG_DFL);
}

int
cli_interrupted (void)
{
  return caught;
}
