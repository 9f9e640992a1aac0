#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then runs the whole test suite under a
# virtual X server. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1

export NO_ALBUMENTATIONS_UPDATE=1 HF_HUB_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1
export MEDSEG_DATA_DIR=${MEDSEG_DATA_DIR:-$(cd .. && pwd)/shared/data}
# with ../shared beside the checkout (CI), a missing data folder is a failure, not a quiet skip
if [ -d ../shared ] && [ -z "${MEDSEG_REQUIRE_DATA:-}" ]; then export MEDSEG_REQUIRE_DATA=1; fi

echo "[test] npe2 validate napari-medseg"
.venv/bin/npe2 validate napari-medseg || exit 1
echo "[test] import contracts: the layers of docs/ARCHITECTURE.md, no GUI package in the engine, no cycles"
.venv/bin/lint-imports --config pyproject.toml || exit 1
echo "[test] ruff: lint and formatting (pyproject.toml [tool.ruff])"
.venv/bin/ruff check . || exit 1
.venv/bin/ruff format --check . || { echo "[test] run: .venv/bin/ruff format ." >&2; exit 1; }

.venv/bin/python -m pytest -p xvfb "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "[test] pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$rc"
