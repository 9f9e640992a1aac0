"""``python -m medseg.cli ...`` (how the plugin starts a training process, and torchrun's ``-m`` form)."""

from medseg.cli.main import main

raise SystemExit(main())
