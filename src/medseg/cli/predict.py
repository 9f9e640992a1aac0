"""``medseg predict CKPT INPUT... --out DIR``: masks, probabilities and uncertainty from a checkpoint; with
``--rle-csv FILE`` also every mask as a Kaggle-style id,class,segmentation CSV."""

from __future__ import annotations

import argparse
import json
import sys

from medseg.cli.exits import EXIT_DONE, EXIT_INPUT
from medseg.cli.progress import Bar, run_job
from medseg.jobs import Message, Progress


class _Listed(Bar):
    """The bar of ``medseg predict``: every skip is listed, --quiet too (the exit status depends on them)."""

    def __call__(self, event) -> None:
        if isinstance(event, Message):
            self.note(event.text)
        else:
            super().__call__(event)


def cmd_predict(args: argparse.Namespace) -> int:
    from medseg.inference import Predictor
    from medseg.inference.batch import Skipped, collect_inputs
    from medseg.inference.predict_files import Predicted, iter_predict_files
    from medseg.ownership import OutputFolder

    skipped: list[Skipped] = []
    items = collect_inputs(args.inputs, skipped)
    # what is read is never written: the inputs, the folders holding them, the datasets they belong to
    out = OutputFolder(
        args.out,
        purpose="predictions",
        overwrite=args.overwrite,
        sources=[*args.inputs, *{i.path.parent: i.path for i in items}.values()],
    )
    rle_rows: list | None = None
    if args.rle_csv:  # refused (inside the data, an unowned file) before any prediction, not after
        from medseg.inference.rle_csv import write_rle_csv
        from medseg.ownership import guarded_file

        guarded_file(args.rle_csv, purpose="an RLE CSV", sources=args.inputs, overwrite=args.overwrite)
        rle_rows = []
    predictor = Predictor(
        [args.checkpoint, *args.ensemble],
        device=args.device,
        precision=args.precision,
        backend=args.backend,
        tile_size=args.tile,
        overlap=args.overlap,
        blend=args.blend,
        tta=args.tta or (),
        batch_size=args.batch_size,
        threshold=args.threshold,
    )
    bar = _Listed("", "image", args.quiet)

    def show(event) -> None:
        if isinstance(event, Predicted):
            if args.json:
                print(json.dumps({"input": event.input, "outputs": event.outputs, "meta": event.meta}, default=str))
            else:
                print(f"{event.input} -> {event.outputs[0]}")
        elif isinstance(event, Progress) and event.item and not bar.enabled and not args.quiet:
            print(f"[{event.done + 1}/{event.total}] {event.item}", file=sys.stderr)  # no tqdm: a line each

    try:
        summary = run_job(
            lambda token: iter_predict_files(
                predictor,
                items,
                out,
                skipped=skipped,
                mask_format=args.mask_format,
                probs=args.probs,
                probs_format=args.probs_format,
                uncertainty=args.uncertainty,
                rle_rows=rle_rows,
                cancel=token,
            ),
            bar=bar,
            on_event=show,
        )
    finally:
        bar.close()
    done, n = summary.done, len(summary.skipped)
    if rle_rows is not None:
        csv_path = write_rle_csv(args.rle_csv, rle_rows, overwrite=args.overwrite)
        if not args.quiet:
            print(f"{len(rle_rows)} RLE rows ({done} inputs) written to {csv_path}", file=sys.stderr)
    if not args.quiet or n:
        print(
            f"{done} of {done + n} inputs predicted into {out.root}"
            + (
                f"; {n} skipped (listed above){'' if args.keep_going else '; --keep-going exits 0 with skips'}"
                if n
                else ""
            ),
            file=sys.stderr,
        )
    return EXIT_INPUT if n and not args.keep_going else EXIT_DONE


def add_parser(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="run a checkpoint (or an ensemble) on images, folders or datasets",
        description="Writes DIR/<stem>_mask.png with class ids as uint8 (binary: 0/1, so it looks black in "
        "image viewers: use --mask-format visible for 0/255), per-class <stem>_mask_<class>.png "
        "for multilabel models, and volumes (NIfTI files, DICOM series) as <stem>_mask.nii.gz label volumes "
        "with the image's own header geometry (other stacks: <stem>_mask.tif). A folder means the images "
        "directly in it; a dataset folder means its samples' images. Every input that is skipped "
        "(not an image, unreadable, a dataset problem, a failed prediction) is listed with the "
        "reason, and the exit status is then 2 unless --keep-going.",
    )
    p.add_argument("checkpoint", help="a .medseg checkpoint folder")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or dataset folders")
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output folder (created); never inside a dataset's source folders or a workspace",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace files an earlier medseg run wrote there (and nobody changed since); "
        "any other file is never replaced",
    )
    p.add_argument(
        "--keep-going",
        action="store_true",
        help="exit 0 even when inputs were skipped (each skip is still listed with its reason)",
    )
    p.add_argument(
        "--ensemble",
        action="append",
        default=[],
        metavar="CHECKPOINT",
        help="another checkpoint to average with (repeatable; same classes required)",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="auto: bf16/fp16 autocast on GPU, fp32 on CPU",
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "torch", "onnxruntime"],
        help="what runs the network: auto = onnxruntime on the CPU in fp32 (the ONNX file exported once per "
        "checkpoint, cached in $MEDSEG_CACHE_DIR/onnx or ~/.cache/medseg/onnx), else PyTorch",
    )
    p.add_argument("--tta", default="", help="test-time flips, comma-separated: hflip,vflip,hvflip,rot90,rot270")
    p.add_argument(
        "--tile",
        type=int,
        default=None,
        metavar="N",
        help="sliding-window tile (default: the checkpoint's training size, else 512)",
    )
    p.add_argument("--overlap", type=float, default=0.25, metavar="F", help="tile overlap fraction (0.25)")
    p.add_argument("--blend", default="gaussian", choices=["gaussian", "linear", "constant"])
    p.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass (4)")
    p.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        metavar="T",
        help="probability threshold for binary and multilabel masks (0.5)",
    )
    p.add_argument(
        "--mask-format",
        default="ids",
        choices=["ids", "visible"],
        help="ids: class ids (default); visible: ids spread over 0..255",
    )
    p.add_argument("--probs", action="store_true", help="write <stem>_probs.tif (C, H, W) probabilities")
    p.add_argument(
        "--probs-format", default="tif", choices=["tif", "npy"], help="tif: uint16 p*65535 (default); npy: float32"
    )
    p.add_argument(
        "--uncertainty",
        action="store_true",
        help="write <stem>_uncertainty.tif (normalised entropy, float32) and, with TTA or an "
        "ensemble, <stem>_variance.tif",
    )
    p.add_argument(
        "--rle-csv",
        metavar="FILE",
        help="also write the masks as a Kaggle-style id,class,segmentation CSV (row-major RLE, 1-based starts; "
        "a volume's slices as <stem>_slice_NNNN; the UW-Madison layout reads it)",
    )
    p.add_argument("--json", action="store_true", help="one JSON line per image: outputs and run details")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary on stderr")
    p.set_defaults(func=cmd_predict)
