/* Running the gpusq program from a test: `gpusq ARGS` with stderr merged into stdout. */
#ifndef GSQ_TEST_CLI_RUN_H
#define GSQ_TEST_CLI_RUN_H

#include <stdio.h>
#include <sys/wait.h>

static char out[16384];

/* Runs `gpusq ARGS` with stderr merged into stdout; returns the exit code, output in out. */
static int run(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", GSQ_CLI_PATH, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static inline int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

#endif
