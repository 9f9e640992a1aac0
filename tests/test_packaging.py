"""One distribution installs both import packages, with the npe2 manifest as a real file."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_manifest_symlink_points_at_root_file():
    link = REPO / "napari_medseg" / "napari.yaml"
    assert link.is_symlink(), "napari_medseg/napari.yaml must be a symlink to ../napari.yaml"
    assert Path(link.readlink().as_posix()) == Path("../napari.yaml")
    assert link.resolve() == (REPO / "napari.yaml").resolve()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    (whl,) = out.glob("napari_medseg-*.whl")
    return whl


def test_wheel_holds_engine_plugin_and_manifest(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        manifest = z.read("napari_medseg/napari.yaml").decode()
        entry_points = next(z.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert "medseg/__init__.py" in names and "medseg/io/types.py" in names
    assert "napari_medseg/__init__.py" in names
    assert not any(n.startswith(("src/", "tests/")) for n in names)
    assert manifest == (REPO / "napari.yaml").read_text()
    assert "napari-medseg = napari_medseg:napari.yaml" in entry_points
    assert "medseg = medseg.cli:main" in entry_points


def test_wheel_install_imports_and_npe2_finds_manifest(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    code = (
        "import medseg, napari_medseg, npe2\n"
        f"assert medseg.__file__.startswith({str(target)!r}), medseg.__file__\n"
        f"assert napari_medseg.__file__.startswith({str(target)!r}), napari_medseg.__file__\n"
        "m = npe2.PluginManifest.from_distribution('napari-medseg')\n"
        "print(m.name)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "napari-medseg"
