"""Montgomery County chest X-rays: ``CXR_png/`` with ``ManualMask/leftMask/`` and ``rightMask/``.

Each lung is a separate binary PNG of the image's name; at load time they are
merged into one id map (left lung 1, right lung 2). A file name's last digit
is the normal (0) / abnormal (1) reading, kept in ``extra["abnormal"]``.
"""

from __future__ import annotations

from pathlib import Path

from medseg.classmap import ClassMap, LabelClass
from medseg.datasets import dataset as ds
from medseg.datasets.files import child_dir, header_size
from medseg.datasets.groups import montgomery_patient
from medseg.datasets.layout import Layout
from medseg.datasets.layout_generic import by_stem
from medseg.errors import ReadError


def montgomery_classmap() -> ClassMap:
    return ClassMap(
        [LabelClass(1, "left_lung", (0, 114, 178)), LabelClass(2, "right_lung", (230, 159, 0))], task="multiclass"
    )


def montgomery_dirs(root: Path) -> tuple[Path, Path, Path] | None:
    images = child_dir(root, ("CXR_png",))
    manual = child_dir(root, ("ManualMask",))
    if images is None or manual is None:
        return None
    left, right = child_dir(manual, ("leftMask",)), child_dir(manual, ("rightMask",))
    if left is None or right is None:
        return None
    return images, left, right


def montgomery_source_data(root: Path) -> tuple[str, set[Path]] | None:
    dirs = montgomery_dirs(root)
    return None if dirs is None else ("Montgomery layout", {dirs[0], dirs[1].parent})


def _stem(path: Path) -> str:
    return path.stem


def index_montgomery(root: Path, layout: str = "montgomery"):
    dirs = montgomery_dirs(root)
    if dirs is None:
        raise ReadError(
            root, "is not a Montgomery folder: expected CXR_png/ and ManualMask/leftMask/ + ManualMask/rightMask/"
        )
    image_dir, left_dir, right_dir = dirs
    classmap = montgomery_classmap()
    problems: list[ds.Problem] = []
    images, ambiguous = by_stem(image_dir, _stem, problems)
    sides, ambiguous_masks = {}, set()
    for cid, folder in ((1, left_dir), (2, right_dir)):
        sides[cid], unclear = by_stem(folder, _stem, problems)
        ambiguous_masks |= unclear

    samples = []
    for stem, image in images.items():
        masks = {cid: files[stem] for cid, files in sides.items() if stem in files}
        if stem in ambiguous_masks:
            continue
        if len(masks) < 2:
            missing = [classmap.name_of(cid) for cid in sides if cid not in masks]
            problems.append(
                ds.Problem(image, ds.IMAGE_WITHOUT_MASK, f"no {' or '.join(missing)} mask named {image.name}")
            )
            continue
        if _sizes_agree(image, masks, classmap, problems):
            samples.append(
                ds.Sample(
                    stem,
                    image,
                    masks,
                    group=stem,
                    classmap=classmap,
                    mask_kind=ds.MASK_MERGE,
                    extra={"abnormal": stem.endswith("_1")},
                )
            )
    for files in sides.values():
        for stem, mask in files.items():
            if stem not in images and stem not in ambiguous:
                problems.append(ds.Problem(mask, ds.MASK_WITHOUT_IMAGE, f"no image {mask.name} in {image_dir.name}/"))
    return samples, problems, classmap


def _sizes_agree(image: Path, masks: dict[int, Path], classmap: ClassMap, problems: list[ds.Problem]) -> bool:
    try:
        size = header_size(image)
    except ReadError as e:
        problems.append(ds.Problem(image, ds.UNREADABLE, e.reason))
        return False
    ok = True
    for cid, mask in masks.items():
        try:
            msize = header_size(mask)
        except ReadError as e:
            problems.append(ds.Problem(mask, ds.UNREADABLE, e.reason))
            ok = False
            continue
        if msize != size:
            problems.append(
                ds.Problem(
                    mask,
                    ds.SIZE_MISMATCH,
                    f"{classmap.name_of(cid)} mask is {msize[0]}x{msize[1]} "
                    f"(rows x cols) but image {image.name} is {size[0]}x{size[1]}",
                )
            )
            ok = False
    return ok


MONTGOMERY = Layout(
    "montgomery",
    "CXR_png/ + ManualMask/leftMask/ + ManualMask/rightMask/ (Montgomery County chest X-rays)",
    detect=lambda root: montgomery_dirs(root) is not None,
    index=index_montgomery,
    source_data=montgomery_source_data,
    auto_group=montgomery_patient,
)
