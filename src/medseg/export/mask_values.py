"""Which values the exported masks hold: the source's convention by default, or class ids.

A binary dataset's masks are usually stored as 0/255 (CVC-ClinicDB, Kvasir-SEG, the demo set); the
workspace holds them as class ids 0/1. Exporting ids where the source held 0/255 breaks a user's
downstream code that thresholds at 128 (it sees empty masks), so plain folders keep the source's
convention by default (``mask_values="source"``); ``"ids"`` writes the class ids. The convention is read
from the source mask files of a binary dataset (up to ``SOURCE_PEEK`` of them, the first that hold any
foreground): the foreground's nominal value, 255 when the largest stored value is above 1 and at most
255 (grey noise included), 1 otherwise. Multi-class and multilabel masks keep their ids (palette or
integer files store ids already). Only a writer that declares ``follows_mask_values`` (plain folders)
is given the 0/255 scale; the others (nnU-Net's and MONAI's label ids, a plugin's format) keep class ids
whatever the option, and the manifest and CHANGES.md say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medseg.errors import ExportError

MASK_VALUES = ("source", "ids")
SOURCE_PEEK = 8  # source mask files looked at; one binary dataset stores one convention


@dataclass(frozen=True)
class MaskValues:
    """What the export writes: ``scale`` 255 (foreground 255) or 1 (class ids), and the words for it."""

    option: str
    source: str  # the source's convention: "0/255", "0/1" or "class ids"
    written: str  # what the files hold: "0/255" or "class ids"
    scale: int
    note: str  # one sentence for the summary, CHANGES.md and the widget

    def to_dict(self) -> dict:
        return {"option": self.option, "source": self.source, "written": self.written, "note": self.note}


def check_option(mask_values: str) -> str:
    if mask_values not in MASK_VALUES:
        raise ExportError(f"mask values must be one of {', '.join(MASK_VALUES)}, got {mask_values!r}")
    return mask_values


def source_convention(classmap, records) -> str:
    """ "0/255" or "0/1" for a binary dataset (read from its source mask files), else "class ids"."""
    if classmap.task != "binary":
        return "class ids"
    from medseg.io.mask_read import read_mask_values

    looked = 0
    for rec in records:
        if looked >= SOURCE_PEEK:
            break
        if getattr(rec, "mask_kind", "binary") != "binary":
            return "class ids"  # ids files, RLE strings, label volumes: ids are their convention
        for path in (rec.mask_paths or {}).values():
            if not Path(path).is_file():
                continue
            try:
                top = float(np.nanmax(np.asarray(read_mask_values(path), dtype=np.float64)))
            except (OSError, ValueError):  # an unreadable file is reported elsewhere
                continue
            if top > 0:
                looked += 1
                if 1 < top <= 255:
                    return "0/255"
    return "0/1" if looked else "class ids"


def resolve(option: str, classmap, records, writer, mask_scale: int) -> MaskValues:
    """What this export writes (module doc). ``mask_scale`` 255 asked for explicitly (viewing) stands."""
    option = check_option(option)
    source = source_convention(classmap, records)
    if mask_scale == 255:  # asked for: the writer honours it or refuses it
        return MaskValues(
            option, source, "0..255 (ids spread for viewing)", 255, "Masks spread over 0..255 for viewing."
        )
    if not getattr(writer, "follows_mask_values", False):
        own = getattr(writer, "own_mask_values", "") or f"the {getattr(writer, 'name', 'export')} format's convention"
        return MaskValues(option, source, "class ids", 1, f"Masks written as class ids: {own}.")
    if option == "source" and source == "0/255":
        return MaskValues(option, source, "0/255", 255, "Masks written as 0/255 like the source.")
    if source == "0/255":
        return MaskValues(option, source, "class ids", 1, "Masks written as class ids 0/1 (the source stores 0/255).")
    if source == "0/1":
        return MaskValues(option, source, "class ids", 1, "Masks written as 0/1 like the source.")
    return MaskValues(option, source, "class ids", 1, "Masks written as class ids like the source.")
