# Sourced by the test scripts that check gpusq against Python's packages (onnx_check.sh,
# python_check.sh): python_env NAME VENV IMPORTS PACKAGE... makes (or reuses) a virtual environment at
# VENV in which `import IMPORTS` works, installing the packages from PyPI; when python3, its venv
# module or PyPI is not available it says why and exits 77, which CTest reports as skipped.
python_env() {
    local name="$1" venv="$2" imports="$3"
    shift 3
    "$venv/bin/python" -c "import $imports" 2>/dev/null && return 0
    local python="${GSQ_PYTHON:-python3}"
    command -v "$python" >/dev/null || { echo "$name: skipped (no $python)"; exit 77; }
    rm -rf "$venv"
    "$python" -m venv "$venv" >/dev/null 2>&1 ||
        { echo "$name: skipped ($python -m venv failed: python3-venv missing)"; exit 77; }
    if ! timeout 900 "$venv/bin/pip" install -q --disable-pip-version-check "$@"; then
        rm -rf "$venv"
        echo "$name: skipped ($* could not be installed from PyPI)"
        exit 77
    fi
}
