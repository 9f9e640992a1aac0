"""``medseg info PATH...``: what the readers make of files or DICOM series folders."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from medseg.cli.exits import EXIT_DONE, EXIT_INPUT, one_line
from medseg.errors import MedsegError


def _describe_image(path: Path) -> dict:
    from medseg.io import load

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


def cmd_info(args: argparse.Namespace) -> int:
    failed = 0
    for p in args.paths:
        try:
            d = _describe_image(Path(p))
        except (MedsegError, OSError) as e:
            print(f"error: {one_line(e)}", file=sys.stderr)
            failed += 1
            continue
        if args.json:
            print(json.dumps(d, default=str))
        else:
            sp = " x ".join(f"{s:g}" for s in d["spacing"])
            unit = "mm" if d["metadata"].get("spacing_known") else "px (no spacing in file)"
            print(
                f"{d['path']}: {d['metadata'].get('format')} {d['metadata'].get('modality') or ''} "
                f"shape {tuple(d['shape'])} {d['dtype']}{' RGB' if d['rgb'] else ''}, "
                f"spacing {sp} {unit}, range {d['range']}"
            )
    return EXIT_INPUT if failed else EXIT_DONE


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="describe images: shape, dtype, spacing, modality, provenance")
    p.add_argument("paths", nargs="+", help="image files (PNG/JPG/BMP/TIFF/DICOM/NIfTI) or DICOM series folders")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_info)
