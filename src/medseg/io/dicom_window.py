"""Display windows for DICOM images: the file's own VOI windows plus standard CT presets."""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from medseg.io.dicom_header import functional_value, read_header
from medseg.io.dicom_pixels import invert_monochrome1, stored_range
from medseg.io.types import ImageData

# (center, width) in Hounsfield units. Values from Radiopaedia, "Windowing (CT)"
# (https://radiopaedia.org/articles/windowing-ct): brain W80 L40, lungs W1500
# L-600, mediastinum W350 L50, abdomen soft tissue W400 L50, liver W150 L30,
# bone W1800 L400; soft_tissue W400 L40 is the usual general soft-tissue window.
CT_PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "soft_tissue": (40.0, 400.0),
    "abdomen": (50.0, 400.0),
    "liver": (30.0, 150.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
}


def _values(v) -> list:
    if v is None or v == "":
        return []
    return list(v) if isinstance(v, (MultiValue, list, tuple)) else [v]


def file_windows(ds: Dataset) -> dict[str, tuple[float, float]]:
    """The file's WindowCenter/WindowWidth pairs (top level, else enhanced functional groups).

    Named by WindowCenterWidthExplanation when given, else "file" (one window) or
    "file_1", "file_2", ... Windows with a non-positive width are dropped.
    """
    centers, widths = _values(ds.get("WindowCenter")), _values(ds.get("WindowWidth"))
    explanations = _values(ds.get("WindowCenterWidthExplanation"))
    if not centers:
        centers = _values(functional_value(ds, "FrameVOILUTSequence", "WindowCenter", 0))
        widths = _values(functional_value(ds, "FrameVOILUTSequence", "WindowWidth", 0))
        explanations = _values(functional_value(ds, "FrameVOILUTSequence", "WindowCenterWidthExplanation", 0))
    out: dict[str, tuple[float, float]] = {}
    pairs = list(zip(centers, widths))
    for i, (c, w) in enumerate(pairs):
        try:
            center, width = float(c), float(w)
        except (TypeError, ValueError):
            continue
        if width <= 0:
            continue
        name = (
            str(explanations[i]).strip()
            if i < len(explanations) and str(explanations[i]).strip()
            else ("file" if len(pairs) == 1 else f"file_{i + 1}")
        )
        out[name] = (center, width)
    return out


def is_monochrome1(ds: Dataset) -> bool:
    return str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1"


def presets_for(ds: Dataset, inversion: tuple[float, float] | None = None) -> dict[str, tuple[float, float]]:
    """File windows first (they win on a name clash), then CT_PRESETS when the modality is CT.

    For MONOCHROME1, whose pixels this package inverts, file centres are moved the
    same way: center' = max + min - center, with ``inversion`` = (min, max).
    """
    windows = file_windows(ds)
    if is_monochrome1(ds):
        lo, hi = inversion if inversion is not None else stored_range(ds)
        windows = {k: (lo + hi - c, w) for k, (c, w) in windows.items()}
    if str(ds.get("Modality", "")).upper() == "CT":
        for name, cw in CT_PRESETS.items():
            windows.setdefault(name, cw)
    return windows


def window_presets(ds_or_image: Dataset | ImageData | str | Path) -> dict[str, tuple[float, float]]:
    """{name: (center, width)} for an image read by this package, a pydicom Dataset, or a DICOM path.

    Centres apply to the pixels ``read_dicom`` returns (so MONOCHROME1 centres are inverted).
    """
    if isinstance(ds_or_image, ImageData):
        stored = ds_or_image.metadata.get("window_presets") or {}
        return {k: (float(v[0]), float(v[1])) for k, v in stored.items()}
    if isinstance(ds_or_image, Dataset):
        return presets_for(ds_or_image)
    return presets_for(read_header(ds_or_image, pixels=False))


def grey_for_display(values, ds: Dataset, meta: dict):
    """Invert MONOCHROME1 so bright means dense everywhere, and record the window presets to match.

    Updates ``meta`` (photometric, inverted, inversion_range, window_presets) and returns the values.
    """
    inversion = None
    if is_monochrome1(ds):
        values, inversion = invert_monochrome1(values, ds)
        meta.update(
            photometric="MONOCHROME2",
            original_photometric="MONOCHROME1",
            inverted=True,
            inversion_range=list(inversion),
        )
    else:
        meta["inverted"] = False
    meta["window_presets"] = {k: [c, w] for k, (c, w) in presets_for(ds, inversion).items()}
    return values
