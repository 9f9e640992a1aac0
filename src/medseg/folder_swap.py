"""Folders built beside their target and swapped in whole, and what a killed writer left put right.

A writer builds the new folder under a hidden sibling name, moves the folder
already at the target aside, renames the new one in, then deletes the old
one. A process killed between those steps leaves siblings behind: a
half-built folder, or the previous folder moved aside with the target missing
(the last good copy, hidden). Their names carry the writer's owner tag (pid
and process start time), so a later run tells the leftovers of a dead writer
from the folders of a writer still running in another process, which it
leaves alone. Names without a tag (written by older versions) count as dead
once they have lain there ``stale_s`` seconds.

The checkpoint saver (``models.checkpoint``) and the dataset export
(``export.staging``) both go through here.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

STALE_S = 60.0
_TAG = re.compile(r"^(\d+)-(\d+)-[0-9a-f]{8}$")


def _start_ticks(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, Linux /proc); None where it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2 :].split()[19]  # field 22, counted after the command name
    except (OSError, ValueError, IndexError):
        return None


def owner_tag() -> str:
    """A tag naming this process (pid, start time) and this run (8 random hex digits)."""
    pid = os.getpid()
    return f"{pid}-{_start_ticks(pid) or 0}-{uuid.uuid4().hex[:8]}"


def owner_alive(tag: str) -> bool | None:
    """Whether the process that made ``tag`` still runs; None when that cannot be told."""
    m = _TAG.match(tag)
    if m is None:
        return None
    pid, started = int(m[1]), m[2]
    now = _start_ticks(pid)
    if now is not None:
        return started == "0" or now == started  # a reused pid has another start time
    if _start_ticks(os.getpid()) is not None:
        return False  # /proc works here and has no such process
    if os.name != "posix":
        return None  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists under another user
        return True
    return True


@dataclass(frozen=True)
class SwapNames:
    """Where a target's new and old folders lie: sibling names with ``{name}`` and ``{tag}`` fields."""

    new: str
    old: str

    def new_path(self, target: Path, tag: str) -> Path:
        return target.parent / self.new.format(name=target.name, tag=tag)

    def old_path(self, target: Path, tag: str) -> Path:
        return target.parent / self.old.format(name=target.name, tag=tag)

    def found(self, target: Path, which: str) -> list[tuple[Path, str]]:
        """The ``which`` ("new" or "old") siblings of ``target`` on disk, each with its tag."""
        head, tail = getattr(self, which).format(name=target.name, tag="\0").split("\0")
        try:
            entries = list(os.scandir(target.parent))
        except OSError:
            return []
        return [
            (Path(e.path), e.name[len(head) : len(e.name) - len(tail)])
            for e in entries
            if e.name.startswith(head) and e.name.endswith(tail) and len(e.name) > len(head) + len(tail)
        ]


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(
    path: Path,
    write: Callable[[BinaryIO], object],
    *,
    durable: bool = True,
    sync_dir: bool | None = None,
    prefix: str = ".tmp-",
) -> Path:
    """Write ``path`` whole or not at all: ``write(f)`` fills a new file beside it (``prefix``, the pid and a
    random part name it, so writers never share one), which is renamed over ``path``; on any error the
    temporary file is removed and ``path`` is as it was. ``durable``: the file is fsynced, and the folder
    holding the rename too unless ``sync_dir`` is False (a caller syncing many renames' folders at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable if sync_dir is None else sync_dir:
        fsync_dir(path.parent)
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    """:func:`write_atomic` of ``text`` as UTF-8 (newlines as given)."""
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def swap_in(new: Path, target: Path, old: Path) -> None:
    """Rename ``new`` to ``target``; a folder already there goes to ``old`` first and is deleted after.

    Should the second rename fail, the old folder is put back before the error propagates.
    """
    if not os.path.lexists(target):
        os.replace(new, target)
        fsync_dir(target.parent)
        return
    # A folder cannot be renamed over a non-empty one: move the old one aside first.
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)
        raise
    fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


def _ctime(p: Path) -> float:
    try:
        return p.lstat().st_ctime  # ctime: when it was renamed there
    except OSError:
        return 0.0


def _dead(found: list[tuple[Path, str]], stale_s: float, now: float) -> list[Path]:
    out = []
    for path, tag in found:
        alive = owner_alive(tag)
        if alive is None:
            alive = now - _ctime(path) <= stale_s
        if not alive:
            out.append(path)
    return sorted(out, key=_ctime)


def recover(target: Path, names: SwapNames, complete: Callable[[Path], bool], stale_s: float = STALE_S) -> bool:
    """Put right what writers of ``target`` killed half-way left behind; whether a folder was restored.

    Target missing and a dead writer's old folder holds a complete copy: the
    newest such copy is moved back. Target complete: dead writers' old folders
    are deleted. Dead writers' new folders are deleted in any case (never
    swapped in, so never promised). Folders of live writers are left alone.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return False
    now = time.time()
    olds = _dead(names.found(target, "old"), stale_s, now)
    restored = False
    if not os.path.lexists(target):
        good = [p for p in olds if complete(p)]
        if good:
            try:
                os.replace(good[-1], target)
                fsync_dir(target.parent)
                restored = True
            except OSError:
                pass  # another process restored it first
            olds.remove(good[-1])
    if complete(target):
        for p in olds:
            shutil.rmtree(p, ignore_errors=True)
    for p in _dead(names.found(target, "new"), stale_s, now):
        shutil.rmtree(p, ignore_errors=True)
    return restored
