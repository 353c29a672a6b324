/* The committed demo teacher (assets/demo_teacher.safetensors, made by the command in
 * docs/DATA.md): it loads as the gpusq_demo configuration with the synthetic class names, and it
 * still classifies the synthetic validation split as well as when it was trained. A change to the
 * synthetic generator or to the model code that broke the teacher fails here. */
#include <string.h>

#include "gpusq/train.h"
#include "test_util.h"
#include "models/model_state.h" /* white-box: the model's fields */

int main(void)
{
    gsq_error err = {0};
    gsq_model *m = NULL;
    gsq_vit_config demo;
    CHECK(gsq_vit_config_by_name("gpusq_demo", &demo, &err) == GSQ_OK, "%s", err.msg);
    gsq_status st = gsq_vit_load(&m, GSQ_SOURCE_DIR "/assets/demo_teacher.safetensors", NULL, &err);
    CHECK(st == GSQ_OK, "load: %s", err.msg);
    if (st != GSQ_OK) return test_finish("test_demo_teacher");
    const gsq_vit_config *c = &m->vit;
    CHECK(c->img_size == demo.img_size && c->patch_size == demo.patch_size && c->embed_dim == demo.embed_dim &&
              c->depth == demo.depth && c->num_heads == demo.num_heads && c->mlp_hidden == demo.mlp_hidden &&
              c->num_classes == demo.num_classes && c->pool == demo.pool,
          "the teacher is not the gpusq_demo configuration");
    CHECK(m->class_names && strncmp(m->class_names, "circle\nellipse\nring\n", 19) == 0,
          "class names: %s", m->class_names ? m->class_names : "(none)");

    gsq_dataset *val = NULL;
    CHECK(gsq_dataset_synthetic(&val, 1000, 32, 0, 1, &err) == GSQ_OK, "%s", err.msg);
    gsq_transform t;
    gsq_transform_defaults(&t, 32);
    t.crop_pct = 1.0f; /* synthetic images are drawn at the input size */
    gsq_eval_result r;
    CHECK(gsq_evaluate(m, val, &t, 100, 1, &r, &err) == GSQ_OK, "%s", err.msg);
    /* 90.1% on the 2000-image split when it was trained; these are its first 1000 */
    CHECK(r.count == 1000 && r.top1 >= 0.85, "teacher top-1 %.3f on %zu validation images", r.top1, r.count);
    printf("demo teacher: top-1 %.3f, top-5 %.3f, loss %.3f on %zu synthetic validation images\n", r.top1,
           r.top5, r.loss, r.count);
    gsq_dataset_free(val);
    gsq_model_free(m);
    return test_finish("test_demo_teacher");
}
