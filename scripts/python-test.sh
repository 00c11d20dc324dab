#!/usr/bin/env bash
# Builds, installs and tests the Python package, twice:
#  1. under Debian's torch 1.13: a venv that sees the system's torch and numpy
#     (python3-torch / python3-numpy), the wheel installed into it, pytest python/tests
#     (tests that need torch 2.x are skipped with the reason);
#  2. under PyPI's torch 2.8 (scripts/torch2-env.sh: a venv cached outside the clone, created
#     once), the same wheel unpacked into build/torch2-site, pytest python/tests again (everything,
#     including torch.library opcheck and torch.compile).
# The wheel is built once (`pip wheel .`, non-editable, so the tests import the installed
# package) in a kept build tree.  Needs: scripts/install-deps.sh --python; for step 2 network
# access to PyPI the first time (about 4 GB) and the disk space torch2-env.sh checks.
# Env: ADDLORA_VENV (default build/venv), ADDLORA_PIP_BUILD_DIR (default build/pip: CMake's
# build tree, kept so a rerun only rebuilds what changed), ADDLORA_TORCH2=0 skips step 2 (said
# loudly), ADDLORA_TORCH2_VENV (see torch2-env.sh).  Extra arguments go to both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${ADDLORA_VENV:-$PWD/build/venv}"
build_dir="${ADDLORA_PIP_BUILD_DIR:-$PWD/build/pip}"
wheel_dir="$PWD/build/wheel"
pip_flags=(--disable-pip-version-check --no-input -q)

if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
py="$venv/bin/python"
"$py" -c "import numpy, torch; print('numpy', numpy.__version__, '| torch', torch.__version__)"

# The build requirements go into the venv itself and the build reuses them
# (--no-build-isolation): no second download, and the kept build tree stays valid.
"$py" -m pip install "${pip_flags[@]}" "scikit-build-core>=0.10" "nanobind>=2.0" pytest
rm -rf "$wheel_dir"
"$py" -m pip wheel "${pip_flags[@]}" --no-build-isolation --no-deps \
  --config-settings=build-dir="$build_dir" -w "$wheel_dir" .
wheel="$(ls "$wheel_dir"/addlora-*.whl)"
"$py" -m pip install "${pip_flags[@]}" --force-reinstall --no-deps "$wheel"

# Import from outside the source tree: the installed package, not python/addlora.
(cd /tmp && "$py" -c "import addlora; print('addlora', addlora.__file__); print(addlora.info())")
echo "== pytest under $("$py" -c 'import torch; print("torch", torch.__version__)')"
"$py" -m pytest -q -p no:cacheprovider -rs python/tests "$@"

if [ "${ADDLORA_TORCH2:-1}" = "0" ]; then
  echo "== ADDLORA_TORCH2=0: the torch 2.8 run (torch.library ops, opcheck, torch.compile) is SKIPPED"
  exit 0
fi
py2="$(bash scripts/torch2-env.sh | tail -n 1)"
site2="$PWD/build/torch2-site"
rm -rf "$site2"
"$py2" -m pip install "${pip_flags[@]}" --no-deps --target "$site2" "$wheel"
(cd /tmp && PYTHONPATH="$site2" "$py2" -c "import addlora, torch; print('addlora', addlora.__file__, '| torch', torch.__version__)")
echo "== pytest under $("$py2" -c 'import torch; print("torch", torch.__version__)')"
PYTHONPATH="$site2" "$py2" -m pytest -q -p no:cacheprovider -rs python/tests "$@"
