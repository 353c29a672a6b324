/* The growable text buffer of the reports (tools/text.h). */
#include "text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "gpusq/atomic_file.h"

void cli_put(cli_text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = t->failed ? 0 : vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (t->failed || n < 0) {
            t->failed = 1;
            return;
        }
        if (t->p && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap + (size_t)n + 1) * 2;
        char *q = realloc(t->p, cap);
        if (!q) {
            t->failed = 1;
            return;
        }
        t->p = q;
        t->cap = cap;
    }
}

void cli_put_json_string(cli_text *t, const char *s)
{
    cli_put(t, "\"");
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') cli_put(t, "\\%c", *c);
        else if (*c < 0x20) cli_put(t, "\\u%04x", *c);
        else cli_put(t, "%c", *c);
    }
    cli_put(t, "\"");
}

gsq_status cli_text_write(cli_text *t, const char *path, gsq_error *err)
{
    gsq_status st;
    if (t->failed) {
        st = gsq_fail(err, GSQ_ERR_NOMEM, "%s: out of memory building the report", path);
    } else {
        const void *data[1] = {t->p ? t->p : ""};
        size_t sizes[1] = {t->len};
        st = gsq_write_file_atomic(path, data, sizes, 1, err);
    }
    free(t->p);
    *t = (cli_text){0};
    return st;
}
