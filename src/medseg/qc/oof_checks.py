"""What an out-of-fold ranking checks before its first fold, so that a bad input stores nothing.

Fold models learn nothing from a workspace whose masks are all empty (or all
foreground: a single class present), nor from a fold whose training part has
no foreground; a held-out part without any foreground gives no Dice to judge
its model by. A checkpoint to start from (``init_from``) must be of
the fold models' architecture and predict the workspace's classes; an encoder
weights file must be a local file and the architecture an smp one. Every
problem raises :class:`~medseg.errors.RankingError` naming what is wrong.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg.errors import RankingError
from medseg.models.checkpoint import load_checkpoint
from medseg.models.registry import resolve


def mask_content(samples: list) -> dict[str, tuple[bool, bool]]:
    """{sample id: (has foreground, has background)} of each sample's pinned label revision."""
    out = {}
    for s in samples:
        m = np.asarray(s.load_mask())
        fg = int(np.count_nonzero(m))
        out[s.id] = (fg > 0, fg < m.size)
    return out


def check_masks(root, content: dict[str, tuple[bool, bool]]) -> None:
    if not any(fg for fg, _ in content.values()):
        raise RankingError(
            f"{root}: all {len(content)} trainable masks are empty: a model cannot learn what to segment "
            "(label some samples first)"
        )
    if not any(bg for _, bg in content.values()):
        raise RankingError(
            f"{root}: every pixel of all {len(content)} trainable masks is foreground (a single class present): "
            "a model cannot learn where the object ends; check the masks' values (medseg qc)"
        )


def check_folds(pairs: list[tuple[list, list]], content: dict[str, tuple[bool, bool]]) -> None:
    """Each fold's training part has foreground, its held-out part too."""
    k = len(pairs)
    for fold, (train, held) in enumerate(pairs):
        where = f"fold {fold + 1} of {k}"
        groups = sorted({str(s.group) for s in held})
        if not any(content[s.id][0] for s in train):
            raise RankingError(
                f"{where}: none of the {len(train)} training masks has foreground (held out: groups "
                f"{', '.join(groups[:5])}): use fewer folds or another --fold-seed"
            )
        if not any(content[s.id][0] for s in held):
            raise RankingError(
                f"{where}: none of its {len(held)} held-out masks (groups {', '.join(groups[:5])}) has "
                "foreground, so its model's quality cannot be judged there: use fewer folds or another --fold-seed"
            )


def describe_model(arch: str, encoder: str | None, classes: int, task: str, own: bool) -> str:
    return f"{arch}{'' if own or not encoder else f' ({encoder})'} with {classes} output channel(s) for a {task} task"


def check_init_from(path, config, classmap) -> None:
    """``path``'s model must be the config's architecture and predict ``classmap``'s classes."""
    try:
        ck = load_checkpoint(path)
    except Exception as e:  # a missing or broken checkpoint: name it, whatever the loader raised
        raise RankingError(f"--init-from {path}: cannot load the checkpoint: {e}") from e
    m = config.model
    try:
        own = resolve(m.arch).own
        theirs_own = resolve(ck.spec.arch).own
    except ValueError as e:
        raise RankingError(f"--init-from {path}: {e}") from e
    same_arch = ck.spec.arch.lower() == m.arch.lower() and (own or ck.spec.encoder == m.encoder)
    if same_arch and own:
        same_arch = all(ck.spec.kwargs.get(k) == v for k, v in m.kwargs.items())
    mine = (classmap.task, tuple(classmap.ids), tuple(classmap.names))
    its = (ck.classmap.task, tuple(ck.classmap.ids), tuple(ck.classmap.names))
    if same_arch and mine == its:
        return
    n_mine = classmap.num_classes
    raise RankingError(
        f"--init-from {path}: the checkpoint is a "
        f"{describe_model(ck.spec.arch, ck.spec.encoder, ck.spec.classes, ck.classmap.task, theirs_own)} "
        f"(classes {list(ck.classmap.names)}), the fold models are a "
        f"{describe_model(m.arch, m.encoder, n_mine, classmap.task, own)} (classes {list(classmap.names)}"
        + (f", {m.kwargs}" if own and m.kwargs else "")
        + "): give a checkpoint of the same architecture and classes, or a --config whose model is the checkpoint's"
    )


def check_encoder_weights(path, config) -> None:
    p = Path(path)
    if not p.exists():
        raise RankingError(f"--encoder-weights {path}: no such file")
    if resolve(config.model.arch).own:
        raise RankingError(
            f"--encoder-weights {path}: the fold models' architecture {config.model.arch} has no pretrained "
            "encoder; use an smp architecture (e.g. --set model.arch=Unet --set model.encoder=resnet18)"
        )
