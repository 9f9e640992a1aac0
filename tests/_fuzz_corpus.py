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

import gzip
import io
import os
import re
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _fuzz_bytes import (
    _dicom_bytes,
    _nifti_bytes,
    _patch_nifti,
    _pil_bytes,
    _tiff_bytes,
    jpeg_claiming,
    png_bomb,
    png_bytes,
    tiff_claiming,
)

REPO = Path(__file__).resolve().parents[1]


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


# ------------------------------------------------------------------ encoders


def data_dir() -> Path:
    return Path(os.environ.get("MEDSEG_DATA_DIR", REPO.parent / "shared" / "data")).resolve()


def _cvc_pairs(rng: np.random.Generator, n: int) -> list[tuple[bytes, bytes, np.ndarray, np.ndarray, str]]:
    """(image PNG bytes, mask PNG bytes, image array, mask array, name) of ``n`` CVC frames, else synthetic."""
    from PIL import Image

    cvc = data_dir() / "cvc-clinicdb"
    names = sorted((cvc / "images").glob("*.png"), key=lambda p: int(p.stem)) if (cvc / "images").is_dir() else []
    out = []
    if names:
        for k in sorted(rng.choice(len(names), size=n, replace=False).tolist()):
            img, msk = names[k], cvc / "masks" / names[k].name
            with Image.open(img) as a, Image.open(msk) as b:
                out.append((img.read_bytes(), msk.read_bytes(), np.asarray(a), np.asarray(b), f"cvc{img.stem}"))
        return out
    for k in range(n):  # a bright disc on noise, 0/255 mask
        h, w = 72, 96
        yy, xx = np.mgrid[:h, :w]
        disc = (yy - 30 - 3 * k) ** 2 + (xx - 40 - 5 * k) ** 2 < 15**2
        img = rng.integers(0, 90, (h, w, 3)).astype(np.uint8)
        img[disc] = 200
        msk = (disc * 255).astype(np.uint8)
        out.append((_pil_bytes(img, "PNG"), _pil_bytes(msk, "PNG"), img, msk, f"synth{k}"))
    return out


_DICOM_FILES = (
    "CT_small.dcm",
    "MR_small.dcm",
    "examples_overlay.dcm",
    "rtdose.dcm",
    "MR_small_RLE.dcm",
    "no_meta.dcm",
    "ExplVR_BigEnd.dcm",
    "SC_rgb_small_odd.dcm",
    "JPEG2000.dcm",
    "emri_small.dcm",
)


def _dicom_sources() -> list[tuple[str, bytes]]:
    found = []
    try:
        from pydicom.data import get_testdata_file
    except ImportError:
        return found
    for name in _DICOM_FILES:
        try:
            path = get_testdata_file(name)
        except Exception:  # noqa: BLE001 - pydicom-data absent or offline: use what pydicom ships
            path = None
        if path:
            found.append((name, Path(path).read_bytes()))
    if not found:
        found.append(("synthetic.dcm", _synthetic_dicom()))
    return found


def _synthetic_dicom() -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, meta.MediaStorageSOPInstanceUID, "CT"
    ds.Rows = ds.Columns = 32
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelSpacing, ds.RescaleSlope, ds.RescaleIntercept = [0.7, 0.7], 1, -1024
    ds.PixelData = np.arange(32 * 32, dtype=np.int16).tobytes()
    ds.preamble = b"\x00" * 128
    return _dicom_bytes(ds)


def _nifti_sources(rng: np.random.Generator) -> list[tuple[str, bytes, str]]:
    """(name, bytes, role) of real NIfTI volumes: nibabel's anatomical.nii, the CT/MR volumes and a label volume."""
    found = []
    try:
        import nibabel

        anat = Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"
        if anat.is_file():
            found.append(("anatomical.nii", anat.read_bytes(), "image"))
    except ImportError:
        pass
    vols = data_dir() / "ct-mr-volumes"
    for name, role in (
        ("ct_abdomen.nii.gz", "image"),
        ("mr_abdomen.nii.gz", "image"),
        ("ct_abdomen_labels.nii.gz", "mask"),
    ):
        if (vols / name).is_file():
            found.append((name, (vols / name).read_bytes(), role))
    if not found:
        vol = rng.integers(-1000, 1000, (24, 20, 12)).astype(np.int16)
        found.append(("synthetic.nii.gz", _nifti_bytes(vol, zooms=(0.8, 0.8, 3.0), gz=True), "image"))
    return found


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


def _rasters(b: _Builder, pairs, rounds: int) -> None:
    img_png, msk_png, img, msk, name = pairs[0]
    img2_png, msk2_png, _, _, name2 = pairs[1]
    grey16 = (img.mean(axis=2) * 257).astype(np.uint16)
    bases = [
        ("png-images", "png", name, img_png, ".png", "image", msk_png),
        ("png-images", "png", name2, img2_png, ".png", "image", msk2_png),
        ("png-masks", "png", name + " mask", msk_png, ".png", "mask", img_png),
        ("jpeg", "jpeg", name, _pil_bytes(img, "JPEG", quality=90), ".jpg", "image", msk_png),
        ("jpeg", "jpeg", name + " mask", _pil_bytes(msk, "JPEG", quality=90), ".jpg", "mask", img_png),
        ("tiff", "tiff", name, _tiff_bytes(img, photometric="rgb"), ".tif", "image", msk_png),
        (
            "tiff",
            "tiff",
            name + " 16-bit grey",
            _tiff_bytes(grey16, photometric="minisblack"),
            ".tif",
            "image",
            msk_png,
        ),
        ("tiff-masks", "tiff", name + " mask", _tiff_bytes(msk, photometric="minisblack"), ".tif", "mask", img_png),
        (
            "tiff-masks",
            "tiff",
            name + " float mask",
            _tiff_bytes((msk > 0).astype(np.float32), photometric="minisblack"),
            ".tif",
            "mask",
            img_png,
        ),
    ]
    for group, kind, base, data, suffix, role, partner in bases:
        b.damage(group, kind, base, data, suffix, role, partner, ".png", rounds)


def _raster_specials(b: _Builder, pairs) -> None:
    img_png, msk_png, img, msk, name = pairs[0]
    h, w = msk.shape[:2]
    rng = b.rng
    # headers that claim far more pixels than the file holds, and one that really decodes that big
    for wd, ht in ((20000, 20000), (100000, 100000), (2**31 - 1, 1), (1, 2**31 - 1), (65535, 65535)):
        b.add("huge", "png", f"PNG header claims {wd}x{ht}", png_bytes(None, size=(wd, ht)), ".png", "image", msk_png)
    b.add(
        "huge",
        "png",
        "PNG mask header claims 20000x20000",
        png_bytes(None, size=(20000, 20000)),
        ".png",
        "mask",
        img_png,
    )
    b.add("huge", "png", "PNG header claims 0x0", png_bytes(None, size=(0, 0)), ".png", "image", msk_png)
    b.add("huge", "png", "PNG bomb 16384x16384 zeros", png_bomb(16384), ".png", "image", msk_png)
    # over this project's limit, under the size at which Pillow refuses by itself
    b.add("huge", "png", "PNG bomb 12000x12000 zeros", png_bomb(12000), ".png", "image", msk_png)
    jpeg = _pil_bytes(img, "JPEG", quality=80)
    b.add("huge", "jpeg", "JPEG header claims 65500x65500", jpeg_claiming(jpeg, 65500, 65500), ".jpg", "image", msk_png)
    b.add("huge", "jpeg", "JPEG header claims 0x0", jpeg_claiming(jpeg, 0, 0), ".jpg", "image", msk_png)
    b.add("huge", "tiff", "TIFF tags claim 60000x60000", tiff_claiming(60000, 60000), ".tif", "image", msk_png)
    b.add("huge", "tiff", "TIFF mask tags claim 60000x60000", tiff_claiming(60000, 60000), ".tif", "mask", img_png)
    b.add("huge", "tiff", "TIFF tags claim 0x16", tiff_claiming(0, 16), ".tif", "image", msk_png)

    # float masks and images with values a mask cannot hold
    fg = (msk > 0).astype(np.float32)
    for case, values in (
        ("NaN", np.where(fg > 0, np.nan, 0)),
        ("inf", np.where(fg > 0, np.inf, 0)),
        ("-inf", np.where(fg > 0, -np.inf, 0)),
        ("negative", -fg),
        ("all NaN", np.full_like(fg, np.nan)),
        ("0.5", fg * 0.5),
        ("huge 1e30", fg * 1e30),
        ("float64 NaN", np.where(fg > 0, np.nan, 1.0)),
    ):
        arr = np.asarray(values, np.float64 if "float64" in case else np.float32)
        b.add("float-masks", "tiff", f"float TIFF mask {case}", _tiff_bytes(arr), ".tif", "mask", img_png)
    grey = img.mean(axis=2).astype(np.float32)
    for case, values in (
        ("NaN", np.where(fg > 0, np.nan, grey)),
        ("inf", np.where(fg > 0, np.inf, grey)),
        ("negative", -grey),
        ("all NaN", np.full_like(grey, np.nan)),
    ):
        b.add(
            "float-masks",
            "tiff",
            f"float TIFF image {case}",
            _tiff_bytes(values.astype(np.float32)),
            ".tif",
            "image",
            msk_png,
        )

    # degenerate shapes, each as image with a matching mask
    for rows, cols in ((1, 1), (1, 300), (300, 1), (1, 1000), (1000, 1), (2, 700), (3, 3)):
        im = rng.integers(0, 255, (rows, cols, 3), dtype=np.uint8)
        mk = np.zeros((rows, cols), np.uint8)
        mk.flat[: max(1, mk.size // 3)] = 255
        b.add("shapes", "png", f"PNG {rows}x{cols}", _pil_bytes(im, "PNG"), ".png", "image", _pil_bytes(mk, "PNG"))
    for rows, cols in ((1, 257), (257, 1)):
        im = rng.integers(0, 255, (rows, cols), dtype=np.uint8)
        mk = (np.arange(rows * cols).reshape(rows, cols) % 2 * 255).astype(np.uint8)
        b.add("shapes", "tiff", f"TIFF {rows}x{cols}", _tiff_bytes(im), ".tif", "image", _pil_bytes(mk, "PNG"))
        b.add(
            "shapes",
            "jpeg",
            f"JPEG {rows}x{cols}",
            _pil_bytes(np.stack([im] * 3, -1), "JPEG"),
            ".jpg",
            "image",
            _pil_bytes(mk, "PNG"),
        )
    # bit depths and colour types a camera does not write
    small, small_mask = img[:64, :80], msk[:64, :80]
    small_mask_png = _pil_bytes(small_mask, "PNG")
    rgba16 = np.concatenate([small.astype(np.uint16) * 257, np.full((*small.shape[:2], 1), 65535, np.uint16)], -1)
    b.add("bit-depths", "png", "16-bit RGBA PNG", png_bytes(rgba16, bit_depth=16), ".png", "image", small_mask_png)
    b.add(
        "bit-depths",
        "png",
        "16-bit RGB PNG",
        png_bytes(small.astype(np.uint16) * 257, bit_depth=16),
        ".png",
        "image",
        small_mask_png,
    )
    b.add(
        "bit-depths",
        "png",
        "16-bit grey PNG",
        png_bytes(small[..., 0].astype(np.uint16) * 257, bit_depth=16),
        ".png",
        "image",
        small_mask_png,
    )
    b.add(
        "bit-depths",
        "png",
        "grey+alpha PNG",
        png_bytes(np.stack([small[..., 0], small[..., 1]], -1)),
        ".png",
        "image",
        small_mask_png,
    )
    b.add(
        "bit-depths",
        "png",
        "16-bit RGBA PNG mask",
        png_bytes(np.stack([small_mask.astype(np.uint16) * 257] * 4, -1), bit_depth=16),
        ".png",
        "mask",
        _pil_bytes(small, "PNG"),
    )
    b.add(
        "bit-depths",
        "png",
        "16-bit mask ids to 1000",
        png_bytes((np.arange(64 * 80).reshape(64, 80) % 1001).astype(np.uint16), bit_depth=16),
        ".png",
        "mask",
        _pil_bytes(small, "PNG"),
    )
    b.add(
        "bit-depths",
        "png",
        "RGB colour mask",
        _pil_bytes(np.stack([small_mask, small_mask // 2, 255 - small_mask], -1), "PNG"),
        ".png",
        "mask",
        _pil_bytes(small, "PNG"),
    )
    b.add(
        "bit-depths",
        "tiff",
        "TIFF 5 samples per pixel",
        _tiff_bytes(
            rng.integers(0, 255, (64, 80, 5), dtype=np.uint8),
            photometric="minisblack",
            planarconfig="contig",
            extrasamples=[0, 0, 0, 0],
        ),
        ".tif",
        "image",
        small_mask_png,
    )
    b.add(
        "bit-depths",
        "tiff",
        "TIFF stack as mask",
        _tiff_bytes(np.stack([small_mask] * 3)),
        ".tif",
        "mask",
        _pil_bytes(small, "PNG"),
    )
    # palette masks: indices past the end of the palette, a full 256-entry index range
    idx = (small_mask > 0).astype(np.uint8)
    idx[:8, :8] = 200
    for case, ids, pal in (
        ("palette PNG mask index 200 of 2 colours", idx, [(0, 0, 0), (255, 0, 0)]),
        (
            "palette PNG mask 256 indices",
            (np.arange(64 * 80).reshape(64, 80) % 256).astype(np.uint8),
            [(i, i, i) for i in range(256)],
        ),
        ("palette PNG mask empty palette", idx, []),
    ):
        b.add(
            "palette-masks",
            "png",
            case,
            png_bytes(ids, colour_type=3, palette=pal),
            ".png",
            "mask",
            _pil_bytes(small, "PNG"),
        )
    ok = (small_mask > 0).astype(np.uint8)
    b.add(
        "palette-masks",
        "png",
        "palette PNG mask good",
        png_bytes(ok, colour_type=3, palette=[(0, 0, 0), (0, 255, 0)]),
        ".png",
        "mask",
        _pil_bytes(small, "PNG"),
    )
    # sizes that disagree, and a mask beside the wrong image
    b.add("png-masks", "png", "mask half the image size", _pil_bytes(msk[::2, ::2], "PNG"), ".png", "mask", img_png)
    b.add(
        "png-masks", "png", "mask transposed", _pil_bytes(np.ascontiguousarray(msk.T), "PNG"), ".png", "mask", img_png
    )


def _dicoms(b: _Builder, rounds: int) -> None:
    import pydicom

    sources = _dicom_sources()
    for k, (name, data) in enumerate(sources):
        b.damage("dicom", "dicom", name, data, ".dcm", "image", None, ".png", rounds if k < 4 else 0)
        _swap_tag_bytes(b, name, data, 3 if k < 4 else 1)
    name, data = sources[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = pydicom.dcmread(io.BytesIO(data), force=True)

    def variant(case: str, change) -> None:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        change(ds)
        b.add("dicom", "dicom", f"{name} {case}", _dicom_bytes(ds), ".dcm")

    def set_(keyword, value):
        if isinstance(value, int) or keyword == "PixelData":
            return lambda ds: setattr(ds, keyword, value)
        return lambda ds: _set_raw(ds, keyword, "\\".join(value) if isinstance(value, list) else value)

    def meta(keyword, value):
        return lambda ds: setattr(ds.file_meta, keyword, value)

    variant("without pixel data", lambda ds: delattr(ds, "PixelData"))
    variant("without pixel data or SOP class", lambda ds: (delattr(ds, "PixelData"), delattr(ds, "SOPClassUID")))
    variant(
        "without pixel data, SOP class UID of two values",
        lambda ds: (delattr(ds, "PixelData"), _set_raw(ds, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.2\\1.2.3")),
    )
    variant("unknown transfer syntax", meta("TransferSyntaxUID", "1.2.3.4.5.6.7"))
    variant("transfer syntax is a SOP class UID", meta("TransferSyntaxUID", "1.2.840.10008.5.1.4.1.1.2"))
    explicit_le = b"1.2.840.10008.1.2.1\x00"
    if explicit_le in data:  # same length, so no length field changes: RLE Lossless said of raw pixels
        b.add(
            "dicom",
            "dicom",
            f"{name} RLE transfer syntax on raw pixels",
            data.replace(explicit_le, b"1.2.840.10008.1.2.5\x00", 1),
            ".dcm",
        )
    variant("without transfer syntax", lambda ds: delattr(ds.file_meta, "TransferSyntaxUID"))
    for spacing in (["0", "0"], ["-1", "-1"], ["nan", "nan"], ["inf", "1"], ["abc", "1"], ["1"]):
        variant(f"PixelSpacing {'/'.join(spacing)}", set_("PixelSpacing", spacing))
    variant("SliceThickness NaN", set_("SliceThickness", "nan"))
    for kw, value in (
        ("Rows", 0),
        ("Rows", 65535),
        ("Columns", 1),
        ("BitsAllocated", 0),
        ("BitsAllocated", 7),
        ("BitsAllocated", 64),
        ("BitsStored", 40),
        ("SamplesPerPixel", 0),
        ("SamplesPerPixel", 3),
        ("PhotometricInterpretation", "FOO"),
        ("PhotometricInterpretation", "PALETTE COLOR"),
        ("PixelRepresentation", 7),
        ("NumberOfFrames", "1000000"),
        ("NumberOfFrames", "-1"),
        ("NumberOfFrames", "abc"),
        ("RescaleSlope", "nan"),
        ("RescaleSlope", "inf"),
        ("RescaleSlope", "0"),
        ("RescaleIntercept", "1e300"),
        ("WindowCenter", "x"),
        ("WindowWidth", "0"),
        ("ImageOrientationPatient", ["1", "0", "0", "1", "0"]),
        ("SOPClassUID", "1.2.3"),
        ("Modality", "\\".join(["CT"] * 3)),
    ):
        variant(f"{kw} {value}", set_(kw, value))
    variant("pixel data one byte short", lambda ds: setattr(ds, "PixelData", ds.PixelData[:-1]))
    variant("pixel data empty", set_("PixelData", b""))
    del base


def _set_raw(ds, keyword: str, text: str) -> None:
    """Store ``text`` as the element's bytes, unchecked: pydicom refuses 'abc' for a decimal string on assignment."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    tag = Tag(tag_for_keyword(keyword))
    value = text.encode("ascii")
    if len(value) % 2:
        value += b" "
    ds._dict[tag] = RawDataElement(tag, dictionary_VR(tag), len(value), value, 0, False, True)


def _swap_tag_bytes(b: _Builder, name: str, data: bytes, variants: int) -> None:
    """Swap the bytes of element tags (group 0x0028 -> 0x2800 ...) and VRs, as a byte-order mix-up would."""
    tags = [
        struct.pack("<HH", g, e)
        for g, e in (
            (0x0028, 0x0010),
            (0x0028, 0x0011),
            (0x0028, 0x0100),
            (0x0028, 0x0030),
            (0x0008, 0x0016),
            (0x0028, 0x0004),
            (0x0028, 0x0002),
            (0x0008, 0x0060),
            (0x7FE0, 0x0010),
        )
    ]
    present = [t for t in tags if data.find(t, 132) >= 0]
    for v in range(variants):
        d = bytearray(data)
        picks = b.rng.choice(len(present), size=min(len(present), 2 + v), replace=False) if present else []
        for i in picks:
            at = d.find(present[int(i)], 132)
            d[at : at + 4] = bytes([d[at + 1], d[at], d[at + 3], d[at + 2]])
            if v % 2 and d[at + 4 : at + 6].isalpha():  # and the VR's two letters
                d[at + 4], d[at + 5] = d[at + 5], d[at + 4]
        b.add("dicom", "dicom", f"{name} tag bytes swapped v{v}", bytes(d), ".dcm")
    # the SOP Class UID made multi-valued, as a flipped byte turning '.' into '\\' does
    at = data.find(b"1.2.840.10008.5.1.4.1.1", 132)
    if at >= 0:
        d = bytearray(data)
        d[at + 5] = ord("\\")
        b.add("dicom", "dicom", f"{name} UID with a backslash", bytes(d), ".dcm")


def _niftis(b: _Builder, rng: np.random.Generator, rounds: int) -> None:
    sources = _nifti_sources(rng)
    for name, data, role in sources:
        suffix = ".nii.gz" if data[:2] == b"\x1f\x8b" else ".nii"
        b.damage("nifti", "nifti", name, data, suffix, role, None, ".png", rounds)
    name, data, _ = sources[0]
    raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    vol = rng.integers(0, 1000, (12, 10, 6)).astype(np.int16)

    def put(case: str, payload: bytes, suffix: str = ".nii") -> None:
        b.add("nifti", "nifti", case, payload, suffix)

    put("4-D NIfTI 3 volumes", _nifti_bytes(np.stack([vol] * 3, -1)))
    put("4-D NIfTI 1 volume", _nifti_bytes(vol[..., None]))
    put("5-D NIfTI", _nifti_bytes(vol[..., None, None].repeat(2, -1)))
    put("2-D NIfTI", _nifti_bytes(vol[..., 0]))
    put("1x1x1 NIfTI", _nifti_bytes(vol[:1, :1, :1]))
    put("1xNx1 NIfTI", _nifti_bytes(vol[:1, :, :1]))
    put("zero spacing", _nifti_bytes(vol, zooms=(0, 0, 0)))
    put("negative spacing", _nifti_bytes(vol, zooms=(-1, -2, -3)))
    put("NaN spacing", _nifti_bytes(vol, zooms=(np.nan, np.nan, np.nan)))
    put("NaN affine", _patch_nifti(_nifti_bytes(vol), srow=[float("nan")] * 12))
    put("zero affine", _patch_nifti(_nifti_bytes(vol), srow=[0.0] * 12))
    fvol = vol.astype(np.float32)
    fvol[0, 0, 0], fvol[1, 1, 1] = np.nan, np.inf
    put("float NaN/inf voxels", _nifti_bytes(fvol))
    put("complex voxels", _nifti_bytes(vol.astype(np.complex64)))
    put("RGB voxels", _nifti_bytes(np.zeros((4, 4, 4), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])))
    put("scl_slope NaN", _patch_nifti(raw, scl_slope=float("nan")))
    put("scl_slope inf", _patch_nifti(raw, scl_slope=float("inf"), scl_inter=1.0))
    put(
        "dims claim 30000^3 (gz)",
        gzip.compress(_patch_nifti(raw, dim=[3, 30000, 30000, 30000, 1, 1, 1, 1]), mtime=0),
        ".nii.gz",
    )
    put("dims claim 30000^3", _patch_nifti(raw, dim=[3, 30000, 30000, 30000, 1, 1, 1, 1]))
    put("dim[0] 0", _patch_nifti(raw, dim=[0, 1, 1, 1, 1, 1, 1, 1]))
    put("dim[0] 9", _patch_nifti(raw, dim=[9, 2, 2, 2, 2, 2, 2, 2]))
    put("negative dims", _patch_nifti(raw, dim=[3, -5, 10, 10, 1, 1, 1, 1]))
    put("unknown datatype 999", _patch_nifti(raw, datatype=999))
    put("pixdim all NaN", _patch_nifti(raw, pixdim=[1.0] + [float("nan")] * 7))
    big = np.zeros((1, 1, 1), np.uint8)
    put(
        "gz bomb claims 2048^3 zeros",
        gzip.compress(
            _patch_nifti(_nifti_bytes(big), dim=[3, 2048, 2048, 2048, 1, 1, 1, 1]) + b"\x00" * (1 << 16), mtime=0
        ),
        ".nii.gz",
    )


def _foreign(b: _Builder, pairs) -> None:
    """Zero-byte and text files under image suffixes; real files under another format's suffix."""
    img_png, msk_png, img, _, name = pairs[0]
    for suffix in (".png", ".jpg", ".tif", ".bmp", ".dcm", ".nii", ".nii.gz"):
        b.add("foreign", "other", f"0-byte {suffix}", b"", suffix, "image", msk_png)
    b.add("foreign", "other", "0-byte mask", b"", ".png", "mask", img_png)
    b.add(
        "foreign",
        "other",
        "HTML page named png",
        b"<!DOCTYPE html><html><body>404</body></html>",
        ".png",
        "image",
        msk_png,
    )
    b.add("foreign", "other", "text named dcm", b"patient,slice\n1,2\n", ".dcm", "image", msk_png)
    b.add(
        "foreign", "other", "gzip of text named nii.gz", gzip.compress(b"hello", mtime=0), ".nii.gz", "image", msk_png
    )
    b.add("foreign", "other", "no suffix", img_png, "", "image", msk_png)
    b.add("foreign", "other", "unknown suffix .dat", img_png, ".dat", "image", msk_png)
    jpeg = _pil_bytes(img, "JPEG")
    tiff = _tiff_bytes(img, photometric="rgb")
    dcm = _dicom_sources()[0][1]
    nii = _nifti_sources(np.random.default_rng(0))[0][1]
    for case, data, suffix, kind in (
        ("PNG named .jpg", img_png, ".jpg", "png"),
        ("PNG named .tif", img_png, ".tif", "png"),
        ("PNG named .dcm", img_png, ".dcm", "png"),
        ("PNG named .nii", img_png, ".nii", "png"),
        ("JPEG named .png", jpeg, ".png", "jpeg"),
        ("TIFF named .png", tiff, ".png", "tiff"),
        ("DICOM named .png", dcm, ".png", "dicom"),
        ("DICOM named .nii", dcm, ".nii", "dicom"),
        ("DICOM named .tif", dcm, ".tif", "dicom"),
        ("NIfTI named .png", nii, ".png", "nifti"),
        ("NIfTI named .dcm", nii, ".dcm", "nifti"),
    ):
        b.add("foreign", kind, case, data, suffix, "image", msk_png)
    b.add("foreign", "png", "mask PNG named .jpg", msk_png, ".jpg", "mask", img_png)
    b.add("foreign", "jpeg", "mask JPEG named .png", _pil_bytes(pairs[0][3], "JPEG"), ".png", "mask", img_png)
