"""``medseg stats DATASET|WORKSPACE``: the dataset overview from the shell: a compact summary on stdout,
``--out DIR`` for ``stats.json`` and the PNG plots, ``--json FILE`` for the numbers alone."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medseg.cli.exits import EXIT_DONE


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of images, 0 or more, got {text!r}")
    return n


def add_parser(sub) -> None:
    from medseg.stats import INTENSITY_IMAGES

    p = sub.add_parser(
        "stats",
        help="dataset overview: sizes, spacings, modalities, class balance, mask areas, intensities, findings",
        description="Describes a dataset folder (any layout medseg index detects, 2-D or volumes) or a workspace: "
        "samples and groups, image sizes and spacings, formats, modalities and bit depths, class balance (share "
        "of pixels, connected objects and samples per class, mask area per sample; mL for volumes), intensity "
        "histograms per modality and channel, index problems or stored QC findings by check; for a workspace "
        "also samples by review status and the labels as imported vs now (excluded samples left out). Images "
        "are read from their headers; pixels only for the intensity histograms of a spread subset. Nothing is "
        "written into the dataset or the workspace.",
    )
    p.add_argument("path", metavar="DATASET|WORKSPACE", help="a dataset folder or a workspace folder")
    p.add_argument("--out", default=None, metavar="DIR", help="write stats.json and the PNG plots into DIR")
    p.add_argument("--json", default=None, metavar="FILE", help="write the numbers as JSON")
    p.add_argument(
        "--intensity-images",
        type=_count,
        default=INTENSITY_IMAGES,
        metavar="N",
        help=f"images whose pixels feed the intensity histograms, spread over the dataset ({INTENSITY_IMAGES})",
    )
    p.add_argument("--overwrite", action="store_true", help="replace files an earlier medseg stats wrote")
    p.add_argument(
        "--workers", type=int, default=None, metavar="N", help="decoding threads (default: CPUs - 1, at most 4)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_stats)


def _cmd_stats(args: argparse.Namespace) -> int:
    from medseg.cli.progress import run_job
    from medseg.ownership import OutputFolder, guarded_file
    from medseg.stats import iter_stats, open_source
    from medseg.stats.report import FILE_NAMES

    # refused before the samples are read, not after: never into the dataset or workspace, nor over a foreign file
    out = None
    if args.out:
        out = OutputFolder(args.out, purpose="the dataset overview", sources=[args.path], overwrite=args.overwrite)
        out.check(*FILE_NAMES)
    report_file = (
        guarded_file(args.json, purpose="the overview's numbers", sources=[args.path], overwrite=args.overwrite)
        if args.json
        else None
    )
    source = open_source(Path(args.path))
    try:
        report = run_job(
            lambda token: iter_stats(
                source, intensity_images=args.intensity_images, workers=args.workers, cancel=token
            ),
            what="stats",
            unit="sample",
            quiet=args.quiet,
        )
    finally:
        if hasattr(source, "close"):
            source.close()
    print("\n".join(report.lines()))
    if out is not None:
        out.mkdir()
        files = report.files()
        for name, data in files.items():
            (out.root / name).write_bytes(data)
            out.record(out.root / name)
        print(f"overview: {out.root} ({', '.join(files)})", file=sys.stderr)
    if report_file is not None:
        folder, path = report_file
        folder.mkdir()
        path.write_text(json.dumps(report.to_dict(), indent=1), encoding="utf-8")
        folder.record(path)
        print(f"numbers: {path}", file=sys.stderr)
    return EXIT_DONE
