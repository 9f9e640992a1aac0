"""One atomic write for the engine's small files (reports, fold files, stored predictions, evaluations):
the new content whole, or the old file untouched and no temporary file left."""

from __future__ import annotations

import os

import pytest

from medseg.folder_swap import write_atomic, write_text_atomic


def test_a_write_replaces_the_file_whole_and_leaves_nothing_beside_it(tmp_path):
    path = tmp_path / "sub" / "report.csv"
    write_text_atomic(path, "a,b\r\n1,ü\n")
    assert path.read_bytes() == "a,b\r\n1,ü\n".encode()  # UTF-8, newlines as given
    write_atomic(path, lambda f: f.write(b"new"))
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.csv"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    path = tmp_path / "fold-1-of-5.json"
    path.write_text("old")

    def fails(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, fails)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["fold-1-of-5.json"]


def test_durable_writes_fsync_the_file_and_its_folder_and_others_do_not(tmp_path, monkeypatch):
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    write_atomic(tmp_path / "a.npz", lambda f: f.write(b"x"), durable=False)
    assert synced == []
    write_atomic(tmp_path / "b.npz", lambda f: f.write(b"x"))
    assert len(synced) == 2  # the file, then the folder holding the rename


def _calibration_state(folder):
    from medseg.qc import reliability

    return reliability.save(folder, {"pairs": [], "signals": ["outline-fit"], "calibrations": {}})


def _metrics(folder):
    from medseg.runs.files import write_metrics

    return write_metrics(folder, [{"epoch": 1, "loss": 0.5}])


def _rle_csv(folder):
    from medseg.inference.rle_csv import write_rle_csv

    return write_rle_csv(folder / "out" / "submission.csv", [("case1", "liver", "1 2")])


@pytest.mark.parametrize("write", [_calibration_state, _metrics, _rle_csv])
def test_the_engines_other_small_files_go_through_the_one_atomic_write(tmp_path, monkeypatch, write):
    """The calibration state, a run's metrics.csv and an RLE CSV: a write that fails before its rename
    leaves no file and no temporary beside it; one that succeeds is fsynced."""
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        write(tmp_path)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    path = write(tmp_path)
    assert path.is_file() and path.stat().st_size > 0 and len(synced) >= 1
