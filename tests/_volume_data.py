"""Volume datasets for tests: synthetic CT-like cases on a rotated, shifted grid, and the real CT/MR copied
into the public layouts (nnU-Net raw 3-D, Decathlon task, image/label folders)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("MEDSEG_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
CT_MR = DATA / "ct-mr-volumes"
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


def real_nnunet3d(root: Path, modality: str = "ct") -> Path:
    """The real abdominal CT (41 structures) or MR (23) as nnU-Net raw 3-D, one case.

    Labels are TotalSegmentator's reference outputs, sparse ids up to 117 (CT) or 49 (MR): dataset.json
    cannot hold them (nnU-Net wants 0..N), so the names travel in the labels JSON beside the labels, as in
    the shared data. CT and MR number their structures differently, hence one dataset per modality."""
    import pytest

    if not CT_MR.is_dir():
        pytest.skip(f"real CT/MR volumes not found at {CT_MR}")
    stem = {"ct": "ct_abdomen", "mr": "mr_abdomen"}[modality]
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    shutil.copy(CT_MR / f"{stem}.nii.gz", root / "imagesTr" / f"{modality}_000_0000.nii.gz")
    shutil.copy(CT_MR / f"{stem}_labels.nii.gz", root / "labelsTr" / f"{modality}_000.nii.gz")
    shutil.copy(CT_MR / f"{stem}_labels.json", root / "labelsTr" / "labels.json")
    return root
