#!/usr/bin/env python3
"""gpusq's mIoU checked against numpy (CTest's miou_check, run by tests/python_check.sh).

Reads the cases `test_segment_metric --write DIR` leaves in DIR (caseN.pred.i16 and caseN.label.i16:
int16 maps in this machine's byte order, image after image; caseN.txt: the shape and the metrics
gpusq computed) and recomputes per-class IoU, mIoU and aAcc as mmsegmentation does
(intersect_and_union per image, areas summed over the set, total_area_to_metrics). Exits 1 when any
value differs by more than 1e-9 or is NaN on one side only.
Usage: miou_check.py DIR
"""
import sys

import numpy as np

import check_cases

TOLERANCE = 1e-9


def histc(values, classes):
    """torch.histc(values, bins=classes, min=0, max=classes - 1) on integers: a count per class,
    values outside [0, classes) dropped."""
    values = values[(values >= 0) & (values < classes)]
    return np.bincount(values, minlength=classes).astype(np.float64)


def intersect_and_union(pred, label, classes):
    """mmsegmentation's, with gpusq's ignore rule: a label outside [0, classes) (mmsegmentation's
    ignore_index, 255) removes the pixel from the prediction and the label alike."""
    mask = (label >= 0) & (label < classes)
    pred, label = pred[mask].astype(np.int64), label[mask].astype(np.int64)
    area_intersect = histc(pred[pred == label], classes)
    area_pred = histc(pred, classes)
    area_label = histc(label, classes)
    return area_intersect, area_pred + area_label - area_intersect, area_pred, area_label


def metrics(preds, labels, classes):
    """total_area_to_metrics over the images: IoU per class (NaN where the union is empty), the
    nanmean of those, and aAcc."""
    totals = [sum(parts) for parts in zip(*(intersect_and_union(p, l, classes) for p, l in zip(preds, labels)))]
    intersect, union, _, label_area = totals
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = intersect / union
        aacc = intersect.sum() / label_area.sum()
    miou = np.nanmean(iou) if not np.all(np.isnan(iou)) else np.nan
    return iou, miou, aacc


def close(a, b):
    return (np.isnan(a) and np.isnan(b)) or (not np.isnan(a) and not np.isnan(b) and abs(a - b) <= TOLERANCE)


def check_case(txt):
    """Returns the case's mismatches, as lines."""
    fields = check_cases.read_fields(txt)
    classes, images, side = (int(fields[k][0]) for k in ("classes", "images", "side"))
    stem = check_cases.stem(txt)
    maps = [np.fromfile(f"{stem}.{name}.i16", dtype=np.int16).reshape(images, side, side) for name in ("pred", "label")]
    iou, miou, aacc = metrics(maps[0], maps[1], classes)
    got_iou = [float(v) for v in fields["iou"]]
    bad = []
    if len(got_iou) != classes:
        bad.append(f"{txt.name}: {len(got_iou)} IoU values for {classes} classes")
    bad += [f"{txt.name}: class {k} IoU {g!r}, numpy {float(w)!r}"
            for k, (g, w) in enumerate(zip(got_iou, iou)) if not close(g, w)]
    for name, want in (("miou", miou), ("aacc", aacc)):
        got = float(fields[name][0])
        if not close(got, want):
            bad.append(f"{txt.name}: {name} {got!r}, numpy {float(want)!r}")
    nan = int(np.isnan(iou).sum())
    zero = int((iou == 0).sum())
    print(f"{txt.name}: {classes} classes, {images}×{side}², mIoU {miou:.6f}, aAcc {aacc:.6f}, "
          f"{nan} classes NaN, {zero} IoU 0: {'MISMATCH' if bad else 'ok'}")
    return bad


def main():
    return check_cases.report("miou_check", [check_case(txt) for txt in check_cases.cases("miou_check")])


if __name__ == "__main__":
    sys.exit(main())
