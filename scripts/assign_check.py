#!/usr/bin/env python3
"""gpusq's minimum-cost assignment checked against scipy (CTest's assign_check, run by tests/python_check.sh).

Reads the cases `test_assign --write DIR` leaves in DIR (caseN.cost: the cost matrix as raw
little-endian float32, row-major; caseN.txt: its shape, the kind of costs, the total and the column
of each row, -1 for none, that gsq_assign gave) and solves each with
scipy.optimize.linear_sum_assignment on the same costs as float64. Exits 1 when gpusq's assignment
is invalid (a column out of range or taken twice, or not min(rows, cols) rows paired) or its total,
as written or recomputed from the costs, differs from scipy's by more than 1e-9·max(1, |total|).
Usage: assign_check.py DIR
"""
import sys

import numpy as np
from scipy.optimize import linear_sum_assignment

import check_cases

TOLERANCE = 1e-9


def invalid(assign, rows, cols):
    """Why the assignment is not one (None when it is)."""
    if len(assign) != rows:
        return f"{len(assign)} columns for {rows} rows"
    paired = assign[assign != -1]
    if np.any((paired < 0) | (paired >= cols)):
        return f"a column outside [0, {cols}) or -1"
    if len(np.unique(paired)) != len(paired):
        return "a column taken twice"
    if len(paired) != min(rows, cols):
        return f"{len(paired)} rows paired, not {min(rows, cols)}"
    return None


def check_case(txt):
    """Returns the case's mismatches, as lines."""
    fields = check_cases.read_fields(txt)
    rows, cols = int(fields["rows"][0]), int(fields["cols"][0])
    kind, total = fields["kind"][0], float(fields["total"][0])
    assign = np.array([int(v) for v in fields["assign"]], dtype=np.int64)
    cost = np.fromfile(check_cases.stem(txt) + ".cost", dtype="<f4").reshape(rows, cols).astype(np.float64)
    row_ind, col_ind = linear_sum_assignment(cost)
    want = float(cost[row_ind, col_ind].sum())
    bad = []
    why = invalid(assign, rows, cols)
    if why:
        bad.append(f"{txt.name}: invalid assignment: {why}")
    else:
        paired = np.flatnonzero(assign != -1)
        for name, got in (("written total", total), ("assignment's total", float(cost[paired, assign[paired]].sum()))):
            if not abs(got - want) <= TOLERANCE * max(1.0, abs(want)):
                bad.append(f"{txt.name}: {name} {got!r}, scipy {want!r}")
    scipy_assign = np.full(rows, -1, dtype=np.int64)
    scipy_assign[row_ind] = col_ind
    pairs = "scipy's pairs" if np.array_equal(assign, scipy_assign) else "other pairs than scipy's"
    print(f"{txt.name}: {rows}×{cols} {kind}, total {want:.6f}, {pairs}: {'MISMATCH' if bad else 'ok'}")
    return bad


def main():
    return check_cases.report("assign_check", [check_case(txt) for txt in check_cases.cases("assign_check")])


if __name__ == "__main__":
    sys.exit(main())
