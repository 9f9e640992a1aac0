"""The one display orientation of volumes, for any reader that knows its voxel-to-patient matrix.

A volume stored in voxel order (i, j, k) with an affine to RAS+ mm (a NIfTI
file, or a DICOM series stacked as (slice, row, col)) is shown as (slice, row,
col) = (inferior -> superior, anterior -> posterior, right -> left): "SPL",
the order :func:`medseg.io.nifti.read_nifti` returns. The turn is nibabel's
``io_orientation`` (the closest axis-aligned frame) followed by one fixed
transpose and two flips: axes are permuted and flipped, never resampled.

A NIfTI label and the DICOM series it belongs to therefore come back on one
display grid whatever order each stored its voxels in, and a lazy reader (one
slice at a time) can find the stored voxels of a display slice with
:meth:`DisplayGrid.slab`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medseg.io.volume_geometry import Geometry

ORIENTATION = "SPL"


@dataclass(frozen=True)
class DisplayGrid:
    """How a stored volume turns into display order: nibabel's ``ornt`` and the display grid it gives."""

    ornt: np.ndarray  # (3, 2) nibabel orientation: stored axis -> canonical RAS axis, flip
    stored_shape: tuple[int, int, int]
    stored_affine: np.ndarray  # 4x4, stored index -> RAS+ mm
    geometry: Geometry  # display shape, spacing and affine
    original_orientation: str | None  # the stored axes' codes, e.g. "LAS"; None when the affine is degenerate

    def to_display(self, data: np.ndarray, *, in_place: bool = False) -> np.ndarray:
        """The stored array (trailing channel axes allowed) in display order, contiguous.

        ``in_place``: the caller gives ``data`` away (a volume just decoded), so when the display order is
        ``data``'s own memory order up to reversed axes (a NIfTI stored slice by slice, as nibabel decodes
        it), the axes are reversed in that memory instead of copying the volume: a 512x512x300 CT opens
        with 157 MB less at its peak. ``data`` is then overwritten."""
        from nibabel.orientations import apply_orientation

        canon = apply_orientation(data, self.ornt)
        view = canon.transpose(2, 1, 0, *range(3, data.ndim))[:, ::-1, ::-1]
        if in_place and data.ndim == 3 and data.flags.writeable and not isinstance(data, np.memmap):
            done = _reverse_in_place(view)
            if done is not None:
                return done
        return np.ascontiguousarray(view)

    def axis_map(self) -> tuple[list[int], list[bool]]:
        """``(perm, flip)``: stored axis s is display axis ``perm[s]``, reversed when ``flip[s]``.

        nibabel's ``ornt`` sends stored axis s to canonical axis c (reversed when
        its flip is -1); display axis 2 - c is canonical axis c, reversed for c < 2.
        """
        perm = [2 - int(c) for c in self.ornt[:, 0]]
        flip = [bool((f < 0) != (int(c) != 2)) for c, f in self.ornt]
        return perm, flip

    def slab(self, z: int) -> Slab:
        """Where display slice ``z`` lies in the stored array."""
        n = self.geometry.shape[0]
        if not 0 <= z < n:
            raise IndexError(f"slice {z} is outside 0..{n - 1}")
        perm, flip = self.axis_map()
        axis = perm.index(0)
        index = self.stored_shape[axis] - 1 - z if flip[axis] else z
        a, b = (s for s in range(3) if s != axis)  # the slab's axes, in stored order
        by_display = {perm[a]: flip[a], perm[b]: flip[b]}
        return Slab(axis, index, perm[a] == 2, (by_display[1], by_display[2]))


def _reverse_in_place(view: np.ndarray) -> np.ndarray | None:
    """``view``'s values as a C-contiguous array over ``view``'s own memory, when that memory is a C-contiguous
    block read with some axes reversed (else None, nothing touched): the reversed axes are reversed in the
    block itself, slice by slice, so no more than one slice is copied at a time."""
    if view.size == 0:
        return None
    block = view[tuple(slice(None, None, -1) if st < 0 else slice(None) for st in view.strides)]
    if not block.flags.c_contiguous:
        return None
    flipped = [st < 0 and n > 1 for st, n in zip(view.strides, view.shape, strict=True)]
    n = block.shape[0]
    # _IN_PLACE_BYTES of slices per step: each numpy copy lets go of the interpreter lock, and a step per
    # slice waited for it 600 times on a CT while the GUI thread ran Python
    k = max(1, _IN_PLACE_BYTES // max(1, block[0].nbytes))
    if flipped[0]:
        lo, hi = 0, n
        while hi - lo > 1:
            m = min(k, (hi - lo) // 2)
            top = block[lo : lo + m].copy()
            block[lo : lo + m] = block[hi - m : hi][::-1]
            block[hi - m : hi] = top[::-1]
            lo, hi = lo + m, hi - m
    if any(flipped[1:]):
        inner = (slice(None), *(slice(None, None, -1) if f else slice(None) for f in flipped[1:]))
        for z in range(0, n, k):
            block[z : z + k] = block[z : z + k][inner].copy()
    return block


_IN_PLACE_BYTES = 1 << 23


@dataclass(frozen=True)
class Slab:
    """Display slice ``z`` is ``np.take(stored, index, axis)``, then :meth:`to_display`."""

    axis: int
    index: int
    transpose: bool  # the slab's first axis shows as display columns
    flips: tuple[bool, bool]  # reverse display rows, columns

    def to_display(self, slab: np.ndarray) -> np.ndarray:
        out = slab.T if self.transpose else slab
        axes = tuple(i for i, f in enumerate(self.flips) if f)
        return np.ascontiguousarray(np.flip(out, axis=axes) if axes else out)


def display_grid(stored_affine, stored_shape, stored_zooms) -> DisplayGrid:
    """The display grid of a volume stored as ``stored_shape`` (3 axes) with this affine and voxel sizes.

    A degenerate affine (no axis-aligned frame is closest) keeps the stored axes
    as they are, as ``read_nifti`` does.
    """
    from nibabel.orientations import aff2axcodes, inv_ornt_aff, io_orientation

    affine = np.asarray(stored_affine, dtype=float)
    shape = tuple(int(n) for n in stored_shape[:3])
    ornt = io_orientation(affine)
    oriented = not np.isnan(ornt).any()
    if not oriented:
        ornt = np.array([[0, 1], [1, 1], [2, 1]], dtype=float)
    canon_affine = affine @ inv_ornt_aff(ornt, shape)
    canon_shape = np.empty(3, int)
    canon_shape[ornt[:, 0].astype(int)] = shape
    canon_zooms = np.empty(3)
    canon_zooms[ornt[:, 0].astype(int)] = [float(v) for v in stored_zooms]
    ni, nj, nk = (int(n) for n in canon_shape)
    index_to_canon = np.array([[0, 0, -1, ni - 1], [0, -1, 0, nj - 1], [1, 0, 0, 0], [0, 0, 0, 1]], float)
    geometry = Geometry((nk, nj, ni), (canon_zooms[2], canon_zooms[1], canon_zooms[0]), canon_affine @ index_to_canon)
    codes = "".join(aff2axcodes(affine)) if oriented else None
    return DisplayGrid(ornt, shape, affine, geometry, codes)
