/* Filling struct fl_err. */
#include "fl_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int fl_err_set(struct fl_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	err->code = code;
	err->hint[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

void fl_err_hint(struct fl_err *err, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(err->hint, sizeof(err->hint), fmt, ap);
	va_end(ap);
}

void fl_err_clear(struct fl_err *err)
{
	if (err)
		memset(err, 0, sizeof(*err));
}
