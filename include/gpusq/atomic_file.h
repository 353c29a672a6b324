/* Writing a file atomically: the old file (if any) stays intact until the new one is complete
 * and durable; and checking, before a long job, that its outputs can be written at all. */
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

/* Makes sure a file can be written at PATH before the work that produces it starts: creates the
 * missing folders above it (as mkdir -p, mode 0755) and creates and removes a temporary file
 * beside it. With append (a log opened for appending), an existing PATH must be writable.
 * GSQ_ERR_IO naming the folder or file and why (PATH a folder, a folder that cannot be made,
 * no permission, a read-only file system, a full disk), GSQ_ERR_ARG for an empty path. */
gsq_status gsq_output_prepare(const char *path, int append, gsq_error *err);

/* The same for a folder that outputs will be written into: created with its parents when
 * missing, and checked by creating and removing a temporary file in it. */
gsq_status gsq_output_prepare_dir(const char *dir, gsq_error *err);

#endif
