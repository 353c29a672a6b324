#!/usr/bin/env python3
"""gpusq's COCO box metrics checked against pycocotools (CTest's coco_check, run by tests/python_check.sh).

Reads the cases `test_coco_eval --write DIR` leaves in DIR (caseN.gt.json: COCO instances; caseN.dt.json:
the detections, as gsq_coco_results_write writes them; caseN.txt: the twelve numbers gpusq computed, one
"name value" a line) and recomputes them with pycocotools' COCOeval (iouType "bbox", default parameters:
evaluate, accumulate, summarize). Exits 1 when any number differs by more than 1e-4, and prints the
largest difference seen.
Usage: coco_check.py DIR
"""
import contextlib
import io
import sys

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import check_cases

TOLERANCE = 1e-4
NAMES = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
         "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large"]


def pycocotools_stats(gt_path, dt_path):
    """COCOeval's twelve numbers, its progress messages kept quiet; and the case's size."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        dt = gt.loadRes(str(dt_path))
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    size = f"{len(gt.imgs)} images, {len(gt.cats)} classes, {len(gt.anns)} objects, {len(dt.anns)} detections"
    return [float(v) for v in ev.stats], size


def check_case(txt):
    """Returns the case's mismatches, as lines, and its largest difference."""
    stem = check_cases.stem(txt)
    fields = check_cases.read_fields(txt)
    names, got = list(fields), [float(value) for (value,) in fields.values()]
    if names != NAMES:
        return [f"{txt.name}: names {names}, want {NAMES}"], float("inf")
    want, size = pycocotools_stats(f"{stem}.gt.json", f"{stem}.dt.json")
    diffs = [abs(g - w) for g, w in zip(got, want)]
    bad = [f"{txt.name}: {n} {g!r}, pycocotools {w!r}" for n, g, w, d in zip(names, got, want, diffs) if d > TOLERANCE]
    print(f"{txt.name}: {size}: AP {want[0]:.6f}, AR100 {want[8]:.6f}, "
          f"{sum(w == -1 for w in want)} numbers -1, max difference {max(diffs):.3g}: {'MISMATCH' if bad else 'ok'}")
    return bad, max(diffs)


def main():
    results = [check_case(txt) for txt in check_cases.cases("coco_check")]
    worst = max(diff for _, diff in results)
    return check_cases.report("coco_check", [bad for bad, _ in results], f", max difference {worst:.3g}")


if __name__ == "__main__":
    sys.exit(main())
