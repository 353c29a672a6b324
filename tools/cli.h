/* Shared pieces of the gpusq command-line program: the subcommand table and option helpers. */
#ifndef GSQ_TOOLS_CLI_H
#define GSQ_TOOLS_CLI_H

#include "gpusq/status.h"

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} gsq_command;

int cmd_info(int argc, char **argv);

/* Prints "gpusq CMD: message" for a failed library call and returns the exit code (1). */
int cli_report(const char *cmd, const gsq_error *err);
/* Prints "gpusq CMD: message" (printf-style) to stderr and returns the usage exit code (2). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses a whole decimal integer in [lo, hi]; returns 0 on failure. */
int cli_parse_int(const char *s, int lo, int hi, int *out);
/* 1 if arg is -h or --help. */
int cli_is_help(const char *arg);

#endif
