"""`medseg train` on a volume dataset folder (2.5-D, a CT window from the command line) and fine-tuning on the
corrected volumes of a workspace: the slices trained on are the saved correction, pinned at the start."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from _train_data import one_thread  # noqa: F401 - an autouse fixture
from _volume_data import make_nnunet3d
from _volume_train_data import volume_config

from medseg.cli import main
from medseg.jobs import run
from medseg.models import load_checkpoint
from medseg.training import Trainer
from medseg.training.workspace_source import open_workspace_dataset
from medseg.workspace import Workspace


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_nnunet3d(tmp_path_factory.mktemp("vol") / "ds", n_cases=3)


def test_medseg_train_on_a_volume_dataset_folder(dataset, tmp_path, capsys):
    cfg = volume_config(dataset, tmp_path / "unused")
    del cfg["data"]["root"], cfg["out_dir"], cfg["data"]["window"]
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    argv = ["train", str(tmp_path / "cfg.yaml"), "--root", str(dataset), "--out", str(out)]
    assert main([*argv, "--slices", "3", "--window", "40,400", "--set", "data.val_fraction=0.34"]) == 0
    err = capsys.readouterr().err
    assert "2 volumes, 20 slices (validating on 1, 10 slices)" in err
    ck = load_checkpoint(out / "last.medseg")
    assert ck.spec.in_channels == 3 and ck.preprocessing.window == [40.0, 400.0]
    assert ck.preprocessing.slices == 3 and ck.preprocessing.scope == "volume"
    assert ck.provenance["data"]["layout"] == "nnunet3d" and len(ck.provenance["data"]["val_ids"]) == 1
    with pytest.raises(SystemExit) as exit_:  # argparse: a window is CENTER,WIDTH
        main([*argv, "--window", "40"])
    assert exit_.value.code == 2
    assert "CENTER,WIDTH" in capsys.readouterr().err


def test_fine_tune_on_the_corrected_volumes_of_a_workspace(dataset, tmp_path):
    with Workspace.create(tmp_path / "ws", dataset) as ws:
        ids = ws.sample_ids()
        assert all(ws.is_volume(i) for i in ids)
        fixed = ws.current_slice(ids[1], 5).copy()
        fixed[:] = 0
        fixed[10:20, 12:30] = 2  # a correction the source labels do not hold
        ws.save_slices(ids[1], {5: fixed}, origin="manual")
        ws.set_status(ids[1], "corrected")
        ws.set_status(ids[2], "corrected")
        source_slice = ws.source_sample(ids[1]).load_mask()[5]
    assert not np.array_equal(source_slice, fixed)

    ds = open_workspace_dataset(tmp_path / "ws", ["corrected"])
    assert [s.id for s in ds.samples] == ids[1:] and all(s.is_volume for s in ds.samples)
    assert ds.samples[0].geometry.shape == (10, 36, 40)
    cfg = volume_config(tmp_path / "ws", tmp_path / "run", data={"statuses": ["corrected"], "image_size": None})
    trainer = Trainer(cfg)
    assert len(trainer.train_data) == 20  # the two corrected volumes' slices, the uncorrected one left out
    index = trainer.train_data.items.index((0, 5))
    label = trainer.train_data.decoded(index).label
    np.testing.assert_array_equal(label[:36, :40], fixed)  # the correction trains (native size, padded to 8)
    summary = run(trainer.run())
    assert summary.last_checkpoint
    with Workspace.open(tmp_path / "ws") as ws:  # the run is recorded with the revisions it used
        runs = ws.model_runs()
        assert len(runs) == 1 and set(runs[0].revisions) == set(ids[1:])
        assert runs[0].revisions[ids[1]] == ws.sample(ids[1]).head_revision
