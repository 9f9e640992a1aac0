"""The exit codes every sub-command shares, and the one-line form of a clean error."""

from __future__ import annotations

from medseg.errors import one_line

__all__ = ["EXIT_DONE", "EXIT_BUG", "EXIT_INPUT", "EXIT_INTERRUPTED", "one_line"]

EXIT_DONE, EXIT_BUG, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
