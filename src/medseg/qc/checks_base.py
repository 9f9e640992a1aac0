"""What every QC check is made of, and the decoded sample the checks look at.

A check runs at one of three stages:

* ``"index"``: from what indexing already knows (missing pairs, unreadable
  files, size mismatches, changed sources), before any pixel is decoded;
* ``"sample"``: on one decoded sample (``run(view, params) -> findings``);
* ``"dataset"``: from small per-sample measures (``needs`` names them, see
  ``FEATURES`` in :mod:`medseg.qc.checks_registry`) gathered during the one
  decoding pass, then ``decide(table, context, params) -> findings`` once for
  the whole dataset (duplicates, thresholds relative to the dataset's median).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medseg.datasets.classmap import ClassMap

STAGES = ("index", "sample", "dataset")


@dataclass(frozen=True)
class Check:
    name: str
    stage: str
    summary: str
    defaults: dict = field(default_factory=dict)
    fix: str | None = None
    run: Callable[..., list] | None = None
    needs: tuple[str, ...] = ()
    decide: Callable[..., list] | None = None
    # (method, (table, context) -> ({sample: score}, {sample: details})): a dataset check may also give each
    # sample a score in [0, 1] (lower = label more likely wrong) that the workspace stores for the queue
    scores: tuple[str, Callable[[dict, DatasetContext], tuple[dict, dict]]] | None = None

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"check {self.name}: unknown stage {self.stage!r}; valid: {', '.join(STAGES)}")


@dataclass
class DatasetContext:
    """What dataset-stage checks know besides the measures: every sample's group and file."""

    sample_ids: list[str]
    groups: dict[str, str]
    paths: dict[str, str]
    cache: dict = field(default_factory=dict)  # shared between checks deciding on the same pairs
    workers: Any = None  # the run's worker processes for pair work (medseg.qc.pool.Workers), None when serial


@dataclass
class SampleView:
    """One decoded sample, as every per-sample check sees it.

    ``mask`` holds class ids (H, W[, D]) for binary/multiclass class maps and
    a (..., C) bool array for multilabel ones. ``raw`` is the source mask file
    as stored (0/255 with any grey noise) for single-file binary masks, with
    ``raw_report`` the :class:`~medseg.io.binarise.BinariseReport` of
    binarising it; ``raw_bad_ids`` lists stored ids the class map lacks (id
    masks). ``in_workspace`` says that ``mask`` is the workspace's head
    revision rather than the source file.
    """

    id: str
    mask: np.ndarray
    classmap: ClassMap
    image: np.ndarray | None = None
    rgb: bool = False
    group: str = ""
    image_path: str | None = None
    mask_path: str | None = None
    raw: np.ndarray | None = None
    raw_report: Any = None
    raw_reports: dict | None = None
    raw_bad_ids: list[tuple[int, int]] | None = None
    in_workspace: bool = False
    revision: int | None = None  # the workspace revision ``mask`` is (None outside a workspace)
    # volumes (a (slice, row, col) label of one case): the image's grid, and the label file's own grid when
    # it was read from a file that has one (a workspace's head revision lies on the image's grid by design)
    geometry: Any = None
    label_geometry: Any = None
    _cache: dict = field(default_factory=dict, repr=False)

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        """Derived arrays (grey image, components) computed once and shared by the checks."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def multilabel(self) -> bool:
        return self.classmap.task == "multilabel"

    @property
    def volume(self) -> bool:
        """A volume sample: ``mask`` is (slice, row, col) and the volume checks judge it slice by slice."""
        return self.geometry is not None

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel size in mm, (slice, row, col) for volumes; 1 per axis where unknown."""
        if self.geometry is not None:
            return tuple(float(s) for s in self.geometry.spacing)
        return (1.0,) * len(self.spatial_shape)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return self.mask.shape[:-1] if self.multilabel else self.mask.shape

    def foreground(self) -> np.ndarray:
        """Pixels that belong to any class."""
        return self.cached("foreground", lambda: self.mask.any(axis=-1) if self.multilabel else self.mask > 0)

    def class_masks(self) -> list[tuple[int, np.ndarray]]:
        """(class id, bool mask) for every class with at least one pixel."""

        def make():
            if self.multilabel:
                return [(cid, self.mask[..., i]) for i, cid in enumerate(self.classmap.ids) if self.mask[..., i].any()]
            present = (
                np.flatnonzero(np.bincount(self.mask.ravel())) if self.mask.dtype.kind in "ub" else np.unique(self.mask)
            )
            return [(int(c), self.mask == c) for c in present if int(c) != 0]

        return self.cached("class_masks", make)

    def components(self, cid: int) -> tuple[np.ndarray, np.ndarray]:
        """(labels, sizes) of class ``cid``'s 8-connected components (sizes[k] is label k+1's size)."""

        def make():
            from scipy import ndimage as ndi

            m = dict(self.class_masks()).get(cid)
            if m is None:
                return np.zeros(self.spatial_shape, np.int32), np.zeros(0, np.int64)
            labels, n = ndi.label(m, structure=np.ones((3,) * m.ndim, bool))
            return labels, np.bincount(labels.ravel(), minlength=n + 1)[1:]

        return self.cached(f"components:{cid}", make)

    def foreground_components(self) -> tuple[np.ndarray, int]:
        """(labels, count) of the foreground's 8-connected (3-D: 26-connected) components. Where one class
        (id > 0) is all the foreground (binary masks) they are that class's :meth:`components`, labelled once."""

        def make():
            from scipy import ndimage as ndi

            masks = self.class_masks()
            if not self.multilabel and len(masks) == 1 and masks[0][0] > 0:
                labels, sizes = self.components(masks[0][0])
                return labels, len(sizes)
            fg = self.foreground()
            return ndi.label(fg, structure=np.ones((3,) * fg.ndim, bool))

        return self.cached("foreground-components", make)

    def where(self) -> str | None:
        return self.mask_path or self.image_path


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def span(values: list) -> str:
    """'8..112' for a sorted list of levels, '8' for one."""
    lo, hi = _num(values[0]), _num(values[-1])
    return lo if lo == hi else f"{lo}..{hi}"


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def centroids(labels: np.ndarray, which: list[int], limit: int = 20) -> list[list[int]]:
    """Rounded centres of the components numbered ``which`` (for the viewer to jump to)."""
    from scipy import ndimage as ndi

    which = [int(k) for k in which[:limit]]
    if not which:
        return []
    # each component's mean position inside its own box: center_of_mass over the whole array took 6.7 s for
    # 20 holes of a 512 x 512 x 300 label volume, this 1.5 s (one find_objects pass)
    boxes = ndi.find_objects(labels, max_label=max(which))
    out = []
    for k in which:
        box = boxes[k - 1]
        where = np.nonzero(labels[box] == k)
        out.append([round(float(w.mean()) + b.start) for w, b in zip(where, box)])
    return out
