"""Reading mask files into integer class-id arrays.

Pixels come back as stored: a 0/255 mask stays 0/255 (binarising is a separate,
reported step, see :mod:`medseg.io.binarise`), and a palette ('P') PNG keeps its
palette indices, which are the class ids. Colour-coded RGB masks become ids only
through a class map's colour table, never by guessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from medseg.classmap import ClassMap
from medseg.errors import MaskError, ReadError, UnsupportedFormatError
from medseg.io.limits import bomb_error, open_image
from medseg.io.mask_files import open_head, sniff
from medseg.io.tiff import check_tiff_size, tiff_photometric_name

ColourTable = Mapping[int, tuple[int, int, int]]

# JPEG stores a grey mask saved "in colour" with small chroma errors; beyond
# this spread between channels the pixels really are coloured.
_JPEG_GREY_SPREAD = 32
_TOP_COLOURS = 5


# ----------------------------------------------------------------- decoding
def _read_pil(path: Path, fmt: str, fp=None) -> tuple[np.ndarray, str]:
    """(array, kind) with kind 'ids' (palette indices), 'grey' or 'colour'; ``fp``: ``path`` already open."""
    try:
        with open_image(path, fp) as img:  # the size is checked before decoding
            img.load()
            mode = img.mode
            if mode == "P":
                return np.array(img), "ids"  # indices, not colours: the class ids
            if mode == "PA":
                return np.array(img.getchannel(0)), "ids"
            if mode == "1":
                return np.array(img).astype(np.uint8), "grey"
            if mode in ("L", "I", "F") or mode.startswith("I;16"):
                return np.array(img), "grey"
            if mode == "LA":
                return np.array(img.getchannel("L")), "grey"
            if mode == "RGBA":
                return np.array(img), "colour"
            return np.array(img.convert("RGB")), "colour"
    except ReadError:
        raise
    except Image.DecompressionBombError as e:  # a frame past the first claiming more than its header
        raise bomb_error(path, e) from None
    except Exception as e:  # noqa: BLE001 - Pillow raises OSError, SyntaxError, TypeError, struct.error ...
        raise ReadError(path, f"cannot be decoded as {fmt.upper()}: {e}") from None


def _read_tiff(path: Path) -> tuple[np.ndarray, str]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            page = tf.pages[0]
            photometric = int(page.photometric)
            axes = tf.series[0].axes
            check_tiff_size(path, tf.series[:1])
            arr = tf.asarray()
            expected = tuple(tf.series[0].shape)
        if arr.shape != expected:  # tifffile logs a failed reshape of damaged strips and goes on
            raise ReadError(path, f"pixel data decodes to shape {arr.shape}, not the {expected} the tags declare")
    except ReadError:
        raise
    except Exception as e:  # tifffile raises many types for damaged files
        raise ReadError(path, f"cannot be decoded as TIFF: {e}") from None
    PHOTO = tifffile.PHOTOMETRIC
    if "S" in axes:  # samples may be stored planar: always put them last
        arr = np.moveaxis(arr, axes.index("S"), -1)
    samples = arr.shape[-1] if "S" in axes else 1
    if photometric == PHOTO.PALETTE:
        return arr, "ids"
    if photometric == PHOTO.RGB or (photometric == PHOTO.MINISBLACK and samples in (3, 4)):
        # a 3-sample MINISBLACK TIFF (as CVC-ClinicDB's frames) is colour in all but name
        return arr[..., :4], "colour"
    if samples == 2:  # grey + alpha
        arr = arr[..., 0]
    elif samples > 1:
        raise MaskError(path, f"TIFF with {samples} samples per pixel is not a mask")
    if photometric == PHOTO.MINISWHITE:  # 0 means white: invert to the usual sense
        if not (arr.dtype == bool or np.issubdtype(arr.dtype, np.unsignedinteger)):
            raise MaskError(path, f"MINISWHITE TIFF with {arr.dtype} pixels is not a mask encoding")
        arr = ~arr if arr.dtype == bool else np.iinfo(arr.dtype).max - arr
    elif photometric != PHOTO.MINISBLACK:
        raise MaskError(path, f"TIFF photometric {tiff_photometric_name(photometric)} is not a mask encoding")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    return arr, "grey"


def _read_nifti(path: Path) -> np.ndarray:
    try:
        from medseg.io.nifti import read_nifti
    except ImportError:
        raise UnsupportedFormatError(path, "NIfTI masks need medseg.io.nifti, which is not installed") from None
    return np.asarray(read_nifti(path).array)


# ----------------------------------------------------------------- colours
def _describe_colours(keys: np.ndarray, counts: np.ndarray) -> str:
    order = np.argsort(-counts, kind="stable")[:_TOP_COLOURS]
    parts = [f"{_unpack(int(keys[i]))} in {int(counts[i]):,} px" for i in order]
    more = f" and {len(keys) - len(order)} more" if len(keys) > len(order) else ""
    return ", ".join(parts) + more


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _unpack(key: int) -> tuple[int, int, int]:
    return (key >> 16) & 255, (key >> 8) & 255, key & 255


def _table(colour_table: ColourTable | ClassMap) -> dict[int, tuple[int, int, int]]:
    table = colour_table.colour_table() if isinstance(colour_table, ClassMap) else dict(colour_table)
    out: dict[int, tuple[int, int, int]] = {}
    for cid, colour in table.items():
        c = tuple(int(v) for v in colour)
        if len(c) != 3 or not all(0 <= v <= 255 for v in c):
            raise ValueError(f"colour of class {cid} must be 3 values in 0..255, got {colour}")
        if c in out.values():
            other = next(k for k, v in out.items() if v == c)
            raise ValueError(f"classes {other} and {cid} share the colour {c}: the mapping would be ambiguous")
        out[int(cid)] = c
    if (0, 0, 0) not in out.values() and 0 not in out:
        out[0] = (0, 0, 0)  # unlisted background is black
    return out


def colour_to_ids(rgb: np.ndarray, colour_table: ColourTable | ClassMap, path: str | Path | None = None) -> np.ndarray:
    """Map an (..., 3|4) colour mask to class ids by exact colour.

    ``colour_table`` is {id: (r, g, b)} or a ClassMap; black means background
    unless the table says otherwise. With an alpha channel, fully transparent
    pixels are background. Colours not in the table raise MaskError (when
    ``path`` is given) or ValueError, listing the most frequent ones.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim < 3 or rgb.shape[-1] not in (3, 4):
        raise ValueError(f"expected a colour array (..., 3 or 4), got shape {rgb.shape}")
    if not np.issubdtype(rgb.dtype, np.integer) or rgb.min(initial=0) < 0 or rgb.max(initial=0) > 255:
        raise ValueError(f"colour values must be integers in 0..255 (dtype {rgb.dtype})")
    table = _table(colour_table)
    keys = _pack(rgb[..., :3])
    if rgb.shape[-1] == 4:
        keys = np.where(rgb[..., 3] == 0, -1, keys.astype(np.int64))
    uniq, inverse, counts = np.unique(keys.ravel(), return_inverse=True, return_counts=True)
    known = {(r << 16) | (g << 8) | b: cid for cid, (r, g, b) in table.items()}
    lut = np.zeros(len(uniq), dtype=np.int64)
    unknown = []
    for i, k in enumerate(uniq.tolist()):
        if k == -1:
            lut[i] = 0
        elif k in known:
            lut[i] = known[k]
        else:
            unknown.append(i)
    if unknown:
        idx = np.array(unknown)
        listing = _describe_colours(uniq[idx], counts[idx])
        names = ", ".join(f"{cid}={c}" for cid, c in sorted(table.items()))
        reason = f"{len(unknown)} colour(s) are not in the colour table ({names}): {listing}"
        if path is not None:
            raise MaskError(path, reason)
        raise ValueError(reason)
    return _shrink(lut[inverse].reshape(keys.shape))


def _colour_mask(arr: np.ndarray, path: Path, fmt: str, classmap: ClassMap | None) -> np.ndarray:
    if arr.dtype != np.uint8:
        raise MaskError(path, f"colour mask with {arr.dtype} channels: only 8-bit colour masks are supported")
    if classmap is not None:
        try:
            return colour_to_ids(arr, classmap, path)
        except MaskError:
            if not _is_grey(arr, 0):
                raise
    opaque = arr if arr.shape[-1] == 3 else arr[..., :3] * (arr[..., 3:4] > 0)
    if _is_grey(opaque, 0):
        return opaque[..., 0]  # a grey mask saved in colour: lossless to take one channel
    if fmt == "jpeg" and _is_grey(opaque, _JPEG_GREY_SPREAD):
        # JPEG colour noise on a grey mask: luma is what a grey decoder returns.
        with Image.open(path) as img:
            return np.array(img.convert("L"))
    keys, counts = np.unique(_pack(opaque).ravel(), return_counts=True)
    hint = (
        "; so many colours look like a photo, not a mask"
        if len(keys) > 256
        else "; pass a ClassMap whose colours say which class each colour is"
    )
    raise MaskError(path, f"colour-coded mask with {len(keys)} colours ({_describe_colours(keys, counts)}){hint}")


def _is_grey(rgb: np.ndarray, spread: int) -> bool:
    c = rgb[..., :3].astype(np.int16)
    return bool(
        np.abs(c[..., 0] - c[..., 1]).max(initial=0) <= spread
        and np.abs(c[..., 1] - c[..., 2]).max(initial=0) <= spread
    )


# ----------------------------------------------------------------- reading
def _shrink(ids: np.ndarray, path: Path | None = None) -> np.ndarray:
    """The smallest unsigned/signed integer dtype that holds the ids."""
    lo, hi = (int(ids.min()), int(ids.max())) if ids.size else (0, 0)
    for dt in (np.uint8, np.uint16, np.int32):
        if lo >= 0 and hi <= np.iinfo(dt).max:
            return ids.astype(dt, copy=False)
    reason = (
        f"holds negative values (min {lo}); class ids are >= 0" if lo < 0 else f"class id {hi} does not fit in int32"
    )
    if path is not None:
        raise MaskError(path, reason)
    raise ValueError(reason)


def read_mask_values(path: str | Path, classmap: ClassMap | None = None) -> np.ndarray:
    """The stored mask values, possibly float (for soft masks to binarise); see :func:`read_mask`."""
    path = Path(path)
    f, head = open_head(path)
    with f:
        fmt = sniff(path, head)
        if fmt not in ("nifti", "tiff"):  # Pillow reads the file sniffed (one open a mask: a create reads 100,000)
            f.seek(0)
            arr, kind = _read_pil(path, fmt, f)
    if fmt == "nifti":
        return _read_nifti(path)
    if fmt == "tiff":
        arr, kind = _read_tiff(path)
    if kind == "colour":
        return _colour_mask(arr, path, fmt, classmap)
    return arr


def fractional_values(a: np.ndarray) -> tuple[int, float] | None:
    """(how many values of the finite float array ``a`` are not whole numbers, the first of them), or None
    when all are: a float file of class ids is accepted, a soft mask is not."""
    whole = np.round(a)
    if np.array_equal(a, whole):
        return None
    frac = a[a != whole]
    return frac.size, float(frac.flat[0])


def read_mask(path: str | Path, classmap: ClassMap | None = None) -> np.ndarray:
    """Read a mask file as integer ids (uint8 when they fit, else uint16 / int32).

    * PNG/GIF/BMP/JPEG through Pillow: palette ('P') images give their palette
      indices (never colours); 'L', 'I;16', 'I', '1' give the grey values.
    * TIFF through tifffile (palette TIFFs give indices; multi-page: a stack).
    * NIfTI through :func:`medseg.io.nifti.read_nifti` (same axes as images).
    * RGB/RGBA: exact colours mapped through ``classmap``'s colours; a colour
      file whose channels are equal (or, for JPEG, equal within JPEG noise) is
      a grey mask and gives grey values; any other colours raise MaskError
      listing them.

    Grey values are kept as stored (0/255 stays 0/255): see ``binarise``.
    Float masks must hold whole numbers; soft masks raise MaskError.
    """
    path = Path(path)
    arr = read_mask_values(path, classmap)
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise MaskError(path, f"pixel type {arr.dtype} is not a mask")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise MaskError(path, "holds NaN or infinite values")
        if (frac := fractional_values(arr)) is not None:
            raise MaskError(
                path,
                (
                    f"holds {frac[0]:,} non-integer values (e.g. {frac[1]:g}): a soft mask "
                    "or probability map; binarise it explicitly with medseg.io.masks.binarise"
                ),
            )
    return _shrink(arr, path)


def check_ids(ids: np.ndarray, classmap: ClassMap, path: str | Path | None = None) -> None:
    """Raise MaskError/ValueError listing ids (with pixel counts) that ``classmap`` lacks."""
    values, counts = np.unique(np.asarray(ids), return_counts=True)
    allowed = set(classmap.ids) | {0}
    bad = [(int(v), int(c)) for v, c in zip(values, counts) if int(v) not in allowed]
    if bad:
        listing = ", ".join(f"{v} ({c:,} px)" for v, c in bad[:8])
        reason = f"ids not in the class map (ids 0, {classmap.ids}): {listing}"
        if path is not None:
            raise MaskError(path, reason)
        raise ValueError(reason)


# ----------------------------------------------------------------- palettes
def _open_palette(image: Image.Image | str | Path) -> tuple[np.ndarray, list[int], Path | None]:
    if isinstance(image, Image.Image):
        img, path = image, None
    else:
        path = Path(image)
        fp, head = open_head(path)
        with fp:
            if sniff(path, head) not in ("png", "gif", "bmp", "tiff"):
                raise MaskError(path, "is not a palette image (palettes live in PNG, GIF, BMP or TIFF files)")
            fp.seek(0)
            try:
                with open_image(path, fp) as f:
                    f.load()
                    img = f.copy()
            except ReadError:
                raise
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
                raise ReadError(path, f"cannot be decoded: {e}") from None
    if img.mode not in ("P", "PA"):
        reason = f"mode {img.mode!r} is not a palette ('P') image"
        if path is not None:
            raise MaskError(path, reason)
        raise ValueError(reason)
    ids = np.array(img if img.mode == "P" else img.getchannel(0))
    pal = img.getpalette(rawmode="RGB") or []
    return ids, pal, path


def palette_to_ids(image: Image.Image | str | Path) -> np.ndarray:
    """Palette indices of a 'P' image (a PIL image or a file) as a uint8 id array."""
    return _open_palette(image)[0]


def palette_colours(image: Image.Image | str | Path) -> dict[int, tuple[int, int, int]]:
    """{index: (r, g, b)} for the palette indices the image actually uses."""
    ids, pal, _ = _open_palette(image)
    out = {}
    for i in np.unique(ids).tolist():
        rgb = pal[3 * i : 3 * i + 3]
        out[i] = tuple(rgb) if len(rgb) == 3 else (0, 0, 0)
    return out


def classmap_from_palette(
    path: Image.Image | str | Path, names: Mapping[int, str] | list[str] | None = None, task: str | None = None
) -> ClassMap:
    """A ClassMap from the palette indices used in a 'P' mask (index 0 = background).

    ``names``: {index: name}, or a list naming the used non-zero indices in
    ascending order; default ``class_<index>``. Colours come from the palette.
    """
    colours = palette_colours(path)
    colours.pop(0, None)
    ids = sorted(colours)
    if isinstance(names, Mapping):
        missing = [i for i in ids if i not in names]
        if missing:
            raise ValueError(f"names has no entry for palette indices {missing} (used: {ids})")
        name_of = {i: names[i] for i in ids}
    elif names is not None:
        names = list(names)
        if len(names) != len(ids):
            raise ValueError(f"{len(names)} names for {len(ids)} used non-zero palette indices {ids}")
        name_of = dict(zip(ids, names))
    else:
        name_of = {i: f"class_{i}" for i in ids}
    return ClassMap.from_colour_table(colours, names=name_of, task=task)
