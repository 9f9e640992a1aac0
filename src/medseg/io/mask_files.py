"""Opening a mask file and telling its format from its first bytes (:mod:`medseg.io.mask_read` decodes it).

The format comes from content magic, never the suffix alone; the file is opened once: a mask of up to
``WHOLE`` bytes comes back read into memory, for Pillow to decode the bytes.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import stat
import zlib
from pathlib import Path

from medseg.errors import ReadError, UnsupportedFormatError
from medseg.io.limits import read_all

WHOLE = 64 * 1024**2  # a mask file up to this size is read into memory at once (:func:`open_head`)
_SUFFIXES = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".gif": "GIF",
    ".nii": "NIfTI",
    ".nii.gz": "NIfTI",
}


def _is_nifti(head: bytes) -> bool:
    return head[344:348] in (b"n+1\x00", b"ni1\x00") or head[4:8] in (b"n+2\x00", b"ni2\x00")


def open_head(path: Path):
    """(the file, its first 348 bytes): what :func:`sniff` reads, the file left open for Pillow. A file of up
    to ``WHOLE`` bytes (every mask but huge ones) comes back read, in memory: one read call on a bare
    descriptor, where Pillow reading the file itself made a dozen calls (seeks, tells, buffer refills)."""
    fd = None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory")
        if st.st_size > WHOLE:
            f, fd = os.fdopen(fd, "rb"), None
            try:
                return f, f.read(348)
            except BaseException:
                f.close()
                raise
        data = read_all(fd, st.st_size)
        return io.BytesIO(data), data[:348]
    except OSError as e:
        if isinstance(e, IsADirectoryError):
            raise ReadError(path, "is a folder, not a mask file") from None
        if isinstance(e, FileNotFoundError):
            raise ReadError(path, "no such file") from None
        raise ReadError(path, f"cannot be opened: {e.strerror or e}") from None
    finally:
        if fd is not None:
            os.close(fd)


def sniff(path: Path, head: bytes) -> str:
    """Format by content magic (``head``: the file's first 348 bytes); the suffix only makes the error more
    precise."""
    if not head:
        raise ReadError(path, "is empty (0 bytes)")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[128:132] == b"DICM":  # checked first: a DICOM preamble may itself look like TIFF
        raise UnsupportedFormatError(path, "is a DICOM file; DICOM masks (SEG, RTSTRUCT) are not read as masks")
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:2] == b"BM":
        return "bmp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:2] == b"\x1f\x8b":
        try:  # a gzip file: NIfTI only if its first bytes say so
            with gzip.open(path, "rb") as g:
                if _is_nifti(g.read(348)):
                    return "nifti"
        except (OSError, EOFError, zlib.error):
            pass
    elif _is_nifti(head):
        return "nifti"
    suffix = "".join(path.suffixes[-2:]).lower() if path.name.lower().endswith(".nii.gz") else path.suffix.lower()
    if suffix in _SUFFIXES:
        raise ReadError(
            path, f"named {suffix} but its content is not {_SUFFIXES[suffix]} (damaged, truncated or mislabelled file)"
        )
    raise UnsupportedFormatError(path, "not a mask format this reader knows (PNG, JPEG, TIFF, BMP, GIF, NIfTI)")
