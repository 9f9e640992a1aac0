"""DICOM pixel decoding, Modality LUT, MONOCHROME1 inversion and colour conversion.

Value pipeline: stored values -> Modality LUT (RescaleSlope/Intercept, so CT is in
Hounsfield units) -> MONOCHROME1 inversion. Window centres from the file are in
Modality LUT output units, so they go through the same inversion.

Output dtype (chosen so HU stay exact and small):
  * no rescale, or slope 1 and intercept 0: the stored integer dtype;
  * integer slope and intercept: int16 when every value fits, else int32 (int64 if needed);
  * any other rescale (or a Modality LUT Sequence): float32 / the LUT's dtype.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, get_decoder

from medseg.errors import ReadError
from medseg.io.dicom_header import (
    check_transfer_syntax,
    functional_value,
    header_float,
    number_of_frames,
    transfer_syntax,
    uid_name,
)
from medseg.io.limits import check_size

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _check_decodable(ds: Dataset, path: Path) -> None:
    """Raise a clear ReadError before decoding when no installed package handles the compression."""
    ts = transfer_syntax(ds)
    if ts is None or not ts.is_compressed:
        return
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        raise ReadError(
            path, f"pixel data is compressed as '{ts.name}' ({ts}), which pydicom has no decoder for"
        ) from None
    if not decoder.is_available:
        needs = "; ".join(decoder.missing_dependencies) or "an image codec plugin"
        raise ReadError(
            path,
            f"pixel data is compressed as '{ts.name}' ({ts}) and no installed "
            f"package decodes it; install one of: {needs}",
        )


def _check_claimed_size(ds: Dataset, path: Path) -> None:
    """Rows x Columns x NumberOfFrames against the limits: a compressed stream decodes to what the header says."""
    try:
        rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    except (TypeError, ValueError):
        raise ReadError(path, f"Rows / Columns {ds.get('Rows')!r} / {ds.get('Columns')!r} are not numbers") from None
    frames = number_of_frames(ds)
    check_size(path, (frames, rows, cols) if frames > 1 else (rows, cols))


def decode_pixels(ds: Dataset, path: str | Path) -> np.ndarray:
    """Stored pixel values, (row, col[, sample]) or (frame, row, col[, sample]).

    pydicom converts YBR_FULL/YBR_FULL_422/YBR_ICT/YBR_RCT to RGB while decoding
    (its default ``as_rgb=True``), so colour arrives as RGB here.
    """
    path = Path(path)
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        sop = uid_name(ds.get("SOPClassUID"))
        kind = f" ({sop})" if sop is not None else ""
        raise ReadError(path, f"holds no pixel data{kind}: not an image, or the file is truncated")
    check_transfer_syntax(ds, path)
    _check_decodable(ds, path)
    _check_claimed_size(ds, path)
    ts = transfer_syntax(ds)
    try:
        return ds.pixel_array
    except Exception as e:  # noqa: BLE001 - decoders raise many types; all mean "unreadable pixels"
        how = f" ({ts.name})" if ts is not None else ""
        raise ReadError(path, f"cannot decode the pixel data{how}: {e}") from e


def rescale_of(ds: Dataset, frame: int | None) -> tuple[float, float] | None:
    """(slope, intercept) from the top level, else from enhanced multi-frame functional groups."""
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        return header_float(ds.RescaleSlope, "RescaleSlope"), header_float(ds.RescaleIntercept, "RescaleIntercept")
    slope = functional_value(ds, "PixelValueTransformationSequence", "RescaleSlope", frame)
    intercept = functional_value(ds, "PixelValueTransformationSequence", "RescaleIntercept", frame)
    if slope is None or intercept is None:
        return None
    return header_float(slope, "RescaleSlope"), header_float(intercept, "RescaleIntercept")


def _rescale_ds(rescale: tuple[float, float]) -> Dataset:
    d = Dataset()
    d.RescaleSlope, d.RescaleIntercept = rescale
    return d


def frame_rescales(ds: Dataset, n_frames: int) -> list[tuple[float, float] | None]:
    """One (slope, intercept) or None per frame."""
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        return [rescale_of(ds, None)] * n_frames
    return [rescale_of(ds, i) for i in range(n_frames)]


def _is_identity(r: tuple[float, float] | None) -> bool:
    return r is None or (r[0] == 1.0 and r[1] == 0.0)


def _is_integral(r: tuple[float, float] | None) -> bool:
    return r is None or (float(r[0]).is_integer() and float(r[1]).is_integer())


def output_dtype(stored: np.dtype, rescales: list, has_lut: bool) -> np.dtype | None:
    """dtype to compute into: stored dtype, int32/int64 (narrowed later), float32, or None (LUT decides)."""
    if has_lut:
        return None
    if all(_is_identity(r) for r in rescales):
        return np.dtype(stored)
    if all(_is_integral(r) for r in rescales):
        return np.dtype(np.int64 if np.dtype(stored).itemsize >= 4 else np.int32)
    return np.dtype(np.float32)


def modality_lut(raw: np.ndarray, ds: Dataset, multiframe: bool) -> tuple[np.ndarray, dict[str, Any] | None]:
    """Apply the Modality LUT (pydicom's apply_modality_lut), per frame for enhanced multi-frame files.

    Returns the values and the ``rescale`` metadata ({"slope", "intercept"}, with
    ``"varies": True`` when frames differ), or None when the file has no rescale.
    """
    if ds.get("ModalityLUTSequence"):
        return apply_modality_lut(raw, ds), {"modality_lut_sequence": True}
    frames = raw if multiframe else raw[np.newaxis]
    rescales = frame_rescales(ds, len(frames))
    dtype = output_dtype(raw.dtype, rescales, False)
    if all(_is_identity(r) for r in rescales):
        out = raw
    else:
        out = np.empty(frames.shape, dtype=dtype)
        for i, (frame, r) in enumerate(zip(frames, rescales)):
            values = frame if r is None else apply_modality_lut(frame, _rescale_ds(r))
            out[i] = np.rint(values) if dtype.kind == "i" else values
        out = narrow_int(out) if multiframe else narrow_int(out[0])
    present = [r for r in rescales if r is not None]
    if not present:
        return out, None
    info: dict[str, Any] = {"slope": present[0][0], "intercept": present[0][1]}
    if len(set(present)) > 1:
        info["varies"] = True
    return out, info


def narrow_int(a: np.ndarray) -> np.ndarray:
    """int64/int32 -> the smallest of int16/int32 that holds every value exactly (CT HU fit int16)."""
    if a.dtype not in (np.int32, np.int64) or a.size == 0:
        return a
    lo, hi = int(a.min()), int(a.max())
    for dtype in (np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return a.astype(dtype)
    return a


def stored_range(ds: Dataset) -> tuple[float, float]:
    """Smallest and largest value the stored bits allow, after the Modality LUT."""
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16)
    if int(ds.get("PixelRepresentation") or 0) == 1:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    else:
        lo, hi = 0, 2**bits - 1
    r = rescale_of(ds, 0)
    if ds.get("ModalityLUTSequence"):
        ends = apply_modality_lut(np.array([lo, hi], dtype=np.int64), ds)
    elif r is not None:
        ends = np.array([lo, hi], dtype=float) * r[0] + r[1]
    else:
        ends = np.array([lo, hi], dtype=float)
    return float(np.min(ends)), float(np.max(ends))


def invert_monochrome1(a: np.ndarray, ds: Dataset) -> tuple[np.ndarray, tuple[float, float]]:
    """MONOCHROME1 shows low values bright; flip to MONOCHROME2: new = (max + min) - value.

    max/min are the range the stored bits allow (after the Modality LUT), widened
    to the data if a value lies outside it, so the result stays in the same range
    and dtype. Returns the inverted array and the (min, max) used.
    """
    lo, hi = stored_range(ds)
    if a.size:
        lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
    if a.dtype.kind in "iu" and float(lo).is_integer() and float(hi).is_integer():
        out = (int(lo) + int(hi)) - a.astype(np.int64)
        return _fit_int(out, a.dtype), (lo, hi)
    return ((lo + hi) - a.astype(np.float64)).astype(a.dtype if a.dtype.kind == "f" else np.float32), (lo, hi)


def _fit_int(a: np.ndarray, preferred: np.dtype) -> np.ndarray:
    """``a`` as ``preferred`` when every value fits (a narrowed int16 may not after inversion), else int32/int64."""
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    for dtype in (np.dtype(preferred), np.dtype(np.int32)):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return a.astype(dtype)
    return a


def to_rgb(raw: np.ndarray, ds: Dataset, path: str | Path) -> np.ndarray:
    """PALETTE COLOR through its lookup table; other colour already arrives as RGB from the decoder."""
    if str(ds.get("PhotometricInterpretation", "")).strip() == "PALETTE COLOR":
        try:
            return apply_color_lut(raw, ds)
        except Exception as e:  # noqa: BLE001 - malformed palette descriptors
            raise ReadError(path, f"cannot apply the PALETTE COLOR lookup table: {e}") from e
    return raw
