"""read_raster: PNG / JPEG / BMP / TIFF in every bit depth and channel layout, spacing, UW-Madison names."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from medseg.errors import ReadError, UnsupportedFormatError
from medseg.io.raster import raster_format, read_raster
from medseg.io.uwmadison import UWSliceName, parse_uw_slice_name

RNG = np.random.default_rng(0)


def _grey8(h=24, w=32):
    return RNG.integers(0, 256, (h, w), dtype=np.uint8)


def _grey16(h=24, w=32):
    return RNG.integers(0, 65536, (h, w), dtype=np.uint16)


def _rgb8(h=24, w=32, c=3):
    return RNG.integers(0, 256, (h, w, c), dtype=np.uint8)


# ---------------------------------------------------------------- PNG / BMP (lossless)


@pytest.mark.parametrize(
    "name, make, photometric, bits",
    [
        ("grey8.png", _grey8, "MONOCHROME2", 8),
        ("grey16.png", _grey16, "MONOCHROME2", 16),
        ("rgb.png", _rgb8, "RGB", 8),
        ("rgba.png", lambda: _rgb8(c=4), "RGBA", 8),
        ("grey.bmp", _grey8, "MONOCHROME2", 8),
        ("rgb.bmp", _rgb8, "RGB", 8),
    ],
)
def test_lossless_pillow_round_trip(tmp_path, name, make, photometric, bits):
    a = make()
    p = tmp_path / name
    Image.fromarray(a).save(p)
    img = read_raster(p)
    assert img.array.dtype == a.dtype
    np.testing.assert_array_equal(img.array, a)
    assert img.rgb == (a.ndim == 3)
    assert img.spacing == (1.0, 1.0)
    md = img.metadata
    assert md["format"] == p.suffix[1:]
    assert md["photometric"] == photometric
    assert md["dtype"] == str(a.dtype)
    assert md["bit_depth"] == bits
    assert md["spacing_known"] is False
    assert md["source"] == str(p)
    assert md["modality"] is None


def test_16bit_grey_png_keeps_exact_values_above_255(tmp_path):
    a = np.array([[0, 1, 255, 256], [4095, 30000, 65534, 65535]], dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "x.png")
    img = read_raster(tmp_path / "x.png")
    assert img.array.dtype == np.uint16
    assert img.array.tolist() == a.tolist()


def test_16bit_colour_png_keeps_16_bits(tmp_path):
    cv2 = pytest.importorskip("cv2")
    a = RNG.integers(0, 65536, (10, 12, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "rgb16.png"), a[..., ::-1])  # OpenCV writes BGR
    img = read_raster(tmp_path / "rgb16.png")
    assert img.array.dtype == np.uint16 and img.rgb
    np.testing.assert_array_equal(img.array, a)
    assert img.metadata["bit_depth"] == 16


def test_palette_png_becomes_rgb_with_palette_colours(tmp_path):
    idx = RNG.integers(0, 3, (8, 9), dtype=np.uint8)
    palette = [[0, 0, 0], [255, 0, 0], [0, 128, 255]]
    im = Image.fromarray(idx, mode="P")
    im.putpalette(sum(palette, []) + [0] * (768 - 9))
    im.save(tmp_path / "pal.png")
    img = read_raster(tmp_path / "pal.png")
    assert img.rgb and img.array.shape == (8, 9, 3)
    np.testing.assert_array_equal(img.array, np.array(palette, np.uint8)[idx])
    assert img.metadata["photometric"] == "RGB"
    assert img.metadata["original_photometric"] == "PALETTE"


def test_palette_png_with_transparency_becomes_rgba(tmp_path):
    idx = np.array([[0, 1], [1, 0]], np.uint8)
    im = Image.fromarray(idx, mode="P")
    im.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    im.info["transparency"] = 0
    im.save(tmp_path / "t.png", transparency=0)
    img = read_raster(tmp_path / "t.png")
    assert img.array.shape == (2, 2, 4)
    assert img.array[0, 0].tolist() == [10, 20, 30, 0]
    assert img.array[0, 1].tolist() == [200, 100, 50, 255]


def test_grey_alpha_png_becomes_rgba(tmp_path):
    la = np.stack([_grey8(5, 6), _grey8(5, 6)], axis=-1)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    img = read_raster(tmp_path / "la.png")
    assert img.array.shape == (5, 6, 4)
    for c in range(3):
        np.testing.assert_array_equal(img.array[..., c], la[..., 0])
    np.testing.assert_array_equal(img.array[..., 3], la[..., 1])


def test_bilevel_png_reads_as_0_255(tmp_path):
    b = RNG.random((7, 8)) > 0.5
    Image.fromarray(b).save(tmp_path / "b.png")
    img = read_raster(tmp_path / "b.png")
    assert img.array.dtype == np.uint8
    np.testing.assert_array_equal(img.array, b.astype(np.uint8) * 255)


@pytest.mark.parametrize("make", [_grey8, _rgb8])
def test_jpeg_lossy_but_faithful(tmp_path, make):
    yy, xx = np.mgrid[0:48, 0:64]
    smooth = ((yy * 3 + xx * 2) % 256).astype(np.uint8)
    a = smooth if make is _grey8 else np.stack([smooth, 255 - smooth, smooth // 2], -1)
    Image.fromarray(a).save(tmp_path / "x.jpg", quality=95)
    img = read_raster(tmp_path / "x.jpg")
    assert img.array.shape == a.shape and img.array.dtype == np.uint8
    assert np.abs(img.array.astype(int) - a).mean() < 3
    assert img.metadata["format"] == "jpeg"
    assert img.metadata["photometric"] == ("RGB" if a.ndim == 3 else "MONOCHROME2")


def test_exif_orientation_is_recorded_not_applied(tmp_path):
    a = _rgb8(10, 20)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(a).save(tmp_path / "o.jpg", exif=exif, quality=95)
    img = read_raster(tmp_path / "o.jpg")
    assert img.array.shape == (10, 20, 3)
    assert img.metadata["exif_orientation"] == 6


def test_raster_format_sniff():
    assert raster_format(b"\x89PNG\r\n\x1a\n" + b"\0" * 30) == "png"
    assert raster_format(b"\xff\xd8\xff\xe0" + b"\0" * 30) == "jpeg"
    assert raster_format(b"II*\x00" + b"\0" * 30) == "tiff"
    assert raster_format(b"MM\x00+" + b"\0" * 30) == "tiff"  # BigTIFF
    assert raster_format(b"BM" + b"\0" * 12 + (40).to_bytes(4, "little") + b"\0" * 14) == "bmp"
    assert raster_format(b"BMW is a car brand, not an image at all") is None
    assert raster_format(b"hello") is None


# ---------------------------------------------------------------- TIFF


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.uint32, np.float32, np.float64])
def test_tiff_grey_dtypes_round_trip(tmp_path, dtype):
    a = (RNG.random((20, 30)) * 1000 - (500 if np.dtype(dtype).kind in "if" else 0)).astype(dtype)
    tifffile.imwrite(tmp_path / "g.tif", a)
    img = read_raster(tmp_path / "g.tif")
    assert img.array.dtype == a.dtype and not img.rgb
    np.testing.assert_array_equal(img.array, a)
    assert img.metadata["photometric"] == "MONOCHROME2"
    assert img.metadata["bit_depth"] == np.dtype(dtype).itemsize * 8


@pytest.mark.parametrize("dtype, channels", [(np.uint8, 3), (np.uint16, 3), (np.uint8, 4), (np.uint16, 4)])
def test_tiff_colour_round_trip(tmp_path, dtype, channels):
    a = RNG.integers(0, np.iinfo(dtype).max, (16, 18, channels), dtype=dtype)
    tifffile.imwrite(tmp_path / "c.tif", a, photometric="rgb")
    img = read_raster(tmp_path / "c.tif")
    assert img.rgb and img.array.dtype == a.dtype
    np.testing.assert_array_equal(img.array, a)
    assert img.metadata["photometric"] == ("RGB" if channels == 3 else "RGBA")


def test_tiff_planar_rgb_comes_back_channel_last(tmp_path):
    a = _rgb8(12, 14)
    tifffile.imwrite(tmp_path / "p.tif", np.moveaxis(a, -1, 0), photometric="rgb", planarconfig="separate")
    img = read_raster(tmp_path / "p.tif")
    np.testing.assert_array_equal(img.array, a)


def test_multipage_tiff_is_a_stack_with_unit_spacing(tmp_path):
    a = RNG.integers(0, 4096, (5, 20, 22), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "s.tif", a, photometric="minisblack")
    img = read_raster(tmp_path / "s.tif")
    np.testing.assert_array_equal(img.array, a)
    assert img.spacing == (1.0, 1.0, 1.0) and img.spatial_ndim == 3
    assert img.metadata["spacing_known"] is False


def test_pages_written_one_by_one_are_stacked(tmp_path):
    a = _rgb8(10, 11)
    pages = [a, a[::-1], a[:, ::-1]]
    for page in pages:
        tifffile.imwrite(tmp_path / "pages.tif", page, photometric="rgb", append=True)
    img = read_raster(tmp_path / "pages.tif")
    assert img.rgb and img.array.shape == (3, 10, 11, 3)
    np.testing.assert_array_equal(img.array, np.stack(pages))
    assert len(img.spacing) == 3


def test_imagej_stack_spacing_in_mm(tmp_path):
    a = RNG.integers(0, 255, (4, 10, 12), dtype=np.uint8)
    tifffile.imwrite(
        tmp_path / "ij.tif",
        a,
        imagej=True,
        resolution=(1 / 0.25, 1 / 0.5),
        metadata={"spacing": 3.0, "unit": "um", "axes": "ZYX"},
    )
    img = read_raster(tmp_path / "ij.tif")
    np.testing.assert_array_equal(img.array, a)
    assert img.spacing == pytest.approx((0.003, 0.0005, 0.00025))
    assert img.metadata["spacing_known"] is True


@pytest.mark.parametrize("res, unit, expected", [(300, "INCH", 25.4 / 300), (50, "CENTIMETER", 0.2)])
def test_tiff_resolution_gives_mm_spacing(tmp_path, res, unit, expected):
    tifffile.imwrite(tmp_path / "r.tif", _grey8(), resolution=(res, res), resolutionunit=unit)
    img = read_raster(tmp_path / "r.tif")
    assert img.spacing == pytest.approx((expected, expected))
    assert img.metadata["spacing_known"] is True


@pytest.mark.parametrize("res, unit", [(72, "INCH"), (96, "INCH"), (1, "NONE"), (1e-9, "CENTIMETER")])
def test_meaningless_tiff_resolution_is_not_spacing(tmp_path, res, unit):
    tifffile.imwrite(tmp_path / "r.tif", _grey8(), resolution=(res, res), resolutionunit=unit)
    img = read_raster(tmp_path / "r.tif")
    assert img.spacing == (1.0, 1.0)
    assert img.metadata["spacing_known"] is False
    assert "tiff_resolution" in img.metadata


def test_palette_tiff_becomes_rgb(tmp_path):
    idx = RNG.integers(0, 4, (6, 7), dtype=np.uint8)
    cmap = np.zeros((3, 256), np.uint16)
    colours = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [10, 20, 30]], np.uint16)
    cmap[:, :4] = colours.T * 257
    tifffile.imwrite(tmp_path / "pal.tif", idx, photometric="palette", colormap=cmap)
    img = read_raster(tmp_path / "pal.tif")
    assert img.rgb and img.array.dtype == np.uint8
    np.testing.assert_array_equal(img.array, colours.astype(np.uint8)[idx])
    assert img.metadata["original_photometric"] == "PALETTE"


def test_miniswhite_tiff_is_inverted_like_monochrome1(tmp_path):
    a = RNG.integers(0, 256, (6, 7), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "w.tif", a, photometric="miniswhite")
    img = read_raster(tmp_path / "w.tif")
    np.testing.assert_array_equal(img.array, 255 - a)
    assert img.metadata["inverted"] is True
    assert img.metadata["photometric"] == "MONOCHROME2"
    assert img.metadata["original_photometric"] == "MINISWHITE"


@pytest.mark.parametrize("make", [_grey8, _grey16, _rgb8])
def test_lzw_tiff_decodes_exactly(tmp_path, make):
    """LZW needs imagecodecs in tifffile; Pillow decodes it instead."""
    a = make()
    Image.fromarray(a).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    img = read_raster(tmp_path / "lzw.tif")
    assert img.array.dtype == a.dtype
    np.testing.assert_array_equal(img.array, a)


def test_multipage_lzw_tiff_is_a_stack(tmp_path):
    frames = [Image.fromarray(_grey8(9, 10)) for _ in range(3)]
    frames[0].save(tmp_path / "lzw3.tif", compression="tiff_lzw", save_all=True, append_images=frames[1:])
    img = read_raster(tmp_path / "lzw3.tif")
    np.testing.assert_array_equal(img.array, np.stack([np.asarray(f) for f in frames]))


def test_jpeg_compressed_tiff(tmp_path):
    yy, xx = np.mgrid[0:32, 0:40]
    a = np.stack([(yy * 6) % 256, (xx * 5) % 256, np.full_like(yy, 128)], -1).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "j.tif", compression="jpeg", quality=95)
    img = read_raster(tmp_path / "j.tif")
    assert img.rgb and img.array.shape == a.shape
    assert np.abs(img.array.astype(int) - a).mean() < 4


def test_multichannel_tiff_is_refused_clearly(tmp_path):
    a = RNG.integers(0, 255, (3, 2, 8, 9), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "zc.tif", a, imagej=True, metadata={"axes": "ZCYX"})
    with pytest.raises(UnsupportedFormatError, match=r"zc\.tif.*axes"):
        read_raster(tmp_path / "zc.tif")


# ---------------------------------------------------------------- UW-Madison slice names


def test_parse_uw_slice_name():
    assert parse_uw_slice_name("slice_0001_266_266_1.50_1.50.png") == UWSliceName(1, 266, 266, 1.5, 1.5)
    # width comes before height in these names
    uw = parse_uw_slice_name("/data/case123/case123_day20/scans/slice_0144_360_310_1.50_1.63.png")
    assert (uw.slice, uw.width, uw.height, uw.spacing_col, uw.spacing_row) == (144, 360, 310, 1.5, 1.63)
    for not_uw in (
        "slice_0001_266_266_1.50.png",
        "1.png",
        "slice_0001_266_266_1.50_1.50.jpg",
        "slice_0001_0_266_1.50_1.50.png",
        "xslice_0001_266_266_1.50_1.50.png",
    ):
        assert parse_uw_slice_name(not_uw) is None


def test_uw_name_sets_spacing_of_16bit_slice(tmp_path):
    a = RNG.integers(0, 3000, (31, 36), dtype=np.uint16)  # 36 wide, 31 high
    p = tmp_path / "slice_0067_36_31_1.50_1.63.png"
    Image.fromarray(a).save(p)
    img = read_raster(p)
    np.testing.assert_array_equal(img.array, a)
    assert img.spacing == (1.63, 1.5)
    assert img.metadata["spacing_known"] is True
    assert img.metadata["uw_slice"]["slice"] == 67


def test_uw_name_size_mismatch_names_the_file(tmp_path):
    p = tmp_path / "slice_0001_266_266_1.50_1.50.png"
    Image.fromarray(_grey16(30, 40)).save(p)
    with pytest.raises(ReadError, match=r"slice_0001_266_266_1\.50_1\.50\.png.*266x266.*40x30"):
        read_raster(p)


# ---------------------------------------------------------------- real data


@pytest.mark.realdata
def test_cvc_clinicdb_frames(cvc_dir):
    for name in ("1.png", "300.png", "612.png"):
        img = read_raster(cvc_dir / "images" / name)
        assert img.array.shape == (288, 384, 3) and img.array.dtype == np.uint8
        assert img.rgb and img.metadata["photometric"] == "RGB"
        assert img.array.std() > 10  # a real frame, not a blank


@pytest.mark.realdata
def test_noisy_mask_example_tiff_is_rgb_and_matches_png(noisy_mask_dir):
    tif = read_raster(noisy_mask_dir / "1.tif")
    assert tif.rgb and tif.array.shape == (288, 384, 3) and tif.array.dtype == np.uint8
    assert tif.metadata["format"] == "tiff" and tif.metadata["photometric"] == "RGB"
    # the cleaned release re-saved the same frame as PNG: the pixels agree exactly
    np.testing.assert_array_equal(tif.array, read_raster(noisy_mask_dir / "1.png").array)
    mask = read_raster(noisy_mask_dir / "1_mask.tif")
    assert mask.array.shape == (288, 384) and not mask.rgb


# ---------------------------------------------------------------- sizes over the limits


def test_claimed_and_real_huge_sizes_are_refused_before_decoding(tmp_path, monkeypatch):
    from _fuzz_bytes import jpeg_claiming, png_bomb, png_bytes, tiff_claiming

    from medseg.io.masks import read_mask

    files = {
        "claims.png": (png_bytes(None, size=(20000, 20000)), "20000 x 20000 pixels"),
        "claims.jpg": (jpeg_claiming(_jpeg_bytes(), 65500, 65500), "65500 x 65500 pixels"),
        "claims.tif": (tiff_claiming(60000, 60000), "60000 x 60000 pixels"),
        "claims16.png": (
            png_bytes(np.zeros((2, 2, 4), np.uint16), bit_depth=16, size=(30000, 30000)),
            "30000 x 30000 pixels",
        ),
    }
    for name, (data, words) in files.items():
        (tmp_path / name).write_bytes(data)
        for read in (read_raster, read_mask):
            with pytest.raises(ReadError, match=name.replace(".", r"\.")) as err:
                read(tmp_path / name)
            assert words in str(err.value), str(err.value)
    # a real bomb: 1.6 MB of compressed zeros that would decode to 144 MB; refused from the header
    monkeypatch.setenv("MEDSEG_MAX_PIXELS", str(4000 * 4000))
    (tmp_path / "bomb.png").write_bytes(png_bomb(5000))
    with pytest.raises(ReadError, match=r"bomb\.png: header claims 5000 x 5000 pixels .* more than the 16,000,000"):
        read_raster(tmp_path / "bomb.png")
    monkeypatch.setenv("MEDSEG_MAX_PIXELS", str(5000 * 5000))
    assert read_raster(tmp_path / "bomb.png").array.shape == (5000, 5000)


def _jpeg_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(_rgb8()).save(buf, format="JPEG")
    return buf.getvalue()


def test_tiff_whose_strips_do_not_fill_the_declared_shape(tmp_path):
    # a flipped bit in BitsPerSample's type: tifffile logs a failed reshape and returns an empty array
    import struct

    from medseg.io import load
    from medseg.io.masks import read_mask

    p = tmp_path / "bits.tif"
    tifffile.imwrite(p, np.ones((12, 16), np.float32))
    data = bytearray(p.read_bytes())
    with tifffile.TiffFile(p) as tif:
        struct.pack_into("<H", data, tif.pages.first.tags["BitsPerSample"].offset + 2, 515)
    p.write_bytes(bytes(data))
    for read in (read_raster, read_mask, load):
        with pytest.raises(
            ReadError,
            match=r"bits\.tif: pixel data decodes to shape \(0, 12, 16\), not the "
            r"\(12, 16\) the tags declare",
        ):
            read(p)


def test_pillow_failing_with_other_errors_on_a_damaged_header(tmp_path, monkeypatch):
    # Pillow's TIFF plugin raises TypeError('Missing dimensions') when counting frames of a damaged file
    from PIL import Image

    from medseg.datasets.files import header_size
    from medseg.io.limits import open_image
    from medseg.io.masks import read_mask

    p = tmp_path / "odd.png"
    Image.fromarray(_grey8()).save(p)

    def damaged(*args, **kwargs):
        raise TypeError("Missing dimensions")

    monkeypatch.setattr(Image, "open", damaged)
    with pytest.raises(OSError, match=r"Pillow cannot parse the header \(TypeError: Missing dimensions\)"):
        open_image(p)
    for read in (header_size, read_raster, read_mask):
        with pytest.raises(ReadError, match=r"odd\.png: .*Missing dimensions"):
            read(p)
