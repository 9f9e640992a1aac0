"""Volume datasets for tests: synthetic CT-like cases on a rotated, shifted grid, and the real CT/MR copied
into the public layouts (nnU-Net raw 3-D, Decathlon task, image/label folders). The real volumes' folder is
conftest's ``ct_mr_dir`` fixture: a test that asks for it is skipped at collection on a clone without the data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

NAMES = {1: "liver", 2: "spleen", 3: "kidney_left"}


def rotated_affine(spacing=(0.8, 0.8, 2.5), angle_deg: float = 12.0, origin=(-120.5, 88.0, -310.25)) -> np.ndarray:
    """A voxel (i, j, k) -> RAS mm matrix with a rotation about the z axis and a non-zero origin."""
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    m = np.eye(4)
    m[:3, :3] = rot @ np.diag(spacing)
    m[:3, 3] = origin
    return m


def synthetic_case(shape=(40, 36, 10), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(image int16 HU-like, labels uint8 0..3) in NIfTI voxel order (i, j, k): three ellipsoid organs."""
    rng = np.random.default_rng(seed)
    i, j, k = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    labels = np.zeros(shape, np.uint8)
    image = rng.normal(-900, 20, shape)  # air
    body = ((i - shape[0] / 2) / (shape[0] * 0.45)) ** 2 + ((j - shape[1] / 2) / (shape[1] * 0.45)) ** 2 < 1
    image[body] = rng.normal(40, 15, int(body.sum()))
    organs = [(0.35, 0.45, 0.5, 0.18, 1, 60), (0.65, 0.4, 0.45, 0.12, 2, 50), (0.5, 0.7, 0.55, 0.1, 3, 140)]
    for ci, cj, ck, r, cid, hu in organs:
        ci = ci * shape[0] + rng.uniform(-1, 1)
        cj = cj * shape[1] + rng.uniform(-1, 1)
        d = ((i - ci) / (r * shape[0])) ** 2 + ((j - cj) / (r * shape[1])) ** 2
        d = d + ((k - ck * shape[2]) / (0.4 * shape[2])) ** 2
        inside = d < 1
        labels[inside] = cid
        image[inside] = rng.normal(hu, 10, int(inside.sum()))
    return np.rint(image).astype(np.int16), labels


def save_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(array, affine)
    img.header.set_data_dtype(array.dtype)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))
    return path


def make_nnunet3d(root: Path, n_cases: int = 3, shape=(40, 36, 10), names: dict[int, str] | None = None) -> Path:
    """nnU-Net raw 3-D: imagesTr/case_XXX_0000.nii.gz, labelsTr/case_XXX.nii.gz, dataset.json."""
    names = names or NAMES
    for c in range(n_cases):
        image, labels = synthetic_case(shape, seed=c)
        affine = rotated_affine(angle_deg=10.0 + 3 * c)
        save_nifti(root / "imagesTr" / f"case_{c:03d}_0000.nii.gz", image, affine)
        save_nifti(root / "labelsTr" / f"case_{c:03d}.nii.gz", labels, affine)
    meta = {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, **{v: k for k, v in names.items()}},
        "numTraining": n_cases,
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(meta, indent=2))
    return root


def make_volume_folders(root: Path, n_cases: int = 3, shape=(40, 36, 10)) -> Path:
    """images/<case>.nii.gz + labels/<case>.nii.gz + labels/labels.json ({value: name})."""
    for c in range(n_cases):
        image, labels = synthetic_case(shape, seed=c)
        affine = rotated_affine(angle_deg=-8.0)
        save_nifti(root / "images" / f"patient{c}.nii.gz", image, affine)
        save_nifti(root / "labels" / f"patient{c}.nii.gz", labels, affine)
    (root / "labels" / "labels.json").write_text(
        json.dumps({"0": "background", **{str(k): v for k, v in NAMES.items()}})
    )
    return root


def real_nnunet3d(ct_mr: Path, root: Path, modality: str = "ct") -> Path:
    """The real abdominal CT (41 structures) or MR (23) of the folder ``ct_mr`` (the ``ct_mr_dir`` fixture) as
    nnU-Net raw 3-D under ``root``, one case.

    Labels are TotalSegmentator's reference outputs, sparse ids up to 117 (CT) or 49 (MR): dataset.json
    cannot hold them (nnU-Net wants 0..N), so the names travel in the labels JSON beside the labels, as in
    the shared data. CT and MR number their structures differently, hence one dataset per modality."""
    stem = {"ct": "ct_abdomen", "mr": "mr_abdomen"}[modality]
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    shutil.copy(ct_mr / f"{stem}.nii.gz", root / "imagesTr" / f"{modality}_000_0000.nii.gz")
    shutil.copy(ct_mr / f"{stem}_labels.nii.gz", root / "labelsTr" / f"{modality}_000.nii.gz")
    shutil.copy(ct_mr / f"{stem}_labels.json", root / "labelsTr" / "labels.json")
    return root


# --- DICOM series -----------------------------------------------------------------------------------------


def oblique_display_affine(
    spacing=(2.5, 0.8, 0.7), angles_deg=(14.0, -9.0), origin=(-131.25, 97.5, -402.0)
) -> np.ndarray:
    """A (slice, row, col) -> RAS mm matrix in display order (SPL) tilted about z then x: an oblique stack
    whose closest axis-aligned frame is still SPL, so a reader returns it as stored."""
    az, ax = np.deg2rad(angles_deg)
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    spl = np.array([[0.0, 0, -1], [0, -1, 0], [1, 0, 0]])  # columns: superior, posterior, left in RAS
    m = np.eye(4)
    m[:3, :3] = rz @ rx @ spl @ np.diag(spacing)
    m[:3, 3] = origin
    return m


def write_dicom_series(
    folder: Path,
    volume_zyx: np.ndarray,
    affine_or_geometry,
    *,
    modality: str = "CT",
    intercept: float = -1024.0,
    series_uid: str | None = None,
    shuffle_seed: int = 0,
    drop_tags: tuple[str, ...] = (),
    prefix: str = "IM",
) -> list[Path]:
    """A single-slice-per-file DICOM series of ``volume_zyx`` (stored slice, row, col) placed by ``affine``
    ((slice, row, col, 1) -> RAS+ mm, or a Geometry): ImagePositionPatient, ImageOrientationPatient and
    PixelSpacing are written from it (RAS -> LPS). Values are stored as value - ``intercept`` (12 bits when
    they fit, else signed 16) with RescaleIntercept ``intercept``. File names and InstanceNumbers are
    shuffled, so only the positions give the order. ``drop_tags`` are left out of every file. Returns the
    files in slice order."""
    import random

    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

    affine = np.asarray(getattr(affine_or_geometry, "matrix", affine_or_geometry), dtype=float)
    volume = np.asarray(volume_zyx)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    col_step, row_step = lps[:3, 2], lps[:3, 1]  # along a row (column index), down a column (row index)
    if abs(np.dot(col_step, row_step)) > 1e-6 * np.linalg.norm(col_step) * np.linalg.norm(row_step):
        raise ValueError("a DICOM slice's row and column directions are orthogonal; this affine's are not")
    stored = np.rint(volume - intercept).astype(np.int64)
    twelve = stored.min() >= 0 and stored.max() < 4096
    dtype = np.uint16 if twelve else np.int16
    if not twelve and (stored.min() < -32768 or stored.max() > 32767):
        raise ValueError("values do not fit 16 bits after the intercept")
    folder.mkdir(parents=True, exist_ok=True)
    n = volume.shape[0]
    names = list(range(n))
    random.Random(shuffle_seed).shuffle(names)
    instances = list(range(1, n + 1))
    random.Random(shuffle_seed + 1).shuffle(instances)
    series_uid, study_uid, frame_uid = series_uid or generate_uid(), generate_uid(), generate_uid()
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    paths = []
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"{prefix}{names[k]:04d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.Modality, ds.PatientName, ds.PatientID = modality, "Anonymous", "0"
        ds.SeriesNumber, ds.InstanceNumber = 1, instances[k]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in lps[:3, :3] @ [k, 0, 0] + lps[:3, 3]]
        ds.ImageOrientationPatient = [
            f"{v:.8f}" for v in (*col_step / np.linalg.norm(col_step), *row_step / np.linalg.norm(row_step))
        ]
        ds.PixelSpacing = [f"{np.linalg.norm(row_step):.8f}", f"{np.linalg.norm(col_step):.8f}"]
        ds.SliceThickness = f"{np.linalg.norm(lps[:3, 0]):.6f}"
        ds.Rows, ds.Columns = volume.shape[1:3]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12 if twelve else 16, 11 if twelve else 15
        ds.PixelRepresentation = 0 if twelve else 1
        ds.RescaleIntercept, ds.RescaleSlope = f"{intercept:g}", "1"
        if modality == "CT":
            ds.WindowCenter, ds.WindowWidth = "40", "400"
        ds.PixelData = np.ascontiguousarray(stored[k].astype(dtype)).tobytes()
        for tag in drop_tags:
            if tag in ds:
                delattr(ds, tag)
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def make_dicom_series_dataset(root: Path, n_cases: int = 2, shape=(10, 36, 40)) -> Path:
    """images/<case>/*.dcm (a CT series per case, oblique, shuffled names) + labels/<case>.nii.gz on the
    series' grid + labels/labels.json ({value: name})."""
    for c in range(n_cases):
        image, labels = synthetic_case(shape[::-1], seed=c)
        volume, ids = image.transpose(2, 1, 0), labels.transpose(2, 1, 0)  # (i, j, k) -> (slice, row, col)
        affine = oblique_display_affine(angles_deg=(10.0 + 4 * c, -6.0))
        write_dicom_series(root / "images" / f"case{c}", volume, affine, shuffle_seed=c)
        save_nifti(root / "labels" / f"case{c}.nii.gz", ids, affine)
    (root / "labels" / "labels.json").write_text(
        json.dumps({"0": "background", **{str(k): v for k, v in NAMES.items()}})
    )
    return root


def monochrome1_series(source: Path, folder: Path, n: int, reverse_names: bool = False):
    """``n`` copies of the DICOM file ``source`` as a MONOCHROME1 series in ``folder``: slice k 4 mm above
    slice k - 1 with ``100 * k`` added to the pixels (file names ``m1_<k>.dcm``, numbered downwards with
    ``reverse_names``: the series is ordered by position, not name); the source dataset."""
    import pydicom
    from pydicom.uid import generate_uid

    base = pydicom.dcmread(source)
    for k in range(n):
        ds = pydicom.dcmread(source)
        ds.PhotometricInterpretation = "MONOCHROME1"
        ds.SOPInstanceUID = generate_uid()
        ds.ImagePositionPatient = [0.0, 0.0, 4.0 * k]
        ds.PixelData = (base.pixel_array + 100 * k).astype(np.int16).tobytes()
        ds.save_as(folder / f"m1_{n - 1 - k if reverse_names else k}.dcm")
    return base
