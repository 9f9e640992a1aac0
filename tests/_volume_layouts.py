"""More volume dataset layouts for tests (beside tests/_volume_data.py): a Decathlon task folder, and 2-D
DICOM / one-slice NIfTI files inside the 2-D layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from _volume_data import NAMES, rotated_affine, save_nifti, synthetic_case


def make_msd(root: Path, n_cases: int = 3, shape=(40, 36, 10), names: dict[int, str] | None = None) -> Path:
    """TaskXX_Name as the Decathlon ships it: dataset.json 'training' pairs, imagesTr/<case>.nii.gz, labelsTr/."""
    names = names or NAMES
    training = []
    for c in range(n_cases):
        image, labels = synthetic_case(shape, seed=10 + c)
        affine = rotated_affine(angle_deg=-5.0 - 2 * c, origin=(30.0, -60.0 + c, 12.5))
        save_nifti(root / "imagesTr" / f"liver_{c}.nii.gz", image, affine)
        save_nifti(root / "labelsTr" / f"liver_{c}.nii.gz", labels, affine)
        training.append({"image": f"./imagesTr/liver_{c}.nii.gz", "label": f"./labelsTr/liver_{c}.nii.gz"})
    meta = {
        "name": "Liver",
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": {"0": "background", **{str(k): v for k, v in names.items()}},
        "numTraining": n_cases,
        "numTest": 0,
        "training": training,
        "test": [],
    }
    (root / "imagesTs").mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps(meta, indent=2))
    return root


def write_dicom_slice(path: Path, pixels: np.ndarray, frames: int = 1) -> Path:
    """A CT DICOM file of one frame (or a multi-frame one) written with pydicom."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "CT", "anon"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    data = np.asarray(pixels, np.int16)
    if frames > 1:
        data = np.stack([data] * frames)
        ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = int(data.shape[-2]), int(data.shape[-1])
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelSpacing = [0.7, 0.7]
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.PixelData = data.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(str(path), enforce_file_format=True)
    return path


def make_slice_files(root: Path, n: int = 3, kind: str = "nifti") -> tuple[Path, dict[str, np.ndarray]]:
    """images/ + masks/ of 2-D slices cut from synthetic cases: images as one-slice NIfTI (x, y, 1) or DICOM,
    masks as one-slice NIfTI; returns the root and the labels each sample must load as (row, col)."""
    want = {}
    for c in range(n):
        image, labels = synthetic_case((40, 36, 10), seed=c)
        k = 5
        stem = f"slice{c}"
        affine = rotated_affine(angle_deg=0.0)
        # display (row, col) of a RAS-stored slice: row = j reversed, col = i reversed
        want[stem] = labels[:, :, k].T[::-1, ::-1]
        if kind == "nifti":
            save_nifti(root / "images" / f"{stem}.nii.gz", image[:, :, k : k + 1], affine)
        else:
            write_dicom_slice(root / "images" / f"{stem}.dcm", image[:, :, k].T[::-1, ::-1])
        save_nifti(root / "masks" / f"{stem}.nii.gz", labels[:, :, k : k + 1], affine)
    return root, want
