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
    rest, or two slices at one position, is a ReadError naming the file(s).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from medseg.errors import ReadError
from medseg.io.dicom_file import frame_spacing, read_dicom
from medseg.io.dicom_header import (
    DamagedValue,
    base_metadata,
    header_float,
    is_dicom_file,
    number_of_frames,
    orientation_normal,
    pixel_spacing,
    read_header,
    spacing_along,
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


def _order(files: list[Path], headers: dict[Path, Dataset], folder: Path) -> tuple[list[Path], dict[str, Any]]:
    """Files in slice order, plus slice spacing metadata (spacing None when unknown)."""

    def instance(f: Path) -> int:
        try:
            return int(headers[f].get("InstanceNumber"))
        except (TypeError, ValueError):
            return 0

    first = headers[files[0]]
    normal = orientation_normal(first.get("ImageOrientationPatient") or [])
    positions = [headers[f].get("ImagePositionPatient") for f in files]
    if normal is not None and all(p is not None and len(p) == 3 for p in positions):
        iop0 = np.asarray([header_float(x, "ImageOrientationPatient") for x in first.ImageOrientationPatient])
        for f in files:
            iop = np.asarray(
                [
                    header_float(x, "ImageOrientationPatient")
                    for x in headers[f].get("ImageOrientationPatient") or [0] * 6
                ]
            )
            if not np.allclose(iop, iop0, atol=1e-4):
                raise ReadError(
                    f,
                    f"ImageOrientationPatient {iop.tolist()} differs from {iop0.tolist()} "
                    f"of {files[0].name}: the series is not one stack (a localizer?)",
                )
        proj = {
            f: float(np.dot([header_float(x, "ImagePositionPatient") for x in headers[f].ImagePositionPatient], normal))
            for f in files
        }
        ordered = sorted(files, key=lambda f: (proj[f], instance(f), f.name))
        for a, b in zip(ordered, ordered[1:]):
            if abs(proj[b] - proj[a]) < 1e-4:
                raise ReadError(
                    folder,
                    f"{a.name} and {b.name} lie at the same position: the series holds "
                    "several images per slice (time points or echoes?)",
                )
        step, uniform, _ = spacing_along([proj[f] for f in ordered])
        return ordered, {
            "slice_order": "ImagePositionPatient",
            "slice_spacing": step,
            "slice_spacing_source": "ImagePositionPatient",
            "slice_spacing_uniform": uniform,
            "slice_positions": [proj[f] for f in ordered],
        }
    if all(headers[f].get("InstanceNumber") not in (None, "") for f in files):
        ordered, how = sorted(files, key=lambda f: (instance(f), f.name)), "InstanceNumber"
    else:
        ordered, how = sorted(files, key=lambda f: f.name), "file name"
    step, source, extra = frame_spacing(headers[ordered[0]], 1)
    return ordered, {
        "slice_order": how,
        "slice_spacing": step,
        "slice_spacing_source": source,
        "slice_spacing_uniform": None,
        **extra,
    }


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


def read_dicom_series(folder: str | Path, recursive: bool = False) -> ImageData:
    """Read the largest DICOM series in ``folder`` as (slice, row, col[, 3]); see the module docstring."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReadError(folder, "not a folder (read a single file with read_dicom)")
    try:
        return _read_series(folder, recursive)
    except DamagedValue as e:
        raise ReadError(folder, f"{e}: a DICOM header of the series is damaged") from None


def _read_series(folder: Path, recursive: bool) -> ImageData:
    headers, skipped = _scan(_files(folder, recursive))
    if not headers:
        raise ReadError(folder, f"holds no DICOM image files ({len(skipped)} other files skipped)")
    groups: dict[str, list[Path]] = defaultdict(list)
    for f in headers:
        groups[str(headers[f].get("SeriesInstanceUID", ""))].append(f)
    ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[1][0]))
    uid, files = ranked[0]
    series_meta: dict[str, Any] = {
        "skipped_files": sorted(skipped),
        "skipped_reasons": skipped,
        "other_series": [_describe(u, fs, headers) for u, fs in ranked[1:]],
    }
    if len(files) == 1:
        image = read_dicom(files[0])
        image.metadata.update(series_meta, source=str(folder), files=[str(files[0])])
        return image
    multi = [f for f in files if number_of_frames(headers[f]) > 1]
    if multi:
        raise ReadError(
            folder,
            f"series {uid} holds {len(multi)} multi-frame files ({multi[0].name}, ...); "
            "read them one at a time with read_dicom",
        )
    _check_shapes(files, headers, folder)
    ordered, order_meta = _order(files, headers, folder)
    volume, pixel_meta = _stack(ordered, headers)

    mid = headers[ordered[len(ordered) // 2]]
    meta = base_metadata(mid, folder)
    meta.update(pixel_meta)
    rgb = volume.ndim == 4
    if rgb:
        photometric = str(mid.get("PhotometricInterpretation", ""))
        meta["photometric"] = "RGB"
        if photometric != "RGB":
            meta["original_photometric"] = photometric
    else:
        volume = grey_for_display(volume, mid, meta)
    in_plane, in_plane_source, notes = pixel_spacing(headers[ordered[0]])
    step = order_meta.pop("slice_spacing")
    meta.update(order_meta)
    meta.update(series_meta)
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
    spacing = (step or 1.0, *(in_plane or (1.0, 1.0)))
    return ImageData(volume, spacing, meta, rgb=rgb)
