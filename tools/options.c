/* Parsing argv against a subcommand's option tables, and its --help printed from them
 * (tools/options.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "options.h"

#define HELP_WIDTH 100 /* columns of --help */
#define HELP_INDENT 22 /* the column where an option's help starts */

static int group_has(const cli_group *g, const cli_option *o)
{
    if (!g->only) return 1;
    for (const char *const *f = g->only; *f; f++)
        if (!strcmp(*f, o->flag)) return 1;
    return 0;
}

static void *field(const cli_group *g, const cli_option *o) { return (char *)g->target + o->offset; }

/* "a whole number in [1, 1048576]", "int8, int4 or w4a8", ... : what o accepts. */
static void accepted(const cli_option *o, char *buf, size_t cap)
{
    switch (o->kind) {
    case CLI_INT: case CLI_LONG: case CLI_SIZE:
        snprintf(buf, cap, "a whole number in [%.0f, %.0f]", o->lo, o->hi);
        break;
    case CLI_FLOAT:
        snprintf(buf, cap, "a number in %c%g, %g]", o->lo_open ? '(' : '[', o->lo, o->hi);
        break;
    case CLI_CHOICE: {
        size_t n = 0, len = 0;
        while (o->choices[n].name) n++;
        buf[0] = '\0';
        for (size_t i = 0; i < n && len < cap; i++)
            len += (size_t)snprintf(buf + len, cap - len, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ",
                                    o->choices[i].name);
        break;
    }
    default:
        snprintf(buf, cap, "%s", o->accepted ? o->accepted : "a path or a name");
    }
}

/* Stores value v of option o in its place; 1, or 0 after reporting why it is not accepted. */
static int store(const char *cmd, const cli_group *g, const cli_option *o, const char *v)
{
    char what[160], *end = NULL;
    if (!v) return accepted(o, what, sizeof what), cli_usage_error(cmd, "%s needs %s", o->flag, what), 0;
    void *dst = field(g, o);
    int ok = *v != '\0';
    errno = 0;
    if (o->kind == CLI_INT || o->kind == CLI_LONG || o->kind == CLI_SIZE) {
        long long n = strtoll(v, &end, 10);
        ok = ok && !errno && !*end && n >= o->lo && n <= o->hi;
        if (ok && o->kind == CLI_INT) *(int *)dst = (int)n;
        else if (ok && o->kind == CLI_LONG) *(long *)dst = (long)n;
        else if (ok) *(size_t *)dst = (size_t)n;
    } else if (o->kind == CLI_FLOAT) {
        float x = strtof(v, &end);
        ok = ok && !errno && !*end && (o->lo_open ? x > o->lo : x >= o->lo) && x <= o->hi;
        if (ok) *(float *)dst = x;
    } else if (o->kind == CLI_CHOICE) {
        const cli_choice *c = o->choices;
        while (c->name && strcmp(c->name, v)) c++;
        ok = c->name != NULL;
        if (ok) *(int *)dst = c->value;
    } else {
        ok = !o->valid || o->valid(v);
        if (ok) *(const char **)dst = v;
    }
    if (!ok) accepted(o, what, sizeof what), cli_usage_error(cmd, "%s must be %s, got '%s'", o->flag, what, v);
    return ok;
}

static void note_given(cli_parsed *p, const cli_option *o)
{
    for (int i = 0; i < p->num_given; i++)
        if (p->given[i] == o) return;
    if (p->num_given < CLI_MAX_GIVEN) p->given[p->num_given++] = o;
}

int cli_given(const cli_parsed *p, const char *flag)
{
    for (int i = 0; i < p->num_given; i++)
        if (!strcmp(p->given[i]->flag, flag)) return 1;
    return 0;
}

/* Takes the option argv[*i]; 1, or 0 after reporting a mistake. */
static int take_option(const cli_spec *s, const cli_group *groups, int num_groups, int argc, char **argv, int *i,
                       cli_parsed *p)
{
    const char *a = argv[*i], *eq = strchr(a, '=');
    size_t len = eq ? (size_t)(eq - a) : strlen(a);
    for (int k = 0; k < num_groups; k++)
        for (int j = 0; j < groups[k].count; j++) {
            const cli_option *o = &groups[k].options[j];
            if (strlen(o->flag) != len || strncmp(o->flag, a, len) || !group_has(&groups[k], o)) continue;
            note_given(p, o);
            if (o->kind == CLI_FLAG) {
                if (eq) return cli_usage_error(s->name, "%s takes no value (got '%s')", o->flag, eq + 1), 0;
                *(int *)field(&groups[k], o) = o->set;
                return 1;
            }
            const char *v = eq ? eq + 1 : *i + 1 < argc ? argv[++*i] : NULL;
            return store(s->name, &groups[k], o, v);
        }
    return cli_usage_error(s->name, "unknown option '%s'", a), 0;
}

int cli_parse(const cli_spec *s, const cli_group *groups, int num_groups, int argc, char **argv, cli_parsed *p)
{
    memset(p, 0, sizeof *p);
    p->args = argv + 1;
    int options_end = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!options_end && cli_is_help(a)) {
            cli_print_help(s, groups, num_groups, stdout);
            return 0;
        }
        if (!options_end && !strcmp(a, "--")) {
            options_end = 1;
        } else if (!options_end && a[0] == '-' && a[1]) {
            if (!take_option(s, groups, num_groups, argc, argv, &i, p)) return 2;
        } else if (s->max_args >= 0 && p->num_args >= s->max_args) {
            return s->max_args ? cli_usage_error(s->name, "unexpected argument '%s' after '%s'", a, p->args[p->num_args - 1])
                               : cli_usage_error(s->name, "unexpected argument '%s'", a);
        } else {
            p->args[p->num_args++] = argv[i]; /* behind what was read: i >= num_args + 1 */
        }
    }
    if (p->num_args < s->min_args) return cli_usage_error(s->name, "give %s", s->args_what);
    return -1;
}

/* Prints text from column `at` (where the cursor is), wrapped at HELP_WIDTH; continuation lines
 * start at column indent, and a '\n' in text starts one. */
static void wrap(FILE *out, const char *text, int at, int indent)
{
    int fresh = 1; /* nothing on this line yet */
    for (const char *w = text; *w;) {
        if (*w == ' ') {
            w++;
            continue;
        }
        size_t n = strcspn(w, " \n");
        if (*w == '\n' || (!fresh && at + 1 + (int)n > HELP_WIDTH)) {
            fprintf(out, "\n%*s", indent, "");
            at = indent;
            fresh = 1;
            w += *w == '\n';
            continue;
        }
        if (!fresh) fputc(' ', out), at++;
        fprintf(out, "%.*s", (int)n, w);
        at += (int)n;
        fresh = 0;
        w += n;
    }
    fputc('\n', out);
}

/* The default of o as its struct holds it ("" for none). */
static void shown_default(const cli_group *g, const cli_option *o, char *buf, size_t cap)
{
    const void *v = field(g, o);
    buf[0] = '\0';
    if (o->shown_default) snprintf(buf, cap, "%s", o->shown_default);
    else if (o->kind == CLI_INT) snprintf(buf, cap, "%d", *(const int *)v);
    else if (o->kind == CLI_LONG) snprintf(buf, cap, "%ld", *(const long *)v);
    else if (o->kind == CLI_SIZE) snprintf(buf, cap, "%zu", *(const size_t *)v);
    else if (o->kind == CLI_FLOAT) snprintf(buf, cap, "%g", (double)*(const float *)v);
    else if (o->kind == CLI_STRING && *(const char *const *)v) snprintf(buf, cap, "%s", *(const char *const *)v);
    else if (o->kind == CLI_CHOICE)
        for (const cli_choice *c = o->choices; c->name; c++)
            if (c->value == *(const int *)v) {
                snprintf(buf, cap, "%s", c->name);
                break;
            }
}

void cli_print_help(const cli_spec *s, const cli_group *groups, int num_groups, FILE *out)
{
    const char *u = s->usage;
    for (int line = 0; *u; line++) {
        size_t n = strcspn(u, "\n");
        fprintf(out, "%s gpusq %s %.*s\n", line ? "      " : "usage:", s->name, (int)n, u);
        u += n + (u[n] == '\n');
    }
    fprintf(out, "\n");
    wrap(out, s->about, 0, 0);
    for (int k = 0; k < num_groups; k++) {
        fprintf(out, "\n%s:\n", groups[k].title);
        for (int j = 0; j < groups[k].count; j++) {
            const cli_option *o = &groups[k].options[j];
            if (!group_has(&groups[k], o)) continue;
            char head[64], def[128], text[1024];
            int n = snprintf(head, sizeof head, "  %s%s%s", o->flag, o->arg ? " " : "", o->arg ? o->arg : "");
            shown_default(&groups[k], o, def, sizeof def);
            snprintf(text, sizeof text, "%s%s%s%s", o->help, def[0] ? " (default " : "", def, def[0] ? ")" : "");
            if (n < HELP_INDENT - 1) fprintf(out, "%-*s", HELP_INDENT, head), n = HELP_INDENT;
            else fprintf(out, "%s\n%*s", head, HELP_INDENT, ""), n = HELP_INDENT;
            wrap(out, text, n, HELP_INDENT);
        }
    }
    if (s->notes) {
        fprintf(out, "\n");
        wrap(out, s->notes, 0, 0);
    }
}
