"""The exit codes every sub-command shares, and the one-line form of a clean error."""

from __future__ import annotations

from pathlib import Path

from medseg.errors import MedsegError

EXIT_DONE, EXIT_BUG, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def one_line(e: BaseException, path: Path | None = None) -> str:
    """A clean error as one line naming its file: MedsegErrors name theirs; an OSError names its filename."""
    if isinstance(e, OSError) and not isinstance(e, MedsegError):
        where = e.filename or path
        text = f"{where}: {e.strerror or e}" if where else str(e)
    else:
        text = str(e)
    return " ".join(text.split()) if "\n" not in text.strip() else text.strip()
