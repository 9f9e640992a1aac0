"""``python -m medseg.cli ...`` (how the plugin starts a training process, and torchrun's ``-m`` form)."""

from medseg.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
