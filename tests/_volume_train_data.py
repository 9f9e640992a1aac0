"""Volume datasets built directly as Samples (no layout detection needed) and tiny configs for training and
predicting on their slices."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from _train_data import overridden
from _volume_data import NAMES, make_nnunet3d, real_nnunet3d

from medseg.datasets.classmap import ClassMap, LabelClass
from medseg.datasets.dataset import MASK_VOLUME, Dataset, Sample
from medseg.io import load
from medseg.io.volume_geometry import Geometry


def volume_samples(root: Path, classmap: ClassMap) -> list[Sample]:
    """One volume Sample per nnU-Net 3-D case under ``root`` (imagesTr/<case>_0000.nii.gz + labelsTr/<case>)."""
    samples = []
    for image in sorted((root / "imagesTr").glob("*_0000.nii.gz")):
        case = image.name[: -len("_0000.nii.gz")]
        samples.append(
            Sample(
                case,
                image,
                {1: root / "labelsTr" / f"{case}.nii.gz"},
                group=case,
                extra={"geometry": Geometry.from_image(load(image)).to_dict()},
                classmap=classmap,
                mask_kind=MASK_VOLUME,
            )
        )
    return samples


def synthetic_dataset(root: Path, n_cases: int = 3, shape=(40, 36, 10)) -> Dataset:
    """Synthetic CT-like cases (display shape (10, 36, 40)) with liver, spleen, kidney_left."""
    make_nnunet3d(root, n_cases, shape)
    cm = ClassMap.from_names([NAMES[k] for k in sorted(NAMES)])
    return Dataset(root, "nnunet3d", cm, volume_samples(root, cm))


def real_dataset(ct_mr: Path, root: Path, modality: str = "ct") -> Dataset:
    """The real CT (41 classes, sparse ids up to 117) or MR of the folder ``ct_mr`` (the ``ct_mr_dir`` fixture)
    as one case under ``root``."""
    real_nnunet3d(ct_mr, root, modality)
    names = json.loads((root / "labelsTr" / "labels.json").read_text())
    cm = ClassMap(
        [
            LabelClass(int(k), v, ((37 * i) % 256, (91 * i) % 256, (151 * i) % 256))
            for i, (k, v) in enumerate(names.items())
            if int(k)
        ]
    )
    return Dataset(root, "nnunet3d", cm, volume_samples(root, cm))


def volume_config(root: Path, out: Path, **over: Any) -> dict[str, Any]:
    """A tiny CPU run on volume slices: PlainUNet width 4 depth 3 at 32x32, two steps."""
    d: dict[str, Any] = {
        "data": {"root": str(root), "image_size": [32, 32], "val_fraction": 0.0, "channels": 1, "window": [40, 400]},
        "model": {"arch": "PlainUNet", "kwargs": {"depth": 3, "base_channels": 4}},
        "loss": {"terms": [{"name": "ce"}, {"name": "dice"}]},
        "augment": "none",
        "epochs": 1,
        "batch_size": 4,
        "max_steps_per_epoch": 2,
        "optim": {"name": "adam", "lr": 1e-2, "scheduler": "constant"},
        "device": "cpu",
        "out_dir": str(out),
        "val_overlays": 0,
        "seed": 0,
    }
    return overridden(d, over)
