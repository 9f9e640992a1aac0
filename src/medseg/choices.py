"""Names a user picks from, importable without torch: a GUI lists them before any model is loaded.

The definitions stay where they are used (:data:`medseg.training.loss_combo.PRESETS`,
:data:`medseg.training.augment.PRESETS`, ``PRECISIONS`` of :mod:`medseg.inference.device` and
:mod:`medseg.training.config`); importing those loads torch and albumentations. tests/test_choices.py
checks that these names are theirs, in their order.
"""

from __future__ import annotations

LOSS_PRESETS = ("seed004_bce_tversky", "seed004_bce_dice", "seed001_dice_boundary")
AUGMENT_PRESETS = ("none", "light", "seed004", "seed001_mirror", "seed001_cutout", "seed001_clahe", "seed001_histeq")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
