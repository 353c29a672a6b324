"""The cases loop that scripts/assign_check.py, miou_check.py and coco_check.py share.

Each reads the cases a test's `--write DIR` leaves in DIR (caseN.txt, with files named after it)
and recomputes them with a reference implementation. `cases` lists them from the command line,
`read_fields` reads a caseN.txt of "key value..." lines, and `report` prints the failures and the
summary line and gives the exit status.
"""
import pathlib
import sys


def cases(name):
    """The caseN.txt files under the directory the command line names, sorted; exits when none."""
    if len(sys.argv) != 2:
        sys.exit(f"usage: {name}.py DIR")
    found = sorted(pathlib.Path(sys.argv[1]).glob("case*.txt"))
    if not found:
        sys.exit(f"{name}: no cases under {sys.argv[1]}")
    return found


def stem(txt):
    """The case's path without ".txt", which its other files extend."""
    return str(txt)[: -len(".txt")]


def read_fields(txt):
    """A caseN.txt's lines as {key: [values]}, in the file's order; blank lines skipped."""
    fields = {}
    for line in txt.read_text().splitlines():
        if line.strip():
            key, *values = line.split()
            fields[key] = values
    return fields


def report(name, results, note=""):
    """Prints each case's mismatches (results: one list of lines a case) as FAIL lines, then
    "NAME: N passed, N failed" and note; returns the exit status, 1 when a case failed."""
    for line in (line for bad in results for line in bad):
        print("FAIL", line)
    failed = sum(1 for bad in results if bad)
    print(f"{name}: {len(results) - failed} passed, {failed} failed{note}")
    return 1 if failed else 0
