"""``medseg import-weights FILE.pth --config CONFIG.yaml --classes NAMES --out OUT.medseg``.

A ``.pt``/``.pth``/``.ckpt`` state dict from another training script becomes a
``.medseg`` checkpoint that every medseg command and the app load. The file is
read with ``torch.load(weights_only=True)``, so a file holding code is refused,
yet it is still the one place where a pickle is opened: import files you trust.

The network and its input come from a training config (the ``model`` and
``data`` sections ``medseg train`` reads: architecture, encoder, widths,
channels, image size, window, equalisation; ImageNet mean / std when
``model.encoder_weights`` names pretrained encoder weights, as training would
apply them); the classes from ``--classes`` in output-channel order.
"""

from __future__ import annotations

import argparse
import dataclasses

from medseg.cli.exits import EXIT_DONE
from medseg.errors import ConfigError


def cmd_import_weights(args: argparse.Namespace) -> int:
    from medseg.datasets.classmap import ClassMap
    from medseg.models import import_state_dict
    from medseg.training.config import TrainConfig
    from medseg.training.trainer_setup import build_spec, default_preprocessing

    config = TrainConfig.from_yaml(args.config)
    names = [n.strip() for n in args.classes.split(",") if n.strip()]
    try:
        classmap = ClassMap.from_names(names, task=args.task)
    except ValueError as e:
        raise ConfigError([f"--classes {args.classes!r}: {e}"]) from e
    spec, stride = build_spec(config, classmap)
    prep = default_preprocessing(config, spec, stride, volumes=args.volumes)
    # the file holds every weight: the checkpoint never fetches pretrained ones again
    spec = dataclasses.replace(spec, encoder_weights=None)
    out = import_state_dict(args.weights, spec, classmap, prep, args.out)
    size = "x".join(str(s) for s in prep.input_size) if prep.input_size else "its own size"
    print(
        f"{out}: {spec.arch}({spec.encoder}), {spec.in_channels} input channels, "
        f"{classmap.task} {', '.join(classmap.names)}; inputs resized to {size}"
    )
    return EXIT_DONE


def add_parser(sub) -> None:
    p = sub.add_parser(
        "import-weights",
        help="a trusted .pt/.pth state dict as a .medseg checkpoint",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("weights", metavar="FILE", help="the state dict (.pt, .pth, .ckpt; nested 'state_dict' is fine)")
    p.add_argument("--config", required=True, metavar="CONFIG.yaml", help="a training config: model and data")
    p.add_argument(
        "--classes", required=True, metavar="NAMES", help="class names, comma-separated, in output-channel order"
    )
    p.add_argument(
        "--task",
        choices=("binary", "multiclass", "multilabel"),
        default=None,
        help="binary for one name, multiclass otherwise (default)",
    )
    p.add_argument(
        "--volumes",
        action="store_true",
        help="the model reads CT/MR volumes: window statistics over the whole scan",
    )
    p.add_argument("--out", required=True, metavar="OUT.medseg", help="the checkpoint folder to write")
    p.set_defaults(func=cmd_import_weights)
