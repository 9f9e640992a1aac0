"""Shared fixtures: where the real data lives, and the real files pip packages ship."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# the ONNX files the inference backend caches go to a folder of this session (child processes inherit it),
# never into the user's ~/.cache/medseg
_CACHE = tempfile.mkdtemp(prefix="medseg-test-cache-")
os.environ["MEDSEG_CACHE_DIR"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)


def _data_dir() -> Path:
    """``MEDSEG_DATA_DIR`` if set, else ``../shared/data`` beside the repository."""
    return Path(os.environ.get("MEDSEG_DATA_DIR", REPO.parent / "shared" / "data")).resolve()


# The real-data fixtures and the folder each needs (a fixture returns the first component of its folder).
DATA_FIXTURES = {
    "data_dir": "",
    "cvc_dir": "cvc-clinicdb/images",
    "noisy_mask_dir": "noisy-mask-example",
    "ct_mr_dir": "ct-mr-volumes",
}


def _missing(fixture: str) -> Path | None:
    d = _data_dir() / DATA_FIXTURES[fixture]
    return None if d.is_dir() else d


def pytest_collection_modifyitems(config, items) -> None:
    """On a user's clone without ../shared, tests of the real data are marked skipped (a declared skipif,
    decided here); where the test script found ../shared (``MEDSEG_REQUIRE_DATA=1``, as in CI) they are
    not, and the fixture fails: a skip would hide that the data is not there."""
    if os.environ.get("MEDSEG_REQUIRE_DATA") == "1":
        return
    for item in items:
        absent = [d for f in DATA_FIXTURES if f in getattr(item, "fixturenames", ()) and (d := _missing(f))]
        if absent:
            item.add_marker(
                pytest.mark.skipif(True, reason=f"real data {absent[0]} is absent (set MEDSEG_DATA_DIR to use it)")
            )


def _data_fixture(name: str) -> Path:
    d = _missing(name)
    if d is not None:
        pytest.fail(f"real data {d} is absent (../shared is beside the checkout, so its data is required)")
    return _data_dir() / DATA_FIXTURES[name].split("/")[0]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _data_fixture("data_dir")


@pytest.fixture(scope="session")
def cvc_dir(data_dir: Path) -> Path:
    return _data_fixture("cvc_dir")


@pytest.fixture(scope="session")
def noisy_mask_dir(data_dir: Path) -> Path:
    return _data_fixture("noisy_mask_dir")


@pytest.fixture(scope="session")
def ct_mr_dir(data_dir: Path) -> Path:
    """The real abdominal CT and MR (``ct_abdomen*.nii.gz``, ``mr_abdomen*``, their labels JSON)."""
    return _data_fixture("ct_mr_dir")


@pytest.fixture(scope="session")
def ct_small() -> Path:
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("CT_small.dcm"))


@pytest.fixture(scope="session")
def mr_small() -> Path:
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("MR_small.dcm"))


@pytest.fixture(scope="session")
def chest_xray() -> Path:
    """pydicom-data's RG1_UNCI.dcm: real PA chest X-ray, CR, MONOCHROME1 (a test dependency)."""
    from pydicom.data import get_testdata_file

    p = get_testdata_file("RG1_UNCI.dcm")
    assert p is not None, "pydicom-data is a test dependency and must provide RG1_UNCI.dcm"
    return Path(p)


@pytest.fixture(scope="session")
def anatomical_nii() -> Path:
    import nibabel

    p = Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"
    assert p.is_file(), f"nibabel no longer ships {p}"
    return p


@pytest.fixture(scope="module")
def bright(tmp_path_factory):
    """A BrightNet checkpoint (tests/_predict_data.py: its prediction is known in advance), its architecture
    registered for the module's tests."""
    from _predict_data import bright_checkpoint, register_bright, unregister_bright

    register_bright()
    yield bright_checkpoint(tmp_path_factory.mktemp("ckpt"))
    unregister_bright()
