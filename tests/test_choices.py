"""medseg.choices lists, without torch, the names the engine's torch-side registries define."""

from __future__ import annotations

import subprocess
import sys

from medseg import choices


def test_choices_are_the_registries_names():
    import importlib

    from medseg.inference import device
    from medseg.training import config, loss_combo

    augment = importlib.import_module("medseg.training.augment")  # the package exports a function of that name
    assert choices.LOSS_PRESETS == tuple(loss_combo.PRESETS)
    assert choices.AUGMENT_PRESETS == tuple(augment.PRESETS)
    assert choices.PRECISIONS == device.PRECISIONS == config.PRECISIONS


def test_choices_import_no_torch():
    code = "import sys, medseg.choices; print(sorted(m for m in ('torch', 'albumentations') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
