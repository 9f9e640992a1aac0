"""``medseg workspace create|info|history|status|verify``."""

from __future__ import annotations

import json

from _workspace_data import box, make_binary
from PIL import Image

from medseg.cli import main
from medseg.workspace import Workspace
from medseg.workspace.blobs import BlobStore


def test_workspace_cli(tmp_path, capsys):
    data = make_binary(tmp_path / "data", n=3, grey_noise_in=1)
    ws = tmp_path / "ws"
    assert main(["workspace", "create", str(data), str(ws), "--author", "cli", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "3 samples" in out and "unreviewed 3" in out and "imported 3" in out

    assert main(["workspace", "status", str(ws), "2", "excluded"]) == 2
    assert "needs a reason" in capsys.readouterr().err
    assert main(["workspace", "status", str(ws), "2", "excluded", "--reason", "blurred frame"]) == 0
    with Workspace.open(ws) as w:
        w.save_revision("1", box(0, 4, 0, 5), origin="manual", author="ann")

    assert main(["workspace", "history", str(ws), "1"]) == 0
    out = capsys.readouterr().out
    assert "imported by cli" in out and "grey level" in out and "manual by ann" in out
    assert "px changed (foreground" in out and "status corrected" in out
    assert main(["workspace", "history", str(ws), "2", "--json"]) == 0
    hist = json.loads(capsys.readouterr().out)
    assert hist["status"] == "excluded" and [s["status"] for s in hist["statuses"]] == ["unreviewed", "excluded"]

    Image.fromarray(box(0, 2, 0, 2, 255)).save(data / "masks" / "3.png")
    assert main(["workspace", "info", str(ws)]) == 0
    out = capsys.readouterr().out
    assert "excluded 1" in out and "corrected 1" in out and "[changed] sample 3" in out
    assert main(["workspace", "info", str(ws), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["source_change_list"][0]["kind"] == "changed" and info["n_revisions"] == 4

    assert main(["workspace", "verify", str(ws)]) == 0
    with Workspace.open(ws) as w:
        sha = w.revisions("3")[0].mask_sha256
    BlobStore(ws / "masks").path(sha).write_bytes(b"garbage")
    assert main(["workspace", "verify", str(ws)]) == 2
    assert "damaged" in capsys.readouterr().out
    assert main(["workspace", "info", str(tmp_path / "nowhere")]) == 2
    assert "not a workspace" in capsys.readouterr().err


def test_create_refuses_a_dataset_with_no_sample_and_writes_nothing(tmp_path, capsys):
    """A dataset whose every image is a problem (here: no image has its mask) made an empty workspace with
    exit 0 (issue 15 measured it on volumes, which are samples now); it is refused with the problems named,
    and no folder appears."""
    import numpy as np

    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "images" / "case_000.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "masks" / "case_001.png")
    assert main(["workspace", "create", str(root), str(tmp_path / "ws")]) == 2
    err = capsys.readouterr().err
    assert "no sample to review" in err and "case_000.png" in err and "no workspace created" in err
    assert not (tmp_path / "ws").exists()
