#!/usr/bin/env bash
# Installs everything napari-medseg needs on a fresh Debian machine, idempotently:
# the system libraries Qt/napari need (and Xvfb for headless tests), a virtual
# environment in .venv, and the package itself (editable) with its extras.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-cursor0
  libxkbcommon-x11-0 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-image0
  libgl1 libegl1 libglib2.0-0 libfontconfig1 libdbus-1-3)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "[setup] apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "[setup] missing system packages (run as root to install): ${missing[*]}" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi

# Reinstall only when the project's requirements changed.
stamp=.venv/.medseg-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] pip install -e .[pyqt6,testing] (torch is the large part: a few minutes the first time)"
  .venv/bin/python -m pip install -q --upgrade pip setuptools wheel
  .venv/bin/python -m pip install -q -e '.[pyqt6,testing]'
  echo "$want" > "$stamp"
fi
echo "[setup] ready: .venv ($(.venv/bin/python -c 'import torch, napari; print(f"torch {torch.__version__}, napari {napari.__version__}")'))"
