"""The fuzz corpus's PNG, JPEG and TIFF families: damaged real frames and masks, lying headers, odd valid content."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from _fuzz_bytes import (
    _pil_bytes,
    _tiff_bytes,
    jpeg_claiming,
    png_bomb,
    png_bytes,
    tiff_claiming,
)

if TYPE_CHECKING:
    from _fuzz_corpus import _Builder


def _rasters(b: _Builder, pairs, rounds: int) -> None:
    img_png, msk_png, img, msk, name = pairs[0]
    img2_png, msk2_png, _, _, name2 = pairs[1]
    grey16 = (img.mean(axis=2) * 257).astype(np.uint16)
    bases = [
        ("png-images", "png", name, img_png, ".png", "image", msk_png),
        ("png-images", "png", name2, img2_png, ".png", "image", msk2_png),
        ("png-masks", "png", name + " mask", msk_png, ".png", "mask", img_png),
        ("jpeg", "jpeg", name, _pil_bytes(img, "JPEG", quality=90), ".jpg", "image", msk_png),
        ("jpeg", "jpeg", name + " mask", _pil_bytes(msk, "JPEG", quality=90), ".jpg", "mask", img_png),
        ("tiff", "tiff", name, _tiff_bytes(img, photometric="rgb"), ".tif", "image", msk_png),
        (
            "tiff",
            "tiff",
            name + " 16-bit grey",
            _tiff_bytes(grey16, photometric="minisblack"),
            ".tif",
            "image",
            msk_png,
        ),
        ("tiff-masks", "tiff", name + " mask", _tiff_bytes(msk, photometric="minisblack"), ".tif", "mask", img_png),
        (
            "tiff-masks",
            "tiff",
            name + " float mask",
            _tiff_bytes((msk > 0).astype(np.float32), photometric="minisblack"),
            ".tif",
            "mask",
            img_png,
        ),
    ]
    for group, kind, base, data, suffix, role, partner in bases:
        b.damage(group, kind, base, data, suffix, role, partner, ".png", rounds)


def _raster_specials(b: _Builder, pairs) -> None:
    img_png, msk_png, img, msk, name = pairs[0]
    h, w = msk.shape[:2]
    rng = b.rng
    # headers that claim far more pixels than the file holds, and one that really decodes that big
    for wd, ht in ((20000, 20000), (100000, 100000), (2**31 - 1, 1), (1, 2**31 - 1), (65535, 65535)):
        b.add("huge", "png", f"PNG header claims {wd}x{ht}", png_bytes(None, size=(wd, ht)), ".png", "image", msk_png)
    b.add(
        "huge",
        "png",
        "PNG mask header claims 20000x20000",
        png_bytes(None, size=(20000, 20000)),
        ".png",
        "mask",
        img_png,
    )
    b.add("huge", "png", "PNG header claims 0x0", png_bytes(None, size=(0, 0)), ".png", "image", msk_png)
    b.add("huge", "png", "PNG bomb 16384x16384 zeros", png_bomb(16384), ".png", "image", msk_png)
    # over this project's limit, under the size at which Pillow refuses by itself
    b.add("huge", "png", "PNG bomb 12000x12000 zeros", png_bomb(12000), ".png", "image", msk_png)
    jpeg = _pil_bytes(img, "JPEG", quality=80)
    b.add("huge", "jpeg", "JPEG header claims 65500x65500", jpeg_claiming(jpeg, 65500, 65500), ".jpg", "image", msk_png)
    b.add("huge", "jpeg", "JPEG header claims 0x0", jpeg_claiming(jpeg, 0, 0), ".jpg", "image", msk_png)
    b.add("huge", "tiff", "TIFF tags claim 60000x60000", tiff_claiming(60000, 60000), ".tif", "image", msk_png)
    b.add("huge", "tiff", "TIFF mask tags claim 60000x60000", tiff_claiming(60000, 60000), ".tif", "mask", img_png)
    b.add("huge", "tiff", "TIFF tags claim 0x16", tiff_claiming(0, 16), ".tif", "image", msk_png)

    # float masks and images with values a mask cannot hold
    fg = (msk > 0).astype(np.float32)
    for case, values in (
        ("NaN", np.where(fg > 0, np.nan, 0)),
        ("inf", np.where(fg > 0, np.inf, 0)),
        ("-inf", np.where(fg > 0, -np.inf, 0)),
        ("negative", -fg),
        ("all NaN", np.full_like(fg, np.nan)),
        ("0.5", fg * 0.5),
        ("huge 1e30", fg * 1e30),
        ("float64 NaN", np.where(fg > 0, np.nan, 1.0)),
    ):
        arr = np.asarray(values, np.float64 if "float64" in case else np.float32)
        b.add("float-masks", "tiff", f"float TIFF mask {case}", _tiff_bytes(arr), ".tif", "mask", img_png)
    grey = img.mean(axis=2).astype(np.float32)
    for case, values in (
        ("NaN", np.where(fg > 0, np.nan, grey)),
        ("inf", np.where(fg > 0, np.inf, grey)),
        ("negative", -grey),
        ("all NaN", np.full_like(grey, np.nan)),
    ):
        b.add(
            "float-masks",
            "tiff",
            f"float TIFF image {case}",
            _tiff_bytes(values.astype(np.float32)),
            ".tif",
            "image",
            msk_png,
        )

    # degenerate shapes, each as image with a matching mask
    for rows, cols in ((1, 1), (1, 300), (300, 1), (1, 1000), (1000, 1), (2, 700), (3, 3)):
        im = rng.integers(0, 255, (rows, cols, 3), dtype=np.uint8)
        mk = np.zeros((rows, cols), np.uint8)
        mk.flat[: max(1, mk.size // 3)] = 255
        b.add("shapes", "png", f"PNG {rows}x{cols}", _pil_bytes(im, "PNG"), ".png", "image", _pil_bytes(mk, "PNG"))
    for rows, cols in ((1, 257), (257, 1)):
        im = rng.integers(0, 255, (rows, cols), dtype=np.uint8)
        mk = (np.arange(rows * cols).reshape(rows, cols) % 2 * 255).astype(np.uint8)
        b.add("shapes", "tiff", f"TIFF {rows}x{cols}", _tiff_bytes(im), ".tif", "image", _pil_bytes(mk, "PNG"))
        b.add(
            "shapes",
            "jpeg",
            f"JPEG {rows}x{cols}",
            _pil_bytes(np.stack([im] * 3, -1), "JPEG"),
            ".jpg",
            "image",
            _pil_bytes(mk, "PNG"),
        )
    # bit depths and colour types a camera does not write
    small, small_mask = img[:64, :80], msk[:64, :80]
    small_mask_png = _pil_bytes(small_mask, "PNG")
    rgba16 = np.concatenate([small.astype(np.uint16) * 257, np.full((*small.shape[:2], 1), 65535, np.uint16)], -1)
    b.add("bit-depths", "png", "16-bit RGBA PNG", png_bytes(rgba16, bit_depth=16), ".png", "image", small_mask_png)
    b.add(
        "bit-depths",
        "png",
        "16-bit RGB PNG",
        png_bytes(small.astype(np.uint16) * 257, bit_depth=16),
        ".png",
        "image",
        small_mask_png,
    )
    b.add(
        "bit-depths",
        "png",
        "16-bit grey PNG",
        png_bytes(small[..., 0].astype(np.uint16) * 257, bit_depth=16),
        ".png",
        "image",
        small_mask_png,
    )
    b.add(
        "bit-depths",
        "png",
        "grey+alpha PNG",
        png_bytes(np.stack([small[..., 0], small[..., 1]], -1)),
        ".png",
        "image",
        small_mask_png,
    )
    b.add(
        "bit-depths",
        "png",
        "16-bit RGBA PNG mask",
        png_bytes(np.stack([small_mask.astype(np.uint16) * 257] * 4, -1), bit_depth=16),
        ".png",
        "mask",
        _pil_bytes(small, "PNG"),
    )
    b.add(
        "bit-depths",
        "png",
        "16-bit mask ids to 1000",
        png_bytes((np.arange(64 * 80).reshape(64, 80) % 1001).astype(np.uint16), bit_depth=16),
        ".png",
        "mask",
        _pil_bytes(small, "PNG"),
    )
    b.add(
        "bit-depths",
        "png",
        "RGB colour mask",
        _pil_bytes(np.stack([small_mask, small_mask // 2, 255 - small_mask], -1), "PNG"),
        ".png",
        "mask",
        _pil_bytes(small, "PNG"),
    )
    b.add(
        "bit-depths",
        "tiff",
        "TIFF 5 samples per pixel",
        _tiff_bytes(
            rng.integers(0, 255, (64, 80, 5), dtype=np.uint8),
            photometric="minisblack",
            planarconfig="contig",
            extrasamples=[0, 0, 0, 0],
        ),
        ".tif",
        "image",
        small_mask_png,
    )
    b.add(
        "bit-depths",
        "tiff",
        "TIFF stack as mask",
        _tiff_bytes(np.stack([small_mask] * 3)),
        ".tif",
        "mask",
        _pil_bytes(small, "PNG"),
    )
    # palette masks: indices past the end of the palette, a full 256-entry index range
    idx = (small_mask > 0).astype(np.uint8)
    idx[:8, :8] = 200
    for case, ids, pal in (
        ("palette PNG mask index 200 of 2 colours", idx, [(0, 0, 0), (255, 0, 0)]),
        (
            "palette PNG mask 256 indices",
            (np.arange(64 * 80).reshape(64, 80) % 256).astype(np.uint8),
            [(i, i, i) for i in range(256)],
        ),
        ("palette PNG mask empty palette", idx, []),
    ):
        b.add(
            "palette-masks",
            "png",
            case,
            png_bytes(ids, colour_type=3, palette=pal),
            ".png",
            "mask",
            _pil_bytes(small, "PNG"),
        )
    ok = (small_mask > 0).astype(np.uint8)
    b.add(
        "palette-masks",
        "png",
        "palette PNG mask good",
        png_bytes(ok, colour_type=3, palette=[(0, 0, 0), (0, 255, 0)]),
        ".png",
        "mask",
        _pil_bytes(small, "PNG"),
    )
    # sizes that disagree, and a mask beside the wrong image
    b.add("png-masks", "png", "mask half the image size", _pil_bytes(msk[::2, ::2], "PNG"), ".png", "mask", img_png)
    b.add(
        "png-masks", "png", "mask transposed", _pil_bytes(np.ascontiguousarray(msk.T), "PNG"), ".png", "mask", img_png
    )
