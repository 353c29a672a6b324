/* The public API as a user sees it: gpusq.h alone, compiled with the project's warnings, is
 * enough to name a configuration, build a model, run it and meet a clear error. (Each header of
 * include/gpusq/ must stand on its own for this to compile.) */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gpusq.h"

int main(void)
{
    int failed = 0;
    gsq_vit_config cfg;
    gsq_error err = {0};
    gsq_model *m = NULL;
    gsq_status st = gsq_vit_config_by_name("gpusq_demo", &cfg, &err);
    if (st == GSQ_OK) st = gsq_vit_create(&m, &cfg, &err);
    if (st == GSQ_OK) gsq_model_init(m, 1);
    static float images[2 * 3 * 32 * 32];
    const float *logits = NULL;
    if (st == GSQ_OK) st = gsq_model_forward(m, images, 2, &logits, &err);
    for (int k = 0; st == GSQ_OK && k < 2 * cfg.num_classes; k++) failed += !isfinite(logits[k]);
    /* the model is opaque: what it is comes from its accessors */
    failed += st == GSQ_OK && (gsq_model_num_classes(m) != cfg.num_classes || gsq_model_input_size(m) != cfg.img_size ||
                               gsq_model_depth(m) != cfg.depth || gsq_model_num_params(m) == 0 ||
                               gsq_model_graph(m) == NULL ||
                               gsq_model_tensor(m, 0)->numel + gsq_model_tensor(m, 0)->offset > gsq_model_num_params(m));
    if (st != GSQ_OK) failed++, fprintf(stderr, "test_public_header: %s\n", err.msg);
    gsq_model_free(m);
    /* an unknown configuration: an error that names it, and nothing printed by the library */
    st = gsq_vit_config_by_name("no_such_model", &cfg, &err);
    failed += st == GSQ_OK || !strstr(err.msg, "no_such_model");
    printf("test_public_header: %s\n", failed ? "FAILED" : "passed");
    return failed != 0;
}
