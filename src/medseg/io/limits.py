"""How large an image may be, checked from its header before any pixel is decoded.

A header can claim any size, and a few hundred kilobytes of compressed zeros
can decode to gigabytes (a decompression bomb), so every reader and every
header probe compares the claimed size with a limit first and refuses with a
ReadError that names the file, the claimed size and the limit.

* ``MAX_PIXELS`` per 2-D image or frame: 2**27 (134 million; 11585 x 11585),
  sixteen times a 2,900 x 2,900 chest X-ray and below the 179 million at which
  Pillow itself refuses.
* ``MAX_VOXELS`` per volume or stack: 2**30 (a 1024 x 1024 x 1024 volume; a
  512 x 512 CT of 4,096 slices).

``MEDSEG_MAX_PIXELS`` / ``MEDSEG_MAX_VOXELS`` raise (or lower) them for one process.
"""

from __future__ import annotations

import io
import math
import os
import stat
import struct
from pathlib import Path

from medseg.errors import ReadError

MAX_PIXELS = 2**27
MAX_VOXELS = 2**30


def _limit(env: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(env, default)))
    except ValueError:
        return default


def max_pixels() -> int:
    return _limit("MEDSEG_MAX_PIXELS", MAX_PIXELS)


def max_voxels() -> int:
    return _limit("MEDSEG_MAX_VOXELS", MAX_VOXELS)


def check_size(path: str | Path, shape, what: str = "image") -> None:
    """ReadError unless every axis of ``shape`` (rows, cols[, ...] without channels, or frames first for a
    stack: ``(frames, rows, cols)``) is at least 1 and the plane and the whole are within the limits."""
    dims = [int(n) for n in shape]
    if not dims or min(dims) < 1:
        raise ReadError(
            path,
            f"header says the {what} is {' x '.join(map(str, dims)) or 'empty'} pixels: "
            "an image needs at least one row and one column",
        )
    plane, total = math.prod(dims[-2:]), math.prod(dims)
    if plane > max_pixels():
        raise ReadError(
            path,
            f"header claims {dims[-1]} x {dims[-2]} pixels (width x height, {plane:,} in all), "
            f"more than the {max_pixels():,} allowed per image or slice; a damaged header or a "
            "decompression bomb (set MEDSEG_MAX_PIXELS to allow larger images)",
        )
    if total > max_voxels():
        raise ReadError(
            path,
            f"header claims {' x '.join(map(str, dims))} = {total:,} voxels, more than the "
            f"{max_voxels():,} a volume may have here; a damaged header or a decompression bomb "
            "(set MEDSEG_MAX_VOXELS to allow larger volumes)",
        )


def bomb_error(path: str | Path, e: Exception) -> ReadError:
    """Pillow's DecompressionBombError (it refuses before we see the size) as our ReadError with the size."""
    dims = claimed_dims(path)
    if dims is not None:
        try:
            check_size(path, dims)
        except ReadError as ours:
            return ours
    return ReadError(
        path,
        f"header claims more pixels than Pillow will decode ({e}); the limit here is "
        f"{max_pixels():,} pixels: a damaged header or a decompression bomb",
    )


def claimed_dims(path: str | Path) -> tuple[int, int] | None:
    """(rows, cols) as a PNG, JPEG or TIFF header states them, without Pillow; None when not found."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
            width, height = struct.unpack(">II", head[16:24])
            return height, width
        if head.startswith(b"\xff\xd8"):
            return _jpeg_dims(head)
        if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages.first
                return int(page.imagelength), int(page.imagewidth)
    except Exception:  # noqa: BLE001 - only to word an error message better
        return None
    return None


def _jpeg_dims(data: bytes) -> tuple[int, int] | None:
    """Walk the JPEG markers to the first SOFn frame header."""
    at = 2
    while at + 9 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            at += 2
            continue
        length = struct.unpack(">H", data[at + 2 : at + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return height, width
        at += 2 + length
    return None


SMALL_FILE = 1 << 16  # an image file up to this size is read in one call for Pillow (open_image)


def read_all(fd: int, size: int) -> bytes:
    """The bytes of the file open as ``fd`` whose stat says ``size``: a read of one byte more ends at the end
    in one call (a short read of a regular file is its end), unless it grew."""
    parts, want = [], size + 1
    while chunk := os.read(fd, want):
        parts.append(chunk)
        if len(chunk) < want:
            break
        want = 1 << 20
    return b"".join(parts)


def _small_file(path) -> io.BytesIO | None:
    """A regular file of at most ``SMALL_FILE`` bytes, read with one call; None for any other or on any error
    (Pillow then opens the path and names what is wrong, as it did). Pillow reading a file itself makes a
    dozen system calls (seeks, tells, buffer refills): a create reads three small headers or frames a sample."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except (OSError, TypeError, ValueError):
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > SMALL_FILE:
            return None
        return io.BytesIO(read_all(fd, st.st_size))
    except OSError:
        return None
    finally:
        os.close(fd)


def open_image(path: str | Path, fp=None):
    """``PIL.Image.open`` with the size checked: ReadError for a header over the limits (or of 0 pixels).
    Pillow's errors on a damaged header come out as OSError (UnidentifiedImageError is one) for the caller
    to word: its plugins also raise TypeError ('Missing dimensions'), KeyError, struct.error ...
    ``fp``: ``path`` already open, at its start (the caller sniffed its format: not opened twice); the caller
    closes it, and every error names ``path`` as it would have without it. Without one, a small file is
    read into memory first (:func:`_small_file`)."""
    from PIL import Image, UnidentifiedImageError

    if fp is None:
        fp = _small_file(path)

    try:
        im = Image.open(path if fp is None else fp)
    except UnidentifiedImageError:
        if fp is None:
            raise
        raise UnidentifiedImageError(f"cannot identify image file {os.fspath(path)!r}") from None
    except Image.DecompressionBombError as e:
        raise bomb_error(path, e) from None
    except (OSError, ValueError, SyntaxError):
        raise
    except Exception as e:  # noqa: BLE001 - see the docstring
        raise OSError(f"Pillow cannot parse the header ({type(e).__name__}: {e})") from e
    try:
        width, height = im.size
        frames = int(getattr(im, "n_frames", 1) or 1)  # counting frames reads every frame's header
        check_size(path, (frames, height, width) if frames > 1 else (height, width))
    except ReadError:
        im.close()
        raise
    except Exception as e:  # noqa: BLE001 - see the docstring
        im.close()
        raise OSError(f"Pillow cannot parse the header ({type(e).__name__}: {e})") from e
    return im
