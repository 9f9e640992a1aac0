"""Option helpers the sub-commands share."""

from __future__ import annotations

from typing import Any

# the training flags train and rank share: attribute -> (dotted config key, add_argument keywords)
TRAINING_FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "epochs": ("epochs", {"type": int, "metavar": "N"}),
    "batch_size": ("batch_size", {"type": int, "metavar": "N"}),
    "lr": ("optim.lr", {"type": float, "metavar": "F", "help": "optim.lr"}),
    "arch": ("model.arch", {"metavar": "A", "help": "model.arch, e.g. Unet, UnetPlusPlus, PlainUNet"}),
    "encoder": ("model.encoder", {"metavar": "E", "help": "model.encoder, e.g. resnet34, efficientnet-b1"}),
    "device": ("device", {"metavar": "D", "help": "auto, cpu, cuda, cuda:N, mps"}),
    "seed": ("seed", {"type": int, "metavar": "N"}),
}


TRAINING_FLAG_KEYS = {attr: key for attr, (key, _) in TRAINING_FLAGS.items()}


def add_training_flags(p: Any, helps: dict[str, str] | None = None) -> None:
    """Add :data:`TRAINING_FLAGS` to the parser ``p``; ``helps`` replaces a flag's help."""
    for attr, (_, kwargs) in TRAINING_FLAGS.items():
        extra = {"help": helps[attr]} if helps and attr in helps else {}
        p.add_argument("--" + attr.replace("_", "-"), **{**kwargs, **extra})


def set_dotted(d: dict, key: str, value: Any, problems: list[str], what: str) -> None:
    """Set ``a.b.c`` in a nested config dict; a non-mapping on the way is a problem, not a crash."""
    *parents, leaf = key.split(".")
    node = d
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            problems.append(f"{what}: {'.'.join(parents[: i + 1])} is {child!r} in the config, not a mapping")
            return
        node = child
    node[leaf] = value


def build_config(args: Any, flag_keys: dict[str, str], defaults: dict | None = None, *, data_root: str | None = None):
    """The TrainConfig of ``medseg train`` and ``medseg rank``: the YAML ``args.config`` (or a copy of
    ``defaults`` when none is given), then every ``--set KEY=VALUE``, then the named flags (``flag_keys``:
    attribute -> dotted key), then ``data_root``; ConfigError lists every problem at once."""
    import copy
    from pathlib import Path

    import yaml

    from medseg.training.config import ConfigError, TrainConfig

    if args.config:
        source = str(args.config)
        try:
            d = yaml.safe_load(Path(args.config).read_text())
        except OSError as e:
            raise ConfigError([f"cannot read the file: {e.strerror or e}"], source) from None
        except yaml.YAMLError as e:
            raise ConfigError([f"not valid YAML: {e}"], source) from None
        if d is None:
            d = {}
        if not isinstance(d, dict):
            raise ConfigError([f"the top level must be a mapping, got {type(d).__name__}"], source)
    else:
        source, d = f"medseg {getattr(args, 'command', '')} defaults", copy.deepcopy(defaults or {})
    problems: list[str] = []
    for item in args.overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"--set {item!r}: expected KEY=VALUE, e.g. optim.lr=0.001")
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as e:
            problems.append(f"--set {item!r}: VALUE is not valid YAML ({e})")
            continue
        set_dotted(d, key.strip(), value, problems, f"--set {key.strip()}")
    for attr, key in flag_keys.items():
        value = getattr(args, attr, None)
        if value is not None:
            set_dotted(
                d,
                key,
                list(value) if isinstance(value, tuple | list) else value,
                problems,
                f"--{attr.replace('_', '-')}",
            )
    if data_root is not None:
        d.setdefault("data", {})["root"] = data_root
    try:
        config = TrainConfig.from_dict(d, source=source)
    except ConfigError as e:
        problems.extend(e.problems)
    if problems:
        raise ConfigError(problems, source)
    return config
