#!/usr/bin/env python3
"""gpusq's minimum-cost assignment checked against scipy (CTest's assign_check, run by tests/assign_check.sh).

Reads the cases `test_assign --write DIR` leaves in DIR (caseN.cost: the cost matrix as raw
little-endian float32, row-major; caseN.txt: its shape, the kind of costs, the total and the column
of each row, -1 for none, that gsq_assign gave) and solves each with
scipy.optimize.linear_sum_assignment on the same costs as float64. Exits 1 when gpusq's assignment
is invalid (a column out of range or taken twice, or not min(rows, cols) rows paired) or its total,
as written or recomputed from the costs, differs from scipy's by more than 1e-9·max(1, |total|).
Usage: assign_check.py DIR
"""
import pathlib
import sys

import numpy as np
from scipy.optimize import linear_sum_assignment

TOLERANCE = 1e-9


def read_case(txt):
    fields = {}
    for line in txt.read_text().splitlines():
        key, *values = line.split()
        fields[key] = values
    return fields


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
    fields = read_case(txt)
    rows, cols = int(fields["rows"][0]), int(fields["cols"][0])
    kind, total = fields["kind"][0], float(fields["total"][0])
    assign = np.array([int(v) for v in fields["assign"]], dtype=np.int64)
    cost = np.fromfile(str(txt)[: -len(".txt")] + ".cost", dtype="<f4").reshape(rows, cols).astype(np.float64)
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
    if len(sys.argv) != 2:
        sys.exit("usage: assign_check.py DIR")
    cases = sorted(pathlib.Path(sys.argv[1]).glob("case*.txt"))
    if not cases:
        sys.exit(f"assign_check: no cases under {sys.argv[1]}")
    results = [check_case(txt) for txt in cases]
    for line in (line for bad in results for line in bad):
        print("FAIL", line)
    failed = sum(1 for bad in results if bad)
    print(f"assign_check: {len(cases) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
