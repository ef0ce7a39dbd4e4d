#!/usr/bin/env bash
# Installs the pinned Optuna, optuna-dashboard and redis-py (from PyPI) into
# .cache/optuna, once. The interoperability tests call this on first use
# (Optuna reads the journal file and the Redis store, the dashboard serves
# the journal). Prints the install prefix (put it on PYTHONPATH; the
# dashboard's command is $prefix/bin/optuna-dashboard).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="$root/.cache/optuna"
pins=("optuna==4.6.0" "optuna-dashboard==0.21.0" "redis==8.1.0")
stamp="$prefix/.installed-$(IFS=_; echo "${pins[*]}")"
mkdir -p "$root/.cache"
exec 9>"$root/.cache/optuna.lock"
flock 9  # one install at a time
if [[ ! -f "$stamp" ]]; then
    rm -rf "$prefix"
    mkdir -p "$prefix"
    python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
        --target "$prefix" "${pins[@]}" >&2
    touch "$stamp"
fi
echo "$prefix"
