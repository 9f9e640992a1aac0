"""A deterministic corpus of damaged and odd image files, arranged as datasets, for the fuzz campaign.

Made from real bytes where they are at hand: CVC-ClinicDB frames and masks
(``MEDSEG_DATA_DIR`` or ``../shared/data``), pydicom's shipped test files, nibabel's
``anatomical.nii`` and the CT/MR NIfTI volumes beside the checkout; synthetic
stand-ins when they are absent, so a clone without ``../shared`` builds a
smaller corpus. Every damaged file is one of:

* a real file cut short or with bits flipped (seeded), a run of bytes zeroed;
* a real file under another format's suffix, a 0-byte or text file under an image suffix;
* a header that lies: a PNG / JPEG / TIFF claiming 20000x20000 pixels and more, a NIfTI
  claiming millions of voxels, a PNG that really decodes to 16384x16384;
* odd but valid content: NaN / inf / negative float TIFF masks and images, 1x1, 1xN and
  Nx1 images, 16-bit RGB(A) PNG, palette masks with indices past the palette, 4-D and 5-D
  NIfTI, zero / negative / NaN spacing, DICOM without pixel data or with an unknown or
  invalid transfer syntax, DICOM with tag bytes swapped.

Files sit in datasets the project reads (``<group>/images/`` + ``<group>/masks/``, paired
by stem): a damaged image beside a good mask of its base, a damaged mask beside a good
image, so index, QC, workspace create, predict and training see them as samples.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _fuzz_bytes import (
    png_bytes,
)
from _fuzz_headers import _dicoms, _foreign, _niftis
from _fuzz_rasters import _raster_specials, _rasters
from _fuzz_sources import _cvc_pairs, _dicom_sources, _nifti_sources


@dataclass(frozen=True)
class FuzzFile:
    path: Path  # the damaged or odd file
    kind: str  # png, jpeg, tiff, dicom, nifti, other (what the bytes came from)
    case: str  # what was done to them
    role: str  # "image" or "mask": where it sits in its dataset
    dataset: Path  # the dataset root it belongs to
    partner: Path | None = None  # the good file it is paired with, if any


@dataclass
class Corpus:
    root: Path
    files: list[FuzzFile]
    datasets: list[Path]
    sources: dict[str, str] = field(default_factory=dict)  # which real inputs were found

    def by_dataset(self) -> dict[Path, list[FuzzFile]]:
        out: dict[Path, list[FuzzFile]] = {d: [] for d in self.datasets}
        for f in self.files:
            out[f.dataset].append(f)
        return out


# ------------------------------------------------------------------ the builder

_SUFFIX = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif", "dicom": ".dcm", "nifti": ".nii.gz", "other": ".dat"}


class _Builder:
    def __init__(self, root: Path, rng: np.random.Generator, anchor: tuple[bytes, bytes]):
        self.root, self.rng = root, rng
        self.files: list[FuzzFile] = []
        self.datasets: list[Path] = []
        self.n = 0
        # two good samples in every dataset: its layout is recognised and training has a split
        # whatever the damaged files are; palette masks need a palette anchor
        self.anchors = {"": anchor}

    def anchor_samples(self, ds: Path) -> None:
        image, mask = self.anchors.get(ds.name, self.anchors[""])
        for k in (1, 2):
            (ds / "images" / f"anchor{k}.png").write_bytes(image)
            (ds / "masks" / f"anchor{k}.png").write_bytes(mask)

    def add(
        self,
        group: str,
        kind: str,
        case: str,
        data: bytes,
        suffix: str,
        role: str = "image",
        partner: bytes | None = None,
        partner_suffix: str = ".png",
    ) -> None:
        """One corpus file in dataset ``group``: ``data`` as an image (or mask), ``partner`` its good counterpart."""
        self.n += 1
        stem = f"f{self.n:04d}_{re.sub(r'[^a-z0-9]+', '-', case.lower()).strip('-')}"
        ds = self.root / group
        if ds not in self.datasets:
            (ds / "images").mkdir(parents=True, exist_ok=True)
            (ds / "masks").mkdir(parents=True, exist_ok=True)
            self.anchor_samples(ds)
            self.datasets.append(ds)
        folder, other = ("images", "masks") if role == "image" else ("masks", "images")
        path = ds / folder / f"{stem}{suffix}"
        path.write_bytes(data)
        partner_path = None
        if partner is not None:
            partner_path = ds / other / f"{stem}{partner_suffix}"
            partner_path.write_bytes(partner)
        self.files.append(FuzzFile(path, kind, case, role, ds, partner_path))

    def damage(
        self,
        group: str,
        kind: str,
        name: str,
        data: bytes,
        suffix: str,
        role: str,
        partner: bytes | None,
        partner_suffix: str,
        rounds: int,
    ) -> None:
        """Truncations, bit flips and zeroed runs of one real file."""

        def put(case: str, damaged: bytes) -> None:
            self.add(group, kind, f"{name} {case}", damaged, suffix, role, partner, partner_suffix)

        n = len(data)
        for keep in (8, 30, 200):
            if keep < n:
                put(f"cut at {keep} B", data[:keep])
        for frac in (0.25, 0.5, 0.75, 0.98):
            put(f"cut {int(frac * 100)}%", data[: int(n * frac)])
        for r in range(rounds):
            for flips, span in ((1, n), (8, n), (64, n), (4, min(n, 1024)), (16, min(n, 400))):
                b = bytearray(data)
                for pos in self.rng.integers(0, span, flips):
                    b[int(pos)] ^= 1 << int(self.rng.integers(0, 8))
                put(f"{flips} bit flips in first {span} B r{r}", bytes(b))
            b = bytearray(data)
            start = int(self.rng.integers(0, max(1, n - 64)))
            b[start : start + 64] = b"\x00" * min(64, n - start)
            put(f"64 B zeroed at {start} r{r}", bytes(b))


def build_corpus(root: Path, seed: int = 0, rounds: int = 1) -> Corpus:
    """Write the corpus under ``root`` (created). ``rounds`` repeats the seeded bit-flip families:
    1 gives about 350 files with the real data present, each extra round about 150 more."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pairs = _cvc_pairs(rng, 2)
        b = _Builder(root, rng, (pairs[0][0], pairs[0][1]))
        palette_mask = png_bytes((pairs[0][3] > 0).astype(np.uint8), colour_type=3, palette=[(0, 0, 0), (0, 255, 0)])
        b.anchors["palette-masks"] = (pairs[0][0], palette_mask)
        _rasters(b, pairs, rounds)
        _raster_specials(b, pairs)
        _dicoms(b, rounds)
        _niftis(b, rng, rounds)
        _foreign(b, pairs)
    sources = {
        "cvc": pairs[0][4],
        "dicom": ", ".join(n for n, _ in _dicom_sources()),
        "nifti": ", ".join(n for n, _, _ in _nifti_sources(np.random.default_rng(0))),
    }
    return Corpus(root, b.files, b.datasets, sources)
