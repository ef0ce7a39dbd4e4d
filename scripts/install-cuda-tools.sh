#!/usr/bin/env bash
# Installs NVRTC and ptxas (CUDA 12, from PyPI wheels) into .cache/cuda-tools, once.
# The compilation-proof tests call this on first use; no CUDA toolkit is needed.
# Prints the install prefix on success.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="$root/.cache/cuda-tools"
stamp="$prefix/.installed"
if [[ ! -f "$stamp" ]]; then
    mkdir -p "$prefix"
    python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
        --target "$prefix" "nvidia-cuda-nvrtc-cu12>=12.4,<13" "nvidia-cuda-nvcc-cu12>=12.4,<13" >&2
    touch "$stamp"
fi
echo "$prefix"
