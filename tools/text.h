/* A growable text buffer for the reports the commands write (JSON, Markdown), and writing it to a
 * file atomically. */
#ifndef GSQ_TOOLS_TEXT_H
#define GSQ_TOOLS_TEXT_H

#include <stddef.h>

#include "gpusq/status.h"

typedef struct {
    char *p;
    size_t len, cap;
    int failed; /* an allocation failed: the text is incomplete */
} cli_text;

/* Appends printf-style text (growing the buffer). */
void cli_put(cli_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal (quotes, backslashes and control characters escaped). */
void cli_put_json_string(cli_text *t, const char *s);
/* Writes the text to path atomically and frees it (also on failure). */
gsq_status cli_text_write(cli_text *t, const char *path, gsq_error *err);

#endif
