"""The ``medseg`` command: one module per sub-command (see :mod:`medseg.cli.main` for the list and exit codes)."""

from medseg.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
