"""``.npz`` files read without numpy's header parser racing across threads.

``np.load`` parses each member's header with ``ast.literal_eval``; in CPython
3.11 building AST objects in two threads at once can fail with "SystemError:
AST constructor recursion depth mismatch" (python/cpython#106905, fixed only in
later releases). Masks, drafts and stored predictions are read from thread
pools, so a full test run hit it once in a thousand reads. Only the header
parse is serialised here; the members' decompression still runs in parallel.
"""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path

import numpy as np

_HEADER_LOCK = threading.Lock()
_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


class NpzFile:
    """The arrays of an ``.npz`` file, each read when indexed; pickled (object) arrays are refused."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._zip = zipfile.ZipFile(self.path)
        self.files = [n[: -len(".npy")] for n in self._zip.namelist() if n.endswith(".npy")]

    def __enter__(self) -> NpzFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    def __contains__(self, key: str) -> bool:
        return key in self.files

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self.files:
            raise KeyError(f"{key} is not a file in the archive")
        with self._zip.open(key + ".npy") as f:
            return _read_npy(f)


def _read_npy(f) -> np.ndarray:
    version = np.lib.format.read_magic(f)
    reader = _HEADER_READERS.get(version)
    if reader is None:
        raise ValueError(f"unsupported .npy format version {version}")
    with _HEADER_LOCK:
        shape, fortran_order, dtype = reader(f)
    if dtype.hasobject:
        raise ValueError("the array holds Python objects, which are never unpickled")
    flat = np.empty(int(np.prod(shape, dtype=np.int64)), dtype=dtype)
    view = memoryview(flat.view(np.uint8))
    filled = 0
    while filled < len(view):
        n = f.readinto(view[filled:])
        if not n:
            raise EOFError(f"the array stops after {filled} of {len(view)} bytes")
        filled += n
    return flat.reshape(shape, order="F" if fortran_order else "C")
