"""Where the slices of a DICOM series lie: their order, the slice step, and the affine to RAS+ mm.

DICOM places each slice in the patient's LPS frame: voxel (row r, col c) of a
slice lies at ``IPP + c * PixelSpacing[1] * X + r * PixelSpacing[0] * Y`` where
IPP is ImagePositionPatient, X the first (row direction) and Y the second
(column direction) triplet of ImageOrientationPatient. Slices stacked in
position order add ``k * step`` with step the vector from the first slice's
IPP to the next (first to last over n - 1, so a tilted gantry's sheared stack
is kept). LPS turns into RAS+ by negating x and y.

Strict reading (what a dataset index needs, because labels must be compared
on the grid and exports written with it) refuses a series whose geometry
cannot be known exactly: no PixelSpacing, no positions or orientation, a gap
in the slice positions. Each refusal is a ReadError naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from medseg.errors import ReadError
from medseg.io.dicom_file import frame_spacing
from medseg.io.dicom_header import header_float, orientation_normal, pixel_spacing, spacing_along
from medseg.io.volume_orient import DisplayGrid, display_grid

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _floats(ds: Dataset, keyword: str) -> np.ndarray:
    return np.asarray([header_float(x, keyword) for x in ds.get(keyword) or []], dtype=float)


def _instance(ds: Dataset) -> int:
    try:
        return int(ds.get("InstanceNumber"))
    except (TypeError, ValueError):
        return 0


def order_slices(
    files: list[Path], headers: dict[Path, Dataset], folder: Path, strict: bool = False
) -> tuple[list[Path], dict[str, Any]]:
    """Files in slice order, plus slice spacing metadata (``slice_spacing`` None when unknown).

    Ordered by ImagePositionPatient projected on the slice normal when every
    file has a position; a series where only some files have one is a
    ReadError naming a file without (ordering by InstanceNumber would put it
    anywhere). Without positions: by InstanceNumber, else by file name
    (``strict`` refuses both: the series' place in the patient is unknown).
    """
    first = headers[files[0]]
    normal = orientation_normal(first.get("ImageOrientationPatient") or [])
    positions = {f: headers[f].get("ImagePositionPatient") for f in files}
    have = [f for f in files if positions[f] is not None and len(positions[f]) == 3]
    if have and len(have) < len(files):
        missing = next(f for f in files if f not in have)
        raise ReadError(
            missing,
            f"has no ImagePositionPatient while {len(have)} other slices of the series in {folder} have one: "
            "its place in the stack is unknown",
        )
    if normal is not None and have:
        return _by_position(files, headers, folder, normal, strict)
    if strict:
        what = "ImagePositionPatient" if not have else "a valid ImageOrientationPatient"
        raise ReadError(
            files[0], f"has no {what}: where the slices of the series in {folder} lie in the patient is unknown"
        )
    if all(headers[f].get("InstanceNumber") not in (None, "") for f in files):
        ordered, how = sorted(files, key=lambda f: (_instance(headers[f]), f.name)), "InstanceNumber"
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


def _by_position(
    files: list[Path], headers: dict[Path, Dataset], folder: Path, normal: np.ndarray, strict: bool
) -> tuple[list[Path], dict[str, Any]]:
    iop0 = _floats(headers[files[0]], "ImageOrientationPatient")
    for f in files:
        iop = _floats(headers[f], "ImageOrientationPatient")
        if iop.shape != iop0.shape or not np.allclose(iop, iop0, atol=1e-4):
            raise ReadError(
                f,
                f"ImageOrientationPatient {iop.tolist()} differs from {iop0.tolist()} "
                f"of {files[0].name}: the series is not one stack (a localizer?)",
            )
    proj = {f: float(np.dot(_floats(headers[f], "ImagePositionPatient"), normal)) for f in files}
    ordered = sorted(files, key=lambda f: (proj[f], _instance(headers[f]), f.name))
    for a, b in zip(ordered, ordered[1:]):
        if abs(proj[b] - proj[a]) < 1e-4:
            raise ReadError(
                b,
                f"lies at the same position ({proj[b]:.4g} mm along the slice normal) as {a.name}: the series in "
                f"{folder} holds several images per slice (time points or echoes?)",
            )
    step, uniform, steps = spacing_along([proj[f] for f in ordered])
    if strict and not uniform:
        i = int(np.argmax(np.abs(np.abs(steps) - step)))
        a, b = ordered[i], ordered[i + 1]
        raise ReadError(
            b,
            f"lies {abs(steps[i]):.4g} mm from {a.name} where the other slices of the series in {folder} are "
            f"{step:.4g} mm apart: a slice is missing, or the folder holds two stacks",
        )
    return ordered, {
        "slice_order": "ImagePositionPatient",
        "slice_spacing": step,
        "slice_spacing_source": "ImagePositionPatient",
        "slice_spacing_uniform": uniform,
        "slice_positions": [proj[f] for f in ordered],
    }


def require_spacing(ordered: list[Path], headers: dict[Path, Dataset], folder: Path) -> None:
    """ReadError naming the first slice without a usable PixelSpacing (the grid is unknown in mm)."""
    for f in ordered:
        pair, _, notes = pixel_spacing(headers[f])
        if pair is None:
            why = f" ({'; '.join(notes)})" if notes else ""
            raise ReadError(
                f,
                f"has no PixelSpacing{why}: the voxel size of the series in {folder} is unknown, "
                "so its labels cannot be placed on it",
            )


def stack_affine(ordered: list[Path], headers: dict[Path, Dataset], order_meta: dict[str, Any]) -> np.ndarray | None:
    """4x4 from stored (slice, row, col, 1) to RAS+ mm, or None when positions, orientation or spacing
    are unknown or the slices are not evenly spaced (any affine would misplace some of them)."""
    if order_meta.get("slice_order") != "ImagePositionPatient" or not order_meta.get("slice_spacing_uniform"):
        return None
    first = headers[ordered[0]]
    in_plane, _, _ = pixel_spacing(first)
    iop = _floats(first, "ImageOrientationPatient")
    if in_plane is None or iop.shape != (6,):
        return None
    ipp0 = _floats(first, "ImagePositionPatient")
    if len(ordered) > 1:
        step = (_floats(headers[ordered[-1]], "ImagePositionPatient") - ipp0) / (len(ordered) - 1)
    else:
        step = orientation_normal(iop) * float(order_meta.get("slice_spacing") or 1.0)
    lps = np.eye(4)
    lps[:3, 0] = step
    lps[:3, 1] = iop[3:] / np.linalg.norm(iop[3:]) * in_plane[0]
    lps[:3, 2] = iop[:3] / np.linalg.norm(iop[:3]) * in_plane[1]
    lps[:3, 3] = ipp0
    return _LPS_TO_RAS @ lps


def series_grid(
    ordered: list[Path], headers: dict[Path, Dataset], order_meta: dict[str, Any], rows_cols: tuple[int, int]
) -> DisplayGrid | None:
    """The stored stack's display grid (see :mod:`medseg.io.volume_orient`), or None without an affine."""
    affine = stack_affine(ordered, headers, order_meta)
    if affine is None:
        return None
    in_plane, _, _ = pixel_spacing(headers[ordered[0]])
    zooms = (float(order_meta["slice_spacing"]), *in_plane)
    return display_grid(affine, (len(ordered), *rows_cols), zooms)
