"""The ``medseg`` command: the engine from a shell, for scripts, clusters and CI.

Sub-commands so far:
  medseg info PATH...      what the readers make of files or DICOM series folders
  medseg index FOLDER      detect a dataset layout, index it, list every problem
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import MedsegError


def _describe_image(path: Path) -> dict:
    from .io import load

    img = load(path)
    a = img.array
    finite = a if a.dtype.kind in "iub" else a[np.isfinite(a)]
    meta = {k: v for k, v in img.metadata.items() if k not in ("sop_uids", "files")}
    return {
        "path": str(path),
        "shape": list(a.shape),
        "dtype": str(a.dtype),
        "rgb": img.rgb,
        "spacing": list(img.spacing),
        "range": [float(finite.min()), float(finite.max())] if finite.size else None,
        "metadata": meta,
    }


def _cmd_info(args: argparse.Namespace) -> int:
    failed = 0
    for p in args.paths:
        try:
            d = _describe_image(Path(p))
        except MedsegError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
            continue
        if args.json:
            print(json.dumps(d, default=str))
        else:
            sp = " x ".join(f"{s:g}" for s in d["spacing"])
            unit = "mm" if d["metadata"].get("spacing_known") else "px (no spacing in file)"
            print(f"{d['path']}: {d['metadata'].get('format')} {d['metadata'].get('modality') or ''} "
                  f"shape {tuple(d['shape'])} {d['dtype']}{' RGB' if d['rgb'] else ''}, "
                  f"spacing {sp} {unit}, range {d['range']}")
    return 1 if failed else 0


def _cmd_index(args: argparse.Namespace) -> int:
    from .datasets import open_dataset

    try:
        ds = open_dataset(Path(args.folder), layout=args.layout)
    except MedsegError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    groups = Counter(s.group for s in ds.samples)
    if args.json:
        print(json.dumps({
            "root": str(ds.root), "layout": ds.layout, "classmap": ds.classmap.to_dict(),
            "samples": len(ds.samples), "groups": len(groups),
            "problems": [{"path": str(p.path), "kind": p.kind, "message": p.message} for p in ds.problems],
        }, indent=2))
    else:
        print(f"{ds.root}: layout {ds.layout}, {len(ds.samples)} samples in {len(groups)} groups, "
              f"task {ds.classmap.task}, classes {', '.join(ds.classmap.names)}")
        kinds = Counter(p.kind for p in ds.problems)
        n = len(ds.problems)
        print(f"{n} problem{'' if n == 1 else 's'}" + (": " + ", ".join(f"{c} {k}" for k, c in kinds.items()) if kinds else ""))
        for p in ds.problems:
            print(f"  [{p.kind}] {p.path}: {p.message}")
    return 2 if (args.strict and ds.problems) else 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="medseg", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="describe images: shape, dtype, spacing, modality, provenance")
    p.add_argument("paths", nargs="+", help="image files (PNG/JPG/BMP/TIFF/DICOM/NIfTI) or DICOM series folders")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("index", help="detect a dataset layout, index the samples and list every problem")
    p.add_argument("folder")
    p.add_argument("--layout", default=None, help="force a layout instead of detecting it")
    p.add_argument("--json", action="store_true")
    p.add_argument("--strict", action="store_true", help="exit 2 when any problem was found")
    p.set_defaults(func=_cmd_index)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
