/* What a run tells people and machines: the JSON report, JUnit XML, the summary table and the verdict line. */
#ifndef FL_REPORT_H
#define FL_REPORT_H

#include <stdio.h>

#include "engine.h"

int fl_report_json(const struct fl_run *run, const char *path, struct fl_err *err);
int fl_report_junit(const struct fl_run *run, const char *path, struct fl_err *err);
/* The human summary: phases, faults configured vs observed, the SLO checks. */
void fl_report_summary(const struct fl_run *run, FILE *out);
/* One line: "faultline: PASS scenario: ...". Always printed, even with --quiet. */
void fl_report_verdict_line(const struct fl_run *run, FILE *out);

#endif
