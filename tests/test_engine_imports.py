"""The engine (src/medseg) must never import a GUI package.

Two independent checks: import-linter's static contract (pyproject.toml), and a
runtime import of every engine module in a clean interpreter.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import medseg

GUI = ("qtpy", "napari", "magicgui", "superqt", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari_medseg")
REPO = Path(__file__).resolve().parents[1]


def _engine_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(medseg.__path__, "medseg."))


def test_engine_has_modules():
    mods = _engine_modules()
    assert "medseg.io.types" in mods and "medseg.datasets.classmap" in mods


def test_runtime_imports_no_gui_package():
    code = (
        "import importlib, sys\n"
        f"for m in {_engine_modules()!r}: importlib.import_module(m)\n"
        f"bad = sorted(k for k in sys.modules if k.split('.')[0] in {GUI!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"engine pulled in GUI modules: {out.stdout.strip()}"


def test_import_linter_contract_holds():
    exe = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(exe), "--config", str(REPO / "pyproject.toml")],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "KEPT" in out.stdout


def test_contract_would_catch_a_gui_import(tmp_path):
    """Guard against a contract that cannot fail: plant a GUI import in a copy of the engine."""
    pkg = tmp_path / "medseg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "leak.py").write_text("import qtpy\n")
    cfg = tmp_path / "contract.toml"
    cfg.write_text((REPO / "pyproject.toml").read_text().split("[tool.importlinter]", 1)[1].join(["[tool.importlinter]", ""]))
    exe = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(exe), "--config", str(cfg)], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert out.returncode != 0, out.stdout + out.stderr
    assert "BROKEN" in out.stdout
