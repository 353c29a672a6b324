/* The gpusq program's options, declared once: every subcommand lists its options in tables (the
 * flag, its value's name, where it is stored, what it accepts, a line of help) and cli_parse reads
 * argv against them, reporting a mistake in one line; --help is printed from the same tables, with
 * each default read from the option structs as the command initialised them. */
#ifndef GSQ_TOOLS_OPTIONS_H
#define GSQ_TOOLS_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    CLI_FLAG,   /* no value: stores .set in an int */
    CLI_INT,    /* a whole number in [lo, hi], in an int */
    CLI_LONG,   /* the same in a long */
    CLI_SIZE,   /* the same in a size_t */
    CLI_FLOAT,  /* a number in [lo, hi] ((lo, hi] with .lo_open), in a float */
    CLI_STRING, /* a path or a name (or what .valid accepts), in a const char * */
    CLI_CHOICE, /* one of .choices' names: its value, in an int or an enum */
} cli_kind;

typedef struct {
    const char *name;
    int value;
} cli_choice;

typedef struct {
    const char *flag;              /* "--epochs" */
    const char *arg;               /* the value's name in --help ("N", "FILE"); NULL for flags */
    cli_kind kind;
    size_t offset;                 /* where the value goes in the group's struct (offsetof) */
    const char *help;              /* one sentence; --help adds the default */
    double lo, hi;                 /* numbers: the accepted range */
    int lo_open;                   /* floats: lo itself is not accepted */
    int set;                       /* flags: the value stored */
    const cli_choice *choices;     /* choices: the names, up to one with a NULL name */
    int (*valid)(const char *);    /* strings: 1 when a value is accepted (NULL: any) */
    const char *accepted;          /* strings with .valid: what is accepted, for the message */
    const char *shown_default;     /* --help's default in place of the struct's value ("": none) */
} cli_option;

/* A table entry: the fields every option has, then any of the rest by name (.lo = 1, ...). */
#define CLI_OPT(flag_, arg_, kind_, offset_, help_) .flag = flag_, .arg = arg_, .kind = kind_, .offset = offset_, .help = help_

/* A section of --help: options whose values go into one struct. `only` (NULL-terminated) takes
 * some of a shared table's options, in the table's order. */
typedef struct {
    const char *title;
    const cli_option *options;
    int count;
    void *target;
    const char *const *only;
} cli_group;
#define CLI_COUNT(table) ((int)(sizeof(table) / sizeof((table)[0])))
/* A section with table's options in only (NULL: all of them). */
#define CLI_GROUP_ONLY(title_, table, target_, only_) \
    ((cli_group){.title = title_, .options = table, .count = CLI_COUNT(table), .target = target_, .only = only_})
#define CLI_GROUP(title_, table, target_) CLI_GROUP_ONLY(title_, table, target_, NULL)

/* A subcommand: its usage lines (each after "usage: gpusq " or its indent, without the command's
 * name, separated by '\n'), what it does, notes after the options (NULL: none), and its positional
 * arguments: at least min_args (missing: "give WHAT"), at most max_args (-1: any number). */
typedef struct {
    const char *name;
    const char *usage;
    const char *about;
    const char *notes;
    int min_args, max_args;
    const char *args_what;
} cli_spec;

/* CLI_CHOICE stores an enum through an int. */
typedef enum { CLI_ENUM_PROBE } cli_enum_probe;
_Static_assert(sizeof(cli_enum_probe) == sizeof(int), "enums are ints");

#define CLI_MAX_GIVEN 128
typedef struct {
    char **args;                   /* the positional arguments, in order (gathered at argv + 1) */
    int num_args;
    const cli_option *given[CLI_MAX_GIVEN]; /* the options the command line gave, once each */
    int num_given;
} cli_parsed;

/* Parses argv[1..argc-1] (argv[0] is the subcommand) against the groups: options anywhere, as
 * "--flag VALUE" or "--flag=VALUE", positional arguments in between ("--" ends the options).
 * Returns -1 to go on, 0 after printing --help, or 2 after reporting a mistake. */
int cli_parse(const cli_spec *s, const cli_group *groups, int num_groups, int argc, char **argv, cli_parsed *p);
/* 1 when the command line gave flag. */
int cli_given(const cli_parsed *p, const char *flag);
/* The help of the command, generated from its tables. */
void cli_print_help(const cli_spec *s, const cli_group *groups, int num_groups, FILE *out);

#endif
