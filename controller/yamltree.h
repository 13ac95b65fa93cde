/* A small YAML node tree built from libyaml events, keeping every node's file:line:col. */
#ifndef FL_YAMLTREE_H
#define FL_YAMLTREE_H

#include <stdbool.h>
#include <stddef.h>

#include "scenario.h"

enum fl_ynode_type { FL_Y_SCALAR, FL_Y_SEQ, FL_Y_MAP };

struct fl_ynode {
	enum fl_ynode_type type;
	const char *file;          /* borrowed: the scenario path or "--set" */
	int line, col;             /* 1-based */
	char *value;               /* FL_Y_SCALAR */
	bool plain;                /* an unquoted scalar (so `~`, `null` mean null) */
	struct fl_ynode **items;   /* FL_Y_SEQ items; FL_Y_MAP: keys at 2i, values at 2i+1 */
	int n;                     /* number of items (FL_Y_MAP: number of complete pairs) */
	int used, cap;             /* filled and allocated slots of items[] */
};

/*
 * Parse one YAML document. Rejects empty input, NUL bytes, invalid UTF-8,
 * anchors/aliases, merge keys, custom tags, more than one document and deep
 * nesting, each as a diagnostic. line0/col0 are added to every mark (for --set
 * values). Returns NULL with diagnostics on error.
 */
struct fl_ynode *fl_yaml_parse(const char *file, const char *buf, size_t len, int line0, int col0,
			       struct fl_diags *d);
void fl_ynode_free(struct fl_ynode *n);

struct fl_ynode *fl_ymap_get(const struct fl_ynode *map, const char *key);
/* Replace (or add) key in map with value; takes ownership of value. */
int fl_ymap_set(struct fl_ynode *map, const char *file, int line, int col, const char *key,
		struct fl_ynode *value);
const char *fl_ynode_kind(const struct fl_ynode *n); /* "a string", "a list", "a mapping" */
bool fl_ynode_is_null(const struct fl_ynode *n);

#endif
