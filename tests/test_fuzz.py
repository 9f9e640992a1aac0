"""The fuzz campaign: about 430 damaged and odd files (390 without ../shared) through the napari reader, load,
index, qc, workspace create, predict and training; no crash, no hang, every problem naming its file."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from _fuzz_campaign import Worker, problems, run_campaign, table
from _fuzz_corpus import build_corpus
from _fuzz_stages import CLEAN, CRASH, DATASET_STAGES, FILE_STAGES, HANG, OK, _classify

from medseg.errors import ReadError


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    corpus = build_corpus(base / "corpus", seed=0)
    return corpus, run_campaign(corpus, base / "work", timeout=60.0, mem_mb=3072)


def test_no_crash_and_no_hang_at_any_stage(campaign):
    corpus, outcomes = campaign
    bad = problems(outcomes)
    listing = "\n".join(f"{o.result} {o.stage} {Path(o.file).name} [{o.case}]: {o.message[:400]}" for o in bad[:20])
    assert not bad, f"{len(bad)} crashes / hangs:\n{listing}\n\n{table(outcomes)}"


def test_every_file_went_through_every_stage(campaign):
    corpus, outcomes = campaign
    assert len(corpus.files) >= 300
    assert {f.kind for f in corpus.files} == {"png", "jpeg", "tiff", "dicom", "nifti", "other"}
    seen = defaultdict(set)
    for o in outcomes:
        seen[o.stage].add(o.file)
    files = {str(f.path) for f in corpus.files}
    for stage in (*FILE_STAGES, *DATASET_STAGES):
        assert seen[stage] == files, stage
    assert len(seen["train"]) >= 2 * len(corpus.datasets)
    counts = Counter(o.result for o in outcomes)
    assert counts[OK] > 1000 and counts[CLEAN] > 1000  # the corpus is not all refused, nor all taken


def test_every_problem_names_its_file(campaign):
    # index, qc and workspace findings are matched to a file by their path; readers, load and predict must
    # say the file's name in their message (the campaign counts one that does not as a crash)
    _, outcomes = campaign
    named = [o for o in outcomes if o.result == CLEAN and o.stage in (*FILE_STAGES, "predict")]
    assert len(named) > 600
    assert all(Path(o.file).name in o.message for o in named)


def test_the_known_crashes_are_clear_errors(campaign):
    _, outcomes = campaign
    got = {(o.stage, o.case): o for o in outcomes}

    def says(stage, case, *words):
        o = got[(stage, case)]
        assert o.result == CLEAN and all(w in o.message for w in words), (o.result, o.message)

    says("index", "PNG header claims 20000x20000", "20000 x 20000 pixels", "134,217,728")
    says("load", "PNG bomb 12000x12000 zeros", "12000 x 12000 pixels", "decompression bomb")
    says("load", "CT_small.dcm transfer syntax is a SOP class UID", "is not a transfer syntax")
    says("load", "CT_small.dcm without pixel data, SOP class UID of two values", "holds no pixel data")
    for case in ("NaN", "inf", "all NaN"):
        assert got[("index", f"float TIFF mask {case}")].result == OK  # a sample; its values fail when loaded
        says("workspace", f"float TIFF mask {case}", "NaN or infinite")
        says("qc", f"float TIFF mask {case}", "NaN or infinite")
    for case in ("PNG 1x300", "PNG 300x1", "PNG 1x1000", "JPEG 257x1"):
        assert got[("predict", case)].result == OK and got[("train-data", case)].result == OK
    assert got[("train", "own size")].result == OK


def test_the_campaign_tells_crashes_and_hangs_apart():
    # the classification the whole campaign rests on
    assert _classify(ReadError("/x/a.png", "bad"), "/x/a.png")[0] == CLEAN
    assert _classify(ReadError("/x/b.png", "bad"), "/x/a.png")[0] == CRASH  # names another file
    assert _classify(ValueError("a.png: bad"), "/x/a.png")[0] == CRASH  # not a MedsegError
    worker = Worker(mem_mb=256)
    try:
        assert worker.call("t_sleep", (0.0,), 30)[:2] == ("ok", "slept")
        status, text, _ = worker.call("t_sleep", (30.0,), 1.0)
        assert status == HANG and "killed" in text
        status, text, _ = worker.call("t_allocate", (1024,), 30)  # past the worker's address-space cap
        assert status == "exc" and "MemoryError" in text
        assert worker.call("t_allocate", (16,), 30)[:2] == ("ok", 16 * 2**20)
    finally:
        worker.stop()


def test_the_corpus_damages_the_real_data_when_it_is_there(campaign, cvc_dir, ct_mr_dir):
    # the stand-ins (a disc on noise, a random volume) are for a clone without ../shared; with it, the
    # corpus must be built from CVC-ClinicDB frames and the real CT/MR volumes, or it covers less unseen
    corpus, _ = campaign
    assert corpus.sources["cvc"].startswith("cvc")
    assert {"ct_abdomen.nii.gz", "mr_abdomen.nii.gz", "ct_abdomen_labels.nii.gz"} <= set(
        corpus.sources["nifti"].split(", ")
    )


def test_a_required_data_folder_that_is_absent_is_an_error(monkeypatch, tmp_path):
    from _fuzz_sources import _cvc_pairs, _nifti_sources

    monkeypatch.setenv("MEDSEG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MEDSEG_REQUIRE_DATA", "1")
    for build in (lambda rng: _cvc_pairs(rng, 2), _nifti_sources):
        with pytest.raises(FileNotFoundError, match="is absent"):
            build(np.random.default_rng(0))
    monkeypatch.delenv("MEDSEG_REQUIRE_DATA")
    assert [p[4] for p in _cvc_pairs(np.random.default_rng(0), 2)] == ["synth0", "synth1"]
