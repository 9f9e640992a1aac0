"""One source per vocabulary: statuses, origins, findings, the largest stored class id, and the errors.

Each shared word is defined once, in the lowest layer that needs it, and the layers above use it: these tests
drive the layers that use each one and check that they agree with its source.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from _export_data import make_frames
from PIL import Image

import medseg
from medseg import errors
from medseg.classmap import MAX_STORED_ID
from medseg.datasets import PROBLEM_KINDS, open_dataset
from medseg.datasets.dataset import PROBLEM_SEVERITY
from medseg.errors import MedsegError, WorkspaceError
from medseg.export import export_dataset
from medseg.findings import SEVERITIES, Finding, severity_rank
from medseg.workspace import Workspace
from medseg.workspace.records import (
    DEFAULT_EXPORT_STATUSES,
    EXCLUDED,
    ORIGINS,
    STATUSES,
    TRAINABLE_STATUSES,
)


@pytest.fixture
def ws(tmp_path):
    with Workspace.create(tmp_path / "ws", make_frames(tmp_path / "frames")) as w:
        yield w


def _with_one_sample_per_status(ws) -> dict[str, str]:
    ids = list(ws.sample_ids())
    status_of = dict(zip(ids, STATUSES))
    for sid, status in status_of.items():
        ws.set_status(sid, status, "motion blur" if status == EXCLUDED else None)
    return {sid: ws.sample(sid).status for sid in ids}


# ------------------------------------------------------------------ statuses and origins
def test_the_database_takes_exactly_the_statuses_and_origins(ws):
    statuses = _with_one_sample_per_status(ws)
    assert set(statuses.values()) == set(STATUSES)
    sid = next(iter(ws.sample_ids()))
    mask = ws.current_mask(sid)
    for k, origin in enumerate(ORIGINS):
        changed = mask.copy()
        changed[0, k] = 1 - changed[0, k]  # an unchanged mask saves no revision
        assert ws.save_revision(sid, changed, origin=origin).origin == origin
    with pytest.raises(WorkspaceError, match="valid: " + ", ".join(STATUSES)):
        ws.set_status(sid, "done")
    with pytest.raises(WorkspaceError, match="valid: " + ", ".join(ORIGINS)):
        ws.save_revision(sid, mask, origin="import")
    # the schema's CHECK constraints (a released migration, spelled out in SQL) refuse the rest too
    conn = sqlite3.connect(ws.root / "workspace.sqlite")
    try:
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("UPDATE samples SET status = 'done' WHERE id = ?", (sid,))
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("UPDATE revisions SET origin = 'import' WHERE sample_id = ?", (sid,))
    finally:
        conn.close()


def test_training_and_export_take_the_same_samples_by_default(ws, tmp_path):
    from medseg.training.workspace_source import open_workspace_dataset

    statuses = _with_one_sample_per_status(ws)
    expected = {sid for sid, st in statuses.items() if st != EXCLUDED}
    assert set(TRAINABLE_STATUSES) == set(DEFAULT_EXPORT_STATUSES) == set(STATUSES) - {EXCLUDED}
    trained = open_workspace_dataset(ws.root)
    assert {s.id for s in trained.samples} == expected and trained.statuses == TRAINABLE_STATUSES
    result = export_dataset(ws, tmp_path / "out")
    manifest = json.loads(result.manifest_path.read_text())
    assert {s["id"] for s in manifest["samples"] if s["exported"]} == expected
    assert manifest["options"]["statuses"] == list(DEFAULT_EXPORT_STATUSES)
    assert list(manifest["counts"]["by_status"]) == list(STATUSES)


def test_the_cli_and_the_plugin_offer_the_statuses(ws, capsys):
    from medseg.cli import main
    from medseg.cli.main import build_parser
    from napari_medseg._review_text import summary_html

    _with_one_sample_per_status(ws)
    html = summary_html(ws)
    listed = html.split("Status: ", 1)[1].split("<br>")[0]
    assert [part.split(" ", 1)[1] for part in listed.split(", ")] == list(STATUSES)
    for status in STATUSES:
        args = build_parser().parse_args(["workspace", "status", str(ws.root), "1", status])
        assert args.status == status
    with pytest.raises(SystemExit):
        main(["workspace", "status", str(ws.root), "1", "done"])
    assert "invalid choice: 'done'" in capsys.readouterr().err


def test_the_findings_line_tells_info_findings_apart(ws):
    """Info findings say something about a label without calling it wrong: the Dataset dock's count says which."""
    from napari_medseg._review_text import summary_html

    a, b, *rest = list(ws.sample_ids())
    ws.add_findings(
        [
            Finding(a, "object_count", "warning", "3 objects, unlike the rest of its group"),
            Finding(b, "object_count", "info", "1 object, like neighbouring sample 564 of the same scene"),
            *(Finding(c, "duplicate_images", "info", "the same picture as sample 1") for c in rest[:3]),
        ],
        source="qc",
    )
    assert ws.summary()["info_by_check"] == {"duplicate_images": 3, "object_count": 1}
    line = summary_html(ws).split("Findings: ")[1].split("<br>")[0]
    assert line == "2 object count (1 info), 3 duplicate images (info)"  # a warning before three infos


# ------------------------------------------------------------------ findings
def test_the_workspace_stores_findings_without_qc(tmp_path):
    """In a fresh interpreter: indexing problems become stored findings, and medseg.qc is never imported."""
    root = make_frames(tmp_path / "frames")
    (root / "masks" / "3.png").unlink()  # image 3 has no mask: an indexing problem
    (root / "images" / "notes.txt").write_text("not an image")
    code = (
        "import sys\n"
        "from medseg.workspace import Workspace\n"
        f"with Workspace.create({str(tmp_path / 'ws')!r}, {str(root)!r}) as ws:\n"
        "    found = sorted((f.check, f.severity) for f in ws.findings(source='index'))\n"
        "print(found)\n"
        "print(sorted(m for m in sys.modules if m.startswith('medseg.qc')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    found, qc_modules = out.strip().splitlines()
    assert found == str(
        sorted(
            [
                ("image_without_mask", PROBLEM_SEVERITY["image_without_mask"]),
                ("unsupported_file", PROBLEM_SEVERITY["unsupported_file"]),
            ]
        )
    )
    assert qc_modules == "[]"


def test_io_reads_masks_without_the_datasets_layer(tmp_path):
    path = tmp_path / "ids.png"
    Image.fromarray(np.array([[0, 1], [2, 0]], np.uint8)).save(path)
    code = (
        "import sys\n"
        "from medseg.classmap import ClassMap\n"
        "from medseg.io.masks import read_mask\n"
        "from medseg.io.rle import rle_decode_multilabel, rle_encode\n"
        f"ids = read_mask({str(path)!r}, ClassMap.from_names(['a', 'b']))\n"
        "print(ids.tolist(), sorted(m for m in sys.modules if m.startswith('medseg.datasets')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[[0, 1], [2, 0]] []"


def test_problem_severities_and_qc_findings_share_one_vocabulary():
    from medseg.qc import findings as qc_findings
    from medseg.qc.checks_files import CHECKS, KIND_TO_CHECK

    assert set(PROBLEM_SEVERITY) == set(PROBLEM_KINDS) and set(PROBLEM_SEVERITY.values()) <= set(SEVERITIES)
    # QC turns every indexing problem into one of its file checks, at a known severity
    assert set(PROBLEM_KINDS) <= set(KIND_TO_CHECK)
    assert {check for check, _ in KIND_TO_CHECK.values()} <= {c.name for c in CHECKS}
    assert {severity for _, severity in KIND_TO_CHECK.values()} <= set(SEVERITIES)
    assert qc_findings.Finding is Finding and qc_findings.SEVERITIES is SEVERITIES
    assert [severity_rank(s) for s in SEVERITIES] == [0, 1, 2]
    with pytest.raises(ValueError, match="valid: info, warning, error"):
        Finding("1", "specks", "fatal", "x")


# ------------------------------------------------------------------ the largest stored id
@pytest.mark.parametrize("top, task", [(MAX_STORED_ID, "multiclass"), (MAX_STORED_ID + 1, "binary")])
def test_dataset_indexing_and_the_plugin_reader_draw_the_id_line_at_the_same_value(tmp_path, top, task):
    from napari_medseg._reader import read_mask_layer

    root = tmp_path / "ds"
    for d in ("images", "masks"):
        (root / d).mkdir(parents=True)
    ids = np.zeros((16, 16), np.uint8)
    ids[2:6, 2:6], ids[8:12, 8:12] = 1, top
    for k in range(2):
        Image.fromarray(np.full((16, 16, 3), 60 * k, np.uint8)).save(root / "images" / f"{k}.png")
        Image.fromarray(ids).save(root / "masks" / f"{k}.png")
    ds = open_dataset(root)
    layer = read_mask_layer(root / "masks" / "0.png")
    assert ds.classmap.task == task and layer[1]["metadata"]["medseg"]["classmap"]["task"] == task
    if task == "multiclass":
        assert max(ds.classmap.ids) == top


# ------------------------------------------------------------------ errors
def _engine_modules() -> list[str]:
    names = sorted(m.name for m in pkgutil.walk_packages(medseg.__path__, "medseg."))
    return [n for n in names if not n.endswith("__main__")]  # runs the CLI when imported


def test_every_engine_error_is_defined_in_errors_with_an_exit_code():
    defined = set()
    for name in _engine_modules():
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseException) and value.__module__.startswith("medseg"):
                defined.add(value)
    assert defined, "no engine error found"
    outside = sorted(f"{c.__module__}.{c.__qualname__}" for c in defined if c.__module__ != "medseg.errors")
    assert outside == []
    ours = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, MedsegError)]
    assert len(ours) > 15
    for cls in ours:
        assert isinstance(cls.exit_code, int), cls
        assert cls.exit_code == (130 if issubclass(cls, errors.Cancelled) else 2), cls
