"""The slices of a DICOM series decoded one file at a time, with the values ``read_dicom_series`` gives.

``read_dicom_series`` decodes every file and then picks the volume's dtype from
the values it found. A reader that decodes one slice at a time must know the
dtype before it has seen them: it takes it from the headers, from the range the
stored bits allow after the Modality LUT (12-bit CT with an intercept of -1024
is int16, as the whole-volume reader makes it). A slice holding values outside
that range (pixel data at odds with BitsStored) is a ReadError naming the file
rather than a silently wrapped value.

Grey series only: colour slices, and a Modality LUT Sequence (whose output type
only the table knows), are read whole by the caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import ReadError
from medseg.io.dicom_header import DamagedValue, read_header
from medseg.io.dicom_pixels import decode_pixels, modality_lut, output_dtype, rescale_of, stored_range
from medseg.io.dicom_series import SeriesScan, series_metadata
from medseg.io.dicom_window import grey_for_display, is_monochrome1


def decodes_by_slice(scan: SeriesScan) -> bool:
    """True when the slices of this series can be decoded one at a time with known output values."""
    if len(scan.files) < 2 or scan.is_colour:
        return False
    return not any(scan.headers[f].get("ModalityLUTSequence") for f in scan.files)


class SeriesSlices:
    """Stored slice ``k`` of a scanned grey series (``scan.files[k]``) as values, one file decoded per call."""

    def __init__(self, scan: SeriesScan):
        if not decodes_by_slice(scan):
            raise ValueError(f"{scan.folder}: this series is decoded whole (colour, a Modality LUT, one file)")
        self.scan = scan
        headers = [scan.headers[f] for f in scan.files]
        self._mid = headers[len(headers) // 2]
        try:
            self._rescales = [rescale_of(ds, None) for ds in headers]
            self.dtype, self._range = _values_dtype(headers, self._rescales)
        except DamagedValue as e:
            raise ReadError(scan.folder, f"{e}: a DICOM header of the series is damaged") from None
        self._invert = is_monochrome1(self._mid)
        self._inversion = stored_range(self._mid) if self._invert else None

    def __len__(self) -> int:
        return len(self.scan.files)

    def metadata(self) -> dict[str, Any]:
        """The series' metadata as ``read_dicom_series`` gives it (windows, inversion, rescale, affine ...)."""
        meta = series_metadata(self.scan)
        from pydicom.pixels.utils import pixel_dtype

        meta["dtype"] = str(pixel_dtype(self._mid))
        present = [r for r in self._rescales if r is not None]
        meta["rescale"] = {"slope": present[0][0], "intercept": present[0][1]} if present else None
        if present and len(set(present)) > 1:
            meta["rescale"]["varies"] = True
        grey_for_display(np.zeros(0, self.dtype), self._mid, meta)  # windows and inversion from the header
        return meta

    def read(self, k: int) -> np.ndarray:
        """Stored slice ``k`` (row, col) in ``self.dtype``."""
        path = self.scan.files[k]
        try:
            return self._read(path)
        except DamagedValue as e:
            raise ReadError(path, f"{e}: the DICOM header is damaged") from None

    def _read(self, path: Path) -> np.ndarray:
        ds = read_header(path, pixels=True)
        raw = decode_pixels(ds, path)
        rows_cols = self.scan.rows_cols
        if raw.shape != rows_cols:
            raise ReadError(path, f"decoded slice is {raw.shape}, the series is {rows_cols}")
        values, _ = modality_lut(raw, ds, False)
        if self._invert:
            lo, hi = self._inversion
            wide = values.astype(np.float64 if values.dtype.kind == "f" else np.int64)
            values = (int(lo) + int(hi) if self.dtype.kind in "iu" else lo + hi) - wide
        if values.size and self.dtype.kind in "iu":
            info = np.iinfo(self.dtype)
            if values.min() < info.min or values.max() > info.max:
                raise ReadError(
                    path,
                    f"pixel values {values.min()}..{values.max()} lie outside {self._range[0]:g}..{self._range[1]:g}, "
                    "the range its BitsStored and rescale allow",
                )
        return np.ascontiguousarray(values, dtype=self.dtype)


def _values_dtype(headers: list, rescales: list) -> tuple[np.dtype, tuple[float, float]]:
    """The dtype every slice's values fit (as ``read_dicom_series`` chooses it), and the value range."""
    from pydicom.pixels.utils import pixel_dtype

    stored = np.dtype(pixel_dtype(headers[0]))
    lo = min(stored_range(ds)[0] for ds in headers)
    hi = max(stored_range(ds)[1] for ds in headers)
    dtype = output_dtype(stored, rescales, False)
    if dtype.kind == "i" and dtype.itemsize >= 4:
        for narrow in (np.int16, np.int32):
            info = np.iinfo(narrow)
            if info.min <= lo and hi <= info.max:
                return np.dtype(narrow), (lo, hi)
    return dtype, (lo, hi)
