#!/usr/bin/env bash
# Installs everything AddLora needs on a bare Debian 12 machine (run as root or with sudo).
# Usage: scripts/install-deps.sh [--python]   (--python adds what the Python package and its tests need)
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
pkgs=(build-essential cmake ninja-build pkg-config git
      libhwy-dev libgtest-dev libgmock-dev libbenchmark-dev
      libopenblas-dev clang libclang-rt-14-dev llvm)
want_python=0
for a in "$@"; do [ "$a" = "--python" ] && want_python=1; done
if [ "$want_python" = 1 ]; then
  pkgs+=(python3 python3-dev python3-venv python3-pip python3-numpy python3-pytest python3-torch python3-matplotlib)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
