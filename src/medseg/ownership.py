"""Which files medseg wrote, so that overwriting replaces only those.

Every folder medseg writes loose files into (predictions, QC and queue reports,
label files from napari) gets an ownership record, ``.medseg-outputs.jsonl``:
one JSON line per file written, ``{"path", "sha256", "size", "time", "tool",
"version"}``, ``path`` relative to the folder; the last line about a path wins.
Lines are appended after each file is on disk (a kill loses at most the line of
the file being written, which then counts as foreign: refused, never lost).

A file already at a destination is replaced only when ``overwrite`` is given AND
the record lists it AND its bytes still have the recorded sha256. A file medseg
did not write, or one edited since, is refused with a message naming it.
Checkpoints (``config.json`` holds the weights' sha256) and exports
(``manifest.json`` holds every file's sha256) carry their own records.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from medseg.destinations import OWNERSHIP_NAME, check_destination, resolved
from medseg.errors import OPTION_WORDS, DestinationError

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def read_record(folder: Path) -> dict[str, dict]:
    """{relative path: its last entry} from ``folder``'s ownership record; empty without one."""
    out: dict[str, dict] = {}
    try:
        lines = (folder / OWNERSHIP_NAME).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return out
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:  # a line cut by a kill
            continue
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            out[entry["path"]] = entry
    return out


def replace_problem(path: Path, record: dict[str, dict], rel: str) -> str | None:
    """Why ``path`` (an existing file) may not be replaced, or None when medseg wrote it and it is unchanged."""
    entry = record.get(rel)
    if entry is None:
        return "medseg did not write it (it is not in the folder's " + OWNERSHIP_NAME + ")"
    try:
        same = sha256_file(path) == entry.get("sha256")
    except OSError as e:
        return f"it cannot be read ({e.strerror or e})"
    if not same:
        return f"it changed since medseg wrote it at {entry.get('time', '?')}"
    return None


class OutputFolder:
    """A folder medseg writes files into: guarded once, each file checked before and recorded after writing.

    ``purpose`` names what is written, for messages and the record's ``tool``.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        purpose: str,
        sources: Iterable = (),
        workspaces: Iterable = (),
        overwrite: bool = False,
        internal: bool = False,
        single_file: str | None = None,
    ):
        if single_file is None:
            self.root = check_destination(
                folder, sources=sources, workspaces=workspaces, purpose=purpose, internal=internal
            )
        else:  # one file a user named: judged as a file (a report beside a dataset's folders is fine)
            self.root = check_destination(
                Path(folder) / single_file,
                sources=sources,
                workspaces=workspaces,
                purpose=purpose,
                internal=internal,
                file=True,
            ).parent
        self.purpose, self.overwrite = purpose, overwrite
        self._record: dict[str, dict] | None = None

    def _rel(self, path: Path) -> str:
        p = resolved(path if Path(path).is_absolute() else self.root / path)
        if self.root not in p.parents:
            raise DestinationError(f"refusing to write {p}: it is outside the output folder {self.root}", p, self.root)
        return p.relative_to(self.root).as_posix()

    def check(self, *names: str | os.PathLike) -> list[Path]:
        """The paths to write (names relative to the folder); DestinationError for one that may not be replaced."""
        out = []
        for name in names:
            rel = self._rel(Path(name))
            path = self.root / rel
            if path.exists() or path.is_symlink():
                if path.is_dir() or path.is_symlink():
                    raise DestinationError(
                        f"refusing to write {self.purpose} to {path}: a "
                        f"{'folder' if path.is_dir() else 'link'} is there; "
                        "move it away or choose another folder",
                        path,
                        path,
                    )
                if not self.overwrite:
                    raise DestinationError(
                        f"refusing to write {self.purpose} to {path}: the file exists; choose another folder, "
                        f"or {OPTION_WORDS['overwrite']} to replace files medseg wrote earlier",
                        path,
                        path,
                        option="overwrite",
                    )
                if self._record is None:
                    self._record = read_record(self.root)
                problem = replace_problem(path, self._record, rel)
                if problem is not None:
                    raise DestinationError(
                        f"refusing to overwrite {path} with {self.purpose}: {problem}; "
                        f"only files medseg wrote and nobody changed since are replaced. "
                        f"Move it away or choose another folder",
                        path,
                        path,
                    )
            out.append(path)
        return out

    def mkdir(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root

    def record(self, *paths: str | os.PathLike) -> None:
        """Add written files to the ownership record (call after they are on disk)."""
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        from medseg import __version__

        lines = []
        for p in paths:
            rel = self._rel(Path(p))
            path = self.root / rel
            entry = {
                "path": rel,
                "sha256": sha256_file(path),
                "size": path.stat().st_size,
                "time": now,
                "tool": f"medseg ({self.purpose})",
                "version": __version__,
            }
            lines.append(json.dumps(entry))
            if self._record is not None:
                self._record[rel] = entry
        if lines:
            with open(self.root / OWNERSHIP_NAME, "a", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")


def guarded_file(
    path: str | os.PathLike, *, purpose: str, sources: Iterable = (), workspaces: Iterable = (), overwrite: bool = False
) -> tuple[OutputFolder, Path]:
    """The folder and checked path for one file a user named (a report, a label file); record it after writing."""
    p = Path(os.path.expanduser(os.fspath(path)))
    folder = OutputFolder(
        p.parent, purpose=purpose, sources=sources, workspaces=workspaces, overwrite=overwrite, single_file=p.name
    )
    return folder, folder.check(p.name)[0]
