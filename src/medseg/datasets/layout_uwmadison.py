"""UW-Madison GI Tract: ``train.csv`` (id, class, segmentation) + ``train/caseN/caseN_dayM/scans/``.

One CSV row per (slice, organ) holds that organ's run-length mask, empty when
absent. Organs overlap, so the task is multilabel: ``load_mask`` returns one
boolean channel per class. Slices of one case share a group, so a patient's
other days and slices never leak across a split.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from medseg.classmap import ClassMap
from medseg.datasets import dataset as ds
from medseg.datasets.files import header_size, is_junk
from medseg.datasets.groups import uw_case
from medseg.datasets.layout import Layout
from medseg.errors import ReadError
from medseg.io.uwmadison import parse_uw_slice_name

CSV_NAME = "train.csv"
COLUMNS = ("id", "class", "segmentation")
# The competition's classes, in its order; other class names are kept, sorted after them.
KNOWN_CLASSES = ("large_bowel", "small_bowel", "stomach")
_ID = re.compile(r"^(case\d+)_(day\d+)_slice_(\d+)$", re.IGNORECASE)
_CASE_DIR = re.compile(r"^case\d+$", re.IGNORECASE)


def is_uw_csv(path: Path) -> bool:
    """True when ``path`` is a CSV whose header holds the id, class and segmentation columns."""
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            header = next(csv.reader([f.readline()]), [])
    except OSError:
        return False
    return set(COLUMNS) <= {h.strip().lower() for h in header}


def is_uwmadison(root: Path) -> bool:
    return (root / CSV_NAME).is_file() and is_uw_csv(root / CSV_NAME)


def uwmadison_source_data(root: Path) -> tuple[str, set[Path]] | None:
    return ("UW-Madison layout", {root / "train", root / CSV_NAME}) if is_uwmadison(root) else None


def index_uwmadison(root: Path, layout: str = "uwmadison"):
    csv_path = root / CSV_NAME
    if not is_uw_csv(csv_path):
        raise ReadError(csv_path, f"is not a UW-Madison CSV with columns {', '.join(COLUMNS)}")
    problems: list[ds.Problem] = []
    rles, class_names = _read_rows(csv_path, problems)
    slices, ambiguous = _slice_files(root, problems)
    classmap = ClassMap.from_names(class_names, task="multilabel")

    samples = []
    for sample_id, per_class in rles.items():
        found = slices.pop(sample_id.lower(), None)
        if found is None and sample_id.lower() in ambiguous:
            continue
        if found is None:
            case, day, number = _ID.match(sample_id).groups()
            where = root / "train" / case / f"{case}_{day}" / "scans"
            problems.append(
                ds.Problem(
                    where / f"slice_{number}_*.png",
                    ds.MISSING_SLICE,
                    f"{CSV_NAME} has rows for {sample_id} but no such slice file is in {where.relative_to(root)}",
                )
            )
            continue
        path, name = found
        try:
            rows, cols = header_size(path)
        except ReadError as e:
            problems.append(ds.Problem(path, ds.UNREADABLE, e.reason))
            continue
        if (rows, cols) != (name.height, name.width):
            problems.append(
                ds.Problem(
                    path,
                    ds.SIZE_MISMATCH,
                    f"file name says {name.height}x{name.width} (rows x cols) but the image is {rows}x{cols}",
                )
            )
            continue
        case, day, _ = _ID.match(sample_id).groups()
        samples.append(
            ds.Sample(
                sample_id,
                path,
                {"rle": csv_path},
                group=uw_case(sample_id),
                classmap=classmap,
                mask_kind=ds.MASK_RLE,
                extra={
                    "case": case,
                    "day": day,
                    "slice": name.slice,
                    "spacing": (name.spacing_row, name.spacing_col),
                    "rle": {c: per_class.get(c, "") for c in class_names},
                },
            )
        )
    for path, _ in slices.values():
        problems.append(ds.Problem(path, ds.IMAGE_WITHOUT_MASK, f"slice has no rows in {CSV_NAME}"))
    return samples, problems, classmap


def _read_rows(csv_path: Path, problems: list[ds.Problem]):
    """{sample id: {class: rle}} in file order, and the class names."""
    rles: dict[str, dict[str, str]] = {}
    seen: set[str] = set()
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            reader.fieldnames = [h.strip().lower() for h in reader.fieldnames or []]
            for line, row in enumerate(reader, start=2):
                sample_id = (row.get("id") or "").strip()
                name = (row.get("class") or "").strip()
                rle = (row.get("segmentation") or "").strip()
                why = _row_error(sample_id, name, rle)
                if why is None and name in rles.get(sample_id, {}):
                    why = f"a second row for {sample_id} / {name}"
                if why:
                    problems.append(ds.Problem(csv_path, ds.BAD_ROW, f"line {line}: {why}"))
                    continue
                rles.setdefault(sample_id, {})[name] = rle
                seen.add(name)
    except (UnicodeDecodeError, csv.Error) as e:
        raise ReadError(csv_path, f"is not a readable CSV ({e})") from None
    known = [c for c in KNOWN_CLASSES if c in seen]
    return rles, known + sorted(seen - set(known))


def _row_error(sample_id: str, name: str, rle: str) -> str | None:
    if not _ID.match(sample_id):
        return f"id {sample_id!r} is not caseN_dayM_slice_XXXX"
    if not name:
        return f"no class for {sample_id}"
    values = rle.split()
    if len(values) % 2 or not all(v.isdigit() for v in values):
        return f"segmentation of {sample_id} / {name} is not pairs of integers (start length ...)"
    return None


def _slice_files(root: Path, problems: list[ds.Problem]) -> tuple[dict[str, tuple], set[str]]:
    """{lower-case sample id: (path, UWSliceName)} under train/caseN/caseN_dayM/scans/, and ambiguous ids."""
    base = root / "train" if (root / "train").is_dir() else root
    found: dict[str, list] = {}
    for case_dir in sorted(p for p in base.iterdir() if p.is_dir() and _CASE_DIR.match(p.name)):
        for day_dir in sorted(p for p in case_dir.iterdir() if p.is_dir() and not is_junk(p)):
            scans = day_dir / "scans"
            if not scans.is_dir():
                continue
            for p in sorted(scans.iterdir()):
                if is_junk(p) or not p.is_file():
                    continue
                name = parse_uw_slice_name(p.name)
                if name is None:
                    problems.append(ds.Problem(p, ds.UNSUPPORTED_FILE, "not a slice_XXXX_W_H_SX_SY.png file name"))
                    continue
                key = f"{day_dir.name}_slice_{name.slice:04d}".lower()
                found.setdefault(key, []).append((p, name))
    out = {}
    for key, files in found.items():
        if len(files) == 1:
            out[key] = files[0]
            continue
        names = ", ".join(p.name for p, _ in files)
        for p, _ in files:
            problems.append(
                ds.Problem(
                    p,
                    ds.DUPLICATE_STEM,
                    f"{len(files)} files are slice {key}: {names}; none is used until one is removed",
                )
            )
    return out, set(found) - set(out)


UWMADISON = Layout(
    "uwmadison",
    "train.csv (id, class, segmentation) + train/caseN/caseN_dayM/scans/ (UW-Madison GI Tract)",
    detect=is_uwmadison,
    index=index_uwmadison,
    source_data=uwmadison_source_data,
    auto_group=uw_case,
)
