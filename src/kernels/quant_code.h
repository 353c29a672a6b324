/* Private: the integer code of a value, the one rounding rule of every quantizer (fake-quantized
 * training, the CPU engine's quantizers, the GPU kernels' requantizing epilogues), host and device
 * (GSQ_HD). */
#ifndef GSQ_KERNELS_QUANT_CODE_H
#define GSQ_KERNELS_QUANT_CODE_H

#include <math.h>

#include "kernels/hd.h"

/* round(x·inv) clamped to ±qmax, half to even (rintf in the default rounding mode). */
GSQ_HD float gsq_quant_code(float x, float inv, float qmax)
{
    float r = rintf(x * inv);
    return r < -qmax ? -qmax : (r > qmax ? qmax : r);
}

#endif
