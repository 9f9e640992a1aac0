"""What a dataset layout declares: the one protocol every layout module fills in.

A layout is a way of keeping images and masks in a folder (``images/`` +
``masks/``, nnU-Net raw, a CSV of run-length masks ...). Its module builds one
:class:`Layout` (the generic module builds three) and
:mod:`medseg.datasets.registry` lists it, in detection order. Everything that
needs to know the layouts asks the registry: ``open_dataset`` (detect, index,
groups), :mod:`medseg.destinations` (which folders are source data), the CLI's
``--layout`` choices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medseg.classmap import ClassMap
    from medseg.datasets.dataset import Problem, Sample

IndexResult = tuple["list[Sample]", "list[Problem]", "ClassMap"]
# (how a refusal names the layout, the folders and files it keeps source data in)
SourceData = tuple[str, "set[Path]"]


@dataclass(frozen=True)
class Layout:
    """One dataset layout.

    ``detect(folder)``: True when ``folder`` itself is a root of this layout.
    Cheap (folder names, a CSV header, a few image headers; never an index):
    it runs on every folder dropped on napari. An OSError or ValueError it
    lets through (permissions, a broken link) means the folder is not taken.

    ``index(root)``: ``(samples, problems, inferred class map)``. Files that
    cannot be used become :class:`medseg.datasets.Problem` entries, never
    exceptions; a root that is not of this layout at all is a ReadError.

    ``source_data(folder)``: when ``folder`` looks like a root of this layout,
    the name a refusal gives it and the folders and files holding its source
    data, else None. Broader than ``detect`` on purpose (a half-copied dataset,
    or one of volumes, is still never written into); as cheap, no header read.
    Layouts that keep their data in the same folders may share one function:
    the registry calls each distinct function once.

    ``auto_group(sample_id)``: the group of a sample under ``group_by="auto"``
    (a patient, a case); None: integer stems in frame blocks, else the stem.
    """

    name: str
    description: str  # one line: the folders and files it expects, and which public datasets use it
    detect: Callable[[Path], bool]
    index: Callable[[Path], IndexResult]
    source_data: Callable[[Path], SourceData | None]
    auto_group: Callable[[str], str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"a layout name is a plain identifier (it is a CLI choice), got {self.name!r}")
        if not isinstance(self.description, str) or not self.description.strip() or "\n" in self.description:
            raise ValueError(f"layout {self.name}: the description is one non-empty line")
        for part in ("detect", "index", "source_data"):
            if not callable(getattr(self, part)):
                raise ValueError(f"layout {self.name}: {part} must be callable")
        if self.auto_group is not None and not callable(self.auto_group):
            raise ValueError(f"layout {self.name}: auto_group must be callable or None")
