"""The export formats medseg writes: the one place a format is listed.

Adding a format is one new module with a writer class (see
:mod:`medseg.export.writer` for the protocol, ``writers_monai.py`` for a small
one) and one entry in ``_BUILTIN`` below; ``medseg export --format`` and the
Export widget take their choices from ``FORMATS``. A writer from outside the
package (a plugin, a test) joins with :func:`register_format`.
"""

from __future__ import annotations

from medseg.errors import ExportError
from medseg.export.writer import ExportWriter
from medseg.export.writers_folders import FoldersWriter
from medseg.export.writers_monai import MonaiWriter
from medseg.export.writers_nnunet import NnUNetWriter

_BUILTIN: tuple[type[ExportWriter], ...] = (
    FoldersWriter,
    NnUNetWriter,
    MonaiWriter,
)

# name -> writer class, in the order the CLI and the widget offer them
FORMATS: dict[str, type[ExportWriter]] = {w.name: w for w in _BUILTIN}


def format_names() -> tuple[str, ...]:
    return tuple(FORMATS)


def get_writer(name: str) -> type[ExportWriter]:
    """The writer class of format ``name``; ExportError listing the formats otherwise."""
    try:
        return FORMATS[name]
    except (KeyError, TypeError):
        raise ExportError(f"unknown export format {name!r}; valid: {', '.join(FORMATS)}") from None


def register_format(writer: type[ExportWriter]) -> type[ExportWriter]:
    """Add a writer class under its ``name`` (refused when taken); returns it, so it can decorate the class."""
    name = getattr(writer, "name", None)
    if not isinstance(writer, type) or not isinstance(name, str) or not name.isidentifier():
        raise TypeError(f"register_format takes a writer class with a plain ``name``, got {writer!r}")
    missing = [
        m for m in ("write", "finish", "manifest_extra", "result_note") if not callable(getattr(writer, m, None))
    ]
    if missing:
        raise TypeError(f"export writer {name!r} lacks {', '.join(missing)} (see medseg.export.writer)")
    if name in FORMATS:
        raise ValueError(f"an export format named {name!r} is already registered")
    FORMATS[name] = writer
    return writer


def unregister_format(name: str) -> type[ExportWriter]:
    writer = get_writer(name)
    del FORMATS[name]
    return writer
