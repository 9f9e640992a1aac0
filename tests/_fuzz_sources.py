"""The real inputs the fuzz corpus damages: CVC-ClinicDB frames, pydicom and nibabel files, or stand-ins."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from _fuzz_bytes import (
    _dicom_bytes,
    _nifti_bytes,
    _pil_bytes,
)

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    return Path(os.environ.get("MEDSEG_DATA_DIR", REPO.parent / "shared" / "data")).resolve()


def _real(folder: Path) -> bool:
    """Whether the real data folder is there. Where the test script found ../shared (``MEDSEG_REQUIRE_DATA=1``,
    as in CI) its absence is an error: the corpus would quietly damage stand-ins and cover less."""
    if folder.is_dir():
        return True
    if os.environ.get("MEDSEG_REQUIRE_DATA") == "1":
        raise FileNotFoundError(f"real data {folder} is absent (MEDSEG_REQUIRE_DATA=1): the fuzz corpus needs it")
    return False


def _cvc_pairs(rng: np.random.Generator, n: int) -> list[tuple[bytes, bytes, np.ndarray, np.ndarray, str]]:
    """(image PNG bytes, mask PNG bytes, image array, mask array, name) of ``n`` CVC frames, else synthetic."""
    from PIL import Image

    cvc = data_dir() / "cvc-clinicdb"
    names = sorted((cvc / "images").glob("*.png"), key=lambda p: int(p.stem)) if _real(cvc / "images") else []
    out = []
    if names:
        for k in sorted(rng.choice(len(names), size=n, replace=False).tolist()):
            img, msk = names[k], cvc / "masks" / names[k].name
            with Image.open(img) as a, Image.open(msk) as b:
                out.append((img.read_bytes(), msk.read_bytes(), np.asarray(a), np.asarray(b), f"cvc{img.stem}"))
        return out
    for k in range(n):  # a bright disc on noise, 0/255 mask
        h, w = 72, 96
        yy, xx = np.mgrid[:h, :w]
        disc = (yy - 30 - 3 * k) ** 2 + (xx - 40 - 5 * k) ** 2 < 15**2
        img = rng.integers(0, 90, (h, w, 3)).astype(np.uint8)
        img[disc] = 200
        msk = (disc * 255).astype(np.uint8)
        out.append((_pil_bytes(img, "PNG"), _pil_bytes(msk, "PNG"), img, msk, f"synth{k}"))
    return out


_DICOM_FILES = (
    "CT_small.dcm",
    "MR_small.dcm",
    "examples_overlay.dcm",
    "rtdose.dcm",
    "MR_small_RLE.dcm",
    "no_meta.dcm",
    "ExplVR_BigEnd.dcm",
    "SC_rgb_small_odd.dcm",
    "JPEG2000.dcm",
    "emri_small.dcm",
)


def _dicom_sources() -> list[tuple[str, bytes]]:
    found = []
    try:
        from pydicom.data import get_testdata_file
    except ImportError:
        return found
    for name in _DICOM_FILES:
        try:
            path = get_testdata_file(name)
        except Exception:  # noqa: BLE001 - pydicom-data absent or offline: use what pydicom ships
            path = None
        if path:
            found.append((name, Path(path).read_bytes()))
    if not found:
        found.append(("synthetic.dcm", _synthetic_dicom()))
    return found


def _synthetic_dicom() -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, meta.MediaStorageSOPInstanceUID, "CT"
    ds.Rows = ds.Columns = 32
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelSpacing, ds.RescaleSlope, ds.RescaleIntercept = [0.7, 0.7], 1, -1024
    ds.PixelData = np.arange(32 * 32, dtype=np.int16).tobytes()
    ds.preamble = b"\x00" * 128
    return _dicom_bytes(ds)


def _nifti_sources(rng: np.random.Generator) -> list[tuple[str, bytes, str]]:
    """(name, bytes, role) of real NIfTI volumes: nibabel's anatomical.nii, the CT/MR volumes and a label volume."""
    found = []
    try:
        import nibabel

        anat = Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"
        if anat.is_file():
            found.append(("anatomical.nii", anat.read_bytes(), "image"))
    except ImportError:
        pass
    vols = data_dir() / "ct-mr-volumes"
    real = _real(vols)
    for name, role in (
        ("ct_abdomen.nii.gz", "image"),
        ("mr_abdomen.nii.gz", "image"),
        ("ct_abdomen_labels.nii.gz", "mask"),
    ):
        if real and (vols / name).is_file():
            found.append((name, (vols / name).read_bytes(), role))
    if not found:
        vol = rng.integers(-1000, 1000, (24, 20, 12)).astype(np.int16)
        found.append(("synthetic.nii.gz", _nifti_bytes(vol, zooms=(0.8, 0.8, 3.0), gz=True), "image"))
    return found
