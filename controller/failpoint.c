/* Failpoints for the kill-matrix tests (see failpoint.h): parsed once from the environment. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "failpoint.h"

static const char *armed(void)
{
	static const char *spec;
	static bool read;

	if (!read) {
		spec = getenv("FAULTLINE_FAILPOINT");
		read = true;
	}
	return spec && *spec ? spec : NULL;
}

bool fl_failpoint(const char *site, const char *fault)
{
	const char *spec = armed();
	size_t n;

	if (!spec)
		return false;
	n = strlen(site);
	if (strncmp(spec, site, n))
		return false;
	if (spec[n] == '\0')
		return true;
	return spec[n] == ':' && fault && !strcmp(spec + n + 1, fault);
}

void fl_failpoint_kill(const char *site, const char *fault)
{
	if (fl_failpoint(site, fault))
		kill(getpid(), SIGKILL);
}
