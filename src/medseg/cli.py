"""The ``medseg`` command: the engine from a shell, for scripts, clusters and CI.

Sub-commands so far:
  medseg info PATH...      what the readers make of files or DICOM series folders
  medseg index FOLDER      detect a dataset layout, index it, list every problem
  medseg predict CKPT INPUT... --out DIR   masks, probabilities and uncertainty from a checkpoint
  medseg train CONFIG.yaml [--events jsonl]  train a model (also under torchrun --nproc_per_node N)
  medseg export WS --format F --out DIR  the cleaned dataset (folders, nnU-Net, MONAI) + manifest
  medseg workspace create|info|history|status|verify   the review workspace beside a dataset
  medseg qc DATASET|WORKSPACE [--json F] [--csv F]  rule-based QC: findings table and report
  medseg rank WORKSPACE [--folds K | --checkpoint CKPT]  label-quality ranking; prints the review queue

Exit status (every sub-command):
  0    done
  2    the input or the request is wrong: a missing or unreadable file, a bad option, a refused
       destination, skipped inputs (predict without --keep-going); one line on stderr names the
       file or the option
  3    qc --fail-on: findings at or above the given severity are left
  130  interrupted (Ctrl-C, SIGTERM where the command handles it)
  1    a bug in napari-medseg: the traceback is printed; please report it with the traceback
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .cli_train import add_train_parser
from .errors import BUG_LINE, DestinationError, MedsegError, ReadError
from .export.cli import add_parser as add_export_parser
from .qc.cli import add_parser as add_qc_parser
from .qc.rank_cli import add_parser as add_rank_parser
from .workspace.cli import add_parser as add_workspace_parser


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
        except (MedsegError, OSError) as e:
            print(f"error: {_one_line(e)}", file=sys.stderr)
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
    return EXIT_INPUT if failed else EXIT_DONE


def _cmd_index(args: argparse.Namespace) -> int:
    from .datasets import open_dataset

    ds = open_dataset(Path(args.folder), layout=args.layout)
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


def _progress(total: int, quiet: bool):
    """tqdm on stderr when installed; else one line per file."""
    if quiet:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="image", file=sys.stderr, dynamic_ncols=True)


def _cmd_predict(args: argparse.Namespace) -> int:
    from .inference import Predictor
    from .inference.batch import Skipped, collect_inputs, predict_image, prediction_names, write_prediction
    from .io import load
    from .ownership import OutputFolder

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
            skipped.append(Skipped(item.path, e.reason if same else _one_line(e, item.path)))
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


def _add_predict(sub) -> None:
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
    p.set_defaults(func=_cmd_predict)


_EXIT_CODES = """exit status: 0 done; 2 the input or the request is wrong (a one-line message names the file or
the option); 3 qc --fail-on found what it was asked to fail on; 130 interrupted; 1 a bug in napari-medseg
(the traceback is printed: please report it with the traceback)"""

EXIT_DONE, EXIT_BUG, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    from .datasets import LAYOUTS

    ap = argparse.ArgumentParser(prog="medseg", description=__doc__.split("\n\n")[0], epilog=_EXIT_CODES)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="describe images: shape, dtype, spacing, modality, provenance")
    p.add_argument("paths", nargs="+", help="image files (PNG/JPG/BMP/TIFF/DICOM/NIfTI) or DICOM series folders")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("index", help="detect a dataset layout, index the samples and list every problem")
    p.add_argument("folder")
    p.add_argument("--layout", default=None, choices=LAYOUTS, help="force a layout instead of detecting it")
    p.add_argument("--json", action="store_true")
    p.add_argument("--strict", action="store_true", help="exit 2 when any problem was found")
    p.set_defaults(func=_cmd_index)
    _add_predict(sub)
    add_train_parser(sub)
    add_export_parser(sub)
    add_workspace_parser(sub)
    add_qc_parser(sub)
    add_rank_parser(sub)
    return ap


def _one_line(e: BaseException, path: Path | None = None) -> str:
    """A clean error as one line naming its file: MedsegErrors name theirs; an OSError names its filename."""
    if isinstance(e, OSError) and not isinstance(e, MedsegError):
        where = e.filename or path
        text = f"{where}: {e.strerror or e}" if where else str(e)
    else:
        text = str(e)
    return " ".join(text.split()) if "\n" not in text.strip() else text.strip()


def run_command(func, args: argparse.Namespace) -> int:
    """One sub-command with the exit codes of the module docstring: clean errors 2, Ctrl-C 130, bugs 1."""
    import traceback

    try:
        return func(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (MedsegError, OSError) as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return EXIT_INPUT
    except Exception:  # noqa: BLE001 - anything else is ours to fix: say so, with what is needed to fix it
        traceback.print_exc()
        print(f"error: {BUG_LINE}", file=sys.stderr)
        return EXIT_BUG


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return run_command(args.func, args)


if __name__ == "__main__":
    raise SystemExit(main())
