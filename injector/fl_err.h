/* Errors as values: a negative errno return plus a message with context. */
#ifndef FL_ERR_H
#define FL_ERR_H

#include <stddef.h>

#define FL_ERR_MSG 512
#define FL_ERR_HINT 256

struct fl_err {
	int code;                 /* negative errno, 0 when unset */
	char msg[FL_ERR_MSG];     /* what went wrong, with the call and strerror */
	char hint[FL_ERR_HINT];   /* what the user can do about it, may be empty */
};

/* Fill err (may be NULL) and return code, so callers can `return fl_err_set(...)`. */
int fl_err_set(struct fl_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Set the hint of an error already filled. Returns nothing: with err NULL it could not know the code. */
void fl_err_hint(struct fl_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void fl_err_clear(struct fl_err *err);

#endif
