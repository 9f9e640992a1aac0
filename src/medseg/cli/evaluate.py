"""``medseg evaluate CKPT... DATASET|WORKSPACE``: per-sample and per-class scores of a checkpoint or an
ensemble, a summary table, and ``--out DIR`` with per_sample.csv and summary.json."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medseg.cli.exits import EXIT_DONE
from medseg.cli.progress import Bar, run_job
from medseg.jobs import Message


def _ids(text: str) -> list[str]:
    ids = [t.strip() for t in text.split(",") if t.strip()]
    if not ids:
        raise argparse.ArgumentTypeError(f"--samples takes ID,ID,...; got {text!r}")
    return ids


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return v


def cmd_evaluate(args: argparse.Namespace) -> int:
    from medseg.evaluate import iter_evaluate
    from medseg.evaluate.table import summary_lines
    from medseg.ownership import OutputFolder, guarded_file

    # refused before the predictions, not after: never into the data read, nor over a file medseg did not write
    if args.out:
        OutputFolder(args.out, purpose="evaluation results", sources=[args.source], overwrite=args.overwrite).check(
            "per_sample.csv", "summary.json"
        )
    report = (
        guarded_file(args.json, purpose="the evaluation summary", sources=[args.source], overwrite=args.overwrite)
        if args.json
        else None
    )
    missing = [c for c in args.checkpoints if not Path(c).exists()]
    if missing:
        from medseg.errors import CheckpointError

        raise CheckpointError(missing[0], "no such checkpoint")
    bar = Bar("evaluate", "sample", args.quiet)

    def show(event) -> None:
        if isinstance(event, Message):
            bar.note(f"{event.level}: {event.text}" if event.level == "warning" else event.text)

    try:
        result = run_job(
            lambda token: iter_evaluate(
                args.checkpoints,
                args.source,
                sample_ids=args.samples,
                split=args.split,
                statuses=args.labels,
                layout=args.layout,
                tta=args.tta or (),
                threshold=args.threshold,
                min_iou=args.min_iou,
                device=args.device,
                precision=args.precision,
                tile_size=args.tile,
                batch_size=args.batch_size,
                cancel=token,
            ),
            bar=bar,
            on_event=show,
        )
    finally:
        bar.close()
    meta = result.meta
    names = ", ".join(Path(c).name for c in meta["checkpoints"])
    print(
        f"{meta['samples']} sample(s) of {meta['source']}"
        + (f" (split {meta['split']})" if meta["split"] else "")
        + f" evaluated with {names}"
        + (f" (ensemble of {meta['members']})" if meta["members"] > 1 else "")
        + (f", TTA {'+'.join(meta['tta'])}" if meta["tta"] else "")
        + f"; labels: {meta['labels']}"
    )
    for line in summary_lines(result, args.worst):
        print(line)
    if args.out:
        written = result.write(args.out, overwrite=args.overwrite, sources=[args.source])
        print(f"wrote {written[0]} and {written[1]}", file=sys.stderr)
    if report is not None:
        folder, path = report
        folder.mkdir()
        path.write_text(json.dumps(result.summary_json(), indent=2, default=str) + "\n", encoding="utf-8")
        folder.record(path)
    return EXIT_DONE


def _layouts() -> tuple[str, ...]:
    from medseg.datasets import layout_names

    return layout_names()


def add_parser(sub) -> None:
    from medseg.cli.train import labels_arg

    p = sub.add_parser(
        "evaluate",
        help="score a checkpoint (or an ensemble) on a labelled dataset or a workspace's current labels",
        description="Predicts every sample (as medseg predict does, at the image's own size) and scores it per "
        "class: Dice, IoU, HD95 and ASSD (in mm when the image states its spacing: DICOM, NIfTI, volumes "
        "with their voxel spacing; else in pixels), and object precision / recall (connected components "
        "matched one to one at IoU >= --min-iou). Both masks empty: Dice/IoU 1, distances 0; one empty: "
        "Dice/IoU 0, distances undefined (left out of means, counted). Prints per class the mean / median "
        "and the worst samples; --out DIR writes per_sample.csv (one row per sample and class) and "
        "summary.json. Several checkpoints are an ensemble (probabilities averaged). A workspace is scored "
        "against each sample's current label revision (the CSV's revision column).",
    )
    p.add_argument("checkpoints", nargs="+", metavar="CKPT", help="one .medseg checkpoint, or several (an ensemble)")
    p.add_argument("source", metavar="DATASET|WORKSPACE", help="a labelled dataset folder or a workspace folder")
    p.add_argument("--out", metavar="DIR", help="write per_sample.csv and summary.json there (created)")
    p.add_argument("--json", metavar="FILE", help="write the summary (per class, with the run details) as JSON")
    p.add_argument(
        "--overwrite", action="store_true", help="replace files an earlier medseg evaluate wrote (and nobody changed)"
    )
    p.add_argument(
        "--split",
        choices=["train", "val", "test"],
        help="only the samples the checkpoint's run trained on (train), validated on (val), or neither (test: "
        "held out from the run); read from the checkpoint's record",
    )
    p.add_argument("--samples", type=_ids, metavar="ID,ID", help="only these sample ids")
    p.add_argument(
        "--labels",
        type=labels_arg,
        metavar="L",
        help="on a workspace: which samples' current labels are scored: reviewed, corrected, or all (every "
        "sample not excluded: the default)",
    )
    p.add_argument("--layout", default=None, choices=_layouts(), help="force a dataset layout instead of detecting it")
    p.add_argument("--tta", default="", help="test-time flips, comma-separated: hflip,vflip,hvflip,rot90,rot270")
    p.add_argument("--threshold", type=_fraction, default=0.5, metavar="T", help="probability threshold (0.5)")
    p.add_argument("--min-iou", type=_fraction, default=0.5, metavar="F", help="IoU at which two objects match (0.5)")
    p.add_argument("--worst", type=int, default=3, metavar="N", help="worst samples listed per class (3)")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--tile", type=int, default=None, metavar="N", help="sliding-window tile (default: training size)")
    p.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass (4)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)
