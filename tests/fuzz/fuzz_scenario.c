/* libFuzzer target: any bytes through the scenario parser must give a scenario or diagnostics, never a crash, leak or hang. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "scenario.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;

/* The contract in scenario.h, checked so a violation is a crash libFuzzer keeps. */
static void require(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_scenario: broken contract: %s\n", what);
		abort();
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	devnull = fopen("/dev/null", "w");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fl_diags diags = {0};
	struct fl_scenario *sc;

	/* Not NUL-terminated on purpose: the parser must respect len. */
	sc = fl_scenario_parse("fuzz.yaml", (const char *)data, size, NULL, 0, &diags);
	require(!sc || diags.n == 0, "a scenario returned together with errors");
	require(sc || diags.n > 0, "NULL returned without saying why");
	for (int i = 0; i < diags.n; i++) {
		require(diags.v[i].msg != NULL, "a diagnostic without a message");
		require(diags.v[i].line >= 1 && diags.v[i].col >= 1, "a diagnostic position is not 1-based");
	}
	if (sc) {
		/* the timeline sums durations from the input: UBSan watches the arithmetic */
		(void)fl_scenario_total_ns(sc);
	}
	if (devnull)
		fl_diags_print(&diags, devnull); /* sorting and formatting of every message */
	fl_scenario_free(sc);
	fl_diags_free(&diags);
	return 0;
}
