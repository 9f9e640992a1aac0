"""The export's sha256 covers every byte: files larger than the read chunk, and an export of large images.

Every other export fixture is smaller than the 1 MiB read chunk, so a hash of
only the first chunk would pass them all.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from medseg.export import export_dataset
from medseg.export.files import _CHUNK, copy_hashed, sha256_file, sha256_path
from medseg.workspace import Workspace


def whole(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def big_pair(tmp_path):
    """Two files of 2.5 chunks that differ only in their last byte."""
    data = np.random.default_rng(0).integers(0, 256, _CHUNK * 5 // 2, dtype=np.uint8).tobytes()
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(data)
    b.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    return a, b


def test_a_file_is_hashed_to_its_last_byte(big_pair, tmp_path):
    a, b = big_pair
    assert sha256_file(a) == sha256_path(a) == whole(a)
    assert sha256_file(b) == whole(b) != sha256_file(a)
    assert copy_hashed(b, tmp_path / "copy" / "b.bin") == whole(b)
    assert (tmp_path / "copy" / "b.bin").read_bytes() == b.read_bytes()


def test_a_folder_hash_changes_with_a_byte_past_the_first_chunk(big_pair, tmp_path):
    a, b = big_pair
    for name, src in (("one", a), ("two", b)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.bin").write_bytes(src.read_bytes())
    assert sha256_path(tmp_path / "one") != sha256_path(tmp_path / "two")


def test_an_export_of_images_larger_than_the_chunk_records_their_whole_hashes(tmp_path):
    ds = tmp_path / "ds"
    (ds / "images").mkdir(parents=True)
    (ds / "masks").mkdir()
    rng = np.random.default_rng(1)
    for n in (1, 2):  # noise does not compress: each PNG is about 1.4 MiB
        Image.fromarray(rng.integers(0, 256, (700, 700, 3), dtype=np.uint8)).save(ds / "images" / f"{n}.png")
        mask = np.zeros((700, 700), np.uint8)
        mask[100:300, 200:400] = 255
        Image.fromarray(mask).save(ds / "masks" / f"{n}.png")
    assert all(p.stat().st_size > _CHUNK for p in (ds / "images").iterdir())
    out = tmp_path / "clean"
    with Workspace.create(tmp_path / "ws", ds) as ws:
        # a source image changed after the first chunk only, since the workspace imported it
        changed = ds / "images" / "2.png"
        raw = bytearray(changed.read_bytes())
        raw[-20] ^= 0xFF  # inside the final IEND chunk's CRC: the PNG bytes differ, nothing else looks at it
        changed.write_bytes(bytes(raw))
        export_dataset(ws, out, "folders")
    m = json.loads((out / "manifest.json").read_text())
    by_id = {s["id"]: s for s in m["samples"]}
    assert by_id["1"]["source"]["image"]["sha256"] == whole(ds / "images" / "1.png")
    exported = by_id["1"]["exported"]["images"][0]
    assert exported["sha256"] == whole(out / exported["path"]) == whole(ds / "images" / "1.png")
    assert by_id["2"]["exported"] is None and "changed since the workspace imported it" in by_id["2"]["left_out"]
    assert by_id["2"]["source"]["image"]["sha256"] == whole(changed)
