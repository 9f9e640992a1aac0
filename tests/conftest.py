"""Shared fixtures: where the real data lives, and the real files pip packages ship."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _absent(what: str) -> None:
    """Skip on a user's fresh clone (no ../shared beside it); where the test script found ../shared
    (``MEDSEG_REQUIRE_DATA=1``, as in CI) the data must be there: a skip would hide that it is not."""
    if os.environ.get("MEDSEG_REQUIRE_DATA") == "1":
        pytest.fail(f"{what} (../shared is beside the checkout, so its data is required)")
    pytest.skip(what)


def _data_dir() -> Path:
    """``MEDSEG_DATA_DIR`` if set, else ``../shared/data`` beside the repository."""
    return Path(os.environ.get("MEDSEG_DATA_DIR", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = _data_dir()
    if not d.is_dir():
        _absent(f"real data folder {d} is absent (set MEDSEG_DATA_DIR to use it)")
    return d


@pytest.fixture(scope="session")
def cvc_dir(data_dir: Path) -> Path:
    d = data_dir / "cvc-clinicdb"
    if not (d / "images").is_dir():
        _absent(f"{d} is absent")
    return d


@pytest.fixture(scope="session")
def noisy_mask_dir(data_dir: Path) -> Path:
    d = data_dir / "noisy-mask-example"
    if not d.is_dir():
        _absent(f"{d} is absent")
    return d


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
