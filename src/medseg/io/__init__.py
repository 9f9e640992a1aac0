"""Readers for every supported image format behind one ``load(path)``, mask codecs, display normalisation."""

from medseg.io.loader import can_load, load
from medseg.io.types import ImageData

__all__ = ["ImageData", "can_load", "load"]
