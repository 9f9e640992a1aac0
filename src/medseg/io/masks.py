"""Mask codecs: the one place to import mask reading, binarising and class-channel conversions from.

* reading (:mod:`medseg.io.mask_read`): file -> integer ids, palettes, colour tables
* binarising (:mod:`medseg.io.binarise`): grey 0/255 masks -> 0/1 with a report
* channels (:mod:`medseg.io.mask_channels`): per-class files <-> ids <-> (..., C) bool
"""

from medseg.io.binarise import BinariseReport, binarise
from medseg.io.mask_channels import (
    OVERLAP_POLICIES,
    channels_to_ids,
    ids_to_channels,
    merge_class_masks,
    stack_class_masks,
)
from medseg.io.mask_read import (
    check_ids,
    classmap_from_palette,
    colour_to_ids,
    palette_colours,
    palette_to_ids,
    read_mask,
    read_mask_values,
)

__all__ = [
    "BinariseReport",
    "binarise",
    "OVERLAP_POLICIES",
    "channels_to_ids",
    "ids_to_channels",
    "merge_class_masks",
    "stack_class_masks",
    "check_ids",
    "classmap_from_palette",
    "colour_to_ids",
    "palette_colours",
    "palette_to_ids",
    "read_mask",
    "read_mask_values",
]
