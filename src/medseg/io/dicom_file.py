"""Reading one DICOM file: pixels to values, geometry, metadata."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from medseg.errors import ReadError
from medseg.io.dicom_header import (
    DamagedValue,
    base_metadata,
    functional_value,
    header_float,
    number_of_frames,
    orientation_normal,
    pixel_spacing,
    read_header,
    spacing_along,
)
from medseg.io.dicom_pixels import decode_pixels, modality_lut, to_rgb
from medseg.io.dicom_window import grey_for_display
from medseg.io.types import ImageData


def _positive(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v > 0 else None


def frame_spacing(ds: Dataset, n_frames: int) -> tuple[float | None, str | None, dict[str, Any]]:
    """Spacing between the frames of a multi-frame file, the tag it came from, and extra metadata.

    Per-frame ImagePositionPatient (enhanced files) is the measured truth, so it
    comes first; then SpacingBetweenSlices, SliceThickness (which equals the
    spacing only for contiguous slices) and RTDOSE's GridFrameOffsetVector.
    """
    extra: dict[str, Any] = {}
    iop = ds.get("ImageOrientationPatient") or functional_value(
        ds, "PlaneOrientationSequence", "ImageOrientationPatient", 0
    )
    normal = orientation_normal(iop) if iop is not None else None
    positions = [functional_value(ds, "PlanePositionSequence", "ImagePositionPatient", i) for i in range(n_frames)]
    if normal is not None and all(p is not None for p in positions) and n_frames > 1:
        proj = [float(np.dot([header_float(x, "ImagePositionPatient") for x in p], normal)) for p in positions]
        steps = np.diff(proj)
        if np.all(steps > 1e-4) or np.all(steps < -1e-4):
            step, uniform, _ = spacing_along(proj)
            extra.update(slice_spacing_uniform=uniform, slice_positions=proj)
            return step, "PerFrameFunctionalGroupsSequence.ImagePositionPatient", extra
        extra["frame_note"] = "frame positions are not a monotonic stack (time series or mixed order)"
        return None, None, extra
    for name, value in (
        ("SpacingBetweenSlices", ds.get("SpacingBetweenSlices")),
        (
            "PixelMeasuresSequence.SpacingBetweenSlices",
            functional_value(ds, "PixelMeasuresSequence", "SpacingBetweenSlices", 0),
        ),
        ("SliceThickness", ds.get("SliceThickness")),
        ("PixelMeasuresSequence.SliceThickness", functional_value(ds, "PixelMeasuresSequence", "SliceThickness", 0)),
    ):
        if _positive(value) is not None:
            return _positive(value), name, extra
    offsets = ds.get("GridFrameOffsetVector")
    if offsets is not None and len(offsets) == n_frames and n_frames > 1:
        step, uniform, _ = spacing_along([header_float(o, "GridFrameOffsetVector") for o in offsets])
        if step > 0:
            extra["slice_spacing_uniform"] = uniform
            return step, "GridFrameOffsetVector", extra
    return None, None, extra


def pixels_to_values(raw: np.ndarray, ds: Dataset, path: Path, multiframe: bool) -> tuple[np.ndarray, dict[str, Any]]:
    """Stored pixels -> display-ready values plus the metadata that describes what was done."""
    meta: dict[str, Any] = {"dtype": str(raw.dtype)}
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    samples = int(ds.get("SamplesPerPixel") or 1)
    if samples > 1 or photometric == "PALETTE COLOR":
        values = to_rgb(raw, ds, path)
        meta.update(photometric="RGB", rgb=True)
        if photometric != "RGB":
            meta["original_photometric"] = photometric
        return values, meta
    values, rescale = modality_lut(raw, ds, multiframe)
    meta["rescale"] = rescale
    return grey_for_display(values, ds, meta), meta


def read_dicom(path: str | Path) -> ImageData:
    """Read one DICOM file: (row, col), (row, col, 3) colour, or (frame, row, col[, 3]) multi-frame.

    Raises ReadError naming the file for anything that is not a decodable DICOM image.
    """
    path = Path(path)
    try:
        return _read_dicom(path)
    except DamagedValue as e:
        raise ReadError(path, f"{e}: the DICOM header is damaged") from None
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError, NotImplementedError) as e:
        # pydicom converts an element's bytes when the element is first used, so a damaged one (a VR of
        # 'UQ' after a flipped bit) fails wherever that is; failures raised in our own code stay bugs
        if isinstance(e, ReadError) or not _raised_in_pydicom(e):
            raise
        raise ReadError(path, f"a DICOM element is damaged ({type(e).__name__}: {e})") from None


def _raised_in_pydicom(e: BaseException) -> bool:
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and f"{os.sep}pydicom{os.sep}" in tb.tb_frame.f_code.co_filename


def check_frame_shape(raw: np.ndarray, ds: Dataset, path: Path, n_frames: int) -> None:
    """The decoded pixels must be what Rows, Columns, SamplesPerPixel and NumberOfFrames say: pydicom
    returns extra frames (with a warning) when the header says fewer than the data holds."""
    rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    samples = int(ds.get("SamplesPerPixel") or 1)
    expected = (*((n_frames,) if n_frames > 1 else ()), rows, cols, *((samples,) if samples > 1 else ()))
    if tuple(raw.shape) != expected:
        raise ReadError(
            path,
            f"pixel data decodes to shape {tuple(raw.shape)} but the header says {n_frames} "
            f"frame(s) of {rows} x {cols} pixels with {samples} sample(s): Rows, Columns, "
            "NumberOfFrames or SamplesPerPixel is wrong",
        )


def _read_dicom(path: Path) -> ImageData:
    ds = read_header(path, pixels=True)
    raw = decode_pixels(ds, path)
    n_frames = number_of_frames(ds)
    check_frame_shape(raw, ds, path, n_frames)
    multiframe = n_frames > 1
    values, pixel_meta = pixels_to_values(raw, ds, path, multiframe)
    rgb = bool(pixel_meta.pop("rgb", False))

    meta = base_metadata(ds, path)
    meta.update(pixel_meta)
    in_plane, in_plane_source, notes = pixel_spacing(ds)
    meta["pixel_spacing_source"] = in_plane_source
    spacing = list(in_plane or (1.0, 1.0))
    known = in_plane is not None
    if multiframe:
        step, step_source, extra = frame_spacing(ds, n_frames)
        meta.update(extra)
        meta["slice_spacing_source"] = step_source
        spacing.insert(0, step or 1.0)
        known = known and step is not None
        meta["n_frames"] = n_frames
    iop = ds.get("ImageOrientationPatient")
    if iop is not None:
        if orientation_normal(iop) is not None:
            meta["image_orientation_patient"] = [float(x) for x in iop]
        else:
            notes.append(f"ImageOrientationPatient {str(iop)!r} ignored: not six numbers of two directions")
    if notes:
        meta["spacing_notes"] = notes
    meta["spacing_known"] = known
    return ImageData(np.ascontiguousarray(values), tuple(spacing), meta, rgb=rgb)
