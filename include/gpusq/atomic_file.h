/* Writing a file atomically: the old file (if any) stays intact until the new one is complete
 * and durable. */
#ifndef GPUSQ_ATOMIC_FILE_H
#define GPUSQ_ATOMIC_FILE_H

#include <stddef.h>

#include "gpusq/status.h"

/* Writes the n chunks data[i] (sizes[i] bytes) one after another to PATH.tmp.XXXXXX in PATH's
 * directory, fsyncs it, renames it over PATH (keeping an existing file's permissions; a new file
 * gets rw-r--r--) and fsyncs the directory. On any failure the temporary file is removed and PATH
 * is left as it was (GSQ_ERR_IO, naming the step that failed). */
gsq_status gsq_write_file_atomic(const char *path, const void *const *data, const size_t *sizes, size_t n,
                                 gsq_error *err);

#endif
