/* The tasks' names, "classify", "segment" and "detect", and the segmentation heads', "linear" and "mask";
 * and back. */
#include "gpusq/task.h"

#include <string.h>

static const char *const task_names[] = {"classify", "segment", "detect"};
static const char *const head_names[] = {"linear", "mask"};
#define COUNT(names) (int)(sizeof names / sizeof names[0])

/* The index of word in names (n of them), or -1. */
static int find(const char *const *names, int n, const char *word)
{
    for (int i = 0; word && i < n; i++)
        if (strcmp(word, names[i]) == 0) return i;
    return -1;
}

const char *gsq_task_name(gsq_task task)
{
    return (unsigned)task < (unsigned)COUNT(task_names) ? task_names[task] : "?";
}

int gsq_task_parse(const char *word, gsq_task *task)
{
    int i = find(task_names, COUNT(task_names), word);
    if (i >= 0) *task = (gsq_task)i;
    return i >= 0 ? 0 : -1;
}

const char *gsq_seg_head_name(gsq_seg_head head)
{
    return (unsigned)head < (unsigned)COUNT(head_names) ? head_names[head] : "?";
}

int gsq_seg_head_parse(const char *word, gsq_seg_head *head)
{
    int i = find(head_names, COUNT(head_names), word);
    if (i >= 0) *head = (gsq_seg_head)i;
    return i >= 0 ? 0 : -1;
}
