/* SPDX-License-Identifier: ISC */
/*
 * Test plugin: init reads a file, as ordinary plugins read their own
 * configuration, and every call routes by what it read.
 *
 *	path=FILE	required: the file, read with fopen and fgets
 *
 * Each line of the file is "VALUE CONSUMER": a message whose text field
 * "region" is VALUE goes to the consumer with the id CONSUMER; a line
 * "* CONSUMER" names the consumer for any other message.  Blank lines and
 * lines starting with # are skipped.  A call picks none when the consumer
 * named is not in the group.
 *
 * init fails, saying why, when path= is missing, when the file cannot be
 * opened or read, when a line is not two words, and when the file names
 * no consumer at all.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <route-host/plugin.h>

#define FROM_FILE_MAX	16	/* lines kept */
#define FROM_FILE_WORD	64	/* bytes of a word, NUL included */

/* What the file said. */
struct from_file {
	char	value[FROM_FILE_MAX][FROM_FILE_WORD];
	char	consumer[FROM_FILE_MAX][FROM_FILE_WORD];
	size_t	n;
	int	other;		/* the line of "*", or -1 */
};

/* The index of the consumer with this id, or ROUTE_NONE. */
static int
from_file_find(const struct route_consumer *consumers, size_t n,
    const char *id)
{
	for (size_t i = 0; i < n && i < (size_t)INT32_MAX; i++)
		if (strcmp(consumers[i].id, id) == 0)
			return (int)i;
	return ROUTE_NONE;
}

/* The consumer the file names for the message's region. */
static int
from_file_route(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	const struct from_file		*f = state;
	const struct route_value	*v;

	if ((v = route_message_get(msg, "region")) != NULL &&
	    v->type == ROUTE_TEXT)
		for (size_t i = 0; i < f->n; i++)
			if (strcmp(f->value[i], v->text) == 0)
				return from_file_find(consumers, n,
				    f->consumer[i]);
	if (f->other >= 0)
		return from_file_find(consumers, n, f->consumer[f->other]);
	return ROUTE_NONE;
}

/* Read the lines of fp into f; -1 with err set. */
static int
from_file_parse(struct from_file *f, FILE *fp, const char *path, char *err,
    size_t errlen)
{
	char	line[256], extra[2];
	int	lineno = 0;

	f->other = -1;
	while (fgets(line, sizeof line, fp) != NULL) {
		lineno++;
		if (line[strspn(line, " \t\n")] == '\0' || line[0] == '#')
			continue;
		if (f->n == FROM_FILE_MAX) {
			snprintf(err, errlen, "from-file: %s:%d: more than %d "
			    "lines", path, lineno, FROM_FILE_MAX);
			return -1;
		}
		if (sscanf(line, "%63s %63s %1s", f->value[f->n],
		    f->consumer[f->n], extra) != 2) {
			snprintf(err, errlen, "from-file: %s:%d: expected "
			    "VALUE CONSUMER", path, lineno);
			return -1;
		}
		if (strcmp(f->value[f->n], "*") == 0)
			f->other = (int)f->n;
		f->n++;
	}
	if (ferror(fp)) {
		snprintf(err, errlen, "from-file: cannot read %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (f->n == 0) {
		snprintf(err, errlen, "from-file: %s names no consumer", path);
		return -1;
	}
	return 0;
}

/* Read the file path= names. */
static int
from_file_init(void **state, const struct route_option *opts, size_t nopts,
    char *err, size_t errlen)
{
	struct from_file	*f;
	const char		*path;
	FILE			*fp;

	for (size_t i = 0; i < nopts; i++)
		if (strcmp(opts[i].key, "path") != 0) {
			snprintf(err, errlen, "from-file: unknown option %s "
			    "(the only option is path=FILE)", opts[i].key);
			return -1;
		}
	if ((path = route_option_get(opts, nopts, "path")) == NULL ||
	    *path == '\0') {
		snprintf(err, errlen, "from-file: option path=FILE is "
		    "required");
		return -1;
	}
	if ((fp = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "from-file: cannot open %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if ((f = calloc(1, sizeof *f)) == NULL) {
		snprintf(err, errlen, "from-file: out of memory");
		fclose(fp);
		return -1;
	}
	if (from_file_parse(f, fp, path, err, errlen) == -1) {
		fclose(fp);
		free(f);
		return -1;
	}
	fclose(fp);
	*state = f;
	return 0;
}

/* Free what init read. */
static void
from_file_fini(void *state)
{
	free(state);
}

ROUTE_PLUGIN_STATEFUL("from-file", from_file_route, from_file_init,
    from_file_fini);
