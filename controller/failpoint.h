/* Failpoints: named places where a test can make the controller die or an apply fail, to prove recovery at every step. */
#ifndef FL_FAILPOINT_H
#define FL_FAILPOINT_H

#include <stdbool.h>

/*
 * FAULTLINE_FAILPOINT=SITE[:FAULT] arms one site (for one fault, or for any). Sites:
 *   after-journal  SIGKILL ourselves right after a fault's record is fsync'd, before it acts
 *   after-apply    SIGKILL right after a fault's apply returned
 *   mid-revert     SIGKILL after a fault's revert succeeded, before the journal marks it
 *   apply-error    the engine treats a successful apply as failed (its effect is in place)
 * Unset (always, outside tests) it costs one getenv at the first call.
 */
bool fl_failpoint(const char *site, const char *fault);
/* SIGKILL this process when the site is armed for this fault. */
void fl_failpoint_kill(const char *site, const char *fault);

#endif
