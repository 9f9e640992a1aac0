"""Workspaces far larger than the tests can make: memory that stays flat in the number of samples.

The synthetic frames are the scale benchmark's own (benchmarks/bench_workspace_scale.py: videos of 25 frames,
a moving blob as the label, a few planted problems). Memory is Python's allocations traced by tracemalloc
(the peak of one create or one QC), compared between 500 and 2,000 samples: what each added sample costs is
the design's figure, whatever the machine's speed (the grouping's descriptors held 24 KB a frame before they
were kept as integer counts). QC's picture-holding measures go to a temporary file (medseg.qc.spill): the same
findings and scores as with dicts.
"""

from __future__ import annotations

import importlib.util
import tracemalloc
from pathlib import Path

import pytest

from medseg.qc import qc, spill
from medseg.workspace import Workspace

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_workspace_scale.py"
SAME_CHECKS = "near_duplicate,duplicate_mask_disagreement,neighbour_fit"
PER_SAMPLE_CREATE = 8_000  # before the streamed grouping descriptors: ~24,000


def _bench():
    spec = importlib.util.spec_from_file_location("bench_workspace_scale", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write(root: Path, n: int) -> Path:
    from PIL import Image

    bench = _bench()
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(1, n + 1):
        img, mask = bench._frame(i, 32, 24)
        Image.fromarray(img).save(root / "images" / f"{i}.png", compress_level=1)
        Image.fromarray(mask).save(root / "masks" / f"{i}.png", compress_level=1)
    return root


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    base = tmp_path_factory.mktemp("scale")
    return {n: _write(base / f"data-{n}", n) for n in (500, 2000)}


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _workspaces(datasets, tmp_path) -> tuple[dict, dict]:
    peaks, spaces = {}, {}
    for n, data in datasets.items():
        ws = tmp_path / f"ws-{n}"
        peaks[n] = _peak(lambda d=data, w=ws: Workspace.create(w, d).close())
        spaces[n] = ws
    return peaks, spaces


def test_create_memory_stays_flat_in_samples(datasets, tmp_path):
    create, spaces = _workspaces(datasets, tmp_path)
    per_create = (create[2000] - create[500]) / 1500
    assert per_create < PER_SAMPLE_CREATE, f"create: {per_create:.0f} bytes a sample ({create})"
    with Workspace.open(spaces[2000], verify="none") as ws:
        assert len(ws.sample_ids()) == 2000
        assert len({ws.sample(s).group for s in ("1", "26", "51")}) == 3  # the videos were told apart


def test_spilled_measures_give_the_same_findings_and_scores(datasets, tmp_path, monkeypatch):
    """The same QC with its measures in dicts (as before the spill) and in the temporary file: equal."""
    ws_path = tmp_path / "ws"
    Workspace.create(ws_path, datasets[500]).close()
    runs = {}
    for how, spilled in (("file", spill.SPILLED), ("dicts", frozenset())):
        monkeypatch.setattr(spill, "SPILLED", spilled)
        with Workspace.open(ws_path, verify="none") as ws:
            report = qc(ws, SAME_CHECKS, workers=2)
            runs[how] = (
                [(f.sample_id, f.check, f.severity, f.value, f.message, f.details) for f in report.findings],
                {m: ws.scores(m) for m in ws.score_methods()},
            )
    assert runs["file"][0] and runs["file"][1]
    assert runs["file"] == runs["dicts"]


def test_spill_table_is_a_mapping_of_what_was_stored(tmp_path):
    import numpy as np

    t = spill.SpillTable(cached=2)
    values = {str(i): {"a": np.full((3, 4), i, np.float16), "n": i} for i in range(10)}
    values["none"] = None
    for k, v in values.items():
        t[k] = v
    assert len(t) == 11 and list(t) == list(values) and "3" in t and "x" not in t
    for k in reversed(list(values)):  # past the cache: read back from the file
        got = t[k]
        if values[k] is None:
            assert got is None
        else:
            assert got["n"] == values[k]["n"] and np.array_equal(got["a"], values[k]["a"])
    assert t.get("x") is None
    with pytest.raises(KeyError):
        t["x"]
    t["3"] = "replaced"
    assert t["3"] == "replaced"
    assert t.nbytes > 10 * 24
    t.close()
