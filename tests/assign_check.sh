#!/usr/bin/env bash
# gpusq's minimum-cost assignment checked against scipy (CTest's assign_check): makes a Python
# environment with numpy and scipy from PyPI under WORK (kept for the next run), writes random cost
# matrices with the assignments gpusq makes of them (test_assign --write) and runs
# scripts/assign_check.py, which solves them with scipy.optimize.linear_sum_assignment. Exits 77
# (skipped) when python3's venv or PyPI is not available.
# Usage: assign_check.sh TEST_ASSIGN WORK
set -euo pipefail
writer="$1" work="$2"
here="$(cd "$(dirname "$0")" && pwd)"
venv="$work/venv"
mkdir -p "$work"
source "$here/python_env.sh"
python_env assign_check "$venv" "numpy, scipy.optimize" numpy scipy
cases="$work/cases"
rm -rf "$cases"
mkdir -p "$cases"
"$writer" --write "$cases"
"$venv/bin/python" "$here/../scripts/assign_check.py" "$cases"
