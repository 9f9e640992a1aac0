"""The ``Workspace`` methods of volume samples (CT, MRI): slices read alone, corrected slices saved alone.

A mixin of :class:`medseg.workspace.workspace.Workspace` (it uses the workspace's connection, blob store,
class map and lock); the storage itself is :mod:`medseg.workspace.volumes` and
:mod:`medseg.workspace.volume_saves`.
"""

from __future__ import annotations

import json

import numpy as np

from medseg.errors import WorkspaceError
from medseg.workspace import volume_saves
from medseg.workspace import volumes as vol
from medseg.workspace.blobs import mask_sha256
from medseg.workspace.create import default_author
from medseg.workspace.locking import locked
from medseg.workspace.records import CORRECTED, ORIGINS, REVERT, Revision


class VolumeMethods:
    @locked
    def is_volume(self, sample_id: str) -> bool:
        """True for a volume sample (CT, MRI): its labels are (Z, Y, X) and it saves slices."""
        return self._sample_row(sample_id)["mask_kind"] == vol.VOLUME

    @locked
    def geometry(self, sample_id: str):
        """The image volume's grid (:class:`medseg.io.volume_geometry.Geometry`), None for a 2-D sample."""
        from medseg.io.volume_geometry import Geometry

        g = self.sample(sample_id).geometry
        return Geometry.from_dict(g) if g else None

    @locked
    def current_slice(self, sample_id: str, z: int) -> np.ndarray:
        """Slice ``z`` (Y, X) of a volume sample's current revision, read alone."""
        return self.mask_slices(self._head_of(sample_id), [z])[0]

    @locked
    def mask_slices(self, revision_id: int, zs) -> np.ndarray:
        """Slices ``zs`` of a volume revision, stacked in the order given: (len(zs), Y, X)."""
        rev = self.revision(revision_id)
        info = self._volume_info(rev)
        zs = [vol.slice_index(z, info, rev.sample_id) for z in zs]
        shas = vol.resolve(self._conn, rev.id, info, zs)
        return vol.read_slices(self._blobs, [shas[z] for z in zs], info)

    @locked
    def changed_slices(self, revision_id: int) -> list[int]:
        """The slices a volume revision changed against its parent (none for the first revision)."""
        return vol.changed_slices(self._conn, int(revision_id))

    def _head_of(self, sample_id: str) -> int:
        head = self._sample_row(sample_id)["head_revision"]
        if head is None:
            raise WorkspaceError(f"{self.root}: sample {sample_id!r} has no revision")
        return head

    def _volume_info(self, rev: Revision) -> vol.VolumeInfo:
        info = vol.info_of(self._conn, rev.id)
        if info is None:
            raise WorkspaceError(f"sample {rev.sample_id}: revision {rev.id} is a 2-D mask, not a volume")
        return info

    @locked
    def save_slices(
        self,
        sample_id: str,
        slices: dict,
        *,
        origin: str,
        author: str | None = None,
        note: str | None = None,
        details: dict | None = None,
    ) -> Revision:
        """Save corrected slices ``{z: (Y, X) mask}`` of a volume sample as its new head revision.

        Only the given slices are checked, hashed and written; those equal to
        the head's are no change, and when none changed the head is returned.
        ``details["slices"]`` of the new revision lists the changed z.
        """
        check_origin(origin)
        sample_id = str(sample_id)
        row = self._sample_row(sample_id)
        if row["mask_kind"] != vol.VOLUME:
            raise WorkspaceError(f"sample {sample_id} is a 2-D sample, it has no slices; use save_revision")
        info = self._new_volume_info(row, None)
        arrays = vol.canonical_slices(slices, self.classmap, sample_id, info)
        shas = {z: mask_sha256(a) for z, a in arrays.items()}
        return self._commit_volume(sample_id, info, shas, arrays, origin, author, note, details)

    def _new_volume_info(self, row, shape) -> vol.VolumeInfo:
        """The grid a new revision of this volume sample must have: the head's, else the image's."""
        if row["head_revision"] is not None:
            return self._volume_info(self.revision(row["head_revision"]))
        geometry = json.loads(row["extra"]).get("geometry")
        shape = geometry["shape"] if geometry else shape
        if shape is None or len(shape) != 3:
            raise WorkspaceError(f"sample {row['id']} has no revision and no known grid: save the whole volume")
        return vol.VolumeInfo(tuple(int(n) for n in shape), vol.volume_dtype(self.classmap).name)

    def _commit_volume(self, sample_id, info, shas, arrays, origin, author, note, details) -> Revision:
        return volume_saves.commit(
            self._conn,
            self._blobs,
            self.classmap,
            sample_id,
            info,
            shas,
            arrays,
            origin=origin,
            author=author or default_author(),
            note=note,
            details=details,
            mark_corrected=lambda sid, who: self._set_status(sid, CORRECTED, None, who),
        )

    def _save_volume(self, row, mask, origin, author, note, details) -> Revision:
        """``save_revision`` of a volume sample: only the slices that differ from the head are written."""
        info = self._new_volume_info(row, np.shape(mask))
        canon = vol.canonical_volume(mask, self.classmap, row["id"], info.shape)
        shas = dict(enumerate(vol.slice_hashes(canon)))
        head = row["head_revision"]
        stored = vol.resolve(self._conn, head, info) if head is not None else {}
        vol.check_slices(canon, [z for z, sha in shas.items() if stored.get(z) != sha], self.classmap, row["id"])
        return self._commit_volume(row["id"], info, shas, dict(enumerate(canon)), origin, author, note, details)

    def _revert_volume(self, sample_id: str, target: Revision, info, author, note) -> Revision:
        """``revert`` of a volume sample: the target's slices are stored already, none is written again."""
        return self._commit_volume(
            sample_id,
            info,
            vol.resolve(self._conn, target.id, info),
            None,
            REVERT,
            author,
            note or f"revert to revision {target.id}",
            {"reverted_to": target.id},
        )

    def _read_volume(self, revision_id: int, info) -> np.ndarray:
        shas = vol.resolve(self._conn, revision_id, info)
        return vol.read_slices(self._blobs, [shas[z] for z in range(info.shape[0])], info)


def check_origin(origin: str) -> None:
    if origin not in ORIGINS:
        raise WorkspaceError(f"unknown revision origin {origin!r}; valid: {', '.join(ORIGINS)}")
