/* A model's accessors (include/gpusq/model.h): what users may read of the private state
 * (src/models/model_state.h). */
#include "models/model_state.h"

const struct gsq_graph *gsq_model_graph(const gsq_model *m) { return m->graph; }
int gsq_model_in_chans(const gsq_model *m) { return m->cfg.in_chans; }
int gsq_model_input_size(const gsq_model *m) { return m->cfg.img_size; }
int gsq_model_num_classes(const gsq_model *m) { return m->cfg.num_classes; }
int gsq_model_depth(const gsq_model *m) { return m->cfg.depth; }
int gsq_model_num_tensors(const gsq_model *m) { return m->num_tensors; }
const gsq_param *gsq_model_tensor(const gsq_model *m, int i) { return &m->tensors[i]; }
size_t gsq_model_num_params(const gsq_model *m) { return m->num_params; }
float *gsq_model_params(gsq_model *m) { return m->params; }
const float *gsq_model_params_const(const gsq_model *m) { return m->params; }
float *gsq_model_grads(gsq_model *m) { return m->grads; }
void gsq_model_set_retain_grads(gsq_model *m, int on) { m->retain_grads = on; }
const gsq_vit_config *gsq_model_vit_config(const gsq_model *m) { return &m->cfg; }
