"""DICOM and NIfTI files holding one 2-D slice, as images (and NIfTI as masks) in the 2-D layouts.

A DICOM file of one frame, or a NIfTI file with one voxel along one axis
(nnU-Net's 2-D NIfTI datasets store ``(x, y, 1)``), is a 2-D image like a PNG:
its rows and columns come from the header, never from decoding pixels. A
multi-frame DICOM or a NIfTI of several slices is a volume: the 2-D layouts
list it as a problem and the volume layouts index it.
"""

from __future__ import annotations

from pathlib import Path

from medseg.errors import NotASliceError, ReadError

DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
NIFTI_SUFFIXES = (".nii.gz", ".nii")
SLICE_SUFFIXES = (*DICOM_SUFFIXES, *NIFTI_SUFFIXES)


def is_nifti_name(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def is_dicom_name(path: Path) -> bool:
    """A DICOM suffix, or no suffix at all and DICOM content (scanners often write ``IM0001``)."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    if path.suffix:
        return False
    from medseg.io.dicom import is_dicom_file

    return is_dicom_file(path)


def is_slice_file(path: Path) -> bool:
    return is_nifti_name(path) or is_dicom_name(path)


def file_stem(path: Path) -> str:
    """The name without its suffix, ``.nii.gz`` counted as one suffix."""
    name = path.name
    if name.lower().endswith(".nii.gz"):
        return name[: -len(".nii.gz")]
    return path.stem


def slice_size(path: Path) -> tuple[int, int]:
    """(rows, cols) of a 2-D DICOM or NIfTI slice from its header, as ``Sample.load_image`` returns it.

    NotASliceError naming the file for a volume (several frames or slices);
    ReadError for a header that cannot be read.
    """
    if is_nifti_name(path):
        from medseg.io.nifti import read_nifti_grid

        grid, _ = read_nifti_grid(path)
        flat = [n for n in grid.shape if n != 1]
        if len(flat) > 2:
            raise NotASliceError(path, f"{_volume(grid.shape)}: a 2-D layout indexes files of one slice")
        rows, cols = (*([1] * (2 - len(flat))), *flat)
        return rows, cols
    from medseg.io.dicom_header import number_of_frames, read_header

    ds = read_header(path, pixels=False)
    frames = number_of_frames(ds)
    if frames > 1:
        raise NotASliceError(
            path, f"is a multi-frame DICOM ({frames} frames), a volume: a 2-D layout indexes files of one frame"
        )
    try:
        return int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        raise ReadError(path, "DICOM header has no Rows/Columns: not an image") from None


def flat_axis(shape: tuple[int, ...]) -> int | None:
    """The axis a one-slice NIfTI array (slice, row, col) drops to be 2-D, or None when it is not one."""
    if len(shape) != 3 or 1 not in shape:
        return None
    return shape.index(1)


def _volume(shape) -> str:
    return f"is a volume of {shape[0]} slices ({'x'.join(str(n) for n in shape)})"
