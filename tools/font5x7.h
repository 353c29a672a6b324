/* A 5×7 bitmap font for printable ASCII and the clipped rectangles drawn with it: what gpusq predict
 * needs to draw a detector's boxes and their labels ("name 0.87") into an image. */
#ifndef GSQ_TOOLS_FONT5X7_H
#define GSQ_TOOLS_FONT5X7_H

#include <stdint.h>

#include "gpusq/data.h"

/* A glyph's size and the advance from one character to the next (one blank column between). */
#define FONT5X7_WIDTH 5
#define FONT5X7_HEIGHT 7
#define FONT5X7_ADVANCE 6

/* Fills [x0, x1) × [y0, y1) of img with rgb, the part inside the image. */
void draw_fill(gsq_image *img, int x0, int y0, int x1, int y1, const uint8_t rgb[3]);
/* The outline of [x0, x1) × [y0, y1), `thickness` pixels wide on its inner side, clipped. */
void draw_frame(gsq_image *img, int x0, int y0, int x1, int y1, int thickness, const uint8_t rgb[3]);
/* The width in pixels of text drawn by draw_text (0 for ""). */
int draw_text_width(const char *text);
/* text's set pixels in rgb with its top-left corner at (x, y), clipped; a byte outside printable
 * ASCII draws as '?'. */
void draw_text(gsq_image *img, int x, int y, const char *text, const uint8_t rgb[3]);

#endif
