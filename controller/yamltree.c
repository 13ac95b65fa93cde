/* YAML text -> fl_ynode tree via libyaml's event API, so every node keeps its mark and nothing implicit slips through. */
#include "yamltree.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define FL_YAML_MAX_DEPTH 64

static struct fl_ynode *ynode_new(enum fl_ynode_type type, const char *file, int line, int col)
{
	struct fl_ynode *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->type = type;
	n->file = file;
	n->line = line;
	n->col = col;
	return n;
}

void fl_ynode_free(struct fl_ynode *n)
{
	if (!n)
		return;
	for (int i = 0; i < n->used; i++)
		fl_ynode_free(n->items[i]);
	free(n->items);
	free(n->value);
	free(n);
}

/* Containers keep a flat array; for maps a pending key sits at items[2n] until its value arrives. */
struct builder {
	struct fl_ynode *stack[FL_YAML_MAX_DEPTH + 1];
	bool key_pending[FL_YAML_MAX_DEPTH + 1];
	int depth;
	struct fl_ynode *root;
};

static int slot_append(struct fl_ynode *c, struct fl_ynode *child)
{
	if (c->used == c->cap) {
		int ncap = c->cap ? 2 * c->cap : 8;
		struct fl_ynode **v = realloc(c->items, (size_t)ncap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		c->items = v;
		c->cap = ncap;
	}
	c->items[c->used++] = child;
	c->n = c->type == FL_Y_SEQ ? c->used : c->used / 2;
	return 0;
}

static bool utf8_check(const char *file, const unsigned char *s, size_t len, struct fl_diags *d)
{
	int line = 1, col = 1;
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t need;
		unsigned int cp;

		if (c == 0) {
			fl_diags_add(d, file, line, col, "scenarios are YAML text files",
				     "NUL byte: this looks like a binary file, not a scenario");
			return false;
		}
		if (c < 0x80) {
			if (c == '\n') {
				line++;
				col = 1;
			} else {
				col++;
			}
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			need = 1;
			cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			need = 2;
			cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			need = 3;
			cp = c & 0x07;
		} else {
			goto bad;
		}
		for (size_t k = 1; k <= need; k++) {
			if (i + k >= len || (s[i + k] & 0xC0) != 0x80)
				goto bad;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		/* overlong, surrogate and out-of-range forms are not UTF-8 */
		if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			goto bad;
		i += need + 1;
		col++;
	}
	return true;
bad:
	fl_diags_add(d, file, line, col, "save the file as UTF-8",
		     "invalid UTF-8 byte 0x%02x: scenarios must be UTF-8 text", s[i]);
	return false;
}

static const char *known_tag_ok(const char *tag)
{
	static const char *const ok[] = {
		"tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
		"tag:yaml.org,2002:bool", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", NULL,
	};

	for (int i = 0; ok[i]; i++)
		if (!strcmp(tag, ok[i]))
			return ok[i];
	return NULL;
}

/* Attach a finished node to the current container (or make it the root). */
static int builder_add(struct builder *b, struct fl_ynode *n, struct fl_diags *d)
{
	struct fl_ynode *top;

	if (b->depth == 0) {
		b->root = n;
		return 0;
	}
	top = b->stack[b->depth - 1];
	if (top->type == FL_Y_MAP && !b->key_pending[b->depth - 1]) {
		/* n is a key */
		if (n->type != FL_Y_SCALAR) {
			fl_diags_add(d, n->file, n->line, n->col, "write keys as plain words",
				     "a mapping key must be a string, not %s", fl_ynode_kind(n));
			fl_ynode_free(n);
			return -EINVAL;
		}
		if (n->plain && !strcmp(n->value, "<<")) {
			fl_diags_add(d, n->file, n->line, n->col, "write the keys out in full",
				     "merge keys ('<<') are not supported in scenarios");
			fl_ynode_free(n);
			return -EINVAL;
		}
		for (int i = 0; i + 1 < top->used; i += 2) {
			const struct fl_ynode *k = top->items[i];

			if (!strcmp(k->value, n->value)) {
				fl_diags_add(d, n->file, n->line, n->col, "remove one of them",
					     "duplicate key '%s' (first at line %d, column %d)", n->value,
					     k->line, k->col);
				break;
			}
		}
		b->key_pending[b->depth - 1] = true;
	} else if (top->type == FL_Y_MAP) {
		b->key_pending[b->depth - 1] = false;
	}
	if (slot_append(top, n)) {
		fl_ynode_free(n);
		return -ENOMEM;
	}
	return 0;
}

/*
 * 1-based position of a libyaml mark. With an offset (a --set value, one line of the command
 * line) everything is on that line; a mark past the end of the value points just after it.
 */
static void mark_pos(const yaml_mark_t *m, size_t len, int line0, int col0, int *line, int *col)
{
	if (line0 == 0 && col0 == 0) {
		*line = (int)m->line + 1;
		*col = (int)m->column + 1;
		return;
	}
	*line = line0 + 1;
	*col = col0 + 1 + (m->line == 0 ? (int)m->column : (int)len);
}

struct fl_ynode *fl_yaml_parse(const char *file, const char *buf, size_t len, int line0, int col0,
			       struct fl_diags *d)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	struct builder b;
	int docs = 0;
	bool done = false, failed = false;
	size_t blank = 0;

	memset(&b, 0, sizeof(b));
	/* buf is len bytes, not a C string: count blanks within it (the fuzzer found strspn here) */
	while (blank < len && (buf[blank] == ' ' || buf[blank] == '\t' || buf[blank] == '\r' ||
			       buf[blank] == '\n'))
		blank++;
	if (blank == len) {
		fl_diags_add(d, file, 1, 1, "start from a scenario in scenarios/",
			     "the file is empty: a scenario needs at least version, name, target, load, slo and faults");
		return NULL;
	}
	if (!utf8_check(file, (const unsigned char *)buf, len, d))
		return NULL;
	if (!yaml_parser_initialize(&parser)) {
		fl_diags_add(d, file, 1, 1, NULL, "out of memory initialising the YAML parser");
		return NULL;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);

	while (!done && !failed) {
		struct fl_ynode *n = NULL;
		int line, col;

		if (!yaml_parser_parse(&parser, &ev)) {
			int pl, pc, cl, cc;

			mark_pos(&parser.problem_mark, len, line0, col0, &pl, &pc);
			mark_pos(&parser.context_mark, len, line0, col0, &cl, &cc);
			if (parser.context)
				fl_diags_add(d, file, pl, pc, "check indentation, quotes and brackets near here",
					     "YAML syntax error: %s %s (line %d, column %d)",
					     parser.problem ? parser.problem : "unknown problem", parser.context,
					     cl, cc);
			else
				fl_diags_add(d, file, pl, pc, "check indentation, quotes and brackets near here",
					     "YAML syntax error: %s",
					     parser.problem ? parser.problem : "unknown problem");
			failed = true;
			break;
		}
		mark_pos(&ev.start_mark, len, line0, col0, &line, &col);

		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1) {
				fl_diags_add(d, file, line, col, "put each scenario in its own file",
					     "more than one YAML document ('---') in one scenario file");
				failed = true;
			}
			break;
		case YAML_ALIAS_EVENT:
			fl_diags_add(d, file, line, col, "write the value out in full",
				     "YAML aliases ('*%s') are not supported in scenarios",
				     (const char *)ev.data.alias.anchor);
			failed = true;
			break;
		case YAML_SCALAR_EVENT:
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT: {
			const yaml_char_t *anchor = NULL, *tag = NULL;

			if (ev.type == YAML_SCALAR_EVENT) {
				anchor = ev.data.scalar.anchor;
				tag = ev.data.scalar.tag;
			} else if (ev.type == YAML_SEQUENCE_START_EVENT) {
				anchor = ev.data.sequence_start.anchor;
				tag = ev.data.sequence_start.tag;
			} else {
				anchor = ev.data.mapping_start.anchor;
				tag = ev.data.mapping_start.tag;
			}
			if (anchor) {
				fl_diags_add(d, file, line, col, "write the value out in full",
					     "YAML anchors ('&%s') are not supported in scenarios",
					     (const char *)anchor);
				failed = true;
				break;
			}
			if (tag && !known_tag_ok((const char *)tag) && strcmp((const char *)tag, "!")) {
				fl_diags_add(d, file, line, col, "remove the tag",
					     "YAML tag '%s' is not supported in scenarios", (const char *)tag);
				failed = true;
				break;
			}
			if (ev.type == YAML_SCALAR_EVENT) {
				n = ynode_new(FL_Y_SCALAR, file, line, col);
				if (!n || !(n->value = malloc(ev.data.scalar.length + 1))) {
					free(n);
					failed = true;
					break;
				}
				memcpy(n->value, ev.data.scalar.value, ev.data.scalar.length);
				n->value[ev.data.scalar.length] = '\0';
				n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
				if (strlen(n->value) != ev.data.scalar.length) {
					fl_diags_add(d, file, line, col, NULL,
						     "a NUL character inside a string is not allowed");
					fl_ynode_free(n);
					failed = true;
					break;
				}
				if (builder_add(&b, n, d))
					failed = true;
				break;
			}
			if (b.depth >= FL_YAML_MAX_DEPTH) {
				fl_diags_add(d, file, line, col, NULL,
					     "nesting deeper than %d levels: this is not a scenario",
					     FL_YAML_MAX_DEPTH);
				failed = true;
				break;
			}
			n = ynode_new(ev.type == YAML_SEQUENCE_START_EVENT ? FL_Y_SEQ : FL_Y_MAP, file, line,
				      col);
			if (!n) {
				failed = true;
				break;
			}
			/* Open containers live on the stack; they join their parent when closed. */
			b.stack[b.depth] = n;
			b.key_pending[b.depth] = false;
			b.depth++;
			break;
		}
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			n = b.stack[--b.depth];
			b.stack[b.depth] = NULL;
			if (builder_add(&b, n, d))
				failed = true;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	if (failed && !done)
		yaml_event_delete(&ev);
	yaml_parser_delete(&parser);
	while (b.depth > 0)
		fl_ynode_free(b.stack[--b.depth]);
	if (failed) {
		fl_ynode_free(b.root);
		return NULL;
	}
	if (!b.root) {
		fl_diags_add(d, file, 1, 1, "start from a scenario in scenarios/",
			     "the file holds no YAML document (only comments?)");
		return NULL;
	}
	return b.root;
}

struct fl_ynode *fl_ymap_get(const struct fl_ynode *map, const char *key)
{
	if (!map || map->type != FL_Y_MAP)
		return NULL;
	for (int i = 0; i < map->n; i++)
		if (!strcmp(map->items[2 * i]->value, key))
			return map->items[2 * i + 1];
	return NULL;
}

int fl_ymap_set(struct fl_ynode *map, const char *file, int line, int col, const char *key,
		struct fl_ynode *value)
{
	struct fl_ynode *k;

	for (int i = 0; i < map->n; i++) {
		if (!strcmp(map->items[2 * i]->value, key)) {
			fl_ynode_free(map->items[2 * i + 1]);
			map->items[2 * i + 1] = value;
			return 0;
		}
	}
	k = ynode_new(FL_Y_SCALAR, file, line, col);
	if (!k || !(k->value = strdup(key))) {
		free(k);
		return -ENOMEM;
	}
	k->plain = true;
	if (slot_append(map, k)) {
		fl_ynode_free(k);
		return -ENOMEM;
	}
	if (slot_append(map, value)) {
		map->used--; /* drop the dangling key so the map stays pairs */
		fl_ynode_free(k);
		return -ENOMEM;
	}
	return 0;
}

const char *fl_ynode_kind(const struct fl_ynode *n)
{
	if (!n)
		return "nothing";
	switch (n->type) {
	case FL_Y_SCALAR:
		return fl_ynode_is_null(n) ? "an empty value" : "a single value";
	case FL_Y_SEQ:
		return "a list";
	case FL_Y_MAP:
		return "a mapping";
	}
	return "?";
}

bool fl_ynode_is_null(const struct fl_ynode *n)
{
	return n && n->type == FL_Y_SCALAR && n->plain &&
	       (!n->value[0] || !strcmp(n->value, "~") || !strcmp(n->value, "null") ||
		!strcmp(n->value, "Null") || !strcmp(n->value, "NULL"));
}
