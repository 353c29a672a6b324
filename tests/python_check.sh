#!/usr/bin/env bash
# gpusq checked against a Python reference (CTest's miou_check, coco_check and assign_check): makes a
# Python environment with PACKAGES (a space-separated list) from PyPI under WORK (kept for the next
# run) in which `import IMPORTS` works, has WRITER write its random cases (WRITER --write DIR) and runs
# SCRIPT on them, which recomputes them with the reference and exits 1 on a mismatch. Exits 77
# (skipped) when python3's venv or PyPI is not available.
# Usage: python_check.sh NAME IMPORTS PACKAGES WRITER SCRIPT WORK
set -euo pipefail
name="$1" imports="$2" packages="$3" writer="$4" script="$5" work="$6"
here="$(cd "$(dirname "$0")" && pwd)"
venv="$work/venv"
mkdir -p "$work"
source "$here/python_env.sh"
# shellcheck disable=SC2086 # PACKAGES is a list
python_env "$name" "$venv" "$imports" $packages
cases="$work/cases"
rm -rf "$cases"
mkdir -p "$cases"
"$writer" --write "$cases"
"$venv/bin/python" "$script" "$cases"
