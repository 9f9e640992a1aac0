"""Training on a workspace: the current label revisions are what the trainer learns from, and the run is recorded."""

from __future__ import annotations

import numpy as np
import pytest
from _train_run import make_dataset, tiny_config

from medseg.jobs import Result
from medseg.training import Trainer
from medseg.training.config import ConfigError, TrainConfig
from medseg.training.workspace_source import is_workspace, open_workspace_dataset
from medseg.workspace import Workspace


@pytest.fixture()
def workspace(tmp_path):
    data = make_dataset(tmp_path / "data", n=8, size=32)
    ws = Workspace.create(tmp_path / "data.medseg", data)
    yield ws
    ws.close()


def test_snapshot_pins_current_revisions_and_leaves_out_excluded(workspace):
    ids = workspace.sample_ids()
    corrected = np.zeros((32, 32), np.uint8)
    corrected[4:12, 4:12] = 1
    rev = workspace.save_revision(ids[0], corrected, origin="manual")
    workspace.set_status(ids[0], "corrected")
    workspace.set_status(ids[1], "excluded", reason="motion blur")

    ds = open_workspace_dataset(workspace.root)
    by_id = {s.id: s for s in ds.samples}
    assert ids[1] not in by_id and len(ds.samples) == 7
    assert by_id[ids[0]].revision == rev.id
    np.testing.assert_array_equal(by_id[ids[0]].load_mask(), corrected)
    # the source mask is not what trains: the correction is
    assert not np.array_equal(workspace.source_sample(ids[0]).load_mask(), corrected)

    # a later correction does not change a snapshot already taken
    workspace.save_revision(ids[0], np.zeros((32, 32), np.uint8), origin="manual")
    np.testing.assert_array_equal(by_id[ids[0]].load_mask(), corrected)

    only = open_workspace_dataset(workspace.root, ["corrected"])
    assert [s.id for s in only.samples] == [ids[0]]


def test_vanished_source_image_is_a_problem_not_a_crash(workspace):
    victim = workspace.sample(workspace.sample_ids()[2])
    victim.image_path.unlink()
    ds = open_workspace_dataset(workspace.root)
    assert victim.id not in {s.id for s in ds.samples}
    assert ds.problems_by_kind() == {"unreadable": 1}
    assert str(victim.image_path) in str(ds.problems[0].path)


def test_trainer_learns_from_workspace_and_records_the_run(workspace, tmp_path):
    assert is_workspace(workspace.root) and not is_workspace(workspace.dataset_root)
    ids = workspace.sample_ids()
    workspace.set_status(ids[3], "excluded", reason="wrong organ")
    cfg = tiny_config(workspace.root, tmp_path / "run", epochs=1)
    cfg["data"]["group_by"] = "auto"
    events = list(Trainer(cfg).run())
    assert isinstance(events[-1], Result), events[-1]
    started = events[0]
    assert started.detail["n_train"] + started.detail["n_val"] == 7

    runs = workspace.model_runs()
    assert len(runs) == 1 and runs[0].kind == "train"
    assert ids[3] not in runs[0].revisions
    assert runs[0].revisions[ids[0]] == workspace.sample(ids[0]).head_revision
    assert runs[0].checkpoint.endswith("best.medseg")


def test_statuses_only_for_workspaces(tmp_path):
    data = make_dataset(tmp_path / "data", n=4, size=32)
    cfg = tiny_config(data, tmp_path / "run")
    cfg["data"]["statuses"] = ["accepted"]
    with pytest.raises(ConfigError, match="only a workspace has review statuses"):
        Trainer(cfg)
    with pytest.raises(ConfigError, match="data.statuses"):
        TrainConfig.from_dict({**cfg, "data": {**cfg["data"], "statuses": ["reviewed"]}})


def test_workspace_with_nothing_trainable_is_a_clear_error(workspace, tmp_path):
    for sid in workspace.sample_ids():
        workspace.set_status(sid, "excluded", reason="test")
    with pytest.raises(ConfigError, match="no usable samples"):
        Trainer(tiny_config(workspace.root, tmp_path / "run"))
