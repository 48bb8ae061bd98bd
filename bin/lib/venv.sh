# Creates .venv with python3 (3.11) and installs the pinned requirements into it.
ensure_venv() {
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
    fi
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
}
