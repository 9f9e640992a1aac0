"""``medseg export-onnx CKPT [--out F] [--opset N]``: the checkpoint's network as an ONNX file.

Height and width stay dynamic (any multiple of the model's stride) unless
``--fixed-size HxW`` is given, for every registered architecture (DPT's ViT
position-embedding resampling is exported as matrix products; a ViT built with
``dynamic_img_size=False`` takes its native size only and needs
``--fixed-size``). Prints a short summary of the written graph (inputs and
outputs with their dimensions, operators by type, size, metadata), or writes
it as JSON with ``--json FILE``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from medseg.cli.exits import EXIT_DONE, EXIT_INPUT
from medseg.errors import OnnxExportError


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH, e.g. 224x224, got {text!r}") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"sizes must be >= 1, got {text!r}")
    return h, w


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from medseg.models.checkpoint import load_checkpoint
    from medseg.models.onnx_export import export_onnx
    from medseg.models.onnx_summary import onnx_summary, summary_lines

    ckpt = load_checkpoint(args.checkpoint)
    out = Path(args.out) if args.out else Path(ckpt.path).with_suffix(".onnx")
    try:
        written = export_onnx(
            ckpt,
            out,
            opset=args.opset,
            dynamic_hw=args.fixed_size is None,
            input_hw=args.fixed_size,
            overwrite=args.overwrite,
        )
    except OnnxExportError as e:
        hint = "" if args.fixed_size else " (from the command line: --fixed-size HxW)"
        raise OnnxExportError(f"{e}{hint}") from e
    except ValueError as e:  # an example size that does not fit the stride
        raise OnnxExportError(f"{args.checkpoint}: {e}") from e
    summary = onnx_summary(written)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    for line in summary_lines(summary):
        print(line)
    return EXIT_DONE if written.is_file() else EXIT_INPUT


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export-onnx",
        help="export a checkpoint to ONNX (dynamic height/width) and print a short graph summary",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("checkpoint", help="a NAME.medseg checkpoint folder")
    p.add_argument("--out", help="the .onnx file to write (default: beside the checkpoint, NAME.onnx)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version (default 17)")
    p.add_argument(
        "--fixed-size",
        type=_size,
        metavar="HxW",
        help="export for this one input size instead of dynamic height/width (a multiple of the stride)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a file medseg wrote there before")
    p.add_argument("--json", metavar="FILE", help="also write the summary as JSON")
    p.set_defaults(func=cmd_export_onnx)
