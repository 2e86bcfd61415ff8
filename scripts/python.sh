#!/usr/bin/env bash
# The Python package (crates/bulwark-py): builds its wheel and runs its pytest suite.
#
# Creates the venv ${BULWARK_CACHE:-$HOME/.cache/bulwark}/venv-python when missing (or when a
# tool is missing from it) and installs maturin, pytest, pytest-asyncio, anyio, fastapi, httpx
# and uvicorn from PyPI; builds the abi3 wheel with maturin into target/wheels-dev (the dev
# profile: no optimisation pass, so a cold build stays short and a warm target/ rebuilds only
# the bindings in seconds; benchmarks use a release wheel, see crates/bulwark-py/bench/);
# installs it into the venv and runs the suite against the installed wheel. Extra arguments go
# to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${BULWARK_CACHE:-$HOME/.cache/bulwark}/venv-python"
target_dir="${CARGO_TARGET_DIR:-target}"

python_tools_present() {
  [ -x "$venv/bin/maturin" ] &&
    "$venv/bin/python" -c 'import pytest, pytest_asyncio, anyio, fastapi, httpx, uvicorn' 2>/dev/null
}

if ! python_tools_present; then
  echo "python: installing maturin, pytest and FastAPI into $venv" >&2
  mkdir -p "$(dirname "$venv")"
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  timeout "${BULWARK_PYTHON_INSTALL_TIMEOUT:-600}" "$venv/bin/pip" install --quiet \
    --disable-pip-version-check "maturin>=1.9,<2" pytest pytest-asyncio anyio fastapi httpx uvicorn
fi

rm -rf "$target_dir/wheels-dev"
"$venv/bin/maturin" build --quiet --profile dev \
  --manifest-path crates/bulwark-py/Cargo.toml --out "$target_dir/wheels-dev"
wheel="$(ls "$target_dir"/wheels-dev/bulwark-*.whl)"
"$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheel"

cd crates/bulwark-py
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
