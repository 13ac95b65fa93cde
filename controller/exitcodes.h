/* The exit-code contract that CI pipelines and scripts depend on (see docs/ci-gating.md). */
#ifndef FL_EXITCODES_H
#define FL_EXITCODES_H

enum fl_exit {
	FL_EXIT_PASS = 0,       /* the target survived: every SLO held */
	FL_EXIT_FAIL = 1,       /* an SLO was breached */
	FL_EXIT_INVALID = 2,    /* invalid scenario or usage: nothing was injected */
	FL_EXIT_UNRUNNABLE = 3, /* host or target cannot run it: nothing injected, or reverted */
	FL_EXIT_ABORTED = 4,    /* aborted (guardrail, signal): everything was reverted */
};

#endif
