/* Internal to src/data: the JPEG and PNG decoders behind gsq_image_decode (decode_jpeg.c,
 * decode_png.c), the size limit every decoder applies before it allocates, the libpng plumbing
 * that the image and label-map decoders and the ADE20K writer share, the file helpers of the
 * datasets on disk (files.c) and the PNG and JPEG writers of the dataset writers. */
#ifndef GSQ_DATA_IMAGE_DECODE_H
#define GSQ_DATA_IMAGE_DECODE_H

#include <stddef.h>

#include <png.h>

#include "gpusq/data.h"

/* Largest decodable image: a side of 32768 pixels and 178,956,970 pixels in all (512 MiB as RGB):
 * Pillow's decompression-bomb threshold (2 × Image.MAX_IMAGE_PIXELS), so a few hundred bytes of
 * header cannot demand seconds of decoding and gigabytes. The fuzz build lowers the pixel limit
 * (tests/fuzz/CMakeLists.txt) so that every input it tries decodes quickly. */
#define GSQ_IMAGE_MAX_SIDE 32768
#ifndef GSQ_IMAGE_MAX_PIXELS
#define GSQ_IMAGE_MAX_PIXELS ((size_t)178956970)
#endif

/* Labels (file names) are clipped in messages so the rest of the message always fits. */
#define GSQ_LBL "%.300s"

/* GSQ_ERR_FORMAT naming label unless 1 <= width, height <= GSQ_IMAGE_MAX_SIDE and
 * width · height <= GSQ_IMAGE_MAX_PIXELS. Width and height come from the file's header. */
gsq_status gsq_image_check_size(long width, long height, const char *label, gsq_error *err);

/* Each decodes a whole file already in memory (its signature checked by the caller) into *out,
 * which is left zeroed on failure. */
gsq_status gsq_decode_jpeg(const unsigned char *data, size_t size, const char *label,
                           gsq_image *out, gsq_error *err);
gsq_status gsq_decode_png(const unsigned char *data, size_t size, const char *label,
                          gsq_image *out, gsq_error *err);

/* The end of a decoder: on success (st == GSQ_OK) hands *decoded over to *out, else frees it and
 * zeroes *out. */
void gsq_image_hand_over(gsq_image *decoded, gsq_status st, gsq_image *out);

/* libpng's classic API over memory. Errors longjmp to png_jmpbuf(png) of the function reading or
 * writing, which must keep everything it changes after its setjmp outside its own frame (in a
 * heap job holding this reader, say); warnings are dropped, as a library never prints. */
#define GSQ_PNG_MSG_MAX 160
typedef struct {
    const unsigned char *data;
    size_t size, pos;
    int truncated;              /* the data ended before libpng was done */
    char msg[GSQ_PNG_MSG_MAX];  /* libpng's error message */
    png_structp png;
    png_infop info;
} gsq_png_reader;

/* Error handlers for png_create_read_struct / png_create_write_struct whose error pointer is a
 * char[GSQ_PNG_MSG_MAX]: an error's message is kept there and longjmps; warnings are dropped. */
void gsq_png_on_error(png_structp png, png_const_charp msg);
void gsq_png_on_warning(png_structp png, png_const_charp msg);

/* Makes the read and info structs of r (zeroed before) to read the size bytes at data
 * (GSQ_ERR_NOMEM naming label when it cannot). */
gsq_status gsq_png_reader_open(gsq_png_reader *r, const unsigned char *data, size_t size,
                               const char *label, gsq_error *err);
/* Reads the header up to the image data, after the caller's setjmp: IHDR's size (checked with
 * gsq_image_check_size), bit depth and color type. */
gsq_status gsq_png_read_header(gsq_png_reader *r, const char *label, png_uint_32 *width,
                               png_uint_32 *height, int *depth, int *color, gsq_error *err);
/* The error of a longjmp out of libpng: a truncated PNG, or libpng's message (GSQ_ERR_FORMAT). */
gsq_status gsq_png_reader_fail(const gsq_png_reader *r, const char *label, gsq_error *err);
void gsq_png_reader_close(gsq_png_reader *r); /* destroys what open made */

/* Longest path the datasets on disk build (their names checked against it when scanned). */
#define GSQ_DATA_PATH_MAX 4096

/* Reads the regular file at path into a malloc'd buffer (*data is NULL for an empty file);
 * GSQ_ERR_IO naming path when it cannot be opened, is not a regular file or cannot be read. */
gsq_status gsq_read_file(const char *path, unsigned char **data, size_t *size, gsq_error *err);

/* 1 when name is NAME.jpg, NAME.jpeg or NAME.png (any case, NAME not empty). */
int gsq_is_image_name(const char *name);

/* The names of the entries in dir that are not hidden, pass keep (when given) and are directories
 * (want_dirs) or regular files (otherwise), symbolic links followed, sorted in byte order as
 * Python's sorted(): *count names in *out, freed with gsq_free_names. GSQ_ERR_IO naming dir when
 * it cannot be read, GSQ_ERR_ARG for an entry whose path would pass GSQ_DATA_PATH_MAX. */
gsq_status gsq_list_dir(const char *dir, int want_dirs, int (*keep)(const char *), char ***out,
                        size_t *count, gsq_error *err);
void gsq_free_names(char **names, size_t n);

/* Returns buf grown (doubling, from 256) to hold at least need elements of elem bytes, *cap
 * updated; NULL when out of memory, buf and *cap then unchanged. */
void *gsq_reserve(void *buf, size_t *cap, size_t need, size_t elem);

/* Writes values (width × height × channels, 1: gray, 3: RGB, 8-bit) as a PNG at path, atomically
 * (src/data/encode_png.c). */
gsq_status gsq_png_write(const char *path, const uint8_t *values, int width, int height, int channels,
                         gsq_error *err);
/* Writes img as an RGB JPEG of the given quality (1..100, no chroma subsampling) at path,
 * atomically (src/data/encode_jpeg.c). */
gsq_status gsq_jpeg_write(const char *path, const gsq_image *img, int quality, gsq_error *err);

#endif
