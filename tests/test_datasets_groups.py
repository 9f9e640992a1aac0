"""Group ids: case / patient / stem rules, fixed blocks, and content-based video frame blocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from medseg.datasets import fixed_blocks, frame_blocks, open_dataset, stem_groups
from medseg.datasets.groups import aligned_correlation, group_line, montgomery_patient, similar_groups, uw_case

H, W = 36, 48


def scene(colour, seed: int, size=(H + 20, W + 20)) -> np.ndarray:
    """A smooth textured scene tinted by ``colour``, larger than a frame so frames can pan over it."""
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).normal(size=size), 3)
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return np.clip(np.asarray(colour, float) * (0.4 + 0.6 * noise[..., None]), 0, 255).astype(np.uint8)


def vignette(rgb: np.ndarray) -> np.ndarray:
    """Black octagonal corners, as endoscopes draw them on every frame."""
    y, x = np.mgrid[0:H, 0:W]
    corner = (np.minimum(y, H - 1 - y) + np.minimum(x, W - 1 - x)) < 8
    out = rgb.copy()
    out[corner] = 0
    return out


def glare(rgb: np.ndarray) -> np.ndarray:
    """A blurred, upside-down, washed-out yellow frame: a flash or a lens smear mid-sequence."""
    g = rgb.astype(float).mean(axis=2)
    out = np.stack([np.full_like(g, 255), np.clip(g * 1.2 + 80, 0, 255), np.clip(g * 0.3 + 150, 0, 255)], 2)
    return ndimage.gaussian_filter(out, (6, 6, 0))[::-1].astype(np.uint8)


def write_video(folder: Path, first: int, n: int, colour, seed: int, flash: int | None = None) -> None:
    """Frames ``first``..``first+n-1`` panning one pixel per frame over one scene."""
    big = scene(colour, seed)
    for k in range(n):
        number = first + k
        rgb = vignette(big[k : k + H, k : k + W])
        if number == flash:
            rgb = glare(rgb)
        Image.fromarray(rgb).save(folder / f"{number}.png")


def test_frame_blocks_follow_videos_gaps_and_ignore_a_flash(tmp_path):
    write_video(tmp_path, 1, 8, (220, 90, 60), seed=1, flash=5)
    write_video(tmp_path, 9, 7, (70, 200, 90), seed=2)
    write_video(tmp_path, 16, 5, (80, 110, 230), seed=3)
    write_video(tmp_path, 22, 4, (80, 110, 230), seed=3)  # frame 21 is missing: a gap
    paths = sorted(tmp_path.glob("*.png"), key=lambda p: -int(p.stem))  # any order in, same order out
    groups = frame_blocks(paths)
    by_frame = {int(p.stem): g for p, g in zip(paths, groups)}
    assert sorted(set(groups), key=lambda g: int(g.split("-")[0])) == ["1-8", "9-15", "16-20", "22-25"]
    assert by_frame[4] == by_frame[5] == by_frame[6] == "1-8"
    # comparing single neighbours instead of windows would cut the flash out
    single = dict(zip(paths, frame_blocks(paths, window=1, min_frames=1)))
    assert single[tmp_path / "5.png"] == "5-5"


def test_frame_blocks_on_grey_frames(tmp_path):
    for first, n, level, seed in ((1, 6, (90, 90, 90), 4), (7, 6, (250, 250, 250), 5)):
        big = scene(level, seed)
        for k in range(n):
            Image.fromarray(big[k : k + H, k : k + W].mean(axis=2).astype(np.uint8)).save(tmp_path / f"{first + k}.png")
    groups = frame_blocks(sorted(tmp_path.glob("*.png")))
    assert len(set(groups)) == 2 and set(groups) == {"1-6", "7-12"}


def test_unreadable_frame_gets_a_block_of_its_own(tmp_path):
    write_video(tmp_path, 1, 6, (220, 90, 60), seed=1)
    (tmp_path / "3.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    paths = sorted(tmp_path.glob("*.png"), key=lambda p: int(p.stem))
    assert frame_blocks(paths) == ["1-2", "1-2", "3-3", "4-6", "4-6", "4-6"]


def test_frame_blocks_threshold_zero_only_cuts_gaps(tmp_path, monkeypatch):
    write_video(tmp_path, 1, 4, (220, 90, 60), seed=1)
    write_video(tmp_path, 5, 4, (70, 200, 90), seed=2)
    write_video(tmp_path, 10, 2, (70, 200, 90), seed=2)
    paths = sorted(tmp_path.glob("*.png"), key=lambda p: int(p.stem))
    assert set(frame_blocks(paths, threshold=0.0)) == {"1-8", "10-11"}
    assert len(set(frame_blocks(paths, threshold=1.01, near_identical=1.01, min_frames=1))) == len(paths)
    # short blocks join their most alike neighbour of the same run, never across the numbering gap
    from medseg.datasets import groups

    monkeypatch.setattr(groups, "MERGE_RUN_FACTOR", 0)  # every run merges (by default: runs from 20 frames)
    assert set(frame_blocks(paths, threshold=1.01, near_identical=1.01)) == {"1-4", "5-8", "10-11"}
    monkeypatch.setattr(groups, "MERGE_RUN_FACTOR", 5)  # a run of 8 frames is too short to say how long videos are
    assert len(set(frame_blocks(paths, threshold=1.01, near_identical=1.01))) == len(paths)


def test_frame_blocks_need_integer_stems(tmp_path):
    with pytest.raises(ValueError, match="frame_a"):
        frame_blocks([tmp_path / "1.png", tmp_path / "frame_a.png"])
    assert frame_blocks([]) == []


def test_fixed_blocks_in_numeric_order():
    stems = ["10", "2", "1", "3", "11", "4", "12"]
    groups = dict(zip(stems, fixed_blocks(stems, 3)))
    assert groups == {"1": "1-3", "2": "1-3", "3": "1-3", "4": "4-11", "10": "4-11", "11": "4-11", "12": "12-12"}
    with pytest.raises(ValueError):
        fixed_blocks(stems, 0)


def test_stem_rules():
    assert uw_case("case123_day20_slice_0001") == "case123"
    assert montgomery_patient("MCUCXR_0001_0") == "MCUCXR_0001"
    assert montgomery_patient("MCUCXR_0104_1") == "MCUCXR_0104"
    assert montgomery_patient("odd") == "odd"
    stems = ["p01_a", "p01_b", "p02_a", "scan"]
    assert stem_groups(stems) == stems
    assert stem_groups(stems, r"^p\d+") == ["p01", "p01", "p02", "scan"]
    assert stem_groups(stems, r"^(p\d+)_") == ["p01", "p01", "p02", "scan"]
    assert stem_groups(stems, r"_(?P<group>[ab])$") == ["a", "b", "a", "scan"]


def write_moving_scene(folder: Path, names, colour, seed: int, step=(2, 3)) -> None:
    """Frames of one scene, the camera moving by ``step`` pixels per frame (more than the old rule's tolerance)."""
    big = scene(colour, seed, size=(H + 40, W + 40))
    for k, name in enumerate(names):
        y, x = k * step[0], k * step[1]
        Image.fromarray(vignette(big[y : y + H, x : x + W])).save(folder / f"{name}.png")


def test_three_scenes_with_motion_give_three_groups(tmp_path):
    for first, seed, colour in ((1, 11, (220, 90, 60)), (9, 12, (70, 200, 90)), (17, 13, (80, 110, 230))):
        write_moving_scene(tmp_path, range(first, first + 8), colour, seed)
    paths = sorted(tmp_path.glob("*.png"), key=lambda p: int(p.stem))
    assert set(frame_blocks(paths)) == {"1-8", "9-16", "17-24"}
    assert len(set(similar_groups(paths))) == 3


def test_similar_groups_need_no_order_in_the_names(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"img_{h:08x}" for h in rng.integers(0, 2**32, 18)]
    for k, seed in enumerate((21, 22, 23)):
        write_moving_scene(tmp_path, names[k::3], (200, 120, 100), seed)  # interleaved: names say nothing
    paths = sorted(tmp_path.glob("*.png"))
    groups = dict(zip(paths, similar_groups(paths)))
    by_scene = [{groups[tmp_path / f"{n}.png"] for n in names[k::3]} for k in range(3)]
    assert all(len(g) == 1 for g in by_scene) and len(set.union(*by_scene)) == 3
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    assert similar_groups([tmp_path / "broken.png", paths[0]]) == ["broken", paths[0].stem]


def test_aligned_correlation_undoes_a_shift():
    g = scene((255, 255, 255), 5, size=(60, 80)).mean(axis=2)
    a, b = g[5:45, 5:65], g[11:51, 1:61]
    plain = float(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    assert plain < 0.6 < 0.95 < aligned_correlation(a, b)


def test_group_line_says_how_groups_were_made():
    assert group_line(["1-3"] * 3 + ["4-4"], True) == (
        "groups: 2 inferred from image similarity (sequences of look-alike frames); sizes 1-3, median 3, "
        "1 of a single sample"
    )
    assert group_line(["a", "b"], False).startswith("groups: 2 from the file names")


def test_similar_group_by_in_open_dataset(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for first, seed in ((0, 31), (4, 32)):
        write_moving_scene(tmp_path / "images", [f"p{n}" for n in range(first, first + 4)], (90, 160, 200), seed)
    for p in (tmp_path / "images").glob("*.png"):
        Image.fromarray(np.zeros((H, W), np.uint8)).save(tmp_path / "masks" / p.name)
    ds = open_dataset(tmp_path, group_by="similar")
    assert sorted({s.group for s in ds.samples}) == ["p0-p3", "p4-p7"]
    assert {s.group for s in open_dataset(tmp_path).samples} == {f"p{n}" for n in range(8)}


def test_cvc_videos_resized_and_recoloured_keep_their_blocks(cvc_dir, tmp_path):
    """Two real videos (frames 1-25 and 26-50) as another endoscope would show them: 574x500, warmer, darker."""
    for n in range(14, 38):
        rgb = np.asarray(Image.open(cvc_dir / "images" / f"{n}.png").convert("RGB").resize((574, 500)), float)
        rgb = np.clip(rgb * (1.1, 0.9, 0.8) * 0.85, 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(tmp_path / f"{n}.png")
    paths = sorted(tmp_path.glob("*.png"), key=lambda p: int(p.stem))
    assert set(frame_blocks(paths)) == {"14-25", "26-37"}


def test_cli_prints_inferred_groups(tmp_path, capsys):
    from medseg.cli import main

    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    for first, seed, colour in ((1, 41, (220, 90, 60)), (7, 42, (70, 200, 90))):
        write_moving_scene(data / "images", range(first, first + 6), colour, seed)
    for p in (data / "images").glob("*.png"):
        Image.fromarray(np.zeros((H, W), np.uint8)).save(data / "masks" / p.name)
    line = "groups: 2 inferred from image similarity (sequences of look-alike frames); sizes 6-6, median 6"
    assert main(["info", str(data)]) == 0
    assert line in capsys.readouterr().out
    assert main(["workspace", "create", str(data), str(tmp_path / "ws"), "--quiet"]) == 0
    assert line in capsys.readouterr().out
    assert main(["workspace", "info", str(tmp_path / "ws")]) == 0
    assert line in capsys.readouterr().out
