"""Exceptions raised by the engine.

Every error about a file names the file and the cause, so the GUI and the CLI
can show it as it is without a traceback.
"""

from __future__ import annotations

from pathlib import Path


class MedsegError(Exception):
    """Base class of every error the engine raises on purpose."""


class ReadError(MedsegError, ValueError):
    """A file or folder could not be read; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class UnsupportedFormatError(ReadError):
    """No reader takes this file (unknown suffix and unrecognised content)."""


class MaskError(ReadError):
    """A mask file is readable but does not fit (size, values, class map)."""
