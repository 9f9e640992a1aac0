"""Per-sample measures kept in a temporary file instead of in memory, for datasets of 100,000 samples.

QC's decoding pass keeps a measure per sample for the checks that compare
samples. Most are a few numbers, but two hold pictures: the duplicate
fingerprint (``fingerprint``: 32x32 and 64x64 grey thumbnails and a 128x128
area thumbnail per class, about 28 KB) and the neighbour fit's thumbnails
(``thumbs``, about 6 KB). In a dict those made QC's memory grow by 34 KB a
sample (3.4 GB at 100,000). A :class:`SpillTable` writes each value, pickled,
to an anonymous temporary file (gone when closed or when the process dies) and
keeps only its offset; reading it back unpickles the same value, so every
check decides exactly as before. The checks that read these measures walk
samples in dataset order and compare each with its neighbours or hash
candidates, so a small cache of the last values read serves most reads.

The other measures are a few numbers a sample, but as Python dicts of floats they took 2.4 KB a sample
(outline 934 bytes, foreground 528, contrast 350, shape 334, objects 302: 240 MB at 100,000); a
:class:`PackedTable` keeps each such value as its ``marshal`` bytes (46-265 bytes), made again when read:
the same types, keys, order and floats.
"""

from __future__ import annotations

import marshal
import os
import pickle
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, NamedTuple

# the measures QC keeps on disk: the ones holding thumbnails (module doc)
SPILLED = frozenset({"fingerprint", "thumbs"})
CACHED = 256  # values kept decoded: a video's neighbours and a sample's hash candidates (~7 MB of fingerprints)


class Written(NamedTuple):
    """A measure a QC worker process (:mod:`medseg.qc.pool`) pickled into its own file: where it lies. The
    table opens that file and reads it there, instead of the measure crossing a pipe and being unpickled and
    pickled again here (the pool removes the files when it closes; the open files stay readable)."""

    path: str
    offset: int
    size: int


class SpillTable(Mapping):
    """{sample id: value} whose values live in a temporary file; a read-mostly mapping once filled."""

    def __init__(self, cached: int = CACHED, folder: str | None = None):
        self._file = tempfile.TemporaryFile(prefix="medseg-qc-", dir=folder)
        self._files = [self._file.fileno()]  # then the worker processes' files, as their measures come
        self._paths: list[str | None] = [None]
        self._opened: dict[str, int] = {}
        self._where: dict[str, tuple[int, int, int]] = {}
        self._end = 0
        self._written = 0
        self._lock = threading.Lock()  # the file position and the cache are shared by the QC threads
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._cached = cached

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(value, Written):
            with self._lock:
                if value.path not in self._opened:
                    self._opened[value.path] = len(self._files)
                    self._files.append(os.open(value.path, os.O_RDONLY))
                    self._paths.append(value.path)
                self._where[key] = (self._opened[value.path], value.offset, value.size)
                self._written += value.size
                self._cache.pop(key, None)
            return
        blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            os.pwrite(self._file.fileno(), blob, self._end)
            self._where[key] = (0, self._end, len(blob))
            self._end += len(blob)
            self._cache.pop(key, None)

    def __getitem__(self, key: str) -> Any:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            file, offset, size = self._where[key]  # KeyError for a sample never stored, as a dict
            blob = os.pread(self._files[file], size, offset)
        value = pickle.loads(blob)
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > self._cached:
                self._cache.popitem(last=False)
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._where

    def given(self, key: str) -> Any:
        """What to hand a worker process for ``key``: where a worker wrote it (a :class:`Written` it reads
        with a :class:`Reader`) when the value lies in a worker's file, else the value. Handing the place
        spares this process unpickling the value and pickling it again for the pipe."""
        with self._lock:
            where = self._where.get(key)
            if where is not None and where[0] > 0:
                return Written(self._paths[where[0]], where[1], where[2])
        return self[key] if where is not None else None

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._where))

    def __len__(self) -> int:
        return len(self._where)

    @property
    def nbytes(self) -> int:
        """Bytes written to the file (what a dict would have held in memory, roughly)."""
        return self._end + self._written

    def close(self) -> None:
        with self._lock:
            self._cache.clear()
            for fd in self._files[1:]:
                os.close(fd)
            del self._files[1:]
            self._file.close()

    def __del__(self) -> None:
        try:
            self._file.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: the OS removes the unlinked file anyway
            pass


class Reader:
    """A worker process's reads of the :class:`Written` measures handed to it (:meth:`SpillTable.given`):
    each file opened once, the last ``cached`` values kept decoded (the next task names many of the same)."""

    def __init__(self, cached: int = CACHED):
        self._fds: dict[str, int] = {}
        self._cache: OrderedDict[Written, Any] = OrderedDict()
        self._cached = cached

    def value(self, given: Any) -> Any:
        if not isinstance(given, Written):
            return given
        if given in self._cache:
            self._cache.move_to_end(given)
            return self._cache[given]
        if given.path not in self._fds:
            self._fds[given.path] = os.open(given.path, os.O_RDONLY)
        found = self._cache[given] = pickle.loads(os.pread(self._fds[given.path], given.size, given.offset))
        while len(self._cache) > self._cached:
            self._cache.popitem(last=False)
        return found

    def values(self, given: Mapping) -> dict:
        return {k: self.value(v) for k, v in given.items()}

    def close(self) -> None:
        self._cache.clear()
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def given(table: Mapping, key: str) -> Any:
    """``table``'s value of ``key`` as a worker process is handed it (:meth:`SpillTable.given`); None if absent."""
    return table.given(key) if isinstance(table, SpillTable) else table.get(key)


class PackedTable(MutableMapping):
    """{sample id: value} holding each container value (dict, list, tuple) as its ``marshal`` bytes, or its
    pickle where it holds anything but Python's own types (a numpy value); numbers, strings and None as they
    are (module doc). A value read is a new copy: a change to it is not kept (QC's checks only read)."""

    def __init__(self):
        self._d: dict[str, Any] = {}

    def __setitem__(self, key: str, value: Any) -> None:
        if value is None or isinstance(value, (bool, int, float, str)):
            self._d[key] = value
            return
        if _plain(value):
            self._d[key] = b"m" + marshal.dumps(value)
        else:
            self._d[key] = b"p" + pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def __getitem__(self, key: str) -> Any:
        value = self._d[key]
        if not isinstance(value, bytes):
            return value
        body = memoryview(value)[1:]
        return marshal.loads(body) if value[0] == 0x6D else pickle.loads(body)

    def __delitem__(self, key: str) -> None:
        del self._d[key]

    def __contains__(self, key: object) -> bool:
        return key in self._d

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)


_PLAIN = (bool, int, float, str, bytes, type(None))


def _plain(value) -> bool:
    """Built of Python's own types only: marshal writes anything with a buffer (a numpy float) as bytes."""
    kind = type(value)
    if kind in _PLAIN:
        return True
    if kind is dict:
        return all(type(k) in _PLAIN and _plain(v) for k, v in value.items())
    if kind is list or kind is tuple:
        return all(_plain(v) for v in value)
    return False


def measure_table(features) -> dict[str, MutableMapping]:
    """{feature: an empty table}: a :class:`SpillTable` for the picture-holding measures, a
    :class:`PackedTable` otherwise."""
    return {f: (SpillTable() if f in SPILLED else PackedTable()) for f in features}


def close_tables(table: dict) -> None:
    for t in table.values():
        if isinstance(t, SpillTable):
            t.close()
