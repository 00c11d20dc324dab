#!/usr/bin/env bash
# Creates (or reuses) a small venv with intel-extension-for-pytorch (IPEX) for the optional peer
# benchmark bench/peers/ipex_vs_addlora.py.  Not used by CI or scripts/test.sh.
#
# The venv holds IPEX and whatever else it needs, but NOT torch: it is layered on the torch 2.8
# venv of scripts/torch2-env.sh (created by that script if missing) through a .pth file that
# appends that venv's site-packages to sys.path.  The torch venv itself is never written to
# (CI and other checkouts use it concurrently), and no second torch is downloaded: pip sees
# the layered torch as installed, and a constraint pins it to the torch venv's version.
# Env: ADDLORA_IPEX_VENV (default /var/cache/addlora/venv-ipex2.8),
#      ADDLORA_IPEX_VERSION (default 2.8.0; must match the torch venv's major.minor),
#      ADDLORA_IPEX_MIN_FREE_GB (default 2), ADDLORA_TORCH2_VENV (see torch2-env.sh).
# Prints the venv's python path on the last line of stdout; exits non-zero with a message
# when it cannot.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/venv-common.sh"
venv="${ADDLORA_IPEX_VENV:-/var/cache/addlora/venv-ipex2.8}"
version="${ADDLORA_IPEX_VERSION:-2.8.0}"
min_free_gb="${ADDLORA_IPEX_MIN_FREE_GB:-2}"
pip_flags=(--disable-pip-version-check --no-input -q)
py="$venv/bin/python"

# The torch venv (creates it if needed; takes and releases its own lock).
torch_py="$(bash "$here/torch2-env.sh" | tail -n 1)"
torch_site="$("$torch_py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
torch_version="$("$torch_py" -c 'import torch; print(torch.__version__.split("+")[0])')"
if [ "${torch_version%.*}" != "${version%.*}" ]; then
  echo "ipex-env: IPEX $version needs torch ${version%.*}.x, the torch venv has $torch_version" >&2
  exit 1
fi

have_ipex() {
  [ -x "$py" ] && (cd / && "$py" - <<EOF 2>/dev/null
import sys, torch, intel_extension_for_pytorch as ipex
ok = ipex.__version__.split("+")[0] == "$version" and torch.__file__.startswith("$torch_site")
sys.exit(0 if ok else 1)
EOF
)
}

# One creator at a time (a lock of its own; the torch venv's lock is not held meanwhile).
venv_lock "$venv"
if ! have_ipex; then
  venv_need_free_gb "$(dirname "$venv")" "$min_free_gb" ipex-env "intel-extension-for-pytorch==$version" ADDLORA_IPEX_VENV
  # Same interpreter as the torch venv (its extension modules are built for it).  No
  # --system-site-packages: that would expose the distribution's packages (e.g. Debian's torch
  # 1.13) instead of the torch venv's.
  [ -x "$py" ] || "$(readlink -f "$torch_py")" -m venv "$venv"
  site="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$torch_site" > "$site/zz-addlora-torch2.pth"   # appended after the venv's own packages
  constraints="$venv/constraints.txt"
  echo "torch==$torch_version" > "$constraints"
  "$py" -m pip install "${pip_flags[@]}" --no-cache-dir -c "$constraints" \
    "intel-extension-for-pytorch==$version" || {
    echo "ipex-env: pip install intel-extension-for-pytorch==$version failed (network? disk?)" >&2
    exit 1
  }
  if [ -d "$site/torch" ]; then
    echo "ipex-env: a second torch landed in $site; remove $venv and report this" >&2
    exit 1
  fi
  have_ipex || { echo "ipex-env: IPEX $version with the torch venv's torch does not import from $venv" >&2; exit 1; }
fi
(cd / && "$py" -c "import torch, intel_extension_for_pytorch as ipex; print('ipex-env: ipex', ipex.__version__, '| torch', torch.__version__, 'from', torch.__file__)" >&2)
echo "$py"
