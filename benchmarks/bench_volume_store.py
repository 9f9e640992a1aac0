"""Saving corrected slices of a CT volume in a workspace: time of one slice vs the whole volume, and storage
growth per revision against the number of slices it changed.

    python benchmarks/bench_volume_store.py [--shape 300 512 512] [--saves 10] [--keep DIR]

A synthetic int16 CT (``--shape``: slices, rows, cols; 512x512x300 by default) and its label volume (three
organ-like ellipsoids over two thirds of the slices) are written as an nnU-Net raw 3-D dataset and imported
with ``Workspace.create``. Then, each ``--saves`` times (the median is printed):

  * one corrected slice saved with ``save_slices`` (what the napari dock does);
  * the same correction given as the whole volume to ``save_revision`` (every slice hashed, one written);
  * the whole label volume saved as one blob, as every save did before slice storage (checked, hashed,
    written, the parent read back for the changed-pixel counts).

Storage growth: revisions changing 1, 5, 20 and 100 slices, each row with the bytes its slice files and
database rows added, next to the bytes of one whole-volume blob. Target (issue 15): one slice's save
<= 0.2 s and growth proportional to the changed slices, not the volume.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def synthetic_ct(shape: tuple[int, int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(image int16 HU, labels uint8 0..3), (slice, row, col), built slice by slice to bound memory."""
    rng = np.random.default_rng(seed)
    z_n, h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    image = np.empty(shape, np.int16)
    labels = np.zeros(shape, np.uint8)
    body = ((yy - h / 2) / (0.45 * h)) ** 2 + ((xx - w / 2) / (0.42 * w)) ** 2 < 1
    organs = [(0.45, 0.35, 0.22, 1, 60), (0.42, 0.68, 0.12, 2, 50), (0.68, 0.5, 0.08, 3, 140)]
    noise = rng.normal(0, 12, (h, w)).astype(np.float32)
    for z in range(z_n):
        t = (z - z_n / 2) / (z_n / 3)  # organs span the middle two thirds of the slices
        sl = np.where(body, 40.0, -1000.0).astype(np.float32) + np.roll(noise, z, axis=0)
        for cy, cx, r, cid, hu in organs:
            rz = r * np.sqrt(max(0.0, 1 - t * t))
            if rz <= 0:
                continue
            inside = ((yy - cy * h) / (rz * h)) ** 2 + ((xx - cx * w) / (rz * w)) ** 2 < 1
            labels[z][inside] = cid
            sl[inside] = hu
        image[z] = np.rint(sl).astype(np.int16)
    return image, labels


def write_dataset(root: Path, image: np.ndarray, labels: np.ndarray) -> Path:
    """nnU-Net raw 3-D with one case; the arrays are (slice, row, col), NIfTI stores (col, row, slice)."""
    import json

    from _volume_data import rotated_affine, save_nifti

    affine = rotated_affine(spacing=(0.75, 0.75, 1.5), angle_deg=0.0)
    save_nifti(root / "imagesTr" / "ct_000_0000.nii.gz", np.ascontiguousarray(image.transpose(2, 1, 0)), affine)
    save_nifti(root / "labelsTr" / "ct_000.nii.gz", np.ascontiguousarray(labels.transpose(2, 1, 0)), affine)
    meta = {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "liver": 1, "spleen": 2, "kidney": 3},
        "numTraining": 1,
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def folder_bytes(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def db_bytes(ws_root: Path) -> int:
    """Pages in use by the database, WAL included (read through a second connection)."""
    with sqlite3.connect(ws_root / "workspace.sqlite") as c:
        c.execute("PRAGMA wal_checkpoint(PASSIVE)")
        return c.execute("PRAGMA page_count").fetchone()[0] * c.execute("PRAGMA page_size").fetchone()[0]


def stroke(slice_: np.ndarray, k: int, value: int) -> np.ndarray:
    """A brush correction: a 40x40 block painted ``value`` at a position that moves with ``k``."""
    out = slice_.copy()
    h, w = out.shape
    r, c = (h // 3 + 7 * k) % (h - 40), (w // 3 + 11 * k) % (w - 40)
    out[r : r + 40, c : c + 40] = value
    return out


def whole_volume_save(store, parent_sha: str, volume: np.ndarray, classmap) -> str:
    """What a save cost before slice storage: the volume checked, hashed and written as one blob, the parent
    read back for the changed-pixel counts (the database row, a few ms, is left out)."""
    from medseg.workspace.blobs import mask_sha256
    from medseg.workspace.masks import canonical_mask, changed_pixels

    canon = canonical_mask(volume, classmap)
    sha = store.put(canon, mask_sha256(canon))
    changed_pixels(store.get(parent_sha), canon, classmap)
    return sha


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", type=int, nargs=3, default=(300, 512, 512), metavar=("SLICES", "ROWS", "COLS"))
    ap.add_argument("--saves", type=int, default=10, help="repeats of each timed save (median printed)")
    ap.add_argument("--keep", type=Path, default=None, help="build the dataset and workspace here and keep them")
    args = ap.parse_args(argv)

    from medseg.io.volume_labels import read_label_volume
    from medseg.workspace import Workspace
    from medseg.workspace.blobs import BlobStore

    shape = tuple(args.shape)
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        t = time.perf_counter()
        image, labels = synthetic_ct(shape)
        data = write_dataset(base / "Dataset001_SynthCT", image, labels)
        del image
        print(f"dataset: {'x'.join(map(str, shape))} int16 CT + labels in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        ws = Workspace.create(base / "ws", data, author="bench")
        n_files, n_bytes = folder_bytes(ws.root / "masks")
        print(
            f"workspace create: {time.perf_counter() - t:.1f} s; {n_files} slice files, {n_bytes / 1e6:.2f} MB "
            f"for {shape[0]} slices ({labels.nbytes / 1e6:.0f} MB of labels)"
        )
        sid = ws.sample_ids()[0]
        t = time.perf_counter()
        current = ws.current_mask(sid)
        read_s = time.perf_counter() - t
        stored, _ = read_label_volume(data / "labelsTr" / "ct_000.nii.gz")  # in the reader's display order
        assert np.array_equal(current, stored), "the imported volume is not the label volume"
        del stored
        organ = [z for z in range(current.shape[0]) if current[z].any()]
        z0 = organ[len(organ) // 2]
        t = time.perf_counter()
        ws.current_slice(sid, z0)
        slice_read_s = time.perf_counter() - t

        slice_s, whole_rev_s, blob_s = [], [], []
        scratch = BlobStore(base / "whole-volume-blobs")
        previous = scratch.put(current)
        for k in range(args.saves):
            fixed = stroke(current[z0], k, 1 + k % 3)
            t = time.perf_counter()
            rev = ws.save_slices(sid, {z0: fixed}, origin="manual", author="bench")
            slice_s.append(time.perf_counter() - t)
            assert ws.changed_slices(rev.id) == [z0]
            current[z0] = fixed

            current[z0 + 1] = stroke(current[z0 + 1], k, 1 + (k + 1) % 3)
            t = time.perf_counter()
            rev = ws.save_revision(sid, current, origin="manual", author="bench")
            whole_rev_s.append(time.perf_counter() - t)
            assert ws.changed_slices(rev.id) == [z0 + 1]

            t = time.perf_counter()
            previous = whole_volume_save(scratch, previous, current, ws.classmap)
            blob_s.append(time.perf_counter() - t)
        whole_blob_bytes = folder_bytes(scratch.root)[1] / (args.saves + 1)

        med = statistics.median
        print()
        print(f"{'save (median of ' + str(args.saves) + ')':<58}{'seconds':>10}{'vs whole':>10}")
        rows = [
            ("one corrected slice: save_slices", med(slice_s)),
            ("the same as a whole volume: save_revision (1 slice new)", med(whole_rev_s)),
            ("whole volume as one blob, as the store saved before slices", med(blob_s)),
        ]
        for name, s in rows:
            print(f"{name:<58}{s:>10.4f}{s / med(blob_s):>9.3f}x")
        print(f"{'read the whole label volume (current_mask)':<58}{read_s:>10.4f}")
        print(f"{'read one slice (current_slice)':<58}{slice_read_s:>10.4f}")
        target = "met" if med(slice_s) <= 0.2 else "MISSED"
        print(f"target: one slice's save <= 0.2 s: {target} ({med(slice_s):.4f} s)")

        print()
        print(
            f"{'changed slices':>15}{'new files':>11}{'slice bytes':>13}{'db bytes':>10}{'bytes/slice':>13}"
            f"{'vs whole blob':>15}"
        )
        for n in (1, 5, 20, 100):
            zs = sorted({int(z) for z in np.linspace(0, current.shape[0] - 1, min(n, current.shape[0])).round()})
            before_files, before_bytes = folder_bytes(ws.root / "masks")
            before_db = db_bytes(ws.root)
            slices = {z: stroke(current[z], z + n, 3) for z in zs}  # a stroke of its own on each slice
            rev = ws.save_slices(sid, slices, origin="manual", author="bench")
            for z, s in slices.items():
                current[z] = s
            files, size = folder_bytes(ws.root / "masks")
            grown = size - before_bytes
            db_grown = db_bytes(ws.root) - before_db
            assert len(ws.changed_slices(rev.id)) == len(zs)
            print(
                f"{len(zs):>15}{files - before_files:>11}{grown:>13,}{db_grown:>10,}"
                f"{(grown + db_grown) / len(zs):>13,.0f}{(grown + db_grown) / whole_blob_bytes:>14.4f}x"
            )
        print(f"(one whole-volume blob: {whole_blob_bytes:,.0f} bytes)")
        assert ws.check_integrity(blobs=False) == []
        ws.close()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    sys.exit(main())
