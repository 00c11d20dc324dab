#!/usr/bin/env bash
# Creates (or reuses) a venv with PyPI's torch==2.8.0 for the torch 2.x part of the Python
# suite (torch.library ops, opcheck, torch.compile).  The venv lives OUTSIDE the clone so a CI
# machine downloads the ~4 GB of wheels (torch pulls its CUDA wheels from PyPI even though
# only the CPU code runs) once and every later run reuses it.
# Env: ADDLORA_TORCH2_VENV (default /var/cache/addlora/venv-torch2.8),
#      ADDLORA_TORCH2_VERSION (default 2.8.0), ADDLORA_TORCH2_MIN_FREE_GB (default 12).
# Prints the venv's python path on the last line of stdout; exits non-zero with a message
# when it cannot (not enough disk, no network).
set -euo pipefail
. "$(dirname "$0")/venv-common.sh"
venv="${ADDLORA_TORCH2_VENV:-/var/cache/addlora/venv-torch2.8}"
version="${ADDLORA_TORCH2_VERSION:-2.8.0}"
min_free_gb="${ADDLORA_TORCH2_MIN_FREE_GB:-12}"
pip_flags=(--disable-pip-version-check --no-input -q)
py="$venv/bin/python"

have_torch() {
  [ -x "$py" ] && "$py" -c "import sys, torch; sys.exit(0 if torch.__version__.split('+')[0] == '$version' else 1)" 2>/dev/null
}

# One creator at a time (several checkouts on one CI machine share the venv).
venv_lock "$venv"
if ! have_torch; then
  venv_need_free_gb "$(dirname "$venv")" "$min_free_gb" torch2-env "torch==$version and its wheels" ADDLORA_TORCH2_VENV
  [ -x "$py" ] || /usr/bin/python3 -m venv "$venv"
  # pip's wheel cache would double the disk use; the venv itself is the cache.
  "$py" -m pip install "${pip_flags[@]}" --no-cache-dir "torch==$version" numpy pytest \
    "scikit-build-core>=0.10" "nanobind>=2.0" || {
    echo "torch2-env: pip install torch==$version failed (network? disk?)" >&2
    exit 1
  }
  have_torch || { echo "torch2-env: torch==$version does not import from $venv" >&2; exit 1; }
fi
"$py" -c "import torch; print('torch2-env: torch', torch.__version__, 'in $venv')" >&2
echo "$py"
