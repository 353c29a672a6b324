/* Status codes and error messages. Every library call that can fail returns a gsq_status and,
 * when given a gsq_error, fills it with a one-line message that names the thing at fault
 * (file, tensor, expected vs. got). The library never prints and never exits. */
#ifndef GPUSQ_STATUS_H
#define GPUSQ_STATUS_H

#include <stddef.h>

typedef enum {
    GSQ_OK = 0,
    GSQ_ERR_ARG,         /* a bad argument from the caller */
    GSQ_ERR_IO,          /* open, read, write, sync or rename failed */
    GSQ_ERR_FORMAT,      /* malformed file contents */
    GSQ_ERR_SHAPE,       /* shapes or configurations disagree */
    GSQ_ERR_MISSING,     /* a required tensor or key is absent */
    GSQ_ERR_NOMEM,       /* an allocation failed or a size overflowed */
    GSQ_ERR_UNSUPPORTED, /* valid input this build cannot handle */
    GSQ_ERR_NUMERIC,     /* a computation produced NaN or infinity (training diverged) */
} gsq_status;

#define GSQ_ERROR_MSG_MAX 512

typedef struct {
    gsq_status code;
    char msg[GSQ_ERROR_MSG_MAX];
} gsq_error;

/* Records `code` and a printf-style message in *err (err may be NULL) and returns `code`. */
gsq_status gsq_fail(gsq_error *err, gsq_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Resets *err to GSQ_OK with an empty message (err may be NULL). */
void gsq_error_clear(gsq_error *err);

/* A short lowercase name for a status, e.g. "format error". */
const char *gsq_status_name(gsq_status code);

/* Overflow-checked size arithmetic: return 0 and leave *out alone on overflow. */
int gsq_size_mul(size_t a, size_t b, size_t *out);
int gsq_size_add(size_t a, size_t b, size_t *out);

#endif
