/* The tasks' names: "classify" and "segment", and back. */
#include "gpusq/task.h"

#include <string.h>

static const char *const task_names[] = {"classify", "segment"};
#define TASK_COUNT (int)(sizeof task_names / sizeof task_names[0])

const char *gsq_task_name(gsq_task task) { return (unsigned)task < (unsigned)TASK_COUNT ? task_names[task] : "?"; }

int gsq_task_parse(const char *word, gsq_task *task)
{
    for (int i = 0; word && i < TASK_COUNT; i++)
        if (strcmp(word, task_names[i]) == 0) {
            *task = (gsq_task)i;
            return 0;
        }
    return -1;
}
