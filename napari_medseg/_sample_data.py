"""Sample data, one per modality: real files shipped by pydicom, pydicom-data and nibabel,
read through the engine, plus one generated (synthetic) endoscopy frame with its polyp mask."""

from __future__ import annotations

from pathlib import Path

from medseg.datasets.demo import synthetic_endoscopy_frame
from napari_medseg._layer_data import LayerDataTuple, image_layer, labels_layer
from napari_medseg._reader import read_paths


def _pydicom_file(name: str, package: str) -> Path:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)  # never reach the network from a menu item
    if path is None:
        raise FileNotFoundError(f"{name} is not installed: it ships with the {package} package (pip install {package})")
    return Path(path)


def ct_small() -> list[LayerDataTuple]:
    """pydicom's CT_small.dcm: one 128x128 CT slice in HU."""
    return read_paths(str(_pydicom_file("CT_small.dcm", "pydicom")))


def mr_small() -> list[LayerDataTuple]:
    """pydicom's MR_small.dcm: one 64x64 MR slice."""
    return read_paths(str(_pydicom_file("MR_small.dcm", "pydicom")))


def chest_xray() -> list[LayerDataTuple]:
    """pydicom-data's RG1_UNCI.dcm: a PA chest X-ray (CR, MONOCHROME1, shown bone-bright)."""
    return read_paths(str(_pydicom_file("RG1_UNCI.dcm", "pydicom-data")))


def brain_mri() -> list[LayerDataTuple]:
    """nibabel's anatomical.nii: a T1 brain MRI volume with 2 mm voxels."""
    import nibabel

    path = Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is absent: this nibabel version no longer ships anatomical.nii")
    return read_paths(str(path))


def endoscopy_synthetic(seed: int = 0) -> list[LayerDataTuple]:
    """A generated colonoscopy-like RGB frame and its polyp mask (synthetic, not patient data)."""
    from medseg.datasets import ClassMap
    from medseg.io.types import ImageData

    frame, mask = synthetic_endoscopy_frame(seed=seed)
    source = f"synthetic:endoscopy(seed={seed})"
    meta = {
        "source": source,
        "format": "synthetic",
        "modality": "ES",
        "photometric": "RGB",
        "dtype": "uint8",
        "spacing_known": False,
        "synthetic": True,
        "description": "generated colonoscopy-like frame with one polyp; not patient data",
    }
    image = ImageData(frame, (1.0, 1.0), meta, rgb=True)
    return [
        image_layer(image, name="synthetic endoscopy frame", synthetic=True),
        labels_layer(
            mask,
            name="synthetic polyp mask",
            source=source,
            scale=(1.0, 1.0),
            classmap=ClassMap.binary("polyp"),
            metadata={"synthetic": True},
            synthetic=True,
        ),
    ]
