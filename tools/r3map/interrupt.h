/* Ctrl-C and SIGTERM during a long transfer (r3map copy).
 *
 * While armed, SIGINT and SIGTERM only set a flag, which the command's
 * waiting loop checks: it can then stop the work, flush what is already
 * done, say how far it got and exit with 128 + the signal's number, as a
 * shell would report a process the signal killed.  Another signal a second
 * or two later ends the process at once, if stopping takes too long (one
 * sooner is taken as the same request delivered twice).  Outside the armed stretch (connecting, a final
 * verification) the signals keep their default action.  A signal that was
 * ignored when r3map started (a background job of a shell script) stays
 * ignored.  Process-wide by nature: signal dispositions are. */
#ifndef R3M_CLI_INTERRUPT_H
#define R3M_CLI_INTERRUPT_H

/* Start catching SIGINT and SIGTERM. */
void cli_interrupt_arm (void);
/* Back to the default actions; a signal caught meanwhile stays recorded. */
void cli_interrupt_disarm (void);
/* The signal caught while armed, or 0. */
int cli_interrupted (void);

#endif
