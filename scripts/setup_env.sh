#!/usr/bin/env bash
# Creates .venv (once) and installs ddpm-hf with its test tools into it. Sourced by main.sh and test.sh.
# TORCH_SPEC picks the torch build (default torch==2.13.0); set it to match your machine, e.g. TORCH_SPEC="torch".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.ddpm_hf_installed"
wanted="$(cat pyproject.toml scripts/setup_env.sh | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    if ! .venv/bin/python -c "import torch" 2>/dev/null; then
        .venv/bin/python -m pip install --quiet "${TORCH_SPEC:-torch==2.13.0}"
    fi
    .venv/bin/python -m pip install --quiet -e ".[test]"
    echo "$wanted" > "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
