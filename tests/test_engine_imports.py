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
    out = subprocess.run([str(exe), "--config", str(REPO / "pyproject.toml")], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "KEPT" in out.stdout


def _lint_copy(tmp_path: Path, plant: dict[str, str]) -> str:
    """lint-imports with the real contracts on a copy of both packages, ``plant`` (relative path -> text)
    appended to its files; the output."""
    import shutil

    shutil.copytree(REPO / "src" / "medseg", tmp_path / "medseg", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(
        REPO / "napari_medseg",
        tmp_path / "napari_medseg",
        symlinks=True,
        ignore=shutil.ignore_patterns("__pycache__", "napari.yaml"),
    )
    for rel, text in plant.items():
        f = tmp_path / rel
        f.write_text((f.read_text() if f.exists() else "") + "\n" + text + "\n")
    cfg = tmp_path / "contracts.toml"
    cfg.write_text("[tool.importlinter]" + (REPO / "pyproject.toml").read_text().split("[tool.importlinter]", 1)[1])
    exe = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run(
        [str(exe), "--config", str(cfg), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode != 0, out.stdout + out.stderr
    return out.stdout


def test_the_contracts_catch_a_gui_import_an_upward_import_and_a_cycle(tmp_path):
    """Guard against contracts that cannot fail: plant each kind of break in a copy of the code."""
    out = _lint_copy(
        tmp_path,
        {
            "medseg/leak.py": "import qtpy",  # GUI in the engine
            "medseg/io/types.py": "def _late():\n    import medseg.cli.main",  # io above cli
            "medseg/export/item.py": "import medseg.export.files",  # a cycle between siblings
            "medseg/export/files.py": "import medseg.export.item",
        },
    )
    lines = {
        line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1]
        for line in out.splitlines()
        if line.endswith((" KEPT", " BROKEN"))
    }
    assert lines["The engine never imports a GUI package"] == "BROKEN", out
    assert lines["The engine's layers: a layer imports only those below it"] == "BROKEN", out
    assert "medseg.io is not allowed to import medseg.cli" in out
    assert lines["No import cycles between sibling modules or packages"] == "BROKEN", out
    assert lines["The plugin sits above the engine"] == "KEPT", out
