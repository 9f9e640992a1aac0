"""One ``load(path)`` for every image format: the reader is chosen by content, then by suffix.

Each reader is registered with a content sniff (magic bytes) and its suffixes.
Content wins: a PNG named ``.jpg`` loads as PNG. A file whose content no reader
recognises is tried with its suffix's reader; if that fails too the error says
what the file looks like (empty, text, another known format). A folder loads as
a DICOM series.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medseg.errors import ReadError, UnsupportedFormatError
from medseg.io.nifti import read_nifti, sniff_nifti
from medseg.io.raster import raster_format, read_raster, reject_nonfinite
from medseg.io.types import ImageData

_HEAD_BYTES = 512


def _read_dicom(path: Path, allow_nonfinite: bool, head: bytes) -> ImageData:
    from medseg.io.dicom import read_dicom  # pydicom is imported only when a DICOM file turns up

    image = read_dicom(path)
    if not allow_nonfinite:
        reject_nonfinite(path, image.array)
    return image


def _sniff_dicom(path: Path, head: bytes) -> bool:
    from medseg.io.dicom import is_dicom_file

    return is_dicom_file(path, head)


@dataclass(frozen=True)
class Reader:
    """A format: its name, suffixes, content test and reader."""

    name: str
    label: str
    suffixes: tuple[str, ...]
    sniff: Callable[[Path, bytes], bool]
    read: Callable[[Path, bool, bytes], ImageData]  # (path, allow_nonfinite, the file's first bytes)


def _raster(fmt: str) -> Callable[[Path, bytes], bool]:
    return lambda path, head: raster_format(head) == fmt


def _read_raster(path: Path, allow_nonfinite: bool, head: bytes) -> ImageData:
    return read_raster(path, allow_nonfinite=allow_nonfinite, head=head)


def _read_nifti(path: Path, allow_nonfinite: bool, head: bytes) -> ImageData:
    return read_nifti(path, allow_nonfinite=allow_nonfinite)


# DICOM first: a DICOM preamble may itself be a TIFF header (dual-personality files such as
# pydicom's CT_small.dcm); 'DICM' at byte 128 is the stronger evidence.
READERS: tuple[Reader, ...] = (
    Reader("dicom", "DICOM", (".dcm", ".dicom", ".ima"), _sniff_dicom, _read_dicom),
    Reader("png", "PNG", (".png",), _raster("png"), _read_raster),
    Reader("jpeg", "JPEG", (".jpg", ".jpeg", ".jpe"), _raster("jpeg"), _read_raster),
    Reader("tiff", "TIFF", (".tif", ".tiff"), _raster("tiff"), _read_raster),
    Reader("bmp", "BMP", (".bmp",), _raster("bmp"), _read_raster),
    Reader("nifti", "NIfTI", (".nii", ".nii.gz"), sniff_nifti, _read_nifti),
)
IMAGE_SUFFIXES: frozenset[str] = frozenset(s for r in READERS for s in r.suffixes)

# Formats we recognise only to name them in an error message
_OTHER_MAGIC = (
    (b"GIF8", "a GIF image"),
    (b"\x89HDF", "an HDF5 file"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x93NUMPY", "a NumPy .npy array"),
    (b"NRRD", "an NRRD file"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"),
    (b"\x1f\x8b", "a gzip file that is not NIfTI"),
)


def suffix_of(path: str | Path) -> str:
    """Lower-case suffix, with ``.nii.gz`` as one suffix."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def load(path: str | Path, *, allow_nonfinite: bool = False) -> ImageData:
    """Read an image file or a DICOM series folder.

    Raises ReadError (or UnsupportedFormatError) naming the path and the cause.
    Float images holding NaN/inf raise too unless ``allow_nonfinite``.
    """
    path = Path(path)
    if path.is_dir():
        return _load_folder(path)
    if not path.exists():
        raise ReadError(path, "does not exist")
    if not path.is_file():  # a FIFO or device would block the read
        raise ReadError(path, "is not a regular file or folder")
    head = _read_head(path)
    if not head:
        raise ReadError(path, "is empty (0 bytes)")
    suffix = suffix_of(path)
    reader = detect_format(path, head)
    if reader is not None:
        image = reader.read(path, allow_nonfinite, head)
        if suffix in IMAGE_SUFFIXES and suffix not in reader.suffixes:
            image.metadata["suffix_mismatch"] = f"named {suffix} but holds {reader.label} data"
        return image
    looks = describe_content(head)
    by_suffix = next((r for r in READERS if suffix in r.suffixes), None)
    if by_suffix is None:
        raise UnsupportedFormatError(path, f"is not a supported image ({looks}; suffix {suffix or 'none'})")
    if looks.startswith(("a text file", "an HTML", "an XML")) or by_suffix.name in ("png", "jpeg", "tiff", "bmp"):
        # these formats always start with their magic bytes: no point decoding
        raise UnsupportedFormatError(path, f"is not a {by_suffix.label} file: it is {looks}")
    # DICOM without a recognisable header, NIfTI cut inside its header: the reader says what is wrong
    return by_suffix.read(path, allow_nonfinite, head)


def can_load(path: str | Path) -> bool:
    """True when ``load`` takes this path: a known suffix, recognised content or a DICOM folder.

    Cheap (reads at most the first bytes of a file) and never raises; ``load`` may
    still fail on a damaged file, with a ReadError saying why.
    """
    try:
        path = Path(path)
        if path.is_dir():
            from medseg.io.dicom import is_dicom_series_folder

            return bool(is_dicom_series_folder(path))
        if not path.is_file():
            return False
        if suffix_of(path) in IMAGE_SUFFIXES:
            return True
        head = _read_head(path)
        return bool(head) and detect_format(path, head) is not None
    except Exception:  # a check must never take the caller down
        return False


def detect_format(path: str | Path, head: bytes | None = None) -> Reader | None:
    """The reader whose content sniff accepts the file, or None."""
    path = Path(path)
    head = _read_head(path) if head is None else head
    for reader in READERS:
        try:
            if reader.sniff(path, head):
                return reader
        except Exception:
            continue
    return None


def describe_content(head: bytes) -> str:
    """A short phrase for what a file's first bytes look like, for error messages."""
    if not head:
        return "empty (0 bytes)"
    for magic, what in _OTHER_MAGIC:
        if head.startswith(magic):
            return what
    if b"\x00" not in head:
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None:
            start = text.lstrip().lower()
            if start.startswith(("<!doctype html", "<html")):
                return "an HTML page"
            if start.startswith("<?xml"):
                return "an XML file"
            snippet = " ".join(text.split())[:40]
            return f"a text file (starts with {snippet!r})"
    return f"unrecognised binary data (first bytes {head[:8].hex(' ')})"


def _read_head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(_HEAD_BYTES)
    except OSError as e:
        raise ReadError(path, f"cannot open: {e.strerror or e}") from e


def _load_folder(folder: Path) -> ImageData:
    from medseg.io.dicom import is_dicom_series_folder, read_dicom_series

    if is_dicom_series_folder(folder):
        return read_dicom_series(folder)
    raise UnsupportedFormatError(folder, f"is a folder with no DICOM series in it: {_folder_summary(folder)}")


def _folder_summary(folder: Path, limit: int = 5) -> str:
    try:
        entries = list(folder.iterdir())
    except OSError as e:
        return f"cannot list it ({e.strerror or e})"
    if not entries:
        return "it is empty"
    n_dirs = sum(1 for e in entries if e.is_dir())
    counts: dict[str, int] = {}
    for e in entries:
        if e.is_file():
            key = suffix_of(e) or "no suffix"
            counts[key] = counts.get(key, 0) + 1
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1])[:limit])
    parts = [f"{sum(counts.values())} files ({kinds})" if counts else "no files"]
    if n_dirs:
        parts.append(f"{n_dirs} subfolder{'s' if n_dirs > 1 else ''}")
    return "it holds " + " and ".join(parts) + "; open image files one by one or the folder as a dataset"
