/* faultline's command line: run, validate, plan, recover, list, version — and the exit-code contract. */
#include <bpf/libbpf.h>
#include <errno.h>
#include <getopt.h>
#include <netlink/version.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "engine.h"
#include "exitcodes.h"
#include "plan.h"
#include "recovery.h"
#include "report.h"
#include "scenario.h"

#define FL_DEFAULT_STATE_DIR "/run/faultline"

static const char usage_main[] =
	"usage: faultline COMMAND [OPTIONS]\n"
	"\n"
	"Chaos drills for services: inject faults, keep load on, judge the SLO.\n"
	"\n"
	"commands:\n"
	"  run SCENARIO.yaml      run the drill; the exit code is the verdict\n"
	"  validate SCENARIO...   check scenario files; every error with file:line:col\n"
	"  plan SCENARIO.yaml     print what run would do, in order; touches nothing\n"
	"  recover                revert whatever a dead run left behind\n"
	"  list                   injectors, their parameters, and whether this host can run each\n"
	"  version                print the version\n"
	"\n"
	"exit codes: 0 survived, 1 SLO breached, 2 invalid scenario or usage,\n"
	"            3 host or target cannot run it (nothing injected), 4 aborted (reverted)\n"
	"\n"
	"`faultline COMMAND --help` describes each command.\n";

static const char usage_run[] =
	"usage: faultline run SCENARIO.yaml [--json FILE] [--junit FILE] [--set KEY=VALUE]...\n"
	"                     [--quiet] [--state-dir DIR] [--report-dir DIR]\n"
	"\n"
	"  --json FILE        write the machine-readable report\n"
	"  --junit FILE       write a JUnit XML report (a testcase per SLO check and per fault)\n"
	"  --set KEY=VALUE    override a scenario value by dotted path, e.g. load.rate=500/s,\n"
	"                     phases.baseline=5s, faults.db-latency.delay=1s (validated like the file)\n"
	"  --quiet            print only the verdict line\n"
	"  --state-dir DIR    where the journal lives (default " FL_DEFAULT_STATE_DIR ")\n"
	"  --report-dir DIR   where the target's output is kept (default $TMPDIR/faultline-RUNID)\n";

static const char usage_validate[] =
	"usage: faultline validate SCENARIO.yaml... [--set KEY=VALUE]...\n"
	"\n"
	"Prints `FILE: ok` for each valid file on stdout; errors go to stderr as\n"
	"FILE:LINE:COL: error: MESSAGE, with a hint where one helps. Exit 0 if all are\n"
	"valid, 2 otherwise.\n";

static const char usage_plan[] =
	"usage: faultline plan SCENARIO.yaml [--set KEY=VALUE]...\n"
	"\n"
	"Prints the ordered timeline (when each fault is applied and reverted, with its\n"
	"parameters), what each fault would touch, and the preflight checks run would do.\n"
	"No side effect whatsoever: no process, no kernel object, no file.\n";

static const char usage_recover[] =
	"usage: faultline recover [--state-dir DIR]\n"
	"\n"
	"Reverts every fault recorded in the journals of runs whose controller (and guardian)\n"
	"is gone, newest first, from the journal alone; stops targets they launched. Prints\n"
	"what it reverted. Idempotent; safe at boot. Exit 0 when the host is clean, 3 when\n"
	"something could not be reverted (it says what).\n";

static const char usage_list[] =
	"usage: faultline list [--markdown]\n"
	"\n"
	"Lists the injectors, their parameters and whether this host can run each (or the\n"
	"precise reason it cannot). --markdown prints docs/reference.md.\n";

enum { OPT_JSON = 1000, OPT_JUNIT, OPT_SET, OPT_QUIET, OPT_STATE_DIR, OPT_REPORT_DIR, OPT_MARKDOWN, OPT_HELP };

static const struct option long_opts[] = {
	{"json", required_argument, NULL, OPT_JSON},
	{"junit", required_argument, NULL, OPT_JUNIT},
	{"set", required_argument, NULL, OPT_SET},
	{"quiet", no_argument, NULL, OPT_QUIET},
	{"state-dir", required_argument, NULL, OPT_STATE_DIR},
	{"report-dir", required_argument, NULL, OPT_REPORT_DIR},
	{"markdown", no_argument, NULL, OPT_MARKDOWN},
	{"help", no_argument, NULL, OPT_HELP},
	{0},
};

struct cli {
	const char *cmd;
	const char *usage;
	const char *json, *junit, *state_dir, *report_dir;
	char **sets;
	int nsets;
	bool quiet, markdown;
	char **args;
	int nargs;
};

/* Parse the options a command allows; anything else is a usage error (exit 2). */
static int parse_opts(struct cli *c, int argc, char **argv, const char *allowed)
{
	int opt;

	optind = 1;
	opterr = 0;
	c->sets = calloc((size_t)argc + 1, sizeof(char *));
	if (!c->sets)
		return FL_EXIT_INVALID;
	while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		const char *name = NULL;

		for (const struct option *o = long_opts; o->name; o++)
			if (o->val == opt)
				name = o->name;
		if (opt == 'h' || opt == OPT_HELP) {
			fputs(c->usage, stdout);
			exit(FL_EXIT_PASS);
		}
		if (opt == '?' || (name && !strstr(allowed, name))) {
			if (opt == '?' && optopt)
				fprintf(stderr, "faultline %s: option -%c needs a value or is unknown\n", c->cmd, optopt);
			else if (opt == '?')
				fprintf(stderr, "faultline %s: unknown option or missing value: %s\n", c->cmd,
					argv[optind - 1]);
			else
				fprintf(stderr, "faultline %s: --%s does not apply to this command\n", c->cmd, name);
			fputs(c->usage, stderr);
			return FL_EXIT_INVALID;
		}
		switch (opt) {
		case OPT_JSON: c->json = optarg; break;
		case OPT_JUNIT: c->junit = optarg; break;
		case OPT_SET: c->sets[c->nsets++] = optarg; break;
		case OPT_QUIET: c->quiet = true; break;
		case OPT_STATE_DIR: c->state_dir = optarg; break;
		case OPT_REPORT_DIR: c->report_dir = optarg; break;
		case OPT_MARKDOWN: c->markdown = true; break;
		default: break;
		}
	}
	c->args = argv + optind;
	c->nargs = argc - optind;
	return 0;
}

static int need_args(struct cli *c, int min, int max)
{
	if (c->nargs < min || (max >= 0 && c->nargs > max)) {
		fprintf(stderr, "faultline %s: expected %s\n", c->cmd,
			min == max ? "one scenario file" : "at least one scenario file");
		fputs(c->usage, stderr);
		return FL_EXIT_INVALID;
	}
	return 0;
}

static struct fl_scenario *load_or_report(const char *path, struct cli *c)
{
	struct fl_diags d = {0};
	struct fl_scenario *sc = fl_scenario_load(path, c->sets, c->nsets, &d);

	if (!sc) {
		fl_diags_print(&d, stderr);
		fprintf(stderr, "%s: %d error%s; nothing was run\n", path, d.n, d.n == 1 ? "" : "s");
	}
	fl_diags_free(&d);
	return sc;
}

static int cmd_validate(struct cli *c)
{
	int rc = need_args(c, 1, -1), bad = 0;

	if (rc)
		return rc;
	for (int i = 0; i < c->nargs; i++) {
		struct fl_scenario *sc = load_or_report(c->args[i], c);
		char t[32];

		if (!sc) {
			bad++;
			continue;
		}
		printf("%s: ok (%s: %d fault%s, %s planned)\n", c->args[i], sc->name, sc->nfaults,
		       sc->nfaults == 1 ? "" : "s", fl_format_duration(fl_scenario_total_ns(sc), t, sizeof(t)));
		fl_scenario_free(sc);
	}
	return bad ? FL_EXIT_INVALID : FL_EXIT_PASS;
}

static int cmd_plan(struct cli *c)
{
	struct fl_scenario *sc;
	int rc = need_args(c, 1, 1);

	if (rc)
		return rc;
	struct fl_target *t = NULL;
	struct fl_err err;

	sc = load_or_report(c->args[0], c);
	if (!sc)
		return FL_EXIT_INVALID;
	/* a running target is found read-only, so plan shows the very pid and cgroups a run would touch */
	fl_err_clear(&err);
	if (!sc->target.run.n && fl_target_attach(&sc->target, sc->allow_host_wide, &t, &err))
		t = NULL;
	fl_plan_print(sc, t ? &t->info : NULL, !t && err.msg[0] ? err.msg : NULL, stdout);
	if (t)
		fl_target_free(t);
	fl_scenario_free(sc);
	return FL_EXIT_PASS;
}

static int cmd_run(struct cli *c)
{
	struct fl_run_opts opts = {.state_dir = c->state_dir, .report_dir = c->report_dir,
				   .quiet = c->quiet, .progress_fd = STDOUT_FILENO};
	struct fl_scenario *sc;
	struct fl_run run;
	struct fl_err err;
	int rc = need_args(c, 1, 1);

	if (rc)
		return rc;
	sc = load_or_report(c->args[0], c);
	if (!sc)
		return FL_EXIT_INVALID;
	rc = fl_engine_run(sc, &opts, &run);
	if (!c->quiet)
		fl_report_summary(&run, stdout);
	/* reports are written whatever the outcome: an unrunnable or aborted drill is news too */
	if (c->json && fl_report_json(&run, c->json, &err))
		fprintf(stderr, "faultline run: %s\n", err.msg);
	if (c->junit && fl_report_junit(&run, c->junit, &err))
		fprintf(stderr, "faultline run: %s\n", err.msg);
	fflush(stdout);
	fl_report_verdict_line(&run, stdout);
	fl_run_free(&run);
	fl_scenario_free(sc);
	return rc;
}

static int cmd_recover(struct cli *c)
{
	struct fl_recover_stats st;
	int rc;

	if (c->nargs) {
		fputs(c->usage, stderr);
		return FL_EXIT_INVALID;
	}
	rc = fl_recover_dir(c->state_dir, stdout, &st);
	/* then what no journal names any more: owned objects of runs that are gone */
	if (fl_recover_sweep(c->state_dir, stdout, &st) && !rc)
		rc = -EIO;
	printf("recover: %d journal(s) in %s: %d change(s) reverted, %d failed, %d run(s) still alive, "
	       "%d damaged record(s) ignored, %d orphaned object(s) swept\n",
	       st.journals, c->state_dir, st.reverted, st.failed, st.alive, st.torn, st.swept);
	if (rc && !st.failed)
		fprintf(stderr, "faultline recover: cannot read %s: %s\n", c->state_dir, strerror(-rc));
	/* 0 only when the host is clean: nothing failed (live runs clean up after themselves) */
	return rc ? FL_EXIT_UNRUNNABLE : FL_EXIT_PASS;
}

static int cmd_list(struct cli *c)
{
	if (c->nargs) {
		fputs(c->usage, stderr);
		return FL_EXIT_INVALID;
	}
	if (c->markdown)
		fl_reference_markdown(stdout);
	else
		fl_list_print(stdout);
	return FL_EXIT_PASS;
}

static int cmd_version(struct cli *c)
{
	(void)c;
	printf("faultline %s (libnl %s, libbpf %s, libyaml %s)\n", FL_VERSION, LIBNL_STRING,
	       libbpf_version_string(), yaml_get_version_string());
	return FL_EXIT_PASS;
}

static const struct {
	const char *name;
	int (*fn)(struct cli *);
	const char *usage;
	const char *allowed; /* long options this command takes */
} commands[] = {
	{"run", cmd_run, usage_run, "json junit set quiet state-dir report-dir"},
	{"validate", cmd_validate, usage_validate, "set"},
	{"plan", cmd_plan, usage_plan, "set"},
	{"recover", cmd_recover, usage_recover, "state-dir"},
	{"list", cmd_list, usage_list, "markdown"},
	{"version", cmd_version, "usage: faultline version\n", ""},
};

int main(int argc, char **argv)
{
	struct cli c = {0};
	int rc;

	if (argc < 2) {
		fputs(usage_main, stderr);
		return FL_EXIT_INVALID;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(usage_main, stdout);
		return FL_EXIT_PASS;
	}
	if (!strcmp(argv[1], "--version"))
		return cmd_version(&c);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name))
			continue;
		c.cmd = commands[i].name;
		c.usage = commands[i].usage;
		c.state_dir = FL_DEFAULT_STATE_DIR;
		rc = parse_opts(&c, argc - 1, argv + 1, commands[i].allowed);
		if (!rc)
			rc = commands[i].fn(&c);
		free(c.sets);
		return rc;
	}
	fprintf(stderr, "faultline: unknown command '%s'\n\n", argv[1]);
	fputs(usage_main, stderr);
	return FL_EXIT_INVALID;
}
