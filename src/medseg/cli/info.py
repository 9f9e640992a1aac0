"""``medseg info PATH...``: what the readers make of files, DICOM series folders and dataset folders.

A file or a DICOM series folder is read and described (shape, type, spacing,
range; for a volume where its first voxel lies and the file's own axis
order). A dataset folder (any layout ``medseg index`` knows) is described from
its index: layout, classes and, for volumes, each case's grid from the
headers. Doubts about a file's geometry (a voxel size of 0, an affine of NaN)
are printed as warnings naming the file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from medseg.cli.dataset_summary import class_list, volume_lines, volume_rows
from medseg.cli.exits import EXIT_DONE, EXIT_INPUT, one_line
from medseg.errors import MedsegError


def _describe_image(path: Path) -> dict:
    from medseg.io import load

    img = load(path)
    a = img.array
    finite = a if a.dtype.kind in "iub" else a[np.isfinite(a)]
    meta = {k: v for k, v in img.metadata.items() if k not in ("sop_uids", "files")}
    out = {
        "path": str(path),
        "shape": list(a.shape),
        "dtype": str(a.dtype),
        "rgb": img.rgb,
        "spacing": list(img.spacing),
        "range": [float(finite.min()), float(finite.max())] if finite.size else None,
        "metadata": meta,
    }
    if img.spatial_ndim == 3 and "affine" in meta:
        out["origin"] = [float(v) for v in np.asarray(meta["affine"], float)[:3, 3]]
    return out


def _describe_dataset(path: Path) -> tuple[dict, list[str]]:
    """(the JSON record, the human lines) of a dataset folder, from its index."""
    from medseg.datasets import open_dataset

    ds = open_dataset(path)
    out = {"path": str(path), "dataset": ds.to_dict()}
    volumes = volume_rows(ds)
    if volumes:
        out["volumes"] = volumes
    from medseg.datasets import groups as grp
    from medseg.datasets import registry

    ids = [s.id for s in ds.samples]
    is_inferred = grp.inferred("auto", ids, registry.get_layout(ds.layout).auto_group is not None)
    out["groups_inferred"] = is_inferred
    return out, [
        f"task {ds.classmap.task}, classes {class_list(ds.classmap)}",
        grp.group_line([s.group for s in ds.samples], is_inferred),
        *volume_lines(ds),
    ]


def _is_dataset(path: Path) -> bool:
    if not path.is_dir():
        return False
    from medseg.datasets import is_dataset_folder
    from medseg.io.dicom import is_dicom_series_folder

    return not is_dicom_series_folder(path) and is_dataset_folder(path)


def _print_image(d: dict) -> None:
    sp = " x ".join(f"{s:g}" for s in d["spacing"])
    meta = d["metadata"]
    unit = "mm" if meta.get("spacing_known") else "px (no spacing in file)"
    where = ""
    if "origin" in d:
        origin = ", ".join(f"{v:.4g}" for v in d["origin"])
        stored = f", stored {meta['original_orientation']}" if meta.get("original_orientation") else ""
        where = f", first voxel at ({origin}) mm RAS{stored}"
    print(
        f"{d['path']}: {meta.get('format')} {meta.get('modality') or ''} "
        f"shape {tuple(d['shape'])} {d['dtype']}{' RGB' if d['rgb'] else ''}, "
        f"spacing {sp} {unit}, range {d['range']}{where}"
    )


def _print_dataset(d: dict, ds_lines: list[str]) -> None:
    info = d["dataset"]
    print(
        f"{d['path']}: dataset, layout {info['layout']}, {info['n_samples']} samples in {info['n_groups']} groups, "
        f"{len(info['problems'])} problems (medseg index lists them)"
    )
    for line in ds_lines:
        print(line)


def cmd_info(args: argparse.Namespace) -> int:
    failed = 0
    for p in args.paths:
        path = Path(p)
        try:
            if _is_dataset(path):
                d, lines = _describe_dataset(path)
            else:
                d = _describe_image(path)
        except (MedsegError, OSError) as e:
            print(f"error: {one_line(e)}", file=sys.stderr)
            failed += 1
            continue
        for note in d.get("metadata", {}).get("spacing_notes", []):
            print(f"warning: {d['path']}: {note}", file=sys.stderr)
        if args.json:
            print(json.dumps(d, default=str))
        elif "dataset" in d:
            _print_dataset(d, lines)
        else:
            _print_image(d)
    return EXIT_INPUT if failed else EXIT_DONE


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="describe images, volumes or dataset folders: shape, spacing, grid, classes")
    p.add_argument(
        "paths",
        nargs="+",
        help="image files (PNG/JPG/BMP/TIFF/DICOM/NIfTI), DICOM series folders or dataset folders",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_info)
