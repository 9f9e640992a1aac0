"""What makes the dataset overview quick without changing its numbers: PNG headers parsed from their IHDR
chunk as Pillow maps them, clean binary masks counted as read, and the facts kept for the next overview of
a workspace (content-addressed labels, images by size and modification time)."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from PIL import Image

from medseg.errors import ReadError
from medseg.stats import collect, stats
from medseg.stats.cache import FactsCache
from medseg.workspace import Workspace


def _pngs(root):
    """One PNG per (bit depth, colour type) Pillow or OpenCV writes, and a JPEG named .png."""
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (9, 7), np.uint8)
    files = {
        "1bit": Image.fromarray(grey > 128),
        "L": Image.fromarray(grey),
        "LA": Image.fromarray(np.dstack([grey, grey])),
        "RGB": Image.fromarray(np.dstack([grey] * 3)),
        "RGBA": Image.fromarray(np.dstack([grey] * 4)),
        "P": Image.fromarray(grey).convert("P"),
        "I16": Image.fromarray(grey.astype(np.uint16) * 257),
    }
    trns = Image.fromarray(grey % 4).convert("P")
    trns.info["transparency"] = 0
    files["P4trns"] = trns
    out = {}
    for name, im in files.items():
        out[name] = root / f"{name}.png"
        im.save(out[name], **({"bits": 2, "transparency": 0} if name == "P4trns" else {}))
    for name, a in (("RGB16", np.dstack([grey] * 3)), ("RGBA16", np.dstack([grey] * 4))):
        out[name] = root / f"{name}.png"
        cv2.imwrite(str(out[name]), a.astype(np.uint16) * 257)
    out["jpeg"] = root / "jpeg.png"
    Image.fromarray(grey).save(out["jpeg"], format="JPEG")
    return out


def test_png_headers_read_as_pillow_reads_them(tmp_path, monkeypatch):
    files = _pngs(tmp_path)
    quick = {name: collect._raster_header(path, "png") for name, path in files.items()}
    assert {name for name, path in files.items() if collect._png_ihdr(path) is None} == {"jpeg"}
    with open(files["RGBA16"], "rb") as f:
        assert f.read(26)[24:26] == bytes([16, 6])  # the 16-bit colour types are really there
    monkeypatch.setattr(collect, "_png_ihdr", lambda path: None)
    slow = {name: collect._raster_header(path, "png") for name, path in files.items()}
    assert quick == slow
    assert quick["RGBA16"].channels == 4 and quick["RGBA16"].bits == 16 and quick["I16"].dtype == "uint16"
    assert quick["P4trns"].bits == 2 and quick["LA"].channels == 2 and quick["1bit"].bits == 1


def test_a_png_header_over_the_limits_is_refused_naming_the_file(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(path)
    monkeypatch.setenv("MEDSEG_MAX_PIXELS", "1000")
    with pytest.raises(ReadError, match="big.png.*50 x 40"):
        collect._png_ihdr(path)


def _workspace(tmp_path, n: int = 6) -> Workspace:
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(1, n + 1):
        Image.fromarray(np.full((20, 30, 3), 20 * i, np.uint8)).save(root / "images" / f"{i}.png")
        mask = np.zeros((20, 30), np.uint8)
        mask[1:3, 1 : 1 + i] = 255  # 2 * i px, one object
        mask[10, 10 : 10 + (i % 2)] = 255  # a second object in odd samples
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    return Workspace.create(tmp_path / "ws", root)


def _numbers(report) -> dict:
    numbers = dict(report.numbers)
    numbers.pop("seconds")
    return numbers


def test_a_cached_overview_equals_a_fresh_one_and_reads_only_what_changed(tmp_path):
    ws = _workspace(tmp_path)
    cache = FactsCache()
    first = stats(ws, cache=cache, workers=1)
    assert (cache.hits, cache.misses) == (0, 12) and _numbers(first) == _numbers(stats(ws, workers=1))
    assert first.numbers["labels"]["classes"]["foreground"]["objects"] == 6 + 3

    mask = ws.current_mask("2").copy()
    mask[15:18, 20:25] = 1  # 15 px, a new object
    ws.save_revision("2", mask, origin="manual")
    imported = ws.revisions("4")[0].id
    ws.save_revision("4", np.zeros((20, 30), np.uint8), origin="manual")
    ws.revert("4", imported)  # a new head with the imported content: decoded neither time
    ws.set_status("5", "excluded", "blurred")
    image = tmp_path / "ds" / "images" / "6.png"
    Image.fromarray(np.full((20, 30), 99, np.uint8)).save(image)  # now grey: its header is read again
    os.utime(image, ns=(1, 1))

    cached = stats(ws, cache=cache, workers=1)
    assert cache.misses == 12 + 2  # the new label and the changed image
    assert _numbers(cached) == _numbers(stats(ws, workers=1))
    labels = cached.numbers["labels"]["classes"]["foreground"]
    assert labels["pixels"] == sum(2 * i + i % 2 for i in (1, 2, 3, 4, 6)) + 15 and labels["objects"] == 5 + 2 + 1
    assert cached.numbers["cleaning"] == {"samples_changed": 2, "samples_excluded": 1}
    assert cached.numbers["images"]["channels"] == {"1": 1, "3": 5}


def test_the_cache_keeps_at_most_its_size(tmp_path):
    cache = FactsCache(max_entries=3)
    for k in range(5):
        cache.mask(("sha", k), lambda k=k: collect.MaskFacts(k, {}, {}))
    assert cache.mask(("sha", 4), lambda: None).total == 4 and cache.misses == 5 and cache.hits == 1
    assert cache.mask(("sha", 0), lambda: collect.MaskFacts(-1, {}, {})).total == -1  # dropped first
