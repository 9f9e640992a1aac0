#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then opens napari with the
# napari-medseg work area docked on the generated demo dataset (see python -m napari_medseg --help).
# Without a display (no $DISPLAY / $WAYLAND_DISPLAY) it runs under Xvfb and
# saves a screenshot instead of waiting for a window nobody can see.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export NO_ALBUMENTATIONS_UPDATE=1
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  out=${SCREENSHOT:-docs/screenshots/launch.png}
  echo "[napari] no display: running under Xvfb, screenshot -> $out"
  exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m napari_medseg --screenshot "$out" "$@"
fi
exec .venv/bin/python -m napari_medseg "$@"
