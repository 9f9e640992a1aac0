"""The source files behind each sample: how they are stored, hashed, and checked for changes.

Paths are stored relative to the dataset root, so a dataset that moved can be
re-attached (``Workspace.open(path, dataset_root=...)``). Each file's SHA-256
is taken at import; its size and mtime are kept too, so opening a workspace
re-hashes only the files whose size or mtime moved (``verify="stat"``), or
every file (``verify="hash"``), or none (``verify="none"``).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from medseg.workspace.records import SourceChange

VERIFY_MODES = ("stat", "hash", "none")


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file; of a folder (a DICOM series), of each file's relative name and content in order."""
    if _is_dir(path):
        h = hashlib.sha256(b"folder\0")
        for f in _folder_files(Path(path)):
            h.update(f"{f.relative_to(path).as_posix()}\0{file_sha256(f)}\0".encode())
        return h.hexdigest()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def file_stat(path: str | Path) -> list[int]:
    """[size, mtime] of a file; [total size, newest mtime, number of files] of a folder."""
    st = os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        stats = [os.stat(f) for f in _folder_files(Path(path))]
        return [sum(st.st_size for st in stats), max((st.st_mtime_ns for st in stats), default=0), len(stats)]
    return [st.st_size, st.st_mtime_ns]


def hash_and_stat(path: str | Path) -> tuple[str, list[int]]:
    """``(file_sha256(path), file_stat(path))`` of a file through one descriptor: its stat is the fstat of
    the bytes hashed (a create takes both of two files a sample; separately they cost two more stats and
    a buffered file object each)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):  # a DICOM series' folder
            return file_sha256(path), file_stat(path)
        h, want = hashlib.sha256(), min(st.st_size + 1, 1 << 20)
        while chunk := os.read(fd, want):  # a short read of a regular file is its end: no call to find it
            h.update(chunk)
            if len(chunk) < want:
                break
            want = 1 << 20
    finally:
        os.close(fd)
    return h.hexdigest(), [st.st_size, st.st_mtime_ns]


def _is_dir(path: str | Path) -> bool:
    """``Path.is_dir`` in one stat, without a Path (twice a file of every sample at create)."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _folder_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def relative(path: str | Path, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX separators), or absolute when it lies outside."""
    text, top = str(path), str(root)
    prefix = top if top.endswith(os.sep) else top + os.sep
    if text.startswith(prefix) and len(text) > len(prefix) and isinstance(path, Path):
        # what relative_to gives, as strings (four a sample at create: pathlib's parsing was most of it)
        return text[len(prefix) :].replace(os.sep, "/")
    p = Path(path)
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return str(p)


def mask_key(key: Any) -> Any:
    """Mask-path keys are class ids (ints) or names ("rle"); JSON keeps them as strings."""
    return int(key) if isinstance(key, str) and key.lstrip("-").isdigit() else key


def encode_mask_paths(mask_paths: dict[Any, Path], root: Path) -> str:
    return json.dumps({str(k): relative(p, root) for k, p in mask_paths.items()})


def decode_mask_paths(text: str, root: Path) -> dict[Any, Path]:
    return {mask_key(k): root / p for k, p in json.loads(text).items()}


def sample_files(image_path: Path, mask_paths: dict[Any, Path]) -> dict[str, Path]:
    """{role: path}: "image", then "mask:<key>" for each mask file."""
    files = {"image": _as_path(image_path)}
    files.update({f"mask:{k}": _as_path(p) for k, p in mask_paths.items()})
    return files


def _as_path(p: str | Path) -> Path:
    return p if isinstance(p, Path) else Path(p)  # Path(a Path) parses it again: twice a sample at create


class HashCache:
    """Hashes and stats per path, so a file shared by many samples (an RLE CSV) is read once."""

    def __init__(self) -> None:
        self._hash: dict[Path, str] = {}
        self._stat: dict[Path, list[int] | None] = {}

    def stat(self, path: Path) -> list[int] | None:
        if path not in self._stat:
            try:
                self._stat[path] = file_stat(path)
            except OSError:
                self._stat[path] = None
        return self._stat[path]

    def sha256(self, path: Path) -> str:
        if path not in self._hash:
            self._hash[path], st = hash_and_stat(path)
            self._stat.setdefault(path, st)  # a stat taken before (find_changes') stays the one compared
        return self._hash[path]


def find_changes(
    rows: list[dict], root: Path, verify: str = "stat", cache: HashCache | None = None
) -> tuple[list[SourceChange], dict[str, dict]]:
    """Compare each sample's files with what was recorded.

    ``rows``: dicts with id, image_path, mask_paths (JSON), image_sha256,
    mask_source_sha256 (JSON), source_stat (JSON). Returns the changes and
    {sample id: new source_stat} for files whose stat moved but whose content
    did not (so the next open need not hash them again). ``cache``: one shared by calls over chunks of rows
    (a file many samples share is read once).
    """
    if verify not in VERIFY_MODES:
        raise ValueError(f"unknown verify mode {verify!r}; valid: {', '.join(VERIFY_MODES)}")
    changes: list[SourceChange] = []
    restat: dict[str, dict] = {}
    if verify == "none":
        return changes, restat
    cache = HashCache() if cache is None else cache
    for row in rows:
        image = root / row["image_path"]
        masks = decode_mask_paths(row["mask_paths"], root)
        expected = {
            "image": row["image_sha256"],
            **{f"mask:{k}": v for k, v in json.loads(row["mask_source_sha256"]).items()},
        }
        stats = json.loads(row["source_stat"])
        new_stats = dict(stats)
        for role, path in sample_files(image, masks).items():
            key = relative(path, root)
            st = cache.stat(path)
            if st is None:
                changes.append(SourceChange(row["id"], path, "missing"))
                continue
            if verify == "stat" and stats.get(key) == st:
                continue
            if cache.sha256(path) != expected.get(role):
                changes.append(SourceChange(row["id"], path, "changed"))
            elif stats.get(key) != st:
                new_stats[key] = st
        if new_stats != stats:
            restat[row["id"]] = new_stats
    return changes, restat


def source_rows(conn) -> list[dict]:
    """What :func:`find_changes` compares, for every sample in the workspace's order."""
    return [
        dict(r)
        for r in conn.execute(
            "SELECT id, image_path, mask_paths, image_sha256, "
            "mask_source_sha256, source_stat FROM samples ORDER BY position"
        )
    ]


def store_restat(conn, restat: dict[str, dict]) -> None:
    """Keep the refreshed stats of files whose content did not change (the next open need not hash them)."""
    from medseg.workspace.store import write

    if restat:
        with write(conn):
            conn.executemany(
                "UPDATE samples SET source_stat = ? WHERE id = ?", [(json.dumps(v), k) for k, v in restat.items()]
            )


def check_sources(conn, root: Path, verify: str = "stat") -> list[SourceChange]:
    """``find_changes`` over every sample of an open workspace; keeps the refreshed stats."""
    if verify == "none":
        return []  # not even the rows: reading 100,000 of them was a second of the app's reopen
    changes, restat = find_changes(source_rows(conn), root, verify)
    store_restat(conn, restat)
    return changes
