"""Content-addressed mask files: ``masks/<aa>/<sha256>.npz``.

The name is the SHA-256 of a canonical encoding of the array (dtype, shape,
C-order little-endian bytes), not of the file, so the same mask always gets
the same name however the zip was compressed, and a read can verify that the
decoded pixels are the ones that were saved.

Writes are atomic: the file is written under a temporary name in its final
folder, fsynced, renamed over the final name with ``os.replace`` and the
folder is fsynced. A reader therefore sees no file or a complete one, and the
database row that names a blob is only inserted once the blob is durable.
A crash can leave an unreferenced blob or a ``.tmp-*`` file: ``gc`` removes them.

Blobs are ``.npz`` (one array, ``mask``) so any numpy can read them; they are
deflated at level 1, which is ~6x faster than ``np.savez_compressed`` on masks
and only slightly bigger.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import struct
import sys
import time
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from medseg.errors import ReadError
from medseg.folder_swap import fsync_dir, write_atomic
from medseg.io.npz import NpzFile, _read_npy

STORED_DTYPES = ("bool", "uint8", "uint16", "uint32")
_MAGIC = b"medseg-mask-v1\0"
_TMP_PREFIX = ".tmp-"


def mask_sha256(arr: np.ndarray) -> str:
    """SHA-256 of (dtype, shape, C-order little-endian bytes) of ``arr``."""
    arr = _storable(arr)
    h = hashlib.sha256(_MAGIC)
    h.update(f"{arr.dtype.str}|{','.join(map(str, arr.shape))}\0".encode())
    h.update(memoryview(arr).cast("B") if arr.size else b"")
    return h.hexdigest()


def _storable(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype.name not in STORED_DTYPES:
        raise ValueError(f"mask blobs hold {', '.join(STORED_DTYPES)} arrays, not {arr.dtype}")
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return np.ascontiguousarray(arr)


_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # a zip member's local header (APPNOTE 4.3.7)
_ZIP64 = 0x0001  # the extra field holding 64-bit sizes


def _npz(arr: np.ndarray) -> bytes:
    """The blob of ``arr`` (storable): :func:`_npz_bytes`, or ``zipfile``'s for an array it does not write (over
    2 GiB, or a header numpy writes in a later .npy version), or where this Python's ``zipfile`` writes
    another layout than it (checked once)."""
    data = _npz_bytes(arr) if _same_as_zipfile() else None
    return data if data is not None else _zipfile_npz(arr)


@functools.cache
def _same_as_zipfile() -> bool:
    probe = np.arange(12, dtype=np.uint8).reshape(3, 4)
    return _npz_bytes(probe) == _zipfile_npz(probe)


def _zipfile_npz(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    with (
        zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf,
        zf.open("mask.npy", "w", force_zip64=True) as entry,
    ):
        np.lib.format.write_array(entry, arr, allow_pickle=False)
    return buf.getvalue()


# What ``zipfile`` writes for one member ``mask.npy`` opened with ``force_zip64`` (CPython 3.11.7's zipfile: the
# fixed 1980-01-01 date of a member named by a string, version 4.5, permissions rw-------, the sizes in the zip64
# extra field of the local header and in the central directory's fields), so a blob is the same file whichever
# wrote it.
_NAME = b"mask.npy"
_DOS_DATE = 1 << 5 | 1  # 1980-01-01, time 00:00:00
_CREATE_SYSTEM = 0 if sys.platform == "win32" else 3
_PERMISSIONS = 0o600 << 16
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_END = struct.Struct("<4s4H2LH")
_ZIP64_LIMIT = (1 << 31) - 1
_FF = 0xFFFFFFFF  # a size given in the zip64 extra field
_VERSION, _DEFLATED = 45, 8  # version needed (zip64), compression method
# the central directory entry's fields before (signature, versions made by and needed, flags, method, time, date)
# and after (name, extra and comment lengths, disk, attributes, the member's offset) its CRC and sizes
_CENTRAL_HEAD = (b"PK\x01\x02", _VERSION, _CREATE_SYSTEM, _VERSION, 0, 0, _DEFLATED, 0, _DOS_DATE)
_CENTRAL_TAIL = (len(_NAME), 0, 0, 0, 0, _PERMISSIONS, 0)
_NPY_CHUNK = 16 * 1024**2  # what np.lib.format.write_array hands a zip member at a time (its nditer buffer)


def _npz_bytes(arr: np.ndarray) -> bytes | None:
    """The ``.npz`` of ``arr`` (storable) byte for byte as :func:`_zipfile_npz` writes it, without ``zipfile``'s
    Python layer (most of building a small mask's blob); None where it would differ (tests/test_blobs_write.py)."""
    header = _npy_header(arr.dtype.str, arr.shape)
    if header is None:
        return None
    data = memoryview(arr).cast("B") if arr.size else memoryview(b"")
    size = len(header) + len(data)
    if size * 1.05 > _ZIP64_LIMIT:
        return None
    deflate = zlib.compressobj(1, zlib.DEFLATED, -15)
    parts, crc = [deflate.compress(header)], zlib.crc32(header)
    for at in range(0, len(data), _NPY_CHUNK):  # fed as numpy feeds zipfile, so deflate sees the same calls
        piece = data[at : at + _NPY_CHUNK]
        crc = zlib.crc32(piece, crc)
        parts.append(deflate.compress(piece))
    parts.append(deflate.flush())
    body = b"".join(parts)
    extra = struct.pack("<HHQQ", _ZIP64, 16, size, len(body))
    local = _LOCAL_HEADER.pack(
        b"PK\x03\x04", _VERSION, 0, _DEFLATED, 0, _DOS_DATE, crc, _FF, _FF, len(_NAME), len(extra)
    )
    central = _CENTRAL.pack(*_CENTRAL_HEAD, crc, len(body), size, *_CENTRAL_TAIL)
    start = len(local) + len(_NAME) + len(extra) + len(body)
    end = _END.pack(b"PK\x05\x06", 0, 0, 1, 1, len(central) + len(_NAME), start, 0)
    return b"".join((local, _NAME, extra, body, central, _NAME, end))


@functools.lru_cache(maxsize=64)
def _npy_header(dtype: str, shape: tuple) -> bytes | None:
    """The .npy header numpy writes for a C-order array (format 1.0); None where it needs a later version."""
    buf = io.BytesIO()
    try:
        descr = np.lib.format.dtype_to_descr(np.dtype(dtype))
        np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    except ValueError:
        return None
    return buf.getvalue()


def _only_member(data: bytes) -> bytes | None:
    """The uncompressed ``mask.npy`` of a blob whose first member it is, with its sizes in its local header (as
    :func:`_npz` writes it), its CRC checked; None for anything else."""
    if len(data) < _LOCAL_HEADER.size:
        return None
    magic, _, flags, method, _, _, crc, csize, usize, nlen, xlen = _LOCAL_HEADER.unpack_from(data)
    start = _LOCAL_HEADER.size + nlen + xlen
    if magic != b"PK\x03\x04" or flags & 0x9 or method not in (0, 8) or data[30 : 30 + nlen] != b"mask.npy":
        return None  # not a zip, encrypted, sizes after the data (bit 3), another compression or member
    if 0xFFFFFFFF in (csize, usize):
        extra, at = data[30 + nlen : start], 0
        while at + 4 <= len(extra):
            kind, size = struct.unpack_from("<HH", extra, at)
            if kind == _ZIP64:
                sizes = iter(struct.unpack_from(f"<{min(size, 16) // 8}Q", extra, at + 4))
                usize = next(sizes, usize) if usize == 0xFFFFFFFF else usize
                csize = next(sizes, csize) if csize == 0xFFFFFFFF else csize
                break
            at += 4 + size
    body = data[start : start + csize]
    if len(body) != csize:
        return None
    try:
        raw = zlib.decompress(body, -15) if method == 8 else body
    except zlib.error:
        return None
    return raw if len(raw) == usize and zlib.crc32(raw) == crc else None


class BlobStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, sha: str) -> Path:
        return self.root / sha[:2] / f"{sha}.npz"

    def exists(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def put(self, arr: np.ndarray, sha: str | None = None, *, sync_dir: bool = True, durable: bool = True) -> str:
        """Store ``arr`` (if not stored yet) and return its hash.

        ``sync_dir=False`` leaves the folder fsync to the caller (``sync``),
        so a bulk import syncs each folder once instead of once per file.
        ``durable=False`` leaves the file's fsync to the caller too (``sync_all``): a create of 100,000
        masks paid ~5 ms a file for them here, one journal commit each. It is for a store nobody reads before
        the caller commits, and removes if it does not (a create), so the file is written under its own name,
        without a temporary one to rename, and a blob stored already is left as it is (no gc runs on it).
        """
        arr = _storable(arr)
        sha = sha or mask_sha256(arr)
        if not durable:
            return self._put_new(arr, sha)
        final = self.path(sha)
        if final.is_file():
            # Refresh the age so a concurrent gc's grace period protects it until our row is committed.
            try:
                os.utime(final)
                return sha
            except FileNotFoundError:
                pass  # gc removed it just now: write it again
        write_atomic(final, lambda f: f.write(_npz(arr)), sync_dir=sync_dir, prefix=f"{_TMP_PREFIX}{sha[:16]}-")
        return sha

    def _put_new(self, arr: np.ndarray, sha: str) -> str:
        """``put(durable=False)``: the file made under its own name, once (a mask stored already is kept as it
        is), its folder made only when missing (not tried for each blob); written with one call on a bare
        descriptor (no Python file object: its fstat, seek and buffer)."""
        final = os.path.join(self.root, sha[:2], f"{sha}.npz")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        try:
            try:
                fd = os.open(final, flags, 0o666)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(final), exist_ok=True)  # the first blob of its folder
                fd = os.open(final, flags, 0o666)
        except FileExistsError:
            return sha  # another sample, or another worker of the same create, stores the same mask
        try:
            data = memoryview(_npz(arr))
            while data:
                data = data[os.write(fd, data) :]
        except BaseException:
            os.close(fd)
            os.unlink(final)
            raise
        os.close(fd)
        return sha

    def sync(self, shas: Iterable[str]) -> None:
        """fsync the folders holding ``shas`` (after ``put(..., sync_dir=False)``)."""
        for folder in sorted({s[:2] for s in shas}):  # at most 256 folders, named by a sha's first two digits
            fsync_dir(self.root / folder)

    def sync_all(self, shas: Iterable[str]) -> None:
        """Make blobs written with ``durable=False`` durable, with their folders.

        On Linux one ``sync()`` writes every dirty file back and returns when it is on disk (Linux waits,
        unlike what POSIX requires), a few hundred ms instead of a journal commit per file; the folders'
        entries are among what it writes (their inodes are dirty too), so no folder is fsynced after it
        (each was a disk cache flush: 256 folders, ~0.9 s of a create here). Elsewhere each file is fsynced,
        then each folder.
        """
        if sys.platform.startswith("linux"):
            os.sync()
            return
        shas = set(shas)
        for sha in sorted(shas):
            fd = os.open(self.path(sha), os.O_RDWR)  # Windows fsyncs only what may be written
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self.sync(shas)

    def get(self, sha: str) -> np.ndarray:
        """The stored array; ReadError naming the file when it is missing, unreadable or not what its name says.

        The file is read in one call and a blob as :func:`_npz` writes it is unpacked from those bytes
        (:func:`_only_member`: its CRC checked, the array hashed to its name); any other zip, or one that
        does not hash to its name that way, is read by ``zipfile``, which names what is wrong with it. QC reads
        every mask of a workspace: opening each as a ``ZipFile`` was most of a mask's read."""
        return self._read(sha, whole=False)

    def _read(self, sha: str, whole: bool) -> np.ndarray:
        """:meth:`get`; ``whole``: through ``zipfile`` only, so a damaged part of the zip other than the
        mask's own data (its central directory) is found too."""
        path = self.path(sha)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ReadError(path, "mask blob is missing from the workspace (deleted or never written)") from None
        except OSError as e:
            raise ReadError(path, f"mask blob cannot be read ({type(e).__name__}: {e})") from None
        member = None if whole else _only_member(data)
        if member is not None:
            try:
                arr = _read_npy(io.BytesIO(member))
                if mask_sha256(arr) == sha:
                    return arr
            except (ValueError, EOFError):
                pass  # read again below, where the error is named
        try:
            with NpzFile(path) as npz:
                arr = npz["mask"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
            raise ReadError(path, f"mask blob cannot be read, the file is damaged ({type(e).__name__}: {e})") from None
        try:
            actual = mask_sha256(arr)
        except ValueError as e:
            raise ReadError(path, f"mask blob holds an unexpected array: {e}") from None
        if actual != sha:
            raise ReadError(
                path,
                f"mask blob is corrupt: its content hashes to {actual[:12]}..., "
                f"not to the {sha[:12]}... its name and the database promise",
            )
        return arr

    def verify(self, sha: str) -> str | None:
        """None when the blob reads back intact (the whole zip, not only the mask's data), else what is wrong."""
        try:
            self._read(sha, whole=True)
        except ReadError as e:
            return str(e)
        return None

    def iter_files(self) -> Iterator[Path]:
        if not self.root.is_dir():
            return
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir():
                yield from sorted(sub.iterdir())

    def gc(self, referenced: set[str], min_age_s: float = 600.0) -> tuple[int, int]:
        """Remove blobs not in ``referenced`` and leftover temp files older than ``min_age_s``.

        The grace period protects a blob another process has just written and
        is about to reference in its transaction. Returns (files, bytes) removed.
        """
        now = time.time()
        n = size = 0
        for path in self.iter_files():
            name = path.name
            is_tmp = name.startswith(_TMP_PREFIX)
            if not is_tmp and (not name.endswith(".npz") or name[:-4] in referenced):
                continue
            try:
                st = path.stat()
                if now - st.st_mtime < min_age_s:
                    continue
                path.unlink()
            except FileNotFoundError:
                continue
            n += 1
            size += st.st_size
        return n, size
