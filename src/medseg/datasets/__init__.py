"""Dataset layouts, class maps and group-aware splits."""

from medseg.classmap import ClassMap, LabelClass
from medseg.datasets.dataset import PROBLEM_KINDS, Dataset, Problem, Sample
from medseg.datasets.groups import fixed_blocks, frame_blocks, stem_groups
from medseg.datasets.layout import Layout
from medseg.datasets.layouts import (
    GROUP_BY,
    detect_layout,
    is_dataset_folder,
    open_dataset,
)
from medseg.datasets.registry import get_layout, layout_names, layouts, register_layout, unregister_layout
from medseg.datasets.split import kfold_by_group, split_by_group

__all__ = [
    "GROUP_BY",
    "PROBLEM_KINDS",
    "ClassMap",
    "Dataset",
    "LabelClass",
    "Layout",
    "Problem",
    "Sample",
    "detect_layout",
    "fixed_blocks",
    "frame_blocks",
    "get_layout",
    "is_dataset_folder",
    "kfold_by_group",
    "layout_names",
    "layouts",
    "open_dataset",
    "register_layout",
    "split_by_group",
    "stem_groups",
    "unregister_layout",
]
