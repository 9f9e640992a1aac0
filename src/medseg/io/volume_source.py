"""A volume opened without decoding it: slices read on demand, for review and per-slice prediction.

``open_volume(path)`` takes what ``medseg.io.load`` takes for a volume (a NIfTI
file, a DICOM series folder) and returns a :class:`VolumeSource` holding the
same values in the same display order (slice, row, col) on the same grid, read
as late as the format allows:

  * uncompressed ``.nii``: nibabel's array proxy reads only the bytes of the
    slice asked for (through a memory map), turned to display order as
    ``read_nifti`` turns the whole volume (:mod:`medseg.io.volume_orient`);
  * DICOM series: the headers are scanned once at open; each slice decodes its
    one file when first asked for, and a small cache (``CACHE_SLICES``) keeps the
    latest. A series stacked along another axis than display slices (sagittal,
    coronal) and colour series are decoded whole on first access;
  * ``.nii.gz`` (a gzip stream cannot be entered in the middle): the grid from
    the header at open, the voxels decoded once, on first access.

A VolumeSource is numpy-like enough to be napari layer data (``shape``,
``dtype``, ``ndim``, ``__getitem__`` with ints and slices, ``__array__``).
``sample_stats`` reads a few evenly spaced slices for window presets and MR
percentiles, never the whole volume.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import ReadError
from medseg.io.volume_geometry import Geometry
from medseg.io.volume_orient import DisplayGrid

CACHE_SLICES = 32  # decoded display slices kept (512 x 512 int16: 16 MiB)
STAT_SLICES = 7
STAT_PERCENTILES = (0.5, 1.0, 5.0, 50.0, 95.0, 99.0, 99.5)


@dataclass(frozen=True)
class IntensityStats:
    """Intensities of a few evenly spaced slices: enough for a display window or an MR normalisation."""

    slices: tuple[int, ...]
    min: float
    max: float
    mean: float
    std: float
    percentiles: dict[float, float]  # {q: value}, q in STAT_PERCENTILES

    def percentile(self, q: float) -> float:
        return self.percentiles[float(q)]

    def window(self, low: float = 1.0, high: float = 99.0) -> tuple[float, float]:
        """(lo, hi) between two sampled percentiles (MR: 1-99 %), never empty."""
        lo, hi = self.percentile(low), self.percentile(high)
        return (lo, hi) if hi > lo else (lo, lo + 1.0)


class VolumeSource:
    """A volume in display order (slice, row, col), read slice by slice; see the module docstring."""

    def __init__(self, path: Path, geometry: Geometry, dtype, metadata: dict[str, Any]):
        self.path = Path(path)
        self.geometry = geometry
        self.dtype = np.dtype(dtype)
        self.metadata = metadata
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    # --- what a subclass provides
    def _read_slice(self, z: int) -> np.ndarray:
        raise NotImplementedError

    def _read_all(self) -> np.ndarray:
        return np.stack([self._read_slice(z) for z in range(self.shape[0])])

    # --- numpy-like
    @property
    def shape(self) -> tuple[int, int, int]:
        return self.geometry.shape

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.geometry.spacing

    @property
    def ndim(self) -> int:
        return 3

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path} shape={self.shape} dtype={self.dtype}>"

    def slice(self, z: int) -> np.ndarray:
        """Display slice ``z`` (row, col); read-only (it may be shared with the cache)."""
        n = self.shape[0]
        z = int(z)
        if z < 0:
            z += n
        if not 0 <= z < n:
            raise IndexError(f"{self.path}: slice {z} is outside the volume's {n} slices")
        with self._lock:
            hit = self._cache.get(z)
            if hit is not None:
                self._cache.move_to_end(z)
                return hit
        values = self._read_slice(z)
        values.flags.writeable = False
        with self._lock:
            self._cache[z] = values
            self._cache.move_to_end(z)
            while len(self._cache) > CACHE_SLICES:
                self._cache.popitem(last=False)
        return values

    def array(self) -> np.ndarray:
        """The whole volume (decoded now; the same values ``medseg.io.load`` gives)."""
        return self._read_all()

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        a = self.array()
        return a if dtype is None else a.astype(dtype)

    def __getitem__(self, key) -> np.ndarray:
        key = _expand(key if isinstance(key, tuple) else (key,))
        first, rest = key[0], key[1:]
        if isinstance(first, (int, np.integer)):
            plane = self.slice(int(first))
            return plane[rest] if rest else plane
        if isinstance(first, slice):
            zs = range(*first.indices(self.shape[0]))
            if not zs:
                return np.empty((0, *self.shape[1:]), self.dtype)[(slice(None), *rest)]
            return np.stack([self.slice(z)[rest] for z in zs])
        return self.array()[key]  # fancy indexing: rare, whole volume

    def sample_stats(self, n: int = STAT_SLICES) -> IntensityStats:
        """Intensity statistics of ``n`` evenly spaced slices (every slice of a thinner volume)."""
        depth = self.shape[0]
        zs = tuple(sorted({int(round(z)) for z in np.linspace(0, depth - 1, min(n, depth))}))
        values = np.stack([self.slice(z) for z in zs]).astype(np.float64).ravel()
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise ReadError(self.path, f"slices {list(zs)} hold no finite value")
        qs = np.percentile(values, STAT_PERCENTILES)
        return IntensityStats(
            zs,
            float(values.min()),
            float(values.max()),
            float(values.mean()),
            float(values.std()),
            {float(q): float(v) for q, v in zip(STAT_PERCENTILES, qs)},
        )

    def close(self) -> None:
        with self._lock:
            self._cache.clear()


def _expand(key: tuple) -> tuple:
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        fill = 3 - (len(key) - 1)
        key = (*key[:i], *([slice(None)] * fill), *key[i + 1 :])
    if len(key) > 3:
        raise IndexError(f"too many indices for a volume: {len(key)}")
    return key


# --- formats ----------------------------------------------------------------------------------------------


class _WholeVolume(VolumeSource):
    """Decoded once, on first access (a .nii.gz, a series stacked sideways, colour); ``loader()`` -> array."""

    def __init__(self, path, geometry, dtype, metadata, loader):
        super().__init__(path, geometry, dtype, metadata)
        self._loader = loader
        self._array: np.ndarray | None = None
        self._load_lock = threading.Lock()

    def _whole(self) -> np.ndarray:
        with self._load_lock:
            if self._array is None:
                a = np.asarray(self._loader())
                if a.shape[:3] != self.shape:
                    raise ReadError(self.path, f"decoded shape {a.shape} differs from its header's {self.shape}")
                a.flags.writeable = False
                self._array, self.dtype = a, a.dtype
            return self._array

    def slice(self, z: int) -> np.ndarray:
        return self._whole()[int(z)]

    def _read_all(self) -> np.ndarray:
        return self._whole().copy()


class _NiftiProxy(VolumeSource):
    """An uncompressed NIfTI read through nibabel's array proxy, one display slice at a time."""

    def __init__(self, path, geometry, dtype, metadata, proxy, grid: DisplayGrid, stored_dtype):
        super().__init__(path, geometry, dtype, metadata)
        self._proxy, self._grid, self._ndim = proxy, grid, len(proxy.shape)
        self._float_from_int = np.dtype(stored_dtype).kind in "iu"

    def _values(self, a: np.ndarray) -> np.ndarray:
        a = np.asarray(a)
        a = a.astype(a.dtype.newbyteorder("="), copy=False)
        if a.dtype == np.float64 and self._float_from_int:
            a = a.astype(np.float32)  # as read_nifti: scaled integers in float32
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise ReadError(self.path, "holds NaN or infinite voxels (read it with allow_nonfinite)")
        return a

    def _read_slice(self, z: int) -> np.ndarray:
        slab = self._grid.slab(z)
        key: list[Any] = [slice(None)] * self._ndim
        key[slab.axis] = slab.index
        if self._ndim == 4:
            key[3] = 0
        try:
            raw = self._proxy[tuple(key)]
        except Exception as e:  # noqa: BLE001 - mmap ValueError, OSError of a file cut short
            raise ReadError(self.path, f"voxel data is truncated or corrupt: {e}") from e
        return slab.to_display(self._values(raw)).astype(self.dtype, copy=False)

    def _read_all(self) -> np.ndarray:
        try:
            data = np.asanyarray(self._proxy)
        except Exception as e:  # noqa: BLE001
            raise ReadError(self.path, f"voxel data is truncated or corrupt: {e}") from e
        return self._grid.to_display(self._values(data).reshape(self._grid.stored_shape)).astype(self.dtype)


class _DicomSlices(VolumeSource):
    """A DICOM series whose display slices are its files: one file decoded per slice."""

    def __init__(self, path, geometry, metadata, slices, grid: DisplayGrid | None):
        super().__init__(path, geometry, slices.dtype, metadata)
        self._slices, self._grid = slices, grid

    def _read_slice(self, z: int) -> np.ndarray:
        if self._grid is None:
            return self._slices.read(z)
        slab = self._grid.slab(z)
        return slab.to_display(self._slices.read(slab.index))


# --- opening ----------------------------------------------------------------------------------------------


def open_volume(path: str | Path) -> VolumeSource:
    """A lazy volume for a NIfTI file or a DICOM series folder; ReadError naming the file for anything else
    (a 2-D image, a 4-D NIfTI, a folder without a series). Headers are read now, voxels when asked for."""
    path = Path(path)
    if path.is_dir():
        return _open_series(path)
    from medseg.io.loader import detect_format

    if not path.is_file():
        raise ReadError(path, "does not exist" if not path.exists() else "is not a regular file or folder")
    reader = detect_format(path)
    if reader is None or reader.name != "nifti":
        what = "no recognised image" if reader is None else f"a {reader.label} file"
        raise ReadError(path, f"is {what}, not a volume (open a NIfTI file or a DICOM series folder)")
    return _open_nifti(path)


def _open_nifti(path: Path) -> VolumeSource:
    import nibabel as nib

    from medseg.io.nifti import GZIP_MAGIC, read_nifti, read_nifti_grid
    from medseg.io.volume_orient import display_grid

    geometry, notes = read_nifti_grid(path)
    if not path.name.lower().endswith((".nii", ".nii.gz")):  # a NIfTI known by its content only: read now
        image = read_nifti(path)
        return _WholeVolume(path, geometry, image.array.dtype, image.metadata, lambda: image.array)
    img = nib.load(path)
    meta = _nifti_metadata(path, img, geometry, notes)
    stored = img.get_data_dtype()
    try:  # the first voxel, right after the header even in a gzip stream, says what scaling makes of them
        probe = np.asarray(img.dataobj[(0,) * len(img.shape)])
    except Exception as e:  # noqa: BLE001 - gzip, zlib and mmap errors of a damaged file
        raise ReadError(path, f"voxel data is truncated or corrupt: {e}") from e
    dtype = probe.dtype.newbyteorder("=")
    if dtype == np.float64 and stored.kind in "iu":
        dtype = np.dtype(np.float32)  # as read_nifti: scaled integers in float32
    with open(path, "rb") as f:
        gzipped = f.read(2) == GZIP_MAGIC
    if gzipped:
        return _WholeVolume(path, geometry, dtype, meta, lambda: read_nifti(path).array)
    affine = np.asarray(img.affine, float)
    if not np.all(np.isfinite(affine)):
        affine = np.diag([*(float(z) for z in img.header.get_zooms()[:3]), 1.0])
    grid = display_grid(affine, img.shape[:3], [1.0, 1.0, 1.0])
    if grid.geometry.shape != geometry.shape:
        raise ReadError(path, f"display shape {grid.geometry.shape} differs from {geometry.shape}")
    _check_length(path, img)
    return _NiftiProxy(path, geometry, dtype, meta, img.dataobj, grid, stored)


def _check_length(path: Path, img) -> None:
    """A .nii shorter than header + voxels is truncated: say so at open, not at some slice."""
    offset = int(getattr(img.dataobj, "offset", 0))
    need = offset + int(np.prod(img.shape)) * img.get_data_dtype().itemsize
    size = path.stat().st_size
    if size < need:
        raise ReadError(
            path, f"is truncated: the header promises voxel data up to byte {need} but the file has {size} bytes"
        )


def _nifti_metadata(path: Path, img, geometry: Geometry, notes: list[str]) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "source": str(path),
        "format": "nifti",
        "modality": None,
        "photometric": "MONOCHROME2",
        "spacing_known": not notes,
        "orientation": "SPL",
        "affine": geometry.matrix.tolist(),
    }
    if img is not None:
        from nibabel.orientations import aff2axcodes

        meta["dtype"] = str(img.get_data_dtype().newbyteorder("="))
        if np.all(np.isfinite(img.affine)):
            meta["original_orientation"] = "".join(aff2axcodes(img.affine))
        slope, inter = float(getattr(img.dataobj, "slope", 1.0)), float(getattr(img.dataobj, "inter", 0.0))
        if (slope, inter) != (1.0, 0.0):
            meta["rescale"] = {"slope": slope, "intercept": inter}
    if notes:
        meta["spacing_notes"] = list(notes)
    return meta


def _open_series(folder: Path) -> VolumeSource:
    from medseg.io.dicom_lazy import SeriesSlices, decodes_by_slice
    from medseg.io.dicom_series import read_dicom_series, scan_series, series_metadata

    scan = scan_series(folder)
    if len(scan.files) < 2:
        raise ReadError(folder, f"holds one DICOM image ({scan.files[0].name}), not a volume")
    grid = scan.grid()
    if grid is not None:
        geometry = grid.geometry
    else:  # no affine (positions or spacing unknown): shown as stored, on a diagonal grid
        spacing = series_metadata(scan)["stored_spacing"]
        geometry = Geometry((len(scan.files), *scan.rows_cols), spacing, np.diag([*spacing, 1.0]))
    if not decodes_by_slice(scan):  # colour, a Modality LUT Sequence: the whole reader, once
        from pydicom.pixels.utils import pixel_dtype

        dtype = pixel_dtype(scan.headers[scan.files[0]])
        return _WholeVolume(folder, geometry, dtype, series_metadata(scan), lambda: read_dicom_series(folder).array)
    slices = SeriesSlices(scan)
    if grid is None or grid.slab(0).axis == 0:
        return _DicomSlices(folder, geometry, slices.metadata(), slices, grid)

    def whole() -> np.ndarray:  # a sideways stack: every display slice crosses every file
        return grid.to_display(np.stack([slices.read(k) for k in range(len(slices))]), in_place=True)

    return _WholeVolume(folder, geometry, slices.dtype, slices.metadata(), whole)
