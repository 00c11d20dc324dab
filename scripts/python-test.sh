#!/usr/bin/env bash
# Builds, installs and tests the Python package: a venv that sees the system's torch and numpy
# (Debian python3-torch / python3-numpy; PyPI torch is too large), `pip install .` from the
# repo root (non-editable, so the tests import the installed wheel), then pytest python/tests.
# Needs: scripts/install-deps.sh --python.
# Env: ADDLORA_VENV (default build/venv), ADDLORA_PIP_BUILD_DIR (default build/pip: CMake's
# build tree, kept so a rerun only rebuilds what changed).  Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${ADDLORA_VENV:-$PWD/build/venv}"
build_dir="${ADDLORA_PIP_BUILD_DIR:-$PWD/build/pip}"
pip_flags=(--disable-pip-version-check --no-input -q)

if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
py="$venv/bin/python"
"$py" -c "import numpy, torch; print('numpy', numpy.__version__, '| torch', torch.__version__)"

# The build requirements go into the venv itself and the build reuses them
# (--no-build-isolation): no second download, and the kept build tree stays valid.
"$py" -m pip install "${pip_flags[@]}" "scikit-build-core>=0.10" "nanobind>=2.0" pytest
"$py" -m pip install "${pip_flags[@]}" --no-build-isolation --force-reinstall --no-deps \
  --config-settings=build-dir="$build_dir" .

# Import from outside the source tree: the installed package, not python/addlora.
(cd /tmp && "$py" -c "import addlora; print('addlora', addlora.__file__); print(addlora.info())")
"$py" -m pytest -q -p no:cacheprovider python/tests "$@"
