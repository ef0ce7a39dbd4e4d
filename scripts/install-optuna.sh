#!/usr/bin/env bash
# Installs the pinned Optuna (from PyPI) into .cache/optuna, once. The journal
# interoperability test calls this on first use. Prints the install prefix.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="$root/.cache/optuna"
stamp="$prefix/.installed-4.6.0"
if [[ ! -f "$stamp" ]]; then
    mkdir -p "$prefix"
    python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
        --target "$prefix" "optuna==4.6.0" >&2
    touch "$stamp"
fi
echo "$prefix"
