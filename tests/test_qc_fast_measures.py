"""QC's faster per-sample work gives what the slower code gave, bit for bit (issue 19, item 4).

Neighbour fit moves a thumbnail's centre by hand instead of ``scipy.ndimage.shift`` and inverts a sample's
pairs in one FFT call; the shape measure finds the largest object without ``regionprops``; a workspace's
decoding reads the sample's files from the records it holds instead of asking the workspace per sample.
Each is compared here with the code it replaced on crafted cases (edges, ties, scaled masks).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from medseg.classmap import ClassMap
from medseg.qc import signal_neighbours as sn
from medseg.qc.checks_base import SampleView
from medseg.qc.signal_shape import shape_measure
from medseg.qc.thumb_moves import moved_centres

BINARY = ClassMap.binary()


def _old_phase_shift(moving, fixed, spectra=None):
    """signal_neighbours.phase_shift before it moved the centre by hand: ndimage.shift of the whole thumbnail."""
    fb, fa = spectra if spectra is not None else (sn.spectrum(moving), sn.spectrum(fixed))
    cross = fa * np.conj(fb)
    cross /= np.abs(cross) + 1e-9
    corr = np.fft.ifft2(cross).real
    peak = np.unravel_index(int(np.argmax(corr)), corr.shape)
    shift = []
    for axis, p in enumerate(peak):
        n = corr.shape[axis]
        before = corr[(p - 1) % n, peak[1]] if axis == 0 else corr[peak[0], (p - 1) % n]
        after = corr[(p + 1) % n, peak[1]] if axis == 0 else corr[peak[0], (p + 1) % n]
        denom = before - 2 * corr[peak] + after
        sub = 0.5 * (before - after) / denom if denom < 0 else 0.0
        s = p + float(np.clip(sub, -0.5, 0.5))
        shift.append(s - n if s > n / 2 else s)
    dy, dx = shift
    moved = ndi.shift(moving.astype(np.float32), (dy, dx), order=1, mode="nearest")
    h, w = fixed.shape
    cy, cx = round(sn.CROP * h), round(sn.CROP * w)
    x, y = moved[cy : h - cy, cx : w - cx].ravel(), fixed[cy : h - cy, cx : w - cx].astype(np.float32).ravel()
    x, y = x - x.mean(), y - y.mean()
    denom = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return dy, dx, float((x * y).sum() / denom) if denom > 0 else 0.0


@pytest.mark.parametrize("shape", [(2, 2), (3, 7), (48, 64), (64, 43), (5, 64)])
def test_moved_centre_is_ndimage_shift_bit_for_bit(shape):
    rng = np.random.default_rng(sum(shape))
    h, w = shape
    a = rng.integers(0, 256, shape).astype(np.uint8)
    # sub-pixel moves, whole-pixel ones, half pixels, moves past the border (clamped), none
    moves = [tuple(rng.uniform(-s / 2, s / 2) for s in shape) for _ in range(40)]
    moves += [(float(dy), float(dx)) for dy in (-h, -1, 0, 1, h + 3) for dx in (-w - 2, -0.5, 0, 0.5, 2.25)]
    for dy, dx in moves:
        cy, cx = round(sn.CROP * h), round(sn.CROP * w)
        want = ndi.shift(a.astype(np.float32), (dy, dx), order=1, mode="nearest")[cy : h - cy, cx : w - cx]
        got = moved_centres(a[None], [(dy, dx)], cy, cx)[0]
        assert got.dtype == np.float32 and got.shape == want.shape
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (shape, dy, dx)


def _thumbs(rng, n: int, shape=(48, 64)) -> dict:
    """Grey thumbnails of one textured scene panned a few pixels a frame, with soft disc masks."""
    scene = ndi.gaussian_filter(rng.normal(120, 40, (shape[0] + 40, shape[1] + 40)), 2)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = {}
    for i in range(n):
        oy, ox = 20 + int(rng.integers(-6, 7)), 20 + int(rng.integers(-6, 7))
        grey = np.clip(scene[oy : oy + shape[0], ox : ox + shape[1]], 0, 255).astype(np.uint8)
        disc = ((yy - 24 - rng.uniform(-3, 3)) ** 2 + (xx - 30 - rng.uniform(-3, 3)) ** 2 <= 100) * 255.0
        out[f"f{i}"] = {"grey": grey, "mask": ndi.uniform_filter(disc, 3).astype(np.uint8)}
    out["other"] = {"grey": rng.integers(0, 256, shape).astype(np.uint8), "mask": np.zeros(shape, np.uint8)}
    out["small"] = {"grey": np.zeros((8, 8), np.uint8), "mask": np.zeros((8, 8), np.uint8)}
    return out


def test_moves_of_equals_the_pairwise_ndimage_moves_and_fits():
    rng = np.random.default_rng(3)
    thumbs = _thumbs(rng, 9)
    ids = [f"f{i}" for i in range(9)]
    samples = [(sid, [x for x in ids if x != sid][:6] + ["other", "small", "gone"]) for sid in ids]
    samples.append(("gone", ids[:2]))  # a sample without thumbnails: no moves, no fit
    moves, fits = sn.moves_of((samples, thumbs))
    k = 0
    for n, (sid, near) in enumerate(samples):
        found = []
        for nid in near:
            mine, theirs = thumbs.get(sid), thumbs.get(nid)
            if mine is None or theirs is None or mine["grey"].shape != theirs["grey"].shape:
                assert np.isnan(moves[k]).all()
                found.append((theirs, None))
            else:
                want = _old_phase_shift(theirs["grey"], mine["grey"])
                assert tuple(moves[k]) == want, (sid, nid)
                assert sn.phase_shift(theirs["grey"], mine["grey"]) == want
                found.append((theirs, want))
            k += 1
        dice = sn._dice_with(thumbs[sid], found) if sid in thumbs else []
        assert (np.isnan(fits[n]) and not dice) or fits[n] == max(dice)
    assert np.nanmax(fits) > 0.5  # the scene's frames matched and their discs agree


def _view(mask: np.ndarray, classmap: ClassMap = BINARY) -> SampleView:
    return SampleView("s", mask, classmap, image=np.zeros(mask.shape[:2], np.uint8))


def _old_shape_measure(v: SampleView) -> dict | None:
    """signal_shape.shape_measure with skimage's regionprops, as it was."""
    from skimage.measure import regionprops

    from medseg.qc.checks_masks import speck_threshold
    from medseg.qc.checks_objects import _SPECKS
    from medseg.qc.signal_shape import SIDE

    fg = v.foreground()
    total = int(fg.sum())
    if total == 0:
        return None
    h, w = fg.shape
    limit = speck_threshold(v.spatial_shape, _SPECKS["min_pixels"], _SPECKS["min_fraction"])
    objects = sum(int(np.count_nonzero(v.components(cid)[1] >= limit)) for cid, _ in v.class_masks())
    scale = min(1.0, SIDE / max(h, w))
    small = fg
    if scale < 1.0:
        size = (max(4, round(w * scale)), max(4, round(h * scale)))
        small = np.asarray(Image.fromarray(fg.astype(np.uint8) * 255).resize(size, Image.BOX)) >= 128
    labels, n = ndi.label(small, structure=np.ones((3, 3), bool))
    if n == 0:
        labels, n = ndi.label(fg, structure=np.ones((3, 3), bool))
    largest = max(regionprops(labels), key=lambda r: r.area)
    perimeter = max(float(largest.perimeter), 1.0)
    return {
        "log_area": float(np.log(total / fg.size)),
        "objects": float(max(objects, 1)),
        "log_roughness": float(np.log(perimeter**2 / (4 * np.pi * float(largest.area)))),
    }


def _shapes() -> list[tuple[np.ndarray, ClassMap]]:
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:48, :64]
    disc = (yy - 20) ** 2 + (xx - 30) ** 2 <= 120
    twins = np.zeros((48, 64), np.uint8)  # two objects of equal area: the first in label order is the largest
    twins[5:10, 5:12] = 1
    twins[30:35, 40:47] = 1
    ragged = (disc & (rng.random((48, 64)) > 0.2)).astype(np.uint8)
    edge = np.zeros((48, 64), np.uint8)
    edge[:, :3] = 1  # touching the border
    classes = np.zeros((48, 64), np.uint8)
    classes[5:20, 5:20] = 1
    classes[25:40, 30:60] = 2
    multi = ClassMap.from_names(["a", "b"])
    big = np.zeros((600, 500), np.uint8)  # scaled to SIDE before labelling
    big[100:400, 50:300] = 1
    big[450:452, 10:490] = 1
    sliver = np.zeros((600, 500), np.uint8)  # lost in the scaling: labelled at full size
    sliver[300, 10:20] = 1
    return [
        (disc.astype(np.uint8), BINARY),
        (twins, BINARY),
        (ragged, BINARY),
        (edge, BINARY),
        (classes, multi),
        (big, BINARY),
        (sliver, BINARY),
        (np.ones((4, 4), np.uint8), BINARY),
    ]


@pytest.mark.parametrize("case", range(8))
def test_shape_measure_equals_the_regionprops_measure(case):
    mask, classmap = _shapes()[case]
    want = _old_shape_measure(_view(mask, classmap))
    v = _view(mask, classmap)
    assert shape_measure(v) == want
    v.foreground_components()  # labelled already by another check: the same measure
    assert shape_measure(v) == want
    assert shape_measure(_view(np.zeros((8, 8), np.uint8))) is None


def test_workspace_load_reads_a_sample_without_asking_the_workspace_for_its_files(tmp_path, monkeypatch):
    """The records QC's source holds name the image and the source mask: per sample, only the head mask is
    asked of the workspace; the view is the one the per-sample queries gave."""
    from medseg.qc.sources import WorkspaceSource, read_raw
    from medseg.workspace import Workspace

    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "masks").mkdir()
    rng = np.random.default_rng(0)
    for k in range(3):
        Image.fromarray(rng.integers(0, 255, (24, 32, 3)).astype(np.uint8)).save(tmp_path / f"data/images/f{k}.png")
        m = np.zeros((24, 32), np.uint8)
        m[4:12, 5 + k : 20] = 255
        if k == 1:
            m[4, 5:9] = 128  # grey levels: a mask_values report
        Image.fromarray(m).save(tmp_path / f"data/masks/f{k}.png")
    with Workspace.create(tmp_path / "ws", tmp_path / "data") as ws:
        src = WorkspaceSource(ws)
        want = {}
        for sid in src.sample_ids():
            raw = read_raw(ws.source_sample(sid), src.classmap)
            want[sid] = (ws.current_mask(sid), ws.image(sid).array, raw)

        def refused(*a, **k):
            raise AssertionError("asked the workspace for what the records hold")

        for name in ("image", "source_sample", "is_volume", "sample"):
            monkeypatch.setattr(ws, name, refused)
        for sid in src.sample_ids():
            v = src.load(sid, True)
            mask, image, raw = want[sid]
            assert np.array_equal(v.mask, mask) and np.array_equal(v.image, image)
            assert v.mask_path == raw["mask_path"] and np.array_equal(v.raw, raw["raw"])
            assert repr(v.raw_report) == repr(raw.get("raw_report"))
        assert src.load("f1", True).raw_report.grey_levels == [128]


def _old_region_measure(v: SampleView) -> list[list[float]] | None:
    """signal_region.region_measure over the whole picture, as it was."""
    from medseg.qc.edge_maps import gradient_magnitude
    from medseg.qc.signal_region import MIN_PIXELS, RING, _scaled

    scaled = _scaled(v)
    if scaled is None:
        return None
    image, fg, field = scaled
    if not fg.any():
        return None
    texture = gradient_magnitude(image.mean(axis=-1), 1.0)
    planes = np.concatenate([image, texture[..., None]], axis=-1)
    labels, n = ndi.label(fg, structure=np.ones((3, 3), bool))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    outside = ndi.distance_transform_edt(~fg)
    out = []
    for lab in range(1, n + 1):
        if sizes[lab] < MIN_PIXELS:
            continue
        region = labels == lab
        width = max(2.0, RING * float(np.sqrt(sizes[lab] / np.pi)))
        near = outside if n == 1 else ndi.distance_transform_edt(~region)
        ring = (near <= width) & ~fg
        if field is not None:
            ring &= field
        if ring.sum() < MIN_PIXELS:
            continue
        inner, outer = planes[region], planes[ring]
        spread = 0.5 * (inner.std(0) + outer.std(0)) + 1e-3
        out.append([float(x) for x in (inner.mean(0) - outer.mean(0)) / spread])
    return out or None


def _pictures() -> list[tuple[np.ndarray, np.ndarray, bool]]:
    """(image, mask, rgb): objects in the middle, at the border, several, tiny, with a black surround,
    grey, and one larger than the measure's side (scaled)."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:48, :64]
    img = ndi.gaussian_filter(rng.normal(100, 30, (48, 64, 3)), (1, 1, 0))
    disc = (yy - 22) ** 2 + (xx - 30) ** 2 <= 90
    img[disc] += 50
    several = disc.copy()
    several[2:8, 50:62] = True  # near the top border
    several[40:47, 2:5] = True
    several[30, 60] = True  # below MIN_PIXELS
    surround = img.copy()
    surround[(yy - 24) ** 2 / 24**2 + (xx - 32) ** 2 / 30**2 > 1] = 0  # an endoscope's black surround
    big = ndi.gaussian_filter(rng.normal(100, 30, (300, 400, 3)), (2, 2, 0))
    bigmask = np.zeros((300, 400), bool)
    bigmask[80:200, 100:260] = True
    bigmask[10:30, 360:395] = True
    big[bigmask] += 40
    grey = img.mean(axis=-1)
    edge = np.zeros((48, 64), bool)
    edge[:, :10] = True
    return [
        (np.clip(img, 0, 255).astype(np.uint8), disc, True),
        (np.clip(img, 0, 255).astype(np.uint8), several, True),
        (np.clip(surround, 0, 255).astype(np.uint8), disc, True),
        (np.clip(big, 0, 255).astype(np.uint8), bigmask, True),
        (np.clip(grey, 0, 255).astype(np.uint8), several, False),
        (np.clip(img, 0, 255).astype(np.uint8), edge, True),
        (np.clip(img, 0, 255).astype(np.uint8), np.zeros((48, 64), bool), True),
    ]


@pytest.mark.parametrize("case", range(7))
def test_region_measure_in_its_window_equals_the_whole_picture_measure(case):
    from medseg.qc.signal_region import region_measure

    image, mask, rgb = _pictures()[case]
    v = SampleView("s", mask.astype(np.uint8), BINARY, image=image, rgb=rgb)
    want = _old_region_measure(SampleView("s", mask.astype(np.uint8), BINARY, image=image, rgb=rgb))
    assert region_measure(v) == want
    assert (want is None) == (case == 6)


def test_ring_in_its_box_is_the_whole_picture_ring():
    from medseg.qc.signal_region import _ring

    rng = np.random.default_rng(11)
    for _ in range(50):
        region = np.zeros((40, 50), bool)
        y, x = rng.integers(0, 40), rng.integers(0, 50)
        region[max(0, y - 4) : y + 5, max(0, x - 6) : x + 3] = True
        free = ~region & (rng.random((40, 50)) > 0.1)
        field = rng.random((40, 50)) > 0.05
        width = float(rng.uniform(2, 9))
        box, ring = _ring(region, free, field, width)
        whole = (ndi.distance_transform_edt(~region) <= width) & free & field
        assert np.array_equal(ring, whole[box]) and whole.sum() == ring.sum()


def test_shifted_each_is_subpixel_shift_bit_for_bit_and_dice_unchanged():
    from medseg.qc.subpixel import shift
    from medseg.qc.thumb_moves import shifted_each

    rng = np.random.default_rng(13)
    for h, w in [(2, 3), (48, 64), (31, 17)]:
        stack = rng.integers(0, 256, (7, h, w)).astype(np.float32) / 255
        moves = [(0.0, 0.0), (1.0, -2.0), (0.5, 0.25), (-h - 1.5, 0.3), (2.7, w + 4.0), (-0.49, -7.9), (1e-9, -1e-9)]
        got = shifted_each(stack, moves)
        for k, (dy, dx) in enumerate(moves):
            want = shift(stack[k], dy, dx)
            assert got[k].dtype == want.dtype and np.array_equal(got[k].view(np.uint32), want.view(np.uint32))
    thumbs = _thumbs(rng, 4)
    mine = thumbs["f0"]
    others = [(thumbs[f"f{i}"], (rng.normal(0, 2), rng.normal(0, 2), 0.5)) for i in range(1, 4)]
    others += [(thumbs["f1"], (0.0, 0.0, -0.2)), (None, None), (thumbs["small"], (0.0, 0.0, 0.9))]
    mask = mine["mask"].astype(np.float32) / 255
    want = [
        sn.soft_dice(mask, shift(t["mask"].astype(np.float32) / 255, *m[:2]))
        for t, m in others
        if t is not None and m[2] >= sn.MIN_MATCH and t["mask"].shape == mask.shape
    ]
    assert sn._dice_with(mine, others) == want and len(want) == 3
    empty = {"grey": mine["grey"], "mask": np.zeros_like(mine["mask"])}
    assert sn._dice_with(empty, [(empty, (0.3, 0.0, 1.0))]) == [1.0]


@pytest.mark.parametrize("shape", [(48, 64), (64, 64), (64, 5), (30, 40), (96, 128)])
def test_thumbnails_of_a_thumbnail_sized_frame_are_the_resized_ones(shape):
    from medseg.qc.checks_images import grey

    rng = np.random.default_rng(shape[0])
    image = rng.integers(0, 256, (*shape, 3)).astype(np.uint8)
    mask = (rng.random(shape) > 0.6).astype(np.uint8)
    v = SampleView("s", mask, BINARY, image=image, rgb=True)
    got = sn.thumbnails(v)
    h, w = shape
    scale = sn.THUMB / max(h, w)
    size = (max(4, round(w * scale)), max(4, round(h * scale)))
    g = np.clip(grey(v)[0] * 255, 0, 255).astype(np.uint8)
    want_grey = np.asarray(Image.fromarray(g).resize(size, Image.BOX))
    want_mask = np.asarray(Image.fromarray(mask * 255).resize(size, Image.BOX))
    assert np.array_equal(got["grey"], want_grey) and got["grey"].dtype == np.uint8
    assert np.array_equal(got["mask"], want_mask) and got["mask"].dtype == np.uint8
