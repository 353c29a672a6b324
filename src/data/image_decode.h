/* Internal to src/data: the JPEG and PNG decoders behind gsq_image_decode (decode_jpeg.c,
 * decode_png.c) and the size limit every decoder applies before it allocates. */
#ifndef GSQ_DATA_IMAGE_DECODE_H
#define GSQ_DATA_IMAGE_DECODE_H

#include <stddef.h>

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

#endif
