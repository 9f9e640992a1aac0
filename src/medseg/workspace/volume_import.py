"""Importing a volume sample's label when a workspace is created (:mod:`medseg.workspace.create`).

The label volume must lie on its image's grid (the geometry the indexer read from the image's header):
a label that does not becomes a ``grid_mismatch`` finding naming both files and what differs, one that
cannot be read or holds values outside the class map an ``unreadable`` one; neither stops the create.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg.datasets.dataset import GRID_MISMATCH, UNREADABLE
from medseg.errors import MedsegError
from medseg.findings import ERROR, Finding
from medseg.workspace import volumes as vol


def read_label(sample, classmap) -> np.ndarray | Finding:
    """The sample's label volume as canonical class ids (Z, Y, X), or the finding that says why not."""
    from medseg.io.volume_labels import read_label_volume

    path = next(iter(sample.mask_paths.values()), None)
    if path is None or len(sample.mask_paths) != 1:
        return _finding(sample, UNREADABLE, f"a volume sample has one label file, got {len(sample.mask_paths)}")
    try:
        ids, grid = read_label_volume(path)
    except (MedsegError, OSError, ValueError) as e:
        return _finding(sample, UNREADABLE, f"label volume cannot be imported: {e}", path)
    image_grid = sample.geometry
    why = image_grid.mismatch(grid) if image_grid is not None else None
    if why is not None:
        return _finding(
            sample,
            GRID_MISMATCH,
            f"label volume {Path(path).name} is not on the grid of its image {Path(sample.image_path).name}: {why}",
            path,
        )
    try:
        return vol.canonical_volume(ids, classmap, sample.id)
    except (MedsegError, ValueError) as e:
        return _finding(sample, UNREADABLE, f"label volume cannot be imported: {e}", path)


def entry(canon: np.ndarray) -> dict:
    """What the create's commit stores for an imported volume: its grid, slice hashes and volume hash."""
    info = vol.VolumeInfo(canon.shape, canon.dtype.name)
    shas = vol.slice_hashes(canon)
    return {"sha": vol.volume_sha256(info, shas), "volume": info.to_json(), "slices": shas}


def _finding(sample, check: str, message: str, path=None) -> Finding:
    return Finding(sample.id, check, ERROR, message, path=str(path or sample.image_path))
