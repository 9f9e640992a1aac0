"""DICOM file detection, header parsing with clear errors, and patient-free metadata."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from medseg.errors import DamagedValue, ReadError, UnsupportedFormatError

_MAGIC_OFFSET = 128
# A file written without the 128-byte preamble starts with its first element's
# tag: group 0x0002 (file meta) or 0x0008 (identifying group), in either byte order.
_BARE_STARTS = (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")
# Enough for any realistic header; the probe never reads pixel data.
_PROBE_BYTES = 256 * 1024
_IMAGE_EVIDENCE = ("SOPClassUID", "SOPInstanceUID", "Modality")


def _has_magic(head: bytes) -> bool:
    return len(head) >= _MAGIC_OFFSET + 4 and head[_MAGIC_OFFSET : _MAGIC_OFFSET + 4] == b"DICM"


def _probe_bare(path: Path) -> bool:
    """Parse the start of a preamble-less file; accept it only if it names a SOP class or similar."""
    with open(path, "rb") as f:
        head = f.read(_PROBE_BYTES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(head), force=True, stop_before_pixels=True)
    return any(ds.get(k) for k in _IMAGE_EVIDENCE)


def is_dicom_file(path: str | Path, head: bytes | None = None) -> bool:
    """True for a DICOM file: 'DICM' at offset 128, or a parseable preamble-less header. Never raises.
    ``head``: the file's first bytes when the caller has read them (at least 132, or the whole file)."""
    try:
        p = Path(path)
        if head is None:
            if not p.is_file():
                return False
            with open(p, "rb") as f:
                head = f.read(_MAGIC_OFFSET + 4)
        if _has_magic(head):
            return True
        return head[:2] in _BARE_STARTS and _probe_bare(p)
    except Exception:  # noqa: BLE001 - a detector answers, it does not fail
        return False


def _set_transfer_syntax(ds: Dataset) -> None:
    """Give a file without file meta the transfer syntax it was parsed with, so pixels can be decoded."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return
    implicit, little = ds.original_encoding
    if implicit is None or little is None:
        return
    uid = ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    if meta is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid


def read_header(path: str | Path, pixels: bool = True) -> Dataset:
    """Parse a DICOM file (with its pixel data unless ``pixels`` is False) or raise ReadError."""
    p = Path(path)
    if not p.exists():
        raise ReadError(p, "no such file")
    if p.is_dir():
        raise ReadError(p, "is a folder, not a DICOM file (read it with read_dicom_series)")
    size = p.stat().st_size
    if size == 0:
        raise ReadError(p, "empty file (0 bytes), not a DICOM image")
    if not is_dicom_file(p):
        raise UnsupportedFormatError(p, "not a DICOM file: no 'DICM' marker at byte 128 and no parseable DICOM header")
    with open(p, "rb") as f:
        bare = not _has_magic(f.read(_MAGIC_OFFSET + 4))
    try:
        ds = pydicom.dcmread(p, force=bare, stop_before_pixels=not pixels)
    except Exception as e:  # noqa: BLE001 - pydicom raises many types for damaged files
        raise ReadError(
            p,
            f"cannot parse the DICOM header ({type(e).__name__}: {e}); the file is damaged or truncated ({size} bytes)",
        ) from e
    _set_transfer_syntax(ds)
    return ds


def _text(ds: Dataset, keyword: str) -> str | None:
    v = ds.get(keyword)
    return None if v is None or str(v) == "" else str(v)


def transfer_syntax(ds: Dataset):
    meta = getattr(ds, "file_meta", None)
    return None if meta is None else meta.get("TransferSyntaxUID")


def header_float(value, keyword: str) -> float:
    """``float(value)``, or DamagedValue naming the element (pydicom hands damaged decimals on as text)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DamagedValue(f"{keyword} {str(value)!r} is not a number") from None


def uid_name(value) -> str | None:
    """A UID's registered name (its text when unregistered); a damaged, multi-valued UID has no name."""
    if value is None:
        return None
    if isinstance(value, UID):
        return value.name
    if isinstance(value, (MultiValue, list, tuple)):
        return "\\".join(str(v) for v in value)
    return str(value)


def check_transfer_syntax(ds: Dataset, path: str | Path) -> None:
    """ReadError when the file meta's TransferSyntaxUID is not one DICOM defines (damaged or hand-edited meta):
    pixels cannot be decoded without knowing how they were encoded."""
    ts = transfer_syntax(ds)
    if ts is None:
        return
    if not isinstance(ts, UID):
        raise ReadError(path, f"TransferSyntaxUID holds {len(ts)} values ({uid_name(ts)}): the file meta is damaged")
    try:
        ts.is_compressed  # noqa: B018 - raises ValueError for a UID that is no transfer syntax
    except ValueError:
        named = f" ({ts.name})" if ts.name != str(ts) else ""
        raise ReadError(
            path,
            f"TransferSyntaxUID {str(ts)!r}{named} is not a transfer syntax: "
            "the file meta is damaged, so the pixel encoding is unknown",
        ) from None


def base_metadata(ds: Dataset, path: str | Path) -> dict[str, Any]:
    """The identifying, patient-free part of the metadata.

    Only technical and UID fields are copied: no PatientName, PatientID, birth
    date, institution or operator, because this dict ends up in napari layer
    metadata and in exported files.
    """
    ts = transfer_syntax(ds)
    sop_class = ds.get("SOPClassUID")
    bits = ds.get("BitsStored")
    return {
        "source": str(path),
        "format": "dicom",
        "modality": _text(ds, "Modality"),
        "photometric": _text(ds, "PhotometricInterpretation"),
        "study_uid": _text(ds, "StudyInstanceUID"),
        "series_uid": _text(ds, "SeriesInstanceUID"),
        "sop_uids": [_text(ds, "SOPInstanceUID")],
        "sop_class": uid_name(sop_class),
        "series_description": _text(ds, "SeriesDescription"),
        "bits_stored": None if bits is None else int(bits),
        "transfer_syntax": uid_name(ts),
        "transfer_syntax_uid": None if ts is None else str(ts),
    }


def functional_value(ds: Dataset, sequence: str, keyword: str, frame: int | None = None):
    """``keyword`` from a functional-group ``sequence``: per-frame item ``frame`` first, then shared."""
    groups = []
    if frame is not None and ds.get("PerFrameFunctionalGroupsSequence"):
        per_frame = ds.PerFrameFunctionalGroupsSequence
        if frame < len(per_frame):
            groups.append(per_frame[frame])
    if ds.get("SharedFunctionalGroupsSequence"):
        groups.append(ds.SharedFunctionalGroupsSequence[0])
    for g in groups:
        seq = g.get(sequence)
        if seq and keyword in seq[0] and seq[0].get(keyword) not in (None, ""):
            return seq[0].get(keyword)
    return None


def _positive_pair(value) -> tuple[float, float] | None:
    try:
        pair = (float(value[0]), float(value[1]))
    except (TypeError, ValueError, IndexError):
        return None
    return pair if all(np.isfinite(pair)) and min(pair) > 0 else None


def pixel_spacing(ds: Dataset) -> tuple[tuple[float, float] | None, str | None, list[str]]:
    """(row, col) spacing in mm, the tag it came from, and notes on tags that were ignored.

    DICOM PixelSpacing is (between rows, between columns), the array's (row, col) order.
    PixelSpacing (calibrated at the patient) wins over ImagerPixelSpacing (at the
    detector, used by CR/DX); enhanced multi-frame files keep it in functional groups.
    """
    notes = []
    candidates = [
        ("PixelSpacing", ds.get("PixelSpacing")),
        ("PixelMeasuresSequence.PixelSpacing", functional_value(ds, "PixelMeasuresSequence", "PixelSpacing", 0)),
        ("ImagerPixelSpacing", ds.get("ImagerPixelSpacing")),
    ]
    for name, value in candidates:
        if value is None or value == "":
            continue
        pair = _positive_pair(value)
        if pair is not None:
            return pair, name, notes
        shown = list(value) if hasattr(value, "__len__") else value
        notes.append(f"{name} {shown} ignored: not two positive numbers")
    return None, None, notes


def orientation_normal(iop) -> np.ndarray | None:
    """Unit slice normal from ImageOrientationPatient (row direction x column direction)."""
    try:
        v = np.asarray([float(x) for x in iop], dtype=float)
    except (TypeError, ValueError):
        return None
    if v.shape != (6,) or not np.all(np.isfinite(v)):
        return None
    n = np.cross(v[:3], v[3:])
    norm = np.linalg.norm(n)
    return None if norm < 1e-6 else n / norm


def spacing_along(positions: list[float]) -> tuple[float, bool, list[float]]:
    """Median step of ordered slice positions, whether steps are uniform (1 % or 0.01 mm), and the steps."""
    steps = np.diff(np.asarray(positions, dtype=float))
    step = float(np.median(np.abs(steps)))
    tol = max(0.01 * step, 0.01)
    uniform = bool(np.all(np.abs(np.abs(steps) - step) <= tol))
    return step, uniform, [float(s) for s in steps]


def number_of_frames(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1
