"""``medseg index FOLDER``: detect a dataset layout, index it, list every problem.

A dataset of volumes (nnU-Net 3-D, a Decathlon task, image/label volume
folders) is listed case by case with the grid read from each image's header:
shape (slice x row x col), spacing and where its first voxel lies.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from medseg.cli.dataset_summary import class_list, volume_lines, volume_rows


def cmd_index(args: argparse.Namespace) -> int:
    from medseg.datasets import open_dataset

    ds = open_dataset(Path(args.folder), layout=args.layout)
    groups = Counter(s.group for s in ds.samples)
    if args.json:
        out = {
            "root": str(ds.root),
            "layout": ds.layout,
            "classmap": ds.classmap.to_dict(),
            "samples": len(ds.samples),
            "groups": len(groups),
            "problems": [{"path": str(p.path), "kind": p.kind, "message": p.message} for p in ds.problems],
        }
        volumes = volume_rows(ds)
        if volumes:
            out["volumes"] = volumes
        print(json.dumps(out, indent=2))
    else:
        print(
            f"{ds.root}: layout {ds.layout}, {len(ds.samples)} samples in {len(groups)} groups, "
            f"task {ds.classmap.task}, classes {class_list(ds.classmap)}"
        )
        for line in volume_lines(ds):
            print(line)
        kinds = Counter(p.kind for p in ds.problems)
        n = len(ds.problems)
        print(
            f"{n} problem{'' if n == 1 else 's'}"
            + (": " + ", ".join(f"{c} {k}" for k, c in kinds.items()) if kinds else "")
        )
        for p in ds.problems:
            print(f"  [{p.kind}] {p.path}: {p.message}")
    return 2 if (args.strict and ds.problems) else 0


def add_parser(sub) -> None:
    from medseg.datasets import layout_names

    p = sub.add_parser("index", help="detect a dataset layout, index the samples and list every problem")
    p.add_argument("folder")
    p.add_argument("--layout", default=None, choices=layout_names(), help="force a layout instead of detecting it")
    p.add_argument("--json", action="store_true")
    p.add_argument("--strict", action="store_true", help="exit 2 when any problem was found")
    p.set_defaults(func=cmd_index)
