"""conftest's real-data fixtures, run on a probe test in a child pytest: where a data folder is absent, a test
that asks for it is skipped by a skipif declared at collection on a user's clone, and fails with the folder
named where ../shared is beside the checkout (``MEDSEG_REQUIRE_DATA=1``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")

PROBE = """
import pytest


@pytest.mark.parametrize("n", [1, 2])
def test_probe(ct_mr_dir, n):
    print(f"ct_mr_dir={ct_mr_dir}")
    assert (ct_mr_dir / "ct_abdomen.nii.gz").is_file()
"""


def _run(tmp_path: Path, data: Path, require: bool) -> subprocess.CompletedProcess:
    (tmp_path / "probe").mkdir(exist_ok=True)
    shutil.copy(CONFTEST, tmp_path / "probe" / "conftest.py")
    (tmp_path / "probe" / "test_probe.py").write_text(PROBE)
    (tmp_path / "probe" / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k not in ("MEDSEG_REQUIRE_DATA", "PYTEST_ADDOPTS")}
    env.update(MEDSEG_DATA_DIR=str(data), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    if require:
        env["MEDSEG_REQUIRE_DATA"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-rsf", "-s", "-p", "no:cacheprovider", "test_probe.py"],
        cwd=tmp_path / "probe",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data folder with the other data sets but no ct-mr-volumes."""
    d = tmp_path / "data"
    (d / "cvc-clinicdb" / "images").mkdir(parents=True)
    (d / "noisy-mask-example").mkdir()
    return d


def test_ct_mr_dir_is_the_volumes_folder_when_present(tmp_path, data):
    (data / "ct-mr-volumes").mkdir()
    (data / "ct-mr-volumes" / "ct_abdomen.nii.gz").write_bytes(b"")
    done = _run(tmp_path, data, require=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout and f"ct_mr_dir={data.resolve() / 'ct-mr-volumes'}" in done.stdout


def test_ct_mr_dir_absent_on_a_users_clone_is_a_declared_skip_naming_the_folder(tmp_path, data):
    done = _run(tmp_path, data, require=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 skipped" in done.stdout and "ct_mr_dir=" not in done.stdout  # the fixture never ran
    assert f"real data {data.resolve() / 'ct-mr-volumes'} is absent" in done.stdout
    assert "SKIPPED [2] test_probe.py:5:" in done.stdout  # the declared skipif, not a pytest.skip in the test


def test_ct_mr_dir_absent_where_the_data_is_required_fails_naming_the_folder(tmp_path, data):
    done = _run(tmp_path, data, require=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 errors" in done.stdout and "skipped" not in done.stdout
    assert f"real data {data.resolve() / 'ct-mr-volumes'} is absent (../shared is beside the checkout" in done.stdout
