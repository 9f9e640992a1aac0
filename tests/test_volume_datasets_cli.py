"""``medseg index`` and ``medseg info`` on the volume layouts: human lines and --json, problems and --strict."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _volume_data import make_nnunet3d, make_volume_folders, rotated_affine, save_nifti, synthetic_case
from _volume_layouts import make_msd

from medseg.cli import main

MAKERS = {"nnunet3d": make_nnunet3d, "msd": make_msd, "volume_folders": make_volume_folders}


@pytest.mark.parametrize("layout", sorted(MAKERS))
def test_index_lists_each_case_with_its_grid(tmp_path, capsys, layout):
    root = MAKERS[layout](tmp_path / layout, n_cases=2)
    assert main(["index", str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        f"{root}: layout {layout}, 2 samples in 2 groups, task multiclass, classes liver, spleen, kidney_left"
    )
    assert out[1] == "2 volumes (slice x row x col): 10x36x40 voxels; spacing 2.5 x 0.8 x 0.8 mm"
    assert out[2].startswith("  ") and "10x36x40, spacing 2.5 x 0.8 x 0.8 mm, first voxel at (" in out[2]
    assert out[-1] == "0 problems"
    assert main(["index", "--json", "--layout", layout, str(root)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["layout"] == layout and d["samples"] == 2 and d["problems"] == []
    assert [v["shape"] for v in d["volumes"]] == [[10, 36, 40]] * 2
    for v in d["volumes"]:
        affine = np.asarray(v["affine"])
        assert affine.shape == (4, 4) and np.allclose(affine[:3, 3], v["origin"])
        assert v["group"] == v["id"] and v["image"].endswith(".nii.gz") and v["label"].endswith(".nii.gz")


def test_index_strict_fails_on_a_grid_mismatch_and_names_both_files(tmp_path, capsys):
    root = make_nnunet3d(tmp_path / "nn", n_cases=2)
    _, labels = synthetic_case((40, 36, 10), seed=1)
    save_nifti(root / "labelsTr" / "case_001.nii.gz", labels, rotated_affine(angle_deg=25.0))
    assert main(["index", str(root)]) == 0
    out = capsys.readouterr().out
    assert "1 problem: 1 grid_mismatch" in out
    assert "[grid_mismatch]" in out and "case_001.nii.gz is not on the voxel grid of its image case_001_0000" in out
    assert main(["index", "--strict", "--json", str(root)]) == 2
    d = json.loads(capsys.readouterr().out)
    assert [v["id"] for v in d["volumes"]] == ["case_000"] and d["problems"][0]["kind"] == "grid_mismatch"


def test_info_describes_a_volume_dataset_and_a_volume_file(tmp_path, capsys):
    root = make_volume_folders(tmp_path / "vf", n_cases=2)
    image = root / "images" / "patient0.nii.gz"
    assert main(["info", str(root), str(image)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert (
        out[0] == f"{root}: dataset, layout volume_folders, 2 samples in 2 groups, 0 problems (medseg index lists them)"
    )
    assert out[1] == "task multiclass, classes liver, spleen, kidney_left"
    assert out[2] == "groups: 2 from the file names; sizes 1-1, median 1, 2 of a single sample"
    assert out[3] == "2 volumes (slice x row x col): 10x36x40 voxels; spacing 2.5 x 0.8 x 0.8 mm"
    assert out[-1].startswith(f"{image}: nifti  shape (10, 36, 40) int16, spacing 2.5 x 0.8 x 0.8 mm")
    assert "first voxel at (" in out[-1] and out[-1].endswith("mm RAS, stored RAS")
    assert main(["info", "--json", str(image)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert np.allclose(d["origin"], np.asarray(d["metadata"]["affine"])[:3, 3])
    assert d["metadata"]["original_orientation"] == "RAS" and d["shape"] == [10, 36, 40]


def test_index_offers_the_volume_layouts(capsys):
    with pytest.raises(SystemExit):
        main(["index", "--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in ("msd", "nnunet3d", "volume_folders"))
