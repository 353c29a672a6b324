/* Error values: formatting messages into gsq_error and naming status codes. */
#include "gpusq/status.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

gsq_status gsq_fail(gsq_error *err, gsq_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

void gsq_error_clear(gsq_error *err)
{
    if (err) {
        err->code = GSQ_OK;
        err->msg[0] = '\0';
    }
}

const char *gsq_status_name(gsq_status code)
{
    switch (code) {
    case GSQ_OK: return "ok";
    case GSQ_ERR_ARG: return "invalid argument";
    case GSQ_ERR_IO: return "i/o error";
    case GSQ_ERR_FORMAT: return "format error";
    case GSQ_ERR_SHAPE: return "shape mismatch";
    case GSQ_ERR_MISSING: return "missing data";
    case GSQ_ERR_NOMEM: return "out of memory";
    case GSQ_ERR_UNSUPPORTED: return "unsupported";
    case GSQ_ERR_NUMERIC: return "non-finite result";
    }
    return "unknown status";
}

int gsq_size_mul(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

int gsq_size_add(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a) return 0;
    *out = a + b;
    return 1;
}
