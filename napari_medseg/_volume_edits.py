"""Which slices of a label volume were edited since it was last saved, so a save hands the workspace only those.

A volume's labels are saved slice by slice (``Workspace.save_slices``): the
workspace hashes the slices it is given and stores the ones that differ from
the current revision. Handing it every slice of a 512x512x300 volume at each
save would hash 78 MB to find the one slice that changed, and copying the
volume to compare it later would double the labels' memory. Instead the slices
a stroke touched are read from the stroke itself: napari's ``paint`` event
carries the history item (the edited indices, or the bounding box of a masked
edit), and undo/redo replay a history item whose slices are read the same way.
A whole new array (``data`` event: a draft restored, another widget's write)
marks every slice. An item this module cannot read marks every slice too:
never fewer slices than were edited.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def touched_slices(item: Any, depth: int) -> set[int] | None:
    """The slices (axis 0) a napari history item (a list of atoms) wrote; None when it cannot tell."""
    if not isinstance(item, (list, tuple)):
        return None
    out: set[int] = set()
    for atom in item:
        zs = _atom_slices(atom, depth)
        if zs is None:
            return None
        out |= zs
    return out


def _atom_slices(atom: Any, depth: int) -> set[int] | None:
    key = getattr(atom, "slice_key", None)  # napari's masked paint atom: a bounding box of slices
    if key is not None:
        first = key[0]
        if isinstance(first, slice):
            return set(range(depth)[first])
        return {int(first)} if isinstance(first, (int, np.integer)) else None
    if isinstance(atom, tuple) and len(atom) == 3 and isinstance(atom[0], tuple) and atom[0]:
        zs = np.asarray(atom[0][0])  # (indices per axis, old values, new values)
        if zs.dtype.kind in "iu":
            return {int(z) for z in np.unique(zs)}
    return None


class SliceEdits:
    """The dirty slices of one label volume (see the module docstring)."""

    def __init__(self, depth: int):
        self.depth = int(depth)
        self.dirty: set[int] = set()

    def note(self, item: Any = None) -> None:
        """Record an edit: a history item, or None for "any slice may have changed"."""
        zs = touched_slices(item, self.depth) if item is not None else None
        self.dirty |= set(range(self.depth)) if zs is None else {z for z in zs if 0 <= z < self.depth}

    def slices(self, labels: Any) -> dict[int, np.ndarray]:
        """{z: a copy of slice z} of the dirty slices of ``labels``, in order (cleared once they are saved)."""
        return {z: np.array(labels[z], copy=True) for z in sorted(self.dirty)}

    def clear(self) -> None:
        self.dirty.clear()
