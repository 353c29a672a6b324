/* The committed demo teachers (assets/demo_teacher.safetensors and assets/swin_demo_teacher.safetensors,
 * made by the commands in docs/DATA.md): each loads as its named configuration (gpusq_demo,
 * gpusq_swin_demo) with the synthetic class names, and still classifies the synthetic validation
 * split as well as when it was trained. A change to the synthetic generator or to the model code
 * that broke a teacher fails here. */
#include <string.h>

#include "gpusq/train.h"
#include "test_util.h"
#include "models/model_state.h" /* white-box: the model's fields */

/* top1: its accuracy on the 2000-image split when it was trained; these are its first 1000 */
static void check_teacher(const char *file, const char *config, double top1)
{
    gsq_error err = {0};
    gsq_model *m = NULL, *named = NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/assets/%s", GSQ_SOURCE_DIR, file);
    CHECK(gsq_model_create_named(&named, config, 0, &err) == GSQ_OK, "%s", err.msg);
    gsq_status st = gsq_model_load(&m, path, &err);
    CHECK(st == GSQ_OK, "load %s: %s", file, err.msg);
    if (st != GSQ_OK || !named) {
        gsq_model_free(named);
        return;
    }
    int same = m->arch == named->arch && m->num_tensors == named->num_tensors && m->img_size == named->img_size;
    for (int i = 0; same && i < m->num_tensors; i++)
        same = !strcmp(m->tensors[i].name, named->tensors[i].name) && m->tensors[i].numel == named->tensors[i].numel;
    CHECK(same && m->num_classes == named->num_classes, "%s is not the %s configuration", file, config);
    CHECK(m->class_names && strncmp(m->class_names, "circle\nellipse\nring\n", 19) == 0,
          "%s: class names: %s", file, m->class_names ? m->class_names : "(none)");

    gsq_dataset *val = NULL;
    CHECK(gsq_dataset_synthetic(&val, 1000, 32, 0, 1, &err) == GSQ_OK, "%s", err.msg);
    gsq_transform t;
    gsq_transform_defaults(&t, 32);
    t.crop_pct = 1.0f; /* synthetic images are drawn at the input size */
    gsq_eval_result r;
    CHECK(gsq_evaluate(m, val, &t, 100, 1, NULL, &r, &err) == GSQ_OK, "%s", err.msg);
    CHECK(r.count == 1000 && r.top1 >= top1 - 0.05, "%s: top-1 %.3f on %zu validation images", file, r.top1, r.count);
    printf("%s: top-1 %.3f, top-5 %.3f, loss %.3f on %zu synthetic validation images\n", file, r.top1, r.top5,
           r.loss, r.count);
    gsq_dataset_free(val);
    gsq_model_free(m);
    gsq_model_free(named);
}

int main(void)
{
    check_teacher("demo_teacher.safetensors", "gpusq_demo", 0.901);
    check_teacher("swin_demo_teacher.safetensors", "gpusq_swin_demo", 0.896);
    return test_finish("test_demo_teacher");
}
