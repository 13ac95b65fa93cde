/* Undoing what a dead run left: from its journal alone (recover, the guardian, boot). */
#ifndef FL_RECOVERY_H
#define FL_RECOVERY_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "fl_err.h"

/* The pseudo-injector name under which the engine journals a target it launched. */
#define FL_TARGET_RECORD "target.launch"

struct fl_recover_stats {
	int journals;       /* journals looked at */
	int alive;          /* skipped: their owner (or its guardian) still holds the lock */
	int reverted;       /* records reverted now */
	int failed;         /* records that could not be reverted */
	int torn;           /* damaged tail records ignored */
	int swept;          /* owned objects of dead runs removed without a journal */
};

/*
 * Revert every unreverted record of one journal, newest first, through the injectors'
 * revert_record (and stop a launched target), marking each reverted; remove the journal when
 * nothing is left. `force` skips the owner-alive check (the guardian holds the lock itself).
 * Progress lines go to `out` (may be NULL).
 */
int fl_recover_journal(const char *path, bool force, FILE *out, struct fl_recover_stats *st);
/* Every *.journal in dir. Returns 0 when the host is clean afterwards. */
int fl_recover_dir(const char *dir, FILE *out, struct fl_recover_stats *st);
/* Journals in dir whose owner is gone and that still hold unreverted records. */
int fl_recover_pending(const char *dir, char *first, size_t len);

/* A new run id, YYYYMMDDTHHMMSS-PID-XXXX (UTC, controller pid, random): names its journal and objects. */
void fl_run_id_make(char *buf, size_t len);
/* Whether id is exactly a run id as made above; its controller's pid in *owner (may be NULL). */
bool fl_run_id_parse(const char *id, pid_t *owner);
/*
 * Objects named FL_OWNED_PREFIX + run id whose run left no journal in state_dir and whose
 * controller is gone (a lost /run, a deleted journal): kill what is inside, remove them.
 * Objects of live runs, and anything not named exactly so, are never touched.
 */
int fl_recover_sweep(const char *state_dir, FILE *out, struct fl_recover_stats *st);

/*
 * The guardian: a child in its own session that outlives the controller. It reverts the run's
 * journal if the pipe closes without "done" (the controller died) or no heartbeat arrives for
 * heartbeat_ns (a hung controller, which it SIGKILLs first).
 */
struct fl_guardian {
	pid_t pid;
	int fd;             /* write end: 'h' heartbeat, 'd' done */
};
int fl_guardian_start(const char *journal_path, int64_t heartbeat_ns, struct fl_guardian *g,
		      struct fl_err *err);
void fl_guardian_beat(struct fl_guardian *g);
/* Clean end: the controller reverted everything itself. Waits for the guardian to exit. */
void fl_guardian_done(struct fl_guardian *g);

#endif
