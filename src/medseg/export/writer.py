"""What an export format declares: the one protocol :func:`medseg.export.export.iter_export` drives.

``iter_export`` does everything formats share (the selection of samples by
status, the snapshot of head revisions, the masks checked against the class
map, the group-aware split, staging, the manifest and CHANGES.md); a format
only lays files out. It is a class with a ``name`` (the ``--format`` choice)
built once per export as ``Writer(root, classmap, mask_scale=, name=)``, then:

1. ``write(item)`` once per exported sample, in workspace order: write the
   sample's image and mask under ``root`` and return the files (a
   :class:`~medseg.export.item.Written`); an ExportError names the sample.
2. ``finish(written, split, options)`` once: the format's own metadata files
   (``dataset.json``, ``datalist.json`` ...), returned as WrittenFiles so the
   manifest hashes them.
3. ``manifest_extra()``: format-specific facts added to the manifest's top
   level (e.g. nnU-Net's renumbered label ids); ``{}`` by default.
4. ``result_note(split)``: a sentence added to the export's summary (where
   the folder has to go to be used); ``""`` by default.

The constructor refuses options the format cannot honour (ExportError) before
anything is written. Writers subclass :class:`ExportWriter` to inherit the
defaults; :mod:`medseg.export.formats` lists them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    from medseg.classmap import ClassMap
    from medseg.export.images import WrittenFile
    from medseg.export.item import ExportItem, SplitPlan, Written


@runtime_checkable
class ExportWriter(Protocol):
    name: ClassVar[str]
    description: ClassVar[str]  # one line: what the folder holds, for the CLI's and the widget's help
    # True: the export may set ``mask_scale`` 255 to keep a 0/255 source's convention (plain folders);
    # False: class ids whatever ``mask_values`` asks, for the reason ``own_mask_values`` gives (nnU-Net, MONAI)
    follows_mask_values: ClassVar[bool] = False
    own_mask_values: ClassVar[str] = ""

    def __init__(self, root: Path, classmap: ClassMap, *, mask_scale: int = 1, name: str | None = None) -> None: ...

    def write(self, item: ExportItem) -> Written: ...

    def finish(self, written: dict[str, Written], split: SplitPlan | None, meta: dict) -> list[WrittenFile]: ...

    def manifest_extra(self) -> dict:
        return {}

    def result_note(self, split: SplitPlan | None) -> str:
        return ""
