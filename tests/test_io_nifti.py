"""read_nifti: orientation (axial, radiological), spacing, scaling, dtype, 4-D, real nibabel file."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from medseg.errors import ReadError
from medseg.io.nifti import read_nifti, sniff_nifti

_DIRECTION = {"R": (1, 0, 0), "L": (-1, 0, 0), "A": (0, 1, 0), "P": (0, -1, 0), "S": (0, 0, 1), "I": (0, 0, -1)}


def _affine(codes: str, zooms, origin=(10.0, -20.0, 30.0)) -> np.ndarray:
    """Voxel axis k points to anatomical direction codes[k] (RAS+ world) with step zooms[k]."""
    aff = np.eye(4)
    for k, (code, z) in enumerate(zip(codes, zooms, strict=True)):
        aff[:3, k] = np.array(_DIRECTION[code]) * z
    aff[:3, 3] = origin
    return aff


def _index_volume(shape) -> np.ndarray:
    """Each voxel holds its own (i, j, k) as i*10000 + j*100 + k."""
    i, j, k = np.indices(shape)
    return (i * 10000 + j * 100 + k).astype(np.int32)


def _save(tmp_path, data, affine, name="v.nii", zooms=None):
    img = nib.Nifti1Image(data, affine)
    if zooms is not None:
        img.header.set_zooms(zooms)
    img.header.set_xyzt_units("mm")
    p = tmp_path / name
    nib.save(img, p)
    return p


def _world_of_output(data_shape, affine, out):
    """RAS world coordinates of every output voxel, through the ORIGINAL affine and the stored index."""
    v = out.astype(np.int64)
    ijk = np.stack([v // 10000, (v // 100) % 100, v % 100, np.ones_like(v)], axis=-1)
    return ijk @ affine.T


@pytest.mark.parametrize(
    "codes, zooms",
    [
        ("RAS", (0.8, 1.2, 3.0)),
        ("LPS", (0.8, 1.2, 3.0)),  # DICOM-like storage
        ("LAS", (2.0, 2.0, 2.0)),  # as anatomical.nii
        ("PSR", (0.7, 2.5, 1.1)),  # sagittal acquisition: voxel axes A->P, I->S, L->R
        ("RPI", (1.0, 1.5, 4.0)),  # flipped superior-inferior
    ],
)
def test_every_orientation_lands_in_radiological_axial_display(tmp_path, codes, zooms):
    shape = (5, 6, 7)
    aff = _affine(codes, zooms)
    p = _save(tmp_path, _index_volume(shape), aff)
    img = read_nifti(p)
    out = img.array
    assert out.ndim == 3 and sorted(out.shape) == sorted(shape)
    world = _world_of_output(shape, aff, out)
    x, y, z = world[..., 0], world[..., 1], world[..., 2]
    # slices go inferior -> superior, rows anterior -> posterior, cols patient right -> left
    assert np.all(np.diff(z, axis=0) > 0) and np.all(np.diff(z, axis=1) == 0) and np.all(np.diff(z, axis=2) == 0)
    assert np.all(np.diff(y, axis=1) < 0) and np.all(np.diff(y, axis=0) == 0) and np.all(np.diff(y, axis=2) == 0)
    assert np.all(np.diff(x, axis=2) < 0) and np.all(np.diff(x, axis=0) == 0) and np.all(np.diff(x, axis=1) == 0)
    # spacing is the step between neighbours along each output axis
    assert img.spacing == pytest.approx(
        (np.diff(z, axis=0)[0, 0, 0], -np.diff(y, axis=1)[0, 0, 0], -np.diff(x, axis=2)[0, 0, 0])
    )
    # the stored affine maps an output index to the same world point
    out_aff = np.array(img.metadata["affine"])
    s, r, c = np.indices(out.shape)
    idx = np.stack([s, r, c, np.ones_like(s)], -1)
    np.testing.assert_allclose(idx @ out_aff.T, world)
    assert img.metadata["orientation"] == "SPL"
    assert img.metadata["original_orientation"] == codes


def test_lps_corner_voxels_by_hand(tmp_path):
    """LPS storage: voxel (0,0,0) is the most right, anterior, inferior one -> output (0,0,0)."""
    data = np.zeros((4, 5, 6), np.uint8)
    data[0, 0, 0] = 1  # right, anterior, inferior
    data[3, 0, 5] = 2  # left, anterior, superior
    data[0, 4, 0] = 3  # right, posterior, inferior
    img = read_nifti(_save(tmp_path, data, _affine("LPS", (1, 1, 1))))
    assert img.array.shape == (6, 5, 4)
    assert img.array[0, 0, 0] == 1
    assert img.array[5, 0, 3] == 2
    assert img.array[0, 4, 0] == 3


def test_gzipped_equals_plain(tmp_path):
    data = _index_volume((4, 5, 6))
    aff = _affine("LPS", (0.5, 0.6, 2.0))
    a = read_nifti(_save(tmp_path, data, aff, "v.nii"))
    b = read_nifti(_save(tmp_path, data, aff, "v.nii.gz"))
    np.testing.assert_array_equal(a.array, b.array)
    assert a.spacing == b.spacing == pytest.approx((2.0, 0.6, 0.5))


def test_integer_type_kept_when_scaling_is_identity(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.uint16).reshape(4, 5, 6)
    img = read_nifti(_save(tmp_path, data, np.eye(4)))
    assert img.array.dtype == np.uint16
    assert "rescale" not in img.metadata
    assert img.array.dtype.byteorder in ("=", "|") or img.array.dtype.isnative


def test_slope_and_intercept_are_applied(tmp_path):
    raw = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    # written by hand: nib.save would recompute slope/intercept from the data
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(raw.shape)
    hdr.set_data_dtype(np.int16)
    hdr.set_sform(np.eye(4), code=1)
    hdr["scl_slope"], hdr["scl_inter"] = 2.0, -1024.0
    hdr.set_data_offset(352)
    with open(tmp_path / "ct.nii", "wb") as f:
        hdr.write_to(f)  # 348 bytes + the 4-byte extension flag
        f.seek(352)
        f.write(raw.astype(hdr.get_data_dtype()).tobytes(order="F"))
    assert np.asarray(nib.load(tmp_path / "ct.nii").dataobj.get_unscaled()).tolist() == raw.tolist()
    img = read_nifti(tmp_path / "ct.nii")
    assert img.array.dtype == np.float32
    assert img.metadata["rescale"] == {"slope": 2.0, "intercept": -1024.0}
    assert img.metadata["dtype"] == "int16"
    # RAS storage: output[s, r, c] = stored[ni-1-c, nj-1-r, s]
    assert img.array[0, 0, 0] == raw[3, 4, 0] * 2 - 1024
    assert sorted(img.array.ravel().tolist()) == sorted((raw.ravel() * 2.0 - 1024).tolist())


def test_single_volume_4d_is_3d_and_multi_volume_is_refused(tmp_path):
    one = _save(tmp_path, _index_volume((3, 4, 5))[..., None], np.eye(4), "one.nii")
    assert read_nifti(one).array.shape == (5, 4, 3)
    many = _save(tmp_path, np.zeros((3, 4, 5, 7), np.int16), np.eye(4), "fmri.nii")
    with pytest.raises(ReadError, match=r"fmri\.nii: 4-D NIfTI with 7 volumes is not supported yet"):
        read_nifti(many)


def test_micron_units_become_mm(tmp_path):
    nimg = nib.Nifti1Image(np.zeros((3, 4, 5), np.uint8), np.diag([500.0, 500.0, 2000.0, 1]))
    nimg.header.set_xyzt_units("micron")
    nib.save(nimg, tmp_path / "um.nii")
    assert read_nifti(tmp_path / "um.nii").spacing == pytest.approx((2.0, 0.5, 0.5))


def test_nifti2_reads(tmp_path):
    data = _index_volume((3, 4, 5))
    nib.save(nib.Nifti2Image(data, _affine("LPS", (1, 1, 1))), tmp_path / "v2.nii")
    img = read_nifti(tmp_path / "v2.nii")
    assert img.array.shape == (5, 4, 3)
    assert sniff_nifti(tmp_path / "v2.nii", (tmp_path / "v2.nii").read_bytes()[:512])


def test_anatomical_nii_matches_its_header(anatomical_nii):
    nimg = nib.load(anatomical_nii)
    img = read_nifti(anatomical_nii)
    assert nimg.shape == (33, 41, 25)
    assert "".join(nib.aff2axcodes(nimg.affine)) == "LAS"
    # L->R, A->P, S->I axes of the file become (slice S, row P, col L)
    assert img.array.shape == (25, 41, 33)
    assert img.spacing == tuple(float(z) for z in np.array(nimg.header.get_zooms())[[2, 1, 0]])
    assert img.array.dtype == np.int16 and img.metadata["dtype"] == "int16"
    assert img.metadata["spacing_known"] is True
    stored = np.asarray(nimg.dataobj)
    assert img.array.sum() == stored.sum() and img.array.max() == stored.max()
    # every output voxel sits where the file's affine puts the stored voxel it came from
    out_aff = np.array(img.metadata["affine"])
    inv = np.linalg.inv(nimg.affine)
    for s, r, c in [(0, 0, 0), (24, 40, 32), (12, 20, 16), (3, 30, 7)]:
        i, j, k, _ = np.rint(inv @ out_aff @ [s, r, c, 1]).astype(int)
        assert img.array[s, r, c] == stored[i, j, k]


def test_degenerate_affine_keeps_voxel_order(tmp_path):
    """An all-zero sform says nothing about orientation: voxel axes are taken as RAS, nothing is invented."""
    raw = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(raw.shape)
    hdr.set_data_dtype(np.uint8)
    hdr["sform_code"], hdr["qform_code"] = 1, 0
    hdr["srow_x"] = hdr["srow_y"] = hdr["srow_z"] = 0
    hdr.set_data_offset(352)
    with open(tmp_path / "deg.nii", "wb") as f:
        hdr.write_to(f)
        f.seek(352)
        f.write(raw.tobytes(order="F"))
    img = read_nifti(tmp_path / "deg.nii")
    assert img.metadata["original_orientation"] is None
    np.testing.assert_array_equal(img.array, raw.transpose(2, 1, 0)[:, ::-1, ::-1])


def test_2d_nifti_is_a_one_slice_volume(tmp_path):
    nib.save(nib.Nifti1Image(np.arange(6, dtype=np.uint8).reshape(2, 3), np.eye(4)), tmp_path / "two.nii")
    img = read_nifti(tmp_path / "two.nii")
    assert img.array.shape == (1, 3, 2) and len(img.spacing) == 3


def _patched(path, offset: int, fmt: str, *values):
    """Overwrite little-endian header fields of an uncompressed .nii written by nibabel."""
    import struct

    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, offset, *values)
    path.write_bytes(bytes(data))
    return path


def test_nan_voxel_sizes_and_nan_affine_are_unknown_spacing(tmp_path):
    vol = _index_volume((4, 5, 6))
    nan = float("nan")
    p = _patched(
        _save(tmp_path, vol, _affine("RAS", (1, 1, 1)), "nanzoom.nii", zooms=(1, 1, 1)),
        76,
        "<8f",
        1.0,
        nan,
        nan,
        nan,
        1,
        1,
        1,
        1,
    )  # pixdim
    img = read_nifti(p)
    assert img.spacing == (1.0, 1.0, 1.0) and img.metadata["spacing_known"] is False
    assert "voxel sizes [nan, nan, nan]" in img.metadata["spacing_notes"][0]
    # sform rows of NaN: nibabel's orientation would fail with "SVD did not converge"
    p = _save(tmp_path, vol, _affine("RAS", (2, 2, 2)), "nanaff.nii", zooms=(2, 2, 2))
    _patched(p, 280, "<12f", *([nan] * 12))
    img = read_nifti(_patched(p, 252, "<hh", 0, 1))
    assert img.spacing == (2.0, 2.0, 2.0) and img.metadata["spacing_known"] is False
    assert "affine holds NaN" in img.metadata["spacing_notes"][0]
    assert img.array.shape == (6, 5, 4)


def test_gzip_stream_with_flipped_bits_is_a_read_error(tmp_path):
    import gzip

    p = _save(tmp_path, _index_volume((8, 8, 8)), np.eye(4), "v.nii")
    data = bytearray(gzip.compress(p.read_bytes(), mtime=0))
    data[12] ^= 0xFF  # inside the deflate stream, before the NIfTI header is complete
    bad = tmp_path / "flipped.nii.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ReadError, match=r"flipped\.nii\.gz: gzip stream is truncated or corrupt"):
        read_nifti(bad)
    from medseg.io.masks import read_mask

    with pytest.raises(ReadError, match=r"flipped\.nii\.gz: named \.nii\.gz but its content is not NIfTI"):
        read_mask(bad)


def test_gzip_nifti_claiming_a_huge_volume_is_refused_before_decoding(tmp_path):
    import gzip
    import struct

    p = _save(tmp_path, np.zeros((4, 4, 4), np.uint8), np.eye(4), "v.nii")
    data = bytearray(p.read_bytes())
    struct.pack_into("<8h", data, 40, 3, 30000, 4000, 30000, 1, 1, 1, 1)
    bomb = tmp_path / "bomb.nii.gz"
    bomb.write_bytes(gzip.compress(bytes(data), mtime=0))
    with pytest.raises(
        ReadError,
        match=r"bomb\.nii\.gz: header claims 30000 x 4000 x 30000 = 3,600,000,000,000 "
        r"voxels, more than the 1,073,741,824",
    ):
        read_nifti(bomb)


def _scaled_gz(tmp_path, name="ct.nii.gz"):
    import gzip

    raw = np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4) - 60
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(raw.shape)
    hdr.set_data_dtype(np.int16)
    hdr.set_sform(_affine("LPS", (0.7, 0.8, 2.5)), code=1)
    hdr["scl_slope"], hdr["scl_inter"] = 2.0, -1024.0
    hdr.set_data_offset(352)
    body = bytearray(352)
    hdr_bytes = hdr.binaryblock
    body[: len(hdr_bytes)] = hdr_bytes
    p = tmp_path / name
    p.write_bytes(gzip.compress(bytes(body) + raw.tobytes(order="F"), mtime=0))
    return p, raw


def test_isal_gzip_decodes_what_zlib_decodes(tmp_path, monkeypatch):
    """A .nii.gz read through ISA-L (when installed) equals nibabel's own zlib read: voxels, scaling, grid."""
    pytest.importorskip("isal")
    import medseg.io.nifti as nifti

    p, raw = _scaled_gz(tmp_path)
    opened = []
    real = nifti._isal_gzip()
    assert real is not None

    def spy(raw, size):
        opened.append(raw.name)
        return real(raw, size)

    monkeypatch.setattr(nifti, "_isal_gzip", lambda: spy)
    fast = read_nifti(p)
    assert opened == [str(p)]
    monkeypatch.setattr(nifti, "_isal_gzip", lambda: None)
    slow = read_nifti(p)
    np.testing.assert_array_equal(fast.array, slow.array)
    assert fast.array.dtype == slow.array.dtype == np.float32
    assert fast.metadata == slow.metadata
    assert fast.spacing == slow.spacing
    assert sorted(fast.array.ravel().tolist()) == sorted((raw.ravel() * 2.0 - 1024).tolist())


@pytest.mark.parametrize("isal", [True, False])
def test_gzip_stream_cut_inside_the_voxels_is_a_read_error(tmp_path, monkeypatch, isal):
    import medseg.io.nifti as nifti

    if isal:
        pytest.importorskip("isal")
    else:
        monkeypatch.setattr(nifti, "_isal_gzip", lambda: None)
    p = _save(tmp_path, np.random.default_rng(0).integers(0, 30000, (40, 40, 40), dtype=np.int16), np.eye(4), "v.nii")
    import gzip

    data = gzip.compress(p.read_bytes(), mtime=0)
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ReadError, match=r"cut\.nii\.gz: voxel data is truncated or corrupt"):
        read_nifti(cut)


@pytest.mark.parametrize("isal", [True, False])
def test_gzip_voxels_read_in_chunks_equal_the_plain_file(tmp_path, monkeypatch, isal):
    """nibabel's one readinto of the voxels is fed a chunk at a time (here 64 bytes: many chunks)."""
    import medseg.io.nifti as nifti

    if isal:
        pytest.importorskip("isal")
    else:
        monkeypatch.setattr(nifti, "_isal_gzip", lambda: None)
    monkeypatch.setattr(nifti._ChunkedReads, "CHUNK", 64)
    data = _index_volume((7, 6, 5))
    aff = _affine("RAS", (0.9, 0.8, 3.0))
    plain = read_nifti(_save(tmp_path, data, aff, "v.nii"))
    gz = read_nifti(_save(tmp_path, data, aff, "v.nii.gz"))
    np.testing.assert_array_equal(gz.array, plain.array)
    assert gz.array.dtype == plain.array.dtype == np.int32
