"""Reading a folder of single-slice DICOM files as one (slice, row, col) volume.

Rules:
  * only the folder's own files (``recursive=True`` to descend); files that are not
    DICOM images (text, DICOMDIR, reports, damaged headers) are ignored and listed
    in ``skipped_files`` with their reasons in ``skipped_reasons``;
  * files are grouped by SeriesInstanceUID; with several series the largest is read
    and the others are described in ``other_series``;
  * slices are ordered by ImagePositionPatient projected on the slice normal
    (from ImageOrientationPatient), so slice 0 lies furthest along -normal (for
    axial CT in LPS: the most inferior); without positions, by InstanceNumber,
    else by file name;
  * slice spacing is the median step between positions; ``slice_spacing_uniform``
    is False when a step differs from it by more than 1 % (or 0.01 mm);
  * a slice whose size, orientation or photometric interpretation differs from the
    rest, two slices at one position, or a slice without a position among slices
    with one, is a ReadError naming the file;
  * with positions, orientation and PixelSpacing known and the slices evenly
    spaced, ``metadata['affine']`` maps (slice, row, col, 1) to RAS+ mm (see
    :mod:`medseg.io.dicom_geometry`) and the volume is turned to the display
    order NIfTI volumes have (``orientation`` "SPL", :mod:`medseg.io.volume_orient`),
    so a NIfTI label of the series lies on the same display grid. An axial
    series in the usual orientation comes back as stored; ``files`` (and
    ``sop_uids``, ``slice_positions``) stay in stored order, ``stored_spacing``
    is (slice step, row, col) before the turn;
  * ``strict=True`` (a dataset index) also refuses, naming a file, a folder of
    several series, a lone slice, a series without PixelSpacing or positions,
    and unevenly spaced slices (a slice missing).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from medseg.errors import ReadError
from medseg.io.dicom_file import read_dicom
from medseg.io.dicom_geometry import order_slices, require_spacing, series_grid
from medseg.io.dicom_header import (
    DamagedValue,
    base_metadata,
    is_dicom_file,
    number_of_frames,
    pixel_spacing,
    read_header,
    uid_name,
)
from medseg.io.dicom_pixels import (
    decode_pixels,
    modality_lut,
    narrow_int,
    output_dtype,
    rescale_of,
    to_rgb,
)
from medseg.io.dicom_window import grey_for_display
from medseg.io.types import ImageData
from medseg.io.volume_orient import ORIENTATION, DisplayGrid


def _files(folder: Path, recursive: bool) -> list[Path]:
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file())


def is_dicom_series_folder(folder: str | Path) -> bool:
    """True when ``folder`` directly holds at least one DICOM file. Never raises."""
    try:
        p = Path(folder)
        return p.is_dir() and any(is_dicom_file(f) for f in _files(p, False))
    except Exception:  # noqa: BLE001 - a detector answers, it does not fail
        return False


def _scan(files: list[Path]) -> tuple[dict[Path, Dataset], dict[str, str]]:
    """Headers of the DICOM image files, and {file: reason} for every other file."""
    headers: dict[Path, Dataset] = {}
    skipped: dict[str, str] = {}
    for f in files:
        if not is_dicom_file(f):
            skipped[str(f)] = "not a DICOM file"
            continue
        try:
            ds = read_header(f, pixels=False)
        except ReadError as e:
            skipped[str(f)] = e.reason
            continue
        if "Rows" not in ds or "Columns" not in ds:
            sop = uid_name(ds.get("SOPClassUID"))
            skipped[str(f)] = f"DICOM without an image ({sop or 'no SOP class'})"
            continue
        headers[f] = ds
    return headers, skipped


def _describe(uid: str, files: list[Path], headers: dict[Path, Dataset]) -> dict[str, Any]:
    ds = headers[files[0]]
    number = ds.get("SeriesNumber")
    return {
        "series_uid": uid or None,
        "n_files": len(files),
        "modality": str(ds.get("Modality", "")) or None,
        "series_number": None if number in (None, "") else int(number),
        "series_description": str(ds.get("SeriesDescription", "")) or None,
        "first_file": str(files[0]),
    }


def _check_shapes(files: list[Path], headers: dict[Path, Dataset], folder: Path) -> None:
    shape = {
        f: (int(headers[f].Rows), int(headers[f].Columns), int(headers[f].get("SamplesPerPixel") or 1)) for f in files
    }
    common, n_common = Counter(shape.values()).most_common(1)[0]
    odd = [f for f in files if shape[f] != common]
    if odd:
        r, c, s = shape[odd[0]]
        more = f" (and {len(odd) - 1} more)" if len(odd) > 1 else ""
        raise ReadError(
            odd[0],
            f"slice is {r}x{c} with {s} sample(s) per pixel, but {n_common} other "
            f"slices of the series in {folder} are {common[0]}x{common[1]} with "
            f"{common[2]}{more}",
        )
    photometric = {f: str(headers[f].get("PhotometricInterpretation", "")) for f in files}
    first = photometric[files[0]]
    for f in files:
        if photometric[f] != first:
            raise ReadError(
                f,
                f"photometric interpretation {photometric[f]} differs from "
                f"{first} of {files[0].name} in the same series",
            )


def _stack(ordered: list[Path], headers: dict[Path, Dataset]) -> tuple[np.ndarray, dict[str, Any]]:
    """Decoded, rescaled slices in one array, plus rescale metadata."""
    rescales = [rescale_of(headers[f], None) for f in ordered]
    has_lut = any(headers[f].get("ModalityLUTSequence") for f in ordered)
    volume = None
    meta: dict[str, Any] = {}
    for i, f in enumerate(ordered):
        ds = read_header(f, pixels=True)
        raw = decode_pixels(ds, f)
        if number_of_frames(ds) > 1:
            raise ReadError(f, "is multi-frame inside a multi-file series; read it alone with read_dicom")
        colour = str(ds.get("PhotometricInterpretation", "")).strip() == "PALETTE COLOR"
        if colour or int(ds.get("SamplesPerPixel") or 1) > 1:
            values = to_rgb(raw, ds, f)
        else:
            values, _ = modality_lut(raw, ds, False)
        if volume is None:
            meta["dtype"] = str(raw.dtype)
            # RGB slices keep their dtype; grey ones get the series-wide rescale dtype
            dtype = values.dtype if values.ndim == 3 else (output_dtype(raw.dtype, rescales, has_lut) or values.dtype)
            volume = np.empty((len(ordered),) + values.shape, dtype=dtype)
        if values.shape != volume.shape[1:]:
            raise ReadError(f, f"decoded slice is {values.shape}, the series is {volume.shape[1:]}")
        volume[i] = values
    present = [r for r in rescales if r is not None]
    if present:
        meta["rescale"] = {"slope": present[0][0], "intercept": present[0][1]}
        if len(set(present)) > 1:
            meta["rescale"]["varies"] = True
    else:
        meta["rescale"] = None
    return narrow_int(volume), meta


@dataclass
class SeriesScan:
    """A series found by its headers alone: its files in slice order and what the headers say.

    ``headers`` holds every DICOM image header of the folder (all series);
    ``files`` only the chosen series', in stored slice order.
    """

    folder: Path
    uid: str
    files: list[Path]
    headers: dict[Path, Dataset]
    order_meta: dict[str, Any] = field(default_factory=dict)
    series_meta: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_cols(self) -> tuple[int, int]:
        ds = self.headers[self.files[0]]
        return int(ds.Rows), int(ds.Columns)

    @property
    def is_colour(self) -> bool:
        ds = self.headers[self.files[0]]
        photometric = str(ds.get("PhotometricInterpretation", "")).strip()
        return photometric == "PALETTE COLOR" or int(ds.get("SamplesPerPixel") or 1) > 1

    def grid(self) -> DisplayGrid | None:
        """The display grid of the stack (None when positions, orientation or spacing are unknown)."""
        if len(self.files) < 2 and not self.order_meta:
            return None
        return series_grid(self.files, self.headers, self.order_meta, self.rows_cols)


def scan_series(folder: str | Path, recursive: bool = False, *, strict: bool = False) -> SeriesScan:
    """Read the headers of the largest series in ``folder`` and order its slices; no pixel is decoded.

    ``strict`` (a dataset index) refuses, naming a file, what the loop cannot use:
    a folder holding more than one series, a single slice, no PixelSpacing, no
    positions or orientation, unevenly spaced slices (a missing slice).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ReadError(folder, "not a folder (read a single file with read_dicom)")
    try:
        return _scan_series(folder, recursive, strict)
    except DamagedValue as e:
        raise ReadError(folder, f"{e}: a DICOM header of the series is damaged") from None


def _scan_series(folder: Path, recursive: bool, strict: bool) -> SeriesScan:
    headers, skipped = _scan(_files(folder, recursive))
    if not headers:
        raise ReadError(folder, f"holds no DICOM image files ({len(skipped)} other files skipped)")
    groups: dict[str, list[Path]] = defaultdict(list)
    for f in headers:
        groups[str(headers[f].get("SeriesInstanceUID", ""))].append(f)
    ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[1][0]))
    uid, files = ranked[0]
    if strict and len(ranked) > 1:
        other_uid, other = ranked[1]
        raise ReadError(
            other[0],
            f"belongs to series {other_uid or '(no SeriesInstanceUID)'} ({len(other)} files) while {len(files)} "
            f"files of {folder}, e.g. {files[0].name}, belong to series {uid or '(no SeriesInstanceUID)'}: "
            "one folder holds one series (move the others to folders of their own)",
        )
    scan = SeriesScan(
        folder,
        uid,
        files,
        headers,
        series_meta={
            "skipped_files": sorted(skipped),
            "skipped_reasons": skipped,
            "other_series": [_describe(u, fs, headers) for u, fs in ranked[1:]],
        },
    )
    if len(files) == 1:
        if strict:
            raise ReadError(files[0], f"is the only slice of the series in {folder}: a volume needs two or more")
        return scan
    multi = [f for f in files if number_of_frames(headers[f]) > 1]
    if multi:
        raise ReadError(
            folder,
            f"series {uid} holds {len(multi)} multi-frame files ({multi[0].name}, ...); "
            "read them one at a time with read_dicom",
        )
    _check_shapes(files, headers, folder)
    scan.files, scan.order_meta = order_slices(files, headers, folder, strict)
    if strict:
        require_spacing(scan.files, headers, folder)
    return scan


def series_metadata(scan: SeriesScan) -> dict[str, Any]:
    """The header part of a series' metadata (what ``read_dicom_series`` returns, less the pixel part)."""
    ordered, headers = scan.files, scan.headers
    mid = headers[ordered[len(ordered) // 2]]
    meta = base_metadata(mid, scan.folder)
    order_meta = dict(scan.order_meta)
    step = order_meta.pop("slice_spacing")
    in_plane, in_plane_source, notes = pixel_spacing(headers[ordered[0]])
    meta.update(order_meta)
    meta.update(scan.series_meta)
    meta.update(
        sop_uids=[str(headers[f].get("SOPInstanceUID", "")) or None for f in ordered],
        files=[str(f) for f in ordered],
        n_slices=len(ordered),
        pixel_spacing_source=in_plane_source,
        spacing_known=in_plane is not None and step is not None,
    )
    iop = mid.get("ImageOrientationPatient")
    if iop is not None:
        meta["image_orientation_patient"] = [float(x) for x in iop]
    if notes:
        meta["spacing_notes"] = notes
    meta["stored_spacing"] = [step or 1.0, *(in_plane or (1.0, 1.0))]
    grid = scan.grid()
    if grid is not None:
        meta.update(
            affine=grid.geometry.matrix.tolist(),
            orientation=ORIENTATION,
            original_orientation=grid.original_orientation,
        )
    elif meta["slice_order"] == "ImagePositionPatient" and not meta["slice_spacing_uniform"]:
        meta.setdefault("spacing_notes", []).append(
            "slice positions are not evenly spaced: no affine (the volume is shown as stored)"
        )
    return meta


def read_dicom_series(folder: str | Path, recursive: bool = False, *, strict: bool = False) -> ImageData:
    """Read the largest DICOM series in ``folder`` as (slice, row, col[, 3]); see the module docstring."""
    scan = scan_series(folder, recursive, strict=strict)
    try:
        return _read_series(scan)
    except DamagedValue as e:
        raise ReadError(scan.folder, f"{e}: a DICOM header of the series is damaged") from None


def _read_series(scan: SeriesScan) -> ImageData:
    if len(scan.files) == 1:
        image = read_dicom(scan.files[0])
        image.metadata.update(scan.series_meta, source=str(scan.folder), files=[str(scan.files[0])])
        return image
    volume, pixel_meta = _stack(scan.files, scan.headers)
    meta = series_metadata(scan)
    meta.update(pixel_meta)
    mid = scan.headers[scan.files[len(scan.files) // 2]]
    rgb = volume.ndim == 4
    if rgb:
        photometric = str(mid.get("PhotometricInterpretation", ""))
        meta["photometric"] = "RGB"
        if photometric != "RGB":
            meta["original_photometric"] = photometric
    else:
        volume = grey_for_display(volume, mid, meta)
    grid = scan.grid()
    if grid is None:
        return ImageData(volume, tuple(meta["stored_spacing"]), meta, rgb=rgb)
    return ImageData(grid.to_display(volume), grid.geometry.spacing, meta, rgb=rgb)
