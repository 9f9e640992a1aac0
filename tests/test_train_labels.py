"""Which of a workspace's labels train: ``medseg train --labels reviewed|corrected|all`` (data.statuses), the
workspace opener taking exactly those samples, the counts the Fine-tune dock shows, and a choice that holds
no sample refused with the count."""

from __future__ import annotations

import numpy as np
import pytest
from _train_run import make_dataset, tiny_config, write_config

from medseg.cli import build_parser, main
from medseg.cli.train import build_config
from medseg.training.workspace_source import open_workspace_dataset
from medseg.workspace import Workspace
from medseg.workspace.label_sets import LABEL_SETS, label_counts, label_set_name

# sample index -> status; the others stay unreviewed
STATUS_OF = {0: "accepted", 1: "corrected", 2: "corrected", 3: "excluded", 4: "accepted"}


@pytest.fixture()
def reviewed(tmp_path):
    """8 samples (one group each): 2 accepted, 2 corrected (new revisions), 1 excluded, 3 unreviewed."""
    ws = Workspace.create(tmp_path / "data.medseg", make_dataset(tmp_path / "data", n=8, size=32))
    ids = ws.sample_ids()
    for k, status in STATUS_OF.items():
        if status == "corrected":
            mask = np.zeros((32, 32), np.uint8)
            mask[2 : 10 + k, 3:20] = 1
            ws.save_revision(ids[k], mask, origin="manual")
        ws.set_status(ids[k], status, reason="blurred" if status == "excluded" else None)
    yield (
        ws,
        {
            name: sorted(ids[k] for k in range(8) if STATUS_OF.get(k, "unreviewed") in statuses)
            for name, statuses in LABEL_SETS.items()
        },
    )
    ws.close()


def _config(tmp_path, ws, *argv):
    cfg = write_config(tmp_path / "c.yaml", tiny_config(ws.root, tmp_path / "run", epochs=1))
    return build_config(build_parser().parse_args(["train", str(cfg), *argv]))


@pytest.mark.parametrize("name", list(LABEL_SETS))
def test_labels_flag_sets_the_statuses_and_the_opener_takes_exactly_those(reviewed, tmp_path, name):
    ws, expected = reviewed
    config = _config(tmp_path, ws, "--labels", name)
    assert config.data.statuses == list(LABEL_SETS[name]) and label_set_name(config.data.statuses) == name
    trained = open_workspace_dataset(config.data.root, config.data.statuses)
    assert sorted(s.id for s in trained.samples) == expected[name]
    # each sample trains on its current revision: a correction, not the imported mask
    for s in trained.samples:
        assert s.revision == ws.sample(s.id).head_revision
    counts = label_counts(ws)
    assert counts[name].samples == len(expected[name]) and len(counts[name].groups) == len(expected[name])
    assert counts.by_status == {"unreviewed": 3, "accepted": 2, "corrected": 2, "excluded": 1}


def test_without_labels_a_run_takes_every_sample_not_excluded(reviewed, tmp_path):
    ws, expected = reviewed
    config = _config(tmp_path, ws)
    assert config.data.statuses is None and label_set_name(None) == "all"
    assert sorted(s.id for s in open_workspace_dataset(ws.root, None).samples) == expected["all"]


def test_an_unknown_labels_name_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "c.yaml", "--labels", "accepted"])
    assert "'accepted': expected one of reviewed, corrected, all" in capsys.readouterr().err


def test_a_run_on_the_corrected_labels_trains_on_exactly_them(reviewed, tmp_path, capfd):
    ws, expected = reviewed
    cfg = write_config(tmp_path / "c.yaml", tiny_config(ws.root, tmp_path / "run", epochs=1, data__val_fraction=0.5))
    assert main(["train", str(cfg), "--labels", "corrected"]) == 0, capfd.readouterr().err
    [run] = ws.model_runs()
    assert sorted(run.revisions) == expected["corrected"]
    assert run.revisions == {sid: ws.sample(sid).head_revision for sid in expected["corrected"]}


def test_a_choice_without_samples_is_refused_naming_the_counts(tmp_path, capfd):
    with Workspace.create(tmp_path / "fresh.medseg", make_dataset(tmp_path / "data", n=4, size=32)) as ws:
        cfg = write_config(tmp_path / "c.yaml", tiny_config(ws.root, tmp_path / "run", epochs=1))
        assert main(["train", str(cfg), "--labels", "reviewed"]) == 2
    err = capfd.readouterr().err
    assert "has no usable samples (none is accepted or corrected; its 4 samples: 4 unreviewed)" in err
    assert not (tmp_path / "run").exists()
