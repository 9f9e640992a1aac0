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


def read_label(sample, classmap) -> tuple[np.ndarray, dict] | Finding:
    """(the label volume as canonical class ids (Z, Y, X), the columns its imported revision stores: grid,
    slice hashes, volume hash), or the finding that says why it cannot be imported."""
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
        canon = vol.canonical_volume(ids, classmap, sample.id)
        shas = vol.slice_hashes(canon)
        vol.check_slices(canon, distinct(shas).values(), classmap, sample.id)
    except (MedsegError, ValueError) as e:
        return _finding(sample, UNREADABLE, f"label volume cannot be imported: {e}", path)
    info = vol.VolumeInfo(canon.shape, canon.dtype.name)
    return canon, {"sha": vol.volume_sha256(info, shas), "volume": info.to_json(), "slices": shas}


def distinct(shas: list[str]) -> dict[str, int]:
    """{slice hash: first z holding it}: equal slices (the empty ones) are checked and stored once."""
    first: dict[str, int] = {}
    for z, sha in enumerate(shas):
        first.setdefault(sha, z)
    return first


def _finding(sample, check: str, message: str, path=None) -> Finding:
    return Finding(sample.id, check, ERROR, message, path=str(path or sample.image_path))
