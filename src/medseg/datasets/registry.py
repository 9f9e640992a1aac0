"""The dataset layouts medseg knows, in detection order: the one place a layout is listed.

Adding a layout is one new module that builds a :class:`~medseg.datasets.layout.Layout`
(see ``layout_montgomery.py`` for a small one) and one line in ``_LAYOUTS``
below. A layout from outside the package (a plugin, a test) joins with
:func:`register_layout`.
"""

from __future__ import annotations

from pathlib import Path

from medseg.datasets.layout import Layout, SourceData
from medseg.datasets.layout_dicom_series import DICOM_SERIES
from medseg.datasets.layout_generic import CVC_ORIGINAL, IMAGES_MASKS, PALETTE
from medseg.datasets.layout_montgomery import MONTGOMERY
from medseg.datasets.layout_msd import MSD
from medseg.datasets.layout_nnunet import NNUNET
from medseg.datasets.layout_nnunet3d import NNUNET3D
from medseg.datasets.layout_uwmadison import UWMADISON
from medseg.datasets.layout_volume_folders import VOLUME_FOLDERS
from medseg.errors import UnknownLayoutError

# The first layout whose detect() takes a folder wins: those recognised by a file or fixed folder
# names come before the generic image folder + mask folder pair. A Decathlon task shares nnU-Net's
# folders (its dataset.json lists the pairs); nnU-Net 3-D and 2-D share them too (the first images'
# headers tell volumes from slices); image/label volume folders share the 2-D pairs' folder names.
_LAYOUTS: list[Layout] = [
    UWMADISON,
    MONTGOMERY,
    MSD,
    NNUNET3D,
    NNUNET,
    VOLUME_FOLDERS,
    DICOM_SERIES,
    CVC_ORIGINAL,
    PALETTE,
    IMAGES_MASKS,
]


def layouts() -> tuple[Layout, ...]:
    """Every registered layout, in detection order."""
    return tuple(_LAYOUTS)


def layout_names() -> tuple[str, ...]:
    """The names ``open_dataset(layout=...)`` and the CLI's ``--layout`` take, in detection order."""
    return tuple(lay.name for lay in _LAYOUTS)


def get_layout(name: str) -> Layout:
    """The layout called ``name``; UnknownLayoutError (a DatasetError listing the valid names) otherwise."""
    for lay in _LAYOUTS:
        if lay.name == name:
            return lay
    raise UnknownLayoutError(name, list(layout_names()))


def register_layout(layout: Layout, *, before: str | None = None) -> Layout:
    """Add ``layout``, detected last or just before the layout named ``before``; returns it.

    A name already registered is refused: replacing a layout would silently
    change how existing datasets open.
    """
    if not isinstance(layout, Layout):
        raise TypeError(f"register_layout takes a medseg.datasets.layout.Layout, got {type(layout).__name__}")
    if layout.name in layout_names():
        raise ValueError(f"a dataset layout named {layout.name!r} is already registered")
    at = len(_LAYOUTS) if before is None else _LAYOUTS.index(get_layout(before))
    _LAYOUTS.insert(at, layout)
    return layout


def unregister_layout(name: str) -> Layout:
    """Remove the layout called ``name`` (UnknownLayoutError when there is none); returns it."""
    lay = get_layout(name)
    _LAYOUTS.remove(lay)
    return lay


def detect_here(folder: Path) -> Layout | None:
    """The first layout whose ``detect`` takes ``folder`` itself (no look into sub-folders), or None."""
    for lay in _LAYOUTS:
        if lay.detect(folder):
            return lay
    return None


def source_data(folder: Path) -> SourceData | None:
    """(how to name it, its source folders and files) when ``folder`` looks like a dataset root, else None.

    Asked by :mod:`medseg.destinations` for the destination and each of its
    ancestors; a function shared by several layouts is called once.
    """
    tried = set()
    for lay in _LAYOUTS:
        if lay.source_data in tried:
            continue
        tried.add(lay.source_data)
        found = lay.source_data(folder)
        if found is not None:
            return found
    return None
