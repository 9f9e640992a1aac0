"""Volume datasets for the workspace tests, indexed by a small test layout (``volcases``) that builds the
volume samples the contract describes (``mask_kind="volume"``, ``extra["geometry"]`` from the image header),
so the workspace is tested on its own, whatever the real volume layouts detect."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from _volume_data import rotated_affine, save_nifti, synthetic_case

from medseg.datasets import Sample
from medseg.datasets.classmap import ClassMap
from medseg.datasets.dataset import MASK_VOLUME
from medseg.datasets.layout import Layout
from medseg.io.volume_geometry import Geometry

MARK = "volume_cases.json"
NAMES = ["liver", "spleen", "kidney_left"]
SHAPE = (40, 36, 10)  # NIfTI voxel order; the display order (slice, row, col) is what the reader makes of it


def make_cases(root: Path, n: int = 3, shape=SHAPE, off_grid: int | None = None, broken: int | None = None) -> Path:
    """images/<case>.nii.gz + labels/<case>.nii.gz; case ``off_grid``'s label is shifted 2 mm off its image's
    grid, case ``broken``'s label file is not a NIfTI at all."""
    cases = []
    for c in range(n):
        image, labels = synthetic_case(shape, seed=c)
        affine = rotated_affine(angle_deg=7.0 + 2 * c)
        save_nifti(root / "images" / f"case{c}.nii.gz", image, affine)
        label_affine = affine.copy()
        if c == off_grid:
            label_affine[:3, 3] += (2.0, 0.0, 0.0)
        save_nifti(root / "labels" / f"case{c}.nii.gz", labels, label_affine)
        if c == broken:
            (root / "labels" / f"case{c}.nii.gz").write_bytes(b"not a nifti file at all")
        cases.append(f"case{c}")
    (root / MARK).write_text(json.dumps({"cases": cases, "classes": NAMES}))
    return root


def _detect(folder: Path) -> bool:
    return (folder / MARK).is_file()


def _index(root: Path):
    from medseg.io import load

    meta = json.loads((root / MARK).read_text())
    classmap = ClassMap.from_names(meta["classes"])
    samples = []
    for case in meta["cases"]:
        image = root / "images" / f"{case}.nii.gz"
        geometry = Geometry.from_image(load(image)).to_dict()
        samples.append(
            Sample(
                case,
                image,
                {1: root / "labels" / f"{case}.nii.gz"},
                case,
                {"geometry": geometry},
                classmap=classmap,
                mask_kind=MASK_VOLUME,
            )
        )
    return samples, [], classmap


def _source_data(folder: Path):
    return ("a volume test set", {folder / "images", folder / "labels"}) if _detect(folder) else None


LAYOUT = Layout(
    "volcases",
    "volume_cases.json + images/<case>.nii.gz + labels/<case>.nii.gz (workspace tests only)",
    _detect,
    _index,
    _source_data,
    auto_group=lambda sample_id: sample_id,
)


def slice_files(ws_root: Path) -> set[str]:
    """The mask blob files of a workspace (names only)."""
    return {p.name for p in (Path(ws_root) / "masks").rglob("*.npz")}


def paint(mask: np.ndarray, value: int, r0: int = 2, r1: int = 6, c0: int = 3, c1: int = 9) -> np.ndarray:
    out = np.array(mask, copy=True)
    out[r0:r1, c0:c1] = value
    return out


@contextmanager
def volcases_registered():
    """The test layout, detected before every other layout while the context lasts."""
    from medseg.datasets.registry import layout_names, register_layout, unregister_layout

    register_layout(LAYOUT, before=layout_names()[0])
    try:
        yield LAYOUT
    finally:
        unregister_layout(LAYOUT.name)
