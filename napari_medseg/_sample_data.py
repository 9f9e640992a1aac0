"""Sample data, one per modality: real files shipped by pydicom, pydicom-data and nibabel,
read through the engine, plus one generated (synthetic) endoscopy frame with its polyp mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_medseg._layer_data import LayerDataTuple, image_layer, labels_layer
from napari_medseg._reader import read_paths


def _pydicom_file(name: str, package: str) -> Path:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)  # never reach the network from a menu item
    if path is None:
        raise FileNotFoundError(f"{name} is not installed: it ships with the {package} package "
                                f"(pip install {package})")
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
    meta = {"source": source, "format": "synthetic", "modality": "ES", "photometric": "RGB",
            "dtype": "uint8", "spacing_known": False, "synthetic": True,
            "description": "generated colonoscopy-like frame with one polyp; not patient data"}
    image = ImageData(frame, (1.0, 1.0), meta, rgb=True)
    return [image_layer(image, name="synthetic endoscopy frame", synthetic=True),
            labels_layer(mask, name="synthetic polyp mask", source=source, scale=(1.0, 1.0),
                         classmap=ClassMap.binary("polyp"), metadata={"synthetic": True}, synthetic=True)]


def synthetic_endoscopy_frame(shape: tuple[int, int] = (288, 384), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 RGB frame, uint8 0/1 polyp mask): mucosa with folds, a dark lumen, vessels,
    a raised polyp lit from the camera, specular highlights and the black corners of the optics."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ly, lx = h * rng.uniform(0.3, 0.45), w * rng.uniform(0.55, 0.7)          # lumen centre
    r_lumen = np.hypot(yy - ly, xx - lx) / max(h, w)
    angle = np.arctan2(yy - ly, xx - lx)
    folds = 0.5 + 0.5 * np.sin(r_lumen * 38 + 0.6 * np.sin(3 * angle + rng.uniform(0, 6)))
    light = np.clip(r_lumen * 2.2, 0.08, 1.0) ** 0.7                          # far wall (lumen) is dark
    texture = gaussian_filter(rng.standard_normal(shape), 6)
    texture /= np.abs(texture).max()
    vessels = np.abs(gaussian_filter(rng.standard_normal(shape), 5))
    vessels = np.clip(1 - vessels / (0.08 * vessels.max()), 0, 1) ** 4       # thin dark ridges

    py, px = h * rng.uniform(0.55, 0.7), w * rng.uniform(0.25, 0.4)           # polyp centre
    ry, rx = h * rng.uniform(0.12, 0.16), w * rng.uniform(0.1, 0.13)
    theta = np.arctan2(yy - py, xx - px)
    wobble = 1 + sum(0.05 * np.sin(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
    rho = np.hypot((yy - py) / ry, (xx - px) / rx) / wobble
    mask = (rho < 1).astype(np.uint8)
    dome = np.sqrt(np.clip(1 - rho ** 2, 0, 1))                               # raised, lit from the camera

    mucosa = np.array([225, 130, 90], np.float32)
    polyp = np.array([215, 120, 100], np.float32)
    shade = (0.75 + 0.25 * folds) * light * (1 + 0.12 * texture) * (1 - 0.25 * vessels)
    rgb = mucosa * shade[..., None]
    blend = gaussian_filter(mask.astype(np.float32), 1.5)[..., None]
    polyp_rgb = polyp * ((0.55 + 0.6 * dome) * (1 + 0.08 * texture))[..., None]
    rgb = rgb * (1 - blend) + polyp_rgb * blend
    spec = np.zeros(shape, np.float32)
    for _ in range(6):                                                        # wet-surface glints
        cy, cx = (py, px) if rng.random() < 0.5 else (ly, lx)
        sy, sx = cy + rng.normal(0, ry * 0.5), cx + rng.normal(0, rx * 0.8)
        spec += np.exp(-(((yy - sy) / rng.uniform(1.5, 3)) ** 2 + ((xx - sx) / rng.uniform(2, 5)) ** 2))
    rgb = rgb + 255 * np.clip(spec, 0, 1)[..., None]
    fov = np.hypot((yy - h / 2) / (0.62 * h), (xx - w / 2) / (0.6 * w)) < 1  # optics: black corners
    rgb *= fov[..., None]
    return np.clip(rgb, 0, 255).astype(np.uint8), mask * fov
