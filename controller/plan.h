/* `faultline plan`, `faultline list` and the generated reference: printing what would be done, with no side effect. */
#ifndef FL_PLAN_H
#define FL_PLAN_H

#include <stdbool.h>
#include <stdio.h>

#include "scenario.h"

/*
 * The ordered timeline of a run, what each fault would touch and which preflight checks run.
 * `now`: the running target as found at plan time (NULL when faultline would launch it or it
 * could not be found; then `why_not` says why, or is NULL): its pid, cgroups and netns are
 * shown, and each fault's side-effect-free check is run against it.
 */
void fl_plan_print(const struct fl_scenario *sc, const struct fl_target_info *now, const char *why_not,
		   FILE *out);
/* Injectors, their parameters and whether this host can run each (probe, no side effect). */
void fl_list_print(FILE *out);
/* docs/reference.md: scenario keys and every injector's parameters, from the tables. */
void fl_reference_markdown(FILE *out);

#endif
