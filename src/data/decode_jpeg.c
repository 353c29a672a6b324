/* JPEG decoding with libjpeg(-turbo)'s classic API, made safe for a library: errors longjmp back
 * here instead of exiting, messages are kept instead of printed, and the image size is checked
 * before anything large is allocated. Output is 8-bit RGB decoded as PIL decodes (libjpeg's
 * defaults: islow IDCT, fancy upsampling); grayscale is replicated, 4-component images (CMYK,
 * YCCK) are read as Adobe-inverted CMYK and converted with PIL's formula.
 *
 * Truncation. When the data ends early libjpeg only warns ("Premature end of JPEG file"), pads
 * with an end-of-image marker and fills what is missing with grey. We fail instead, as PIL does
 * (without ImageFile.LOAD_TRUNCATED_IMAGES): any file that libjpeg has to read past the end of,
 * one missing only its final end-of-image marker included, is a "truncated JPEG" error. Other
 * libjpeg warnings (corrupt data inside a complete file) are ignored, as by PIL. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "data/image_decode.h"

/* libjpeg's own working memory (progressive coefficient buffers) is capped: a progressive image
 * beyond about 179 megapixels (4:4:4) fails with a clear message instead of allocating GiBs. */
#define JPEG_MAX_MEMORY (1L << 30)

_Static_assert(sizeof(unsigned long) >= sizeof(size_t), "jpeg_mem_src takes an unsigned long size");

typedef struct {
    struct jpeg_error_mgr pub; /* first: libjpeg hands us a pointer to it */
    jmp_buf jump;
    int eof;                   /* libjpeg read past the end of the data (JWRN_JPEG_EOF) */
} jpeg_errors;

/* All state that changes between setjmp and a longjmp lives here, outside decode_rows' frame. */
typedef struct {
    struct jpeg_decompress_struct cinfo;
    jpeg_errors jerr;
    int created;
    gsq_image img;
    JSAMPLE *cmyk_row;
} jpeg_job;

static void on_error_exit(j_common_ptr cinfo)
{
    longjmp(((jpeg_errors *)cinfo->err)->jump, 1);
}

static void on_emit_message(j_common_ptr cinfo, int msg_level)
{
    jpeg_errors *e = (jpeg_errors *)cinfo->err;
    if (msg_level < 0 && e->pub.msg_code == JWRN_JPEG_EOF) e->eof = 1; /* other warnings: ignored */
}

static void on_output_message(j_common_ptr cinfo)
{
    (void)cinfo; /* a library never prints */
}

/* PIL's CMYK → RGB for an Adobe (inverted) CMYK JPEG: ink c = 255 − stored,
 * nk = 255 − ink k = stored k, and r = nk − c·nk/255 with PIL's rounding MULDIV255. */
static void cmyk_to_rgb(const JSAMPLE *in, uint8_t *out, size_t width)
{
    for (size_t x = 0; x < width; x++, in += 4, out += 3) {
        unsigned nk = in[3];
        for (int c = 0; c < 3; c++) {
            unsigned t = (255u - in[c]) * nk + 128u;
            out[c] = (uint8_t)(nk - (((t >> 8) + t) >> 8));
        }
    }
}

static gsq_status truncated_error(const char *label, gsq_error *err)
{
    return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": truncated JPEG (the data ends before the "
                    "image does)", label);
}

static gsq_status decode_rows(jpeg_job *job, const unsigned char *data, size_t size,
                              const char *label, gsq_error *err)
{
    struct jpeg_decompress_struct *ci = &job->cinfo;
    ci->err = jpeg_std_error(&job->jerr.pub);
    job->jerr.pub.error_exit = on_error_exit;
    job->jerr.pub.emit_message = on_emit_message;
    job->jerr.pub.output_message = on_output_message;
    if (setjmp(job->jerr.jump)) {
        if (job->jerr.pub.msg_code == JERR_NO_BACKING_STORE)
            return gsq_fail(err, GSQ_ERR_UNSUPPORTED,
                            GSQ_LBL ": JPEG needs more than %ld MiB of decoder memory", label,
                            JPEG_MAX_MEMORY >> 20);
        char msg[JMSG_LENGTH_MAX];
        job->jerr.pub.format_message((j_common_ptr)ci, msg);
        if (job->jerr.eof) /* whatever failed, it failed for want of the missing data */
            return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": truncated JPEG (%s)", label, msg);
        return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": bad JPEG: %s", label, msg);
    }
    jpeg_create_decompress(ci);
    job->created = 1;
    ci->mem->max_memory_to_use = JPEG_MAX_MEMORY;
    jpeg_mem_src(ci, data, (unsigned long)size);
    jpeg_read_header(ci, TRUE);
    gsq_status st = gsq_image_check_size((long)ci->image_width, (long)ci->image_height, label, err);
    if (st != GSQ_OK) return st;

    int cmyk = ci->num_components == 4; /* libjpeg reads these as CMYK or YCCK */
    ci->out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(ci); /* a progressive image's scans are all read here */
    if (ci->output_width != ci->image_width || ci->output_height != ci->image_height ||
        ci->output_components != (cmyk ? 4 : 3))
        return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": JPEG decoder output is %ux%u with %d "
                        "components", label, (unsigned)ci->output_width,
                        (unsigned)ci->output_height, ci->output_components);
    st = gsq_image_alloc(&job->img, (int)ci->image_width, (int)ci->image_height, err);
    if (st != GSQ_OK) return st;
    if (cmyk) {
        job->cmyk_row = malloc((size_t)ci->image_width * 4);
        if (!job->cmyk_row)
            return gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory for a JPEG row", label);
    }
    size_t stride = (size_t)ci->output_width * 3;
    while (ci->output_scanline < ci->output_height) {
        if (job->jerr.eof) return truncated_error(label, err);
        uint8_t *dst = job->img.pixels + (size_t)ci->output_scanline * stride;
        JSAMPROW row = cmyk ? job->cmyk_row : dst;
        if (jpeg_read_scanlines(ci, &row, 1) != 1)
            return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": JPEG decoder stopped at row %u",
                            label, (unsigned)ci->output_scanline);
        if (cmyk) cmyk_to_rgb(job->cmyk_row, dst, ci->output_width);
    }
    jpeg_finish_decompress(ci); /* reads up to the end marker, which must be there too */
    if (job->jerr.eof) return truncated_error(label, err);
    return GSQ_OK;
}

gsq_status gsq_decode_jpeg(const unsigned char *data, size_t size, const char *label,
                           gsq_image *out, gsq_error *err)
{
    jpeg_job *job = calloc(1, sizeof *job);
    if (!job) return gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory", label);
    gsq_status st = decode_rows(job, data, size, label, err);
    if (job->created) jpeg_destroy_decompress(&job->cinfo);
    free(job->cmyk_row);
    gsq_image_hand_over(&job->img, st, out);
    free(job);
    return st;
}
