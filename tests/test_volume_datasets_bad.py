"""Bad volume input at index and load: 4-D files, pixdim 0, non-integer or negative labels, shapes and
affines that differ, damaged files and label JSONs; each a message naming the file, nothing written."""

from __future__ import annotations

import gzip
import hashlib
import json
import struct

import numpy as np
import pytest
from _volume_data import make_nnunet3d, make_volume_folders, rotated_affine, save_nifti, synthetic_case
from _volume_layouts import make_msd

from medseg.cli import main
from medseg.datasets import open_dataset
from medseg.datasets.dataset import GRID_MISMATCH, UNREADABLE, UNSUPPORTED_VOLUME
from medseg.errors import MaskError, ReadError, UnsupportedFormatError
from medseg.io.nifti import read_nifti, read_nifti_grid


def _tree(root):
    """Every file under root with its bytes' hash and mtime: what 'nothing written' is checked against."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _patch_header(path, offset: int, fmt: str, *values):
    """Overwrite little-endian header fields of a NIfTI file written by nibabel (gzipped or not)."""
    raw = path.read_bytes()
    gz = raw[:2] == b"\x1f\x8b"
    data = bytearray(gzip.decompress(raw) if gz else raw)
    struct.pack_into(fmt, data, offset, *values)
    path.write_bytes(gzip.compress(bytes(data)) if gz else bytes(data))
    return path


PIXDIM = 76  # float32 pixdim[0..7] in a NIfTI-1 header


def test_a_4d_image_is_refused_naming_the_file_and_its_4th_axis(tmp_path, capsys):
    root = make_nnunet3d(tmp_path / "nn", n_cases=2)
    image, _ = synthetic_case((40, 36, 10), seed=0)
    four = save_nifti(
        root / "imagesTr" / "case_000_0000.nii.gz", np.stack([image] * 3, axis=-1), rotated_affine(angle_deg=10.0)
    )
    before = _tree(root)
    ds = open_dataset(root)
    assert [s.id for s in ds] == ["case_001"]
    (p,) = ds.problems
    assert p.kind == UNSUPPORTED_VOLUME and p.path == four
    assert "4-D NIfTI with 3 volumes" in p.message and "4th axis holds 3 channels or time points" in p.message
    with pytest.raises(UnsupportedFormatError, match=r"case_000_0000\.nii\.gz: 4-D NIfTI with 3 volumes"):
        read_nifti(four)
    assert main(["info", str(four)]) == 2
    err = capsys.readouterr().err
    assert "case_000_0000.nii.gz" in err and "4th axis" in err and "Traceback" not in err
    assert _tree(root) == before


def test_a_4d_decathlon_image_is_one_problem_among_usable_cases(tmp_path):
    root = make_msd(tmp_path / "Task01_BrainTumour", n_cases=3)
    image, _ = synthetic_case((40, 36, 10), seed=3)
    save_nifti(root / "imagesTr" / "liver_1.nii.gz", np.stack([image] * 4, axis=-1), rotated_affine(angle_deg=-7.0))
    ds = open_dataset(root)
    assert ds.layout == "msd" and [s.id for s in ds] == ["liver_0", "liver_2"]
    (p,) = ds.problems
    assert p.path.name == "liver_1.nii.gz" and p.kind == UNSUPPORTED_VOLUME and "4 volumes" in p.message


def test_a_single_volume_4d_file_is_3d(tmp_path):
    root = make_nnunet3d(tmp_path / "nn", n_cases=1)
    image, _ = synthetic_case((40, 36, 10), seed=0)
    save_nifti(root / "imagesTr" / "case_000_0000.nii.gz", image[..., None], rotated_affine(angle_deg=10.0))
    ds = open_dataset(root)
    assert len(ds) == 1 and not ds.problems and ds[0].geometry.shape == (10, 36, 40)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_pixdim_0_is_a_problem_naming_the_file(tmp_path, suffix, capsys):
    root = make_volume_folders(tmp_path / "vf", n_cases=2)
    image, labels = synthetic_case((40, 36, 10), seed=0)
    for p in (root / "images").glob("patient0*"):
        p.unlink()
    bad = save_nifti(root / "images" / f"patient0{suffix}", image, rotated_affine(angle_deg=-8.0))
    _patch_header(bad, PIXDIM + 8, "<f", 0.0)  # pixdim[2] = 0
    before = _tree(root)
    ds = open_dataset(root)
    assert [s.id for s in ds] == ["patient1"]
    (p,) = ds.problems
    assert p.kind == UNSUPPORTED_VOLUME and p.path == bad
    assert "pixdim" in p.message and "include 0" in p.message and "voxel grid is unknown" in p.message
    _, notes = read_nifti_grid(bad)
    assert notes and "[0.800000011920929, 0.0, 2.5]" in notes[0]
    # a viewer still opens it, saying the spacing is not known
    assert read_nifti(bad).metadata["spacing_known"] is False
    assert main(["info", str(bad)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {bad}: voxel sizes" in err and "pixdim" in err
    assert _tree(root) == before


def test_a_nan_affine_is_a_problem(tmp_path):
    root = make_nnunet3d(tmp_path / "nn", n_cases=2)
    for p in (root / "labelsTr").glob("case_001*"):
        p.unlink()
    _, labels = synthetic_case((40, 36, 10), seed=1)
    bad = save_nifti(root / "labelsTr" / "case_001.nii", labels, rotated_affine(angle_deg=13.0))
    _patch_header(bad, 280, "<12f", *([float("nan")] * 12))  # srow_x/y/z
    _patch_header(bad, 252, "<hh", 0, 1)  # qform_code 0, sform_code 1
    ds = open_dataset(root)
    assert [s.id for s in ds] == ["case_000"]
    (p,) = ds.problems
    assert p.kind == UNSUPPORTED_VOLUME and p.path == bad and "affine holds NaN" in p.message
    assert p.message.startswith("label has no usable voxel grid")


def test_non_integer_and_negative_labels_fail_to_load_naming_the_file(tmp_path):
    root = make_nnunet3d(tmp_path / "nn", n_cases=2)
    _, labels = synthetic_case((40, 36, 10), seed=0)
    soft = labels.astype(np.float32)
    soft[20, 18, 5] = 0.5
    save_nifti(root / "labelsTr" / "case_000.nii.gz", soft, rotated_affine(angle_deg=10.0))
    _, labels = synthetic_case((40, 36, 10), seed=1)
    signed = labels.astype(np.int16)
    signed[0, 0, 0] = -1
    save_nifti(root / "labelsTr" / "case_001.nii.gz", signed, rotated_affine(angle_deg=13.0))
    before = _tree(root)
    ds = open_dataset(root)  # headers agree: the values are judged when the labels are decoded
    assert len(ds) == 2 and not ds.problems
    with pytest.raises(MaskError, match=r"case_000\.nii\.gz: label volume holds non-integer values \(e\.g\. 0\.5"):
        ds.by_id("case_000").load_mask()
    with pytest.raises(MaskError, match=r"case_001\.nii\.gz: label volume holds negative values \(min -1\)"):
        ds.by_id("case_001").load_mask()
    assert _tree(root) == before


def test_a_label_moved_after_indexing_fails_to_load_naming_both_files(tmp_path):
    root = make_nnunet3d(tmp_path / "nn", n_cases=1)
    ds = open_dataset(root)
    _, labels = synthetic_case((40, 36, 10), seed=0)
    save_nifti(root / "labelsTr" / "case_000.nii.gz", labels, rotated_affine(angle_deg=40.0))
    with pytest.raises(MaskError, match="case_000.nii.gz: label volume is not on the grid of its image case_000_0000"):
        ds[0].load_mask()


def test_a_2d_label_for_a_volume_is_a_grid_mismatch(tmp_path):
    root = make_nnunet3d(tmp_path / "nn", n_cases=1)
    _, labels = synthetic_case((40, 36, 10), seed=0)
    save_nifti(root / "labelsTr" / "case_000.nii.gz", labels[:, :, 4], rotated_affine(angle_deg=10.0))
    (p,) = open_dataset(root).problems
    assert p.kind == GRID_MISMATCH and "shape 1x36x40 differs from 10x36x40" in p.message


def test_a_truncated_header_is_unreadable_naming_the_file(tmp_path):
    root = make_nnunet3d(tmp_path / "nn", n_cases=2)
    label = root / "labelsTr" / "case_001.nii.gz"
    label.write_bytes(gzip.compress(gzip.decompress(label.read_bytes())[:200]))
    ds = open_dataset(root)
    assert [s.id for s in ds] == ["case_000"]
    (p,) = ds.problems
    assert p.kind == UNREADABLE and p.path == label and "truncated" in p.message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", "is not readable JSON"),
        (json.dumps({"0": "background", "1": "liver", "2": "liver"}), "duplicate class names"),
        (json.dumps({"background": 0, "liver": [1, 2]}), "region-based labels"),
        (json.dumps({"0": "background"}), "declares no class besides the background"),
        (json.dumps({"-1": "outside", "1": "liver"}), "negative label values"),
        (json.dumps({"liver": 1, "2": "spleen"}), "mixes names and values"),
    ],
)
def test_a_labels_json_it_cannot_use_is_an_error_naming_it(tmp_path, text, words):
    root = make_volume_folders(tmp_path / "vf", n_cases=1)
    (root / "labels" / "labels.json").write_text(text)
    with pytest.raises(ReadError, match=words) as e:
        open_dataset(root)
    assert "labels.json" in str(e.value)
