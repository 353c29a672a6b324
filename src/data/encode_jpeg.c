/* Writing RGB JPEGs (libjpeg, encoded in memory at a given quality without chroma subsampling,
 * then written atomically): the images of the ADE20K and COCO layouts' writers. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

#include <jpeglib.h>

#include "data/image_decode.h"
#include "gpusq/atomic_file.h"

/* libjpeg's errors longjmp here instead of exiting; its messages are never printed. */
typedef struct {
    struct jpeg_error_mgr pub; /* first: libjpeg hands us a pointer to it */
    jmp_buf jump;
} jpeg_errors;

static void jpeg_on_error_exit(j_common_ptr cinfo)
{
    longjmp(((jpeg_errors *)cinfo->err)->jump, 1);
}

static void jpeg_on_output_message(j_common_ptr cinfo)
{
    (void)cinfo; /* a library never prints */
}

/* All state that changes between setjmp and a longjmp lives here, outside encode_jpeg's frame. */
typedef struct {
    struct jpeg_compress_struct c;
    jpeg_errors jerr;
    int created;
    unsigned char *buf; /* malloc'd by jpeg_mem_dest */
    unsigned long size;
} jpeg_job;

/* img as a JPEG (quality, 4:4:4) in job->buf. */
static gsq_status encode_jpeg(jpeg_job *job, const gsq_image *img, int quality, const char *path,
                              gsq_error *err)
{
    struct jpeg_compress_struct *c = &job->c;
    c->err = jpeg_std_error(&job->jerr.pub);
    job->jerr.pub.error_exit = jpeg_on_error_exit;
    job->jerr.pub.output_message = jpeg_on_output_message;
    if (setjmp(job->jerr.jump)) {
        char msg[JMSG_LENGTH_MAX];
        job->jerr.pub.format_message((j_common_ptr)c, msg);
        return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": JPEG encoding failed: %s", path, msg);
    }
    jpeg_create_compress(c);
    job->created = 1;
    jpeg_mem_dest(c, &job->buf, &job->size);
    c->image_width = (JDIMENSION)img->width;
    c->image_height = (JDIMENSION)img->height;
    c->input_components = 3;
    c->in_color_space = JCS_RGB;
    jpeg_set_defaults(c);
    jpeg_set_quality(c, quality, TRUE);
    for (int i = 0; i < c->num_components; i++) /* no chroma subsampling */
        c->comp_info[i].h_samp_factor = c->comp_info[i].v_samp_factor = 1;
    jpeg_start_compress(c, TRUE);
    while (c->next_scanline < c->image_height) {
        JSAMPROW row = img->pixels + (size_t)c->next_scanline * (size_t)img->width * 3;
        jpeg_write_scanlines(c, &row, 1);
    }
    jpeg_finish_compress(c);
    return GSQ_OK;
}

gsq_status gsq_jpeg_write(const char *path, const gsq_image *img, int quality, gsq_error *err)
{
    jpeg_job *job = calloc(1, sizeof *job);
    if (!job) return gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory", path);
    gsq_status st = encode_jpeg(job, img, quality, path, err);
    if (job->created) jpeg_destroy_compress(&job->c);
    if (st == GSQ_OK) {
        const void *data = job->buf;
        size_t size = job->size;
        st = gsq_write_file_atomic(path, &data, &size, 1, err);
    }
    free(job->buf);
    free(job);
    return st;
}
