/* gpusq's public C API in one include: the network description (a graph of operations and its
 * linear layers), models (an opaque handle with accessors: forward, inference, loss and backward,
 * timm safetensors save) and the ViT/DeiT and Swin builders (configurations, timm load), data
 * and loaders, training and distillation, 2:4 / 4:8 sparsity, the method's two stages, INT8/INT4
 * quantization, the compressed model file, the engine that runs it and the ONNX export. Each area has
 * its own header under gpusq/; errors are gsq_status values with a one-line message
 * (gpusq/status.h). The GPU kernels' own API (gpusq/cuda.h) lives in the CUDA backend library,
 * libgpusq_cuda.so, and is not included here: the engine reaches a GPU without it. */
#ifndef GPUSQ_H
#define GPUSQ_H

#include "gpusq/atomic_file.h"
#include "gpusq/clock.h"
#include "gpusq/compressed.h"
#include "gpusq/data.h"
#include "gpusq/distill.h"
#include "gpusq/engine.h"
#include "gpusq/export.h"
#include "gpusq/graph.h"
#include "gpusq/half.h"
#include "gpusq/kernels.h"
#include "gpusq/loader.h"
#include "gpusq/model.h"
#include "gpusq/nn.h"
#include "gpusq/optim.h"
#include "gpusq/quant.h"
#include "gpusq/rng.h"
#include "gpusq/safetensors.h"
#include "gpusq/sparse.h"
#include "gpusq/stages.h"
#include "gpusq/status.h"
#include "gpusq/swin.h"
#include "gpusq/train.h"
#include "gpusq/vit.h"
#include "gpusq/vit_quant.h"

#endif
