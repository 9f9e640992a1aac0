"""File-system helpers shared by the layout indexers: listing, naming, header sizes."""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from medseg.errors import ReadError
from medseg.io.limits import check_size, open_image

# 2-D raster formats a dataset layout may hold (volumes and DICOM are not layouts).
RASTER_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})

# Source data by file name, whatever reads it (volumes and DICOM too): what a dataset's folders are
# protected for (medseg.destinations), a broader net than the rasters a layout indexes.
SOURCE_DATA_SUFFIXES = (*sorted(RASTER_SUFFIXES), ".nii", ".nii.gz", ".nrrd", ".mha", ".mhd", ".dcm", ".ima")

# Files that operating systems and archivers drop into folders; never a problem.
_SYSTEM_JUNK = frozenset({"thumbs.db", "desktop.ini"})

# ``1_mask.png``, ``1-seg.png``, ``1_label.png`` all belong to image ``1``.
MASK_SUFFIX = re.compile(r"[_\-. ](mask|masks|seg|segmentation|label|labels|gt|groundtruth)$", re.IGNORECASE)


def is_junk(path: Path) -> bool:
    return _junk_name(path.name)


def _junk_name(name: str) -> bool:
    return name.startswith(".") or name.lower() in _SYSTEM_JUNK or name == "__MACOSX"


def child_dir(folder: Path, names: tuple[str, ...]) -> Path | None:
    """The first sub-folder whose name matches one of ``names`` (case- and space-insensitive)."""
    wanted = [norm_name(n) for n in names]
    try:
        subdirs = {norm_name(p.name): p for p in sorted(folder.iterdir()) if p.is_dir() and not is_junk(p)}
    except OSError:
        return None
    for w in wanted:
        if w in subdirs:
            return subdirs[w]
    return None


def norm_name(name: str) -> str:
    """Folder name for matching: lower case, without spaces, underscores and hyphens."""
    return re.sub(r"[\s_\-]", "", name).lower()


def list_files(folder: Path) -> list[Path]:
    """Visible regular files of ``folder`` (not recursive), sorted by name."""
    return [folder / name for name in list_names(folder)]


def list_names(folder: Path) -> list[str]:
    """The names of ``list_files``, in its order (sorted as Paths sort: case-folded on Windows). From the
    entries' own types (no stat each) and as strings: sorting 100,000 Paths took 0.6 s."""
    with os.scandir(folder) as it:
        names = [e.name for e in it if e.is_file() and not _junk_name(e.name)]
    return sorted(names, key=os.path.normcase)


def holds_data(folder: Path, probe: int = 64) -> bool:
    """True when one of the first ``probe`` entries of ``folder`` is a source data file, by name only."""
    try:
        with os.scandir(folder) as it:
            entries = list(itertools.islice(it, probe))
        return any(e.is_file() and e.name.lower().endswith(SOURCE_DATA_SUFFIXES) for e in entries)
    except OSError:
        return False


def is_raster(path: Path) -> bool:
    return path.suffix.lower() in RASTER_SUFFIXES


def mask_stem(path: Path) -> str:
    """The image stem a mask file belongs to: ``12_mask.png`` -> ``12``."""
    stem = path.stem
    m = MASK_SUFFIX.search(stem)
    return stem[: m.start()] if m and m.start() > 0 else stem


def header_size(path: Path) -> tuple[int, int]:
    """(rows, cols) from the file header, without decoding pixels.

    Raises ReadError naming the file when the header cannot be parsed; a 2-D
    DICOM or one-slice NIfTI file gives its slice's size, a volume raises
    NotASliceError (:func:`medseg.datasets.slice_files.slice_size`).
    """
    from medseg.datasets.slice_files import is_slice_file, slice_size

    if not is_raster(path) and is_slice_file(path):
        return slice_size(path)
    try:
        with open_image(path) as im:  # refuses a size over the limits before anything is decoded
            width, height = im.size
        return height, width
    except ReadError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        pil_error = e
    if path.suffix.lower() in (".tif", ".tiff"):
        # tifffile reads TIFF variants Pillow does not (float, tiled, BigTIFF).
        import tifffile

        try:
            with tifffile.TiffFile(path) as tf:
                shape = tf.pages[0].shape
                axes = tf.pages[0].axes
            rows = shape[axes.index("Y")] if "Y" in axes else shape[0]
            cols = shape[axes.index("X")] if "X" in axes else shape[1]
            check_size(path, (rows, cols))
            return int(rows), int(cols)
        except ReadError:
            raise
        except Exception as e:  # noqa: BLE001 - tifffile raises ValueError, struct.error, TypeError ... on damage
            raise ReadError(path, f"not a readable TIFF header ({type(e).__name__}: {e})") from None
    raise ReadError(path, f"not a readable image header ({_describe(path, pil_error)})")


def header_mode(path: Path) -> str | None:
    """Pillow's mode ('P', 'L', 'RGB', ...) from the header, or None when unreadable."""
    try:
        with Image.open(path) as im:
            return im.mode
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def _describe(path: Path, e: BaseException) -> str:
    try:
        if path.stat().st_size == 0:
            return "empty file, 0 bytes"
    except OSError as err:
        return f"cannot be opened: {err.strerror or err}"
    if isinstance(e, UnidentifiedImageError):
        return "unknown format or corrupt header"
    return f"{type(e).__name__}: {e}"


def numeric_key(stem: str) -> tuple[int, int | str]:
    """Sort key putting integer stems in numeric order before any other stem."""
    return (0, int(stem)) if stem.isdigit() else (1, stem)
