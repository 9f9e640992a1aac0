"""``medseg qc``: table, JSON/CSV reports, filters, workspaces, Ctrl-C."""

from __future__ import annotations

import csv
import json
import signal

import numpy as np
import pytest

from medseg.cli import main
from medseg.errors import Cancelled
from medseg.jobs import Progress
from medseg.qc.checks_registry import CHECKS
from medseg.workspace import Workspace
from tests._qc_data import natural, rect_mask, write_dataset


@pytest.fixture
def root(tmp_path):
    speckled = rect_mask(64, (10, 40, 10, 40))
    speckled[50, 50:55] = 255  # a speck beside an object: warning
    tiny = np.zeros((64, 64), np.uint8)
    tiny[30:33, 30:33] = 255  # a lone tiny object: info
    return write_dataset(
        tmp_path / "ds",
        {
            "a": (natural("astronaut"), speckled),
            "b": (natural("coffee"), tiny),
            "c": (natural("chelsea"), rect_mask(64)),
        },
    )


def test_table_json_and_csv(root, tmp_path, capsys):
    # rectangles drawn on unrelated photographs: outline_fit has its say too; here every other check's
    checks = ",".join(c for c in CHECKS if c != "outline_fit")
    rc = main(
        ["qc", str(root), "--checks", checks, "--json", str(tmp_path / "r.json"), "--csv", str(tmp_path / "r.csv")]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "3 samples" in out and "WARNING specks" in out and "INFO    specks" in out
    row = next(line for line in out.splitlines() if line.startswith("specks "))
    assert row.split()[1:] == ["0", "1", "1"]
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["n_samples"] == 3 and data["by_check"] == {"specks": 2}
    assert {f["sample_id"] for f in data["findings"]} == {"a", "b"}
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [(r["sample_id"], r["severity"], r["fix"]) for r in rows] == [
        ("a", "warning", "remove_specks"),
        ("b", "info", ""),
    ]
    assert json.loads(rows[0]["details"])["threshold"] == 20


def test_filters_params_and_exit_codes(root, tmp_path, capsys):
    rc = main(
        [
            "qc",
            str(root),
            "--quiet",
            "--checks",
            "specks,holes",
            "--min-severity",
            "warning",
            "--json",
            str(tmp_path / "w.json"),
        ]
    )
    assert rc == 0
    assert [f["sample_id"] for f in json.loads((tmp_path / "w.json").read_text())["findings"]] == ["a"]
    assert main(["qc", str(root), "--quiet", "--checks", "specks", "--set", "specks.min_pixels=3"]) == 0
    assert "0 warning" in capsys.readouterr().out  # at min_pixels 3 neither 5 px nor 9 px is a speck
    assert main(["qc", str(root), "--quiet", "--checks", "specks", "--fail-on", "warning"]) == 3
    assert main(["qc", str(root), "--checks", "speck"]) == 2
    assert "unknown QC check 'speck'" in capsys.readouterr().err
    assert main(["qc", str(root), "--quiet", "--set", "specks.size=3"]) == 2
    assert "parameter of QC check 'specks'" in capsys.readouterr().err


def test_workspace_findings_are_stored(root, tmp_path, capsys):
    Workspace.create(tmp_path / "ws", root).close()
    assert main(["qc", str(tmp_path / "ws"), "--quiet"]) == 0
    with Workspace.open(tmp_path / "ws") as ws:
        found = {(f.sample_id, f.check) for f in ws.findings(source="qc")}
        assert {k for k in found if k[1] != "outline_fit"} == {("a", "specks"), ("b", "specks")}
        assert set(ws.scores("outline-fit")) == {"a", "c"}  # b's lone object is below min_pixels


def test_ctrl_c_writes_nothing(root, tmp_path, monkeypatch, capsys):
    Workspace.create(tmp_path / "ws", root).close()
    from medseg.qc import run

    real = run.run_qc

    def interrupted(*args, **kwargs):
        inner = real(*args, **kwargs)
        for event in inner:
            if isinstance(event, Progress) and event.done == 2:
                signal.raise_signal(signal.SIGINT)  # what Ctrl-C does: the handler sets the job's token
            try:
                yield event
            except Cancelled as c:  # thrown in by the job runner: QC's own Cancelled comes back
                inner.throw(c)

    monkeypatch.setattr(run, "run_qc", interrupted)
    assert main(["qc", str(tmp_path / "ws"), "--json", str(tmp_path / "r.json")]) == 130
    err = capsys.readouterr().err
    assert "SIGINT: stopping" in err and "QC cancelled after 2 of 3 samples: no findings were written" in err
    assert not (tmp_path / "r.json").exists()
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.findings(source="qc") == []


def test_processes_flag_runs_workers_and_reports_what_one_process_does(root, tmp_path, monkeypatch, capsys):
    from medseg.qc import pool

    started = []
    real = pool.Workers.__init__

    def counted(self, *args, **kwargs):
        started.append(args[-1])  # the processes asked for
        real(self, *args, **kwargs)

    monkeypatch.setattr(pool.Workers, "__init__", counted)
    reports = {}
    for n in ("1", "2"):
        assert main(["qc", str(root), "--quiet", "--processes", n, "--json", str(tmp_path / f"{n}.json")]) == 0
        reports[n] = json.loads((tmp_path / f"{n}.json").read_text())
    assert started == [2]  # 3 samples: only asked for processes does QC start any
    assert reports["1"]["findings"] == reports["2"]["findings"] and reports["1"]["findings"]
    with pytest.raises(SystemExit) as e:
        main(["qc", str(root), "--processes", "0"])
    assert e.value.code == 2
    assert "--processes takes a whole number of at least 1, got '0'" in capsys.readouterr().err
