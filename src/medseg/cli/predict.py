"""``medseg predict CKPT INPUT... --out DIR``: masks, probabilities and uncertainty from a checkpoint."""

from __future__ import annotations

import argparse
import json
import sys

from medseg.cli.exits import EXIT_DONE, EXIT_INPUT, one_line
from medseg.errors import DestinationError, MedsegError, ReadError


def _progress(total: int, quiet: bool):
    """tqdm on stderr when installed; else one line per file."""
    if quiet:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="image", file=sys.stderr, dynamic_ncols=True)


def cmd_predict(args: argparse.Namespace) -> int:
    from medseg.inference import Predictor
    from medseg.inference.batch import Skipped, collect_inputs, predict_image, prediction_names, write_prediction
    from medseg.io import load
    from medseg.ownership import OutputFolder

    skipped: list[Skipped] = []
    items = collect_inputs(args.inputs, skipped)
    # what is read is never written: the inputs, the folders holding them, the datasets they belong to
    out = OutputFolder(args.out, purpose="predictions", overwrite=args.overwrite,
                       sources=[*args.inputs, *{i.path.parent: i.path for i in items}.values()])
    predictor = Predictor([args.checkpoint, *args.ensemble], device=args.device, precision=args.precision,
                          tile_size=args.tile, overlap=args.overlap, blend=args.blend, tta=args.tta or (),
                          batch_size=args.batch_size, threshold=args.threshold)
    variance = args.uncertainty and len(predictor.members) * len(predictor.tta) > 1
    for item in items:  # refuse before predicting anything, not after hours of it
        out.check(*prediction_names(predictor.classmap, item.stem, probs=args.probs, probs_format=args.probs_format,
                                    uncertainty=args.uncertainty, variance=variance))
    bar = _progress(len(items), args.quiet)

    def report(message: str) -> None:  # tqdm.write keeps the bar intact
        (bar.write if bar is not None else print)(message, file=sys.stderr)

    for s in skipped:
        report(f"skipped {s.path}: {s.reason}")
    done = 0
    for i, item in enumerate(items, 1):
        if bar is None and not args.quiet:
            print(f"[{i}/{len(items)}] {item.path}", file=sys.stderr)
        try:
            pred = predict_image(predictor, load(item.path))
            written = write_prediction(pred, out, item.stem, mask_format=args.mask_format, probs=args.probs,
                                       probs_format=args.probs_format, uncertainty=args.uncertainty)
        except DestinationError:
            raise  # a refused output is the request's fault, the same for every image: stop
        except (MedsegError, OSError) as e:
            same = isinstance(e, ReadError) and e.path == item.path  # the line names the file already
            skipped.append(Skipped(item.path, e.reason if same else one_line(e, item.path)))
            report(f"skipped {item.path}: {skipped[-1].reason}")
        else:
            done += 1
            meta = (pred[0] if isinstance(pred, list) else pred).meta
            if args.json:
                print(json.dumps({"input": str(item.path), "outputs": [str(w) for w in written],
                                  "meta": meta}, default=str))
            else:
                print(f"{item.path} -> {written[0]}")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    n = len(skipped)
    if not args.quiet or n:
        print(f"{done} of {done + n} inputs predicted into {out.root}"
              + (f"; {n} skipped (listed above){'' if args.keep_going else '; --keep-going exits 0 with skips'}"
                 if n else ""), file=sys.stderr)
    return EXIT_INPUT if n and not args.keep_going else EXIT_DONE


def add_parser(sub) -> None:
    p = sub.add_parser(
        "predict", help="run a checkpoint (or an ensemble) on images, folders or datasets",
        description="Writes DIR/<stem>_mask.png with class ids as uint8 (binary: 0/1, so it looks black in "
                    "image viewers: use --mask-format visible for 0/255), per-class <stem>_mask_<class>.png "
                    "for multilabel models, and volumes as <stem>_mask.tif stacks. A folder means the images "
                    "directly in it; a dataset folder means its samples' images. Every input that is skipped "
                    "(not an image, unreadable, a dataset problem, a failed prediction) is listed with the "
                    "reason, and the exit status is then 2 unless --keep-going.")
    p.add_argument("checkpoint", help="a .medseg checkpoint folder")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or dataset folders")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder (created); never inside a dataset's source folders or a workspace")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files an earlier medseg run wrote there (and nobody changed since); "
                        "any other file is never replaced")
    p.add_argument("--keep-going", action="store_true",
                   help="exit 0 even when inputs were skipped (each skip is still listed with its reason)")
    p.add_argument("--ensemble", action="append", default=[], metavar="CHECKPOINT",
                   help="another checkpoint to average with (repeatable; same classes required)")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto: bf16/fp16 autocast on GPU, fp32 on CPU")
    p.add_argument("--tta", default="", help="test-time flips, comma-separated: hflip,vflip,hvflip,rot90,rot270")
    p.add_argument("--tile", type=int, default=None, metavar="N",
                   help="sliding-window tile (default: the checkpoint's training size, else 512)")
    p.add_argument("--overlap", type=float, default=0.25, metavar="F", help="tile overlap fraction (0.25)")
    p.add_argument("--blend", default="gaussian", choices=["gaussian", "linear", "constant"])
    p.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass (4)")
    p.add_argument("--threshold", type=float, default=0.5, metavar="T",
                   help="probability threshold for binary and multilabel masks (0.5)")
    p.add_argument("--mask-format", default="ids", choices=["ids", "visible"],
                   help="ids: class ids (default); visible: ids spread over 0..255")
    p.add_argument("--probs", action="store_true", help="write <stem>_probs.tif (C, H, W) probabilities")
    p.add_argument("--probs-format", default="tif", choices=["tif", "npy"],
                   help="tif: uint16 p*65535 (default); npy: float32")
    p.add_argument("--uncertainty", action="store_true",
                   help="write <stem>_uncertainty.tif (normalised entropy, float32) and, with TTA or an "
                        "ensemble, <stem>_variance.tif")
    p.add_argument("--json", action="store_true", help="one JSON line per image: outputs and run details")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary on stderr")
    p.set_defaults(func=cmd_predict)
