/* The write-ahead journal: every side effect is recorded (and fsync'd) before it is made, so a fresh process can undo it. */
#ifndef FL_JOURNAL_H
#define FL_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "injector.h"

#define FL_REC_DATA 1024

struct fl_journal_rec {
	uint64_t seq;
	char fault[64];
	char injector[48];
	char data[FL_REC_DATA]; /* "key=value key=value"; values hold no blanks */
	bool reverted;
};

struct fl_journal_info {
	char path[4096];
	char run_id[64];
	char scenario[96];
	pid_t owner_pid;
	int64_t started;            /* unix seconds */
	bool owner_alive;           /* its lock is held */
	int torn;                   /* damaged records at the tail, ignored */
	struct fl_journal_rec *recs;
	int nrecs;
};

struct fl_journal;

/* Create <dir>/<run_id>.journal, locked (flock) for the owner's lifetime. */
int fl_journal_open(const char *dir, const char *run_id, const char *scenario,
		    struct fl_journal **out, struct fl_err *err);
/*
 * Append a record for fault f and fsync it; data is printf-formatted "k=v k=v".
 * Returns the record's sequence number (> 0) or a negative errno.
 */
int64_t fl_journal_append(struct fl_journal *j, const struct fl_fault *f, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Mark every unreverted record of fault `name` reverted (fsync'd). */
int fl_journal_mark_fault_reverted(struct fl_journal *j, const char *name);
/* Number of records not yet marked reverted. */
int fl_journal_pending(const struct fl_journal *j);
const char *fl_journal_path(const struct fl_journal *j);
/* The run id the journal was opened for: names every object the run creates. */
const char *fl_journal_run_id(const struct fl_journal *j);
/* Close; when nothing is pending and `remove_when_clean`, delete the file. */
void fl_journal_close(struct fl_journal *j, bool remove_when_clean);

/* Read a journal file (anyone's): records, reverted marks, torn tail, whether its owner lives. */
int fl_journal_read(const char *path, struct fl_journal_info *info, struct fl_err *err);
void fl_journal_info_free(struct fl_journal_info *info);
/* Mark records reverted in a journal whose owner is gone (used by recover). */
int fl_journal_mark_reverted_path(const char *path, uint64_t seq, struct fl_err *err);

/* Value of key in a record's data, copied into buf; NULL when absent. */
const char *fl_rec_get(const struct fl_journal_rec *r, const char *key, char *buf, size_t len);
/* Numeric helpers: 0 or -ENOENT/-EINVAL. */
int fl_rec_get_i64(const struct fl_journal_rec *r, const char *key, int64_t *out);
int fl_rec_get_u64(const struct fl_journal_rec *r, const char *key, uint64_t *out);

#endif
