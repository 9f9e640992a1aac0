"""``medseg export WORKSPACE --format F --out DIR``: the cleaned dataset from the shell, with a progress bar."""

from __future__ import annotations

import argparse
import json
import sys


def _split(text: str) -> tuple[float, float]:
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--split takes two fractions like 0.8,0.2, got {text!r}") from None
    if len(parts) != 2 or min(parts) <= 0:
        raise argparse.ArgumentTypeError(f"--split takes two positive fractions like 0.8,0.2, got {text!r}")
    return parts


def _statuses(text: str) -> tuple[str, ...]:
    from medseg.export import STATUSES

    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in parts if p not in STATUSES]
    if bad or not parts:
        raise argparse.ArgumentTypeError(f"unknown status {', '.join(bad) or text!r}; valid: {', '.join(STATUSES)}")
    return parts


def _cmd_export(args: argparse.Namespace) -> int:
    from medseg.cli.progress import run_job
    from medseg.errors import Cancelled
    from medseg.export import iter_export
    from medseg.workspace import Workspace

    try:
        with Workspace.open(args.workspace) as ws:
            result = run_job(
                lambda token: iter_export(
                    ws,
                    args.out,
                    args.format,
                    statuses=args.statuses,
                    include_excluded=args.include_excluded,
                    split=args.folds or args.split,
                    seed=args.seed,
                    overwrite=args.overwrite,
                    mask_scale=args.mask_scale,
                    mask_values=args.mask_values,
                    cancel=token,
                ),
                what="export",
                unit="sample",
                quiet=args.quiet,
            )
    except (KeyboardInterrupt, Cancelled):  # the job removed its staging folder: out is as it was
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
    # a clean error (exit 2) or a bug (exit 1) is reported by medseg.cli.main
    if args.json:
        print(
            json.dumps(
                {
                    "out": str(result.out),
                    "n_samples": result.n_samples,
                    "manifest": str(result.manifest_path),
                    "summary": result.summary_text,
                }
            )
        )
    else:
        print(result.summary_text)
    return 0


def add_parser(sub) -> None:
    from medseg.export import DEFAULT_STATUSES, FORMATS

    p = sub.add_parser(
        "export",
        help="write the workspace's cleaned dataset (folders, nnU-Net raw or MONAI) with a manifest",
        description="Writes the selected samples' latest revisions and their source images into a new folder, "
        "plus manifest.json (hashes, statuses, revisions, QC findings) and CHANGES.md. Masks keep "
        "their class ids (nnU-Net: renumbered 0..N, the mapping in the manifest). Volumes: NIfTI images are "
        "copied, DICOM series converted to NIfTI with their affine, labels written with the image's own "
        "header. Nothing appears in DIR until the export is complete.",
    )
    p.add_argument("workspace", metavar="WORKSPACE", help="a medseg workspace folder")
    p.add_argument(
        "--format",
        required=True,
        choices=list(FORMATS),
        help="folders: images/ + masks/; nnunet: imagesTr/ + labelsTr/ + dataset.json; "
        "monai: images/ + labels/ + datalist.json",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="new or empty folder outside the dataset and workspace")
    p.add_argument(
        "--statuses",
        type=_statuses,
        default=DEFAULT_STATUSES,
        metavar="S1,S2",
        help=f"review states to export (default {','.join(DEFAULT_STATUSES)})",
    )
    p.add_argument("--include-excluded", action="store_true", help="export excluded samples too")
    split = p.add_mutually_exclusive_group()
    split.add_argument(
        "--split",
        type=_split,
        default=None,
        metavar="TRAIN,VAL",
        help="group-aware train/val split, e.g. 0.8,0.2 (no group on both sides)",
    )
    split.add_argument("--folds", type=int, default=None, metavar="K", help="group-aware K-fold split instead")
    p.add_argument("--seed", type=int, default=0, help="seed of the split (0)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace DIR if it holds a previous medseg export that nobody changed since",
    )
    p.add_argument(
        "--mask-scale",
        type=int,
        default=1,
        choices=[1, 255],
        help="folders only: 255 spreads class ids over 0..255 for viewing (never for training)",
    )
    p.add_argument(
        "--mask-values",
        default="source",
        choices=["source", "ids"],
        help="source (default): a binary dataset stored as 0/255 is written as 0/255; ids: class ids (0/1). "
        "nnunet and monai always write class ids. The manifest and CHANGES.md say what was written",
    )
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_export)
