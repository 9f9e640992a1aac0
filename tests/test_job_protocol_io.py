"""The jobs of prediction, workspace opening and creation, and export speak the one job protocol (medseg.jobs):
each driven to its end gives Started, Progress and its Result; each cancelled mid-way ends with Cancelled and
keeps its promise (no partial prediction file, no half-made workspace, the export target as it was). Real
CVC-ClinicDB frames shrunk to 64x48 and a tiny PlainUNet checkpoint."""

from __future__ import annotations

import os

import numpy as np
import pytest
from _guard_data import stem_mask_dataset, tree_hashes
from _predict_data import tiny_unet
from PIL import Image

from medseg.errors import Cancelled
from medseg.jobs import CancelToken, Message, Progress, Result, Started, drive
from medseg.workspace import Workspace


@pytest.fixture
def cvc(cvc_dir, tmp_path):
    return stem_mask_dataset(cvc_dir, tmp_path / "cvc")


@pytest.fixture
def predictor(tmp_path):
    from medseg.inference import Predictor

    return Predictor(tiny_unet(tmp_path / "ckpt"), device="cpu", batch_size=1)  # 64x48 in 32x32 tiles


def cancelled_at(job, token: CancelToken, when) -> list:
    """Every event of ``job``; ``token`` is set right after the first event ``when`` accepts."""
    events = []
    for event in drive(job, token):
        events.append(event)
        if not token.is_set() and when(event):
            token.set()
    return events


def first_progress(event) -> bool:
    return isinstance(event, Progress)


def stages(events) -> list[str]:
    return [e.stage for e in events if isinstance(e, Progress)]


# ------------------------------------------------------------------------------------------- prediction
def test_predicting_an_image_ends_with_its_prediction_and_stops_after_a_tile_batch(cvc, predictor):
    from medseg.io import load

    image = load(cvc / "images" / "1.png")
    events = list(drive(predictor.iter_predict(image)))
    assert isinstance(events[0], Started) and isinstance(events[-1], Result)
    assert stages(events) == ["tiles"] * events[0].total and events[0].total > 1
    assert [e.done for e in events[1:-1]] == list(range(1, events[0].total + 1))
    np.testing.assert_array_equal(events[-1].value.probs, predictor.predict(image).probs)
    assert events[-1].value.labels.shape == (48, 64)

    token = CancelToken()
    events = cancelled_at(predictor.iter_predict(image, token), token, first_progress)
    assert isinstance(events[-1], Cancelled) and events[-1].done == 1 and not any(isinstance(e, Result) for e in events)
    with pytest.raises(Cancelled, match="after 0 of 0 tile batches"):
        predictor.predict(image, token)


def test_predicting_files_lists_each_skip_and_a_cancel_leaves_only_whole_predictions(cvc, predictor, tmp_path):
    from medseg.inference.batch import collect_inputs
    from medseg.inference.predict_files import Predicted, PredictSummary, iter_predict_files
    from medseg.ownership import OutputFolder

    images = cvc / "images"
    (images / "notes.txt").write_text("not an image")
    skipped: list = []
    items = collect_inputs([images], skipped)

    def out(name: str) -> OutputFolder:
        return OutputFolder(tmp_path / name, purpose="predictions", sources=[images])

    events = list(drive(iter_predict_files(predictor, items, out("all"), skipped=skipped, probs=True)))
    assert isinstance(events[0], Started) and events[0].total == len(items) == 4
    assert [e.text for e in events if isinstance(e, Message)] == [
        f"skipped {images / 'notes.txt'}: {skipped[0].reason}"
    ] and "not an image" in skipped[0].reason
    assert [(e.done, e.item) for e in events if isinstance(e, Progress)] == [
        (i, str(item.path)) for i, item in enumerate(items)
    ] + [(4, None)]
    predicted = [e for e in events if isinstance(e, Predicted)]
    assert [e.input for e in predicted] == [str(i.path) for i in items]
    assert all(os.path.isfile(p) for e in predicted for p in e.outputs) and len(predicted[0].outputs) == 2
    summary = events[-1].value
    assert (
        isinstance(summary, PredictSummary)
        and summary.done == 4
        and [s.path for s in summary.skipped] == [images / "notes.txt"]
    )
    batches = predicted[0].meta["batches"]

    # cancelled after the first Progress: nothing was predicted, nothing written
    token = CancelToken()
    events = cancelled_at(iter_predict_files(predictor, items, out("none"), cancel=token), token, first_progress)
    assert isinstance(events[-1], Cancelled) and events[-1].done is not None
    assert not (tmp_path / "none").exists() or not any((tmp_path / "none").iterdir())

    # cancelled inside the second image's tile batches: the first prediction whole, nothing of the second
    token, real, calls = CancelToken(), predictor.forward_tiles, []

    def forward(tiles):
        calls.append(1)
        if len(calls) == batches + 1:
            token.set()
        return real(tiles)

    predictor.forward_tiles = forward
    events = list(drive(iter_predict_files(predictor, items, out("some"), cancel=token), token))
    end = events[-1]
    assert isinstance(end, Cancelled) and (end.done, end.total) == (1, 4) and end.partial.done == 1
    assert len(calls) == batches + 1  # the second image stopped after its first tile batch
    written = sorted(p.name for p in (tmp_path / "some").iterdir() if not p.name.startswith("."))
    assert written == [f"{items[0].stem}_mask.png"]
    assert np.asarray(Image.open(tmp_path / "some" / written[0])).shape == (48, 64)


# ------------------------------------------------------------------------------------------- workspace
def test_creating_a_workspace_ends_with_it_and_a_cancel_leaves_none(cvc, tmp_path):
    source = tree_hashes(cvc)
    events = list(drive(Workspace.iter_create(tmp_path / "ws", cvc)))
    assert isinstance(events[0], Started) and isinstance(events[-1], Result)
    assert stages(events) == ["index"] + ["import"] * 4 + ["commit"]
    assert [e.item for e in events if isinstance(e, Progress) and e.stage == "import"] == ["1", "2", "3", "4"]
    with events[-1].value as ws:
        assert ws.sample_ids() == ["1", "2", "3", "4"] and ws.sample("2").status == "unreviewed"

    target, token, half_made = tmp_path / "ws2", CancelToken(), []

    def first_import(event) -> bool:
        if isinstance(event, Progress) and event.stage == "import":
            half_made.append((target / "workspace.sqlite").is_file())
            return True
        return False

    events = cancelled_at(Workspace.iter_create(target, cvc, cancel=token), token, first_import)
    assert half_made == [True] and isinstance(events[-1], Cancelled)
    assert not target.exists() and tree_hashes(cvc) == source


def test_opening_a_dataset_reopens_or_creates_its_workspace_and_a_cancel_keeps_the_promise(cvc, tmp_path):
    from medseg.workspace.open_job import iter_open_or_create

    ws_path = tmp_path / "cvc.medseg"
    events = list(drive(iter_open_or_create(cvc, ws_path)))  # none yet: created
    assert stages(events) == ["index"] + ["import"] * 4 + ["commit"] and isinstance(events[-1], Result)
    events[-1].value.close()
    for folder in (cvc, ws_path):  # the dataset beside its workspace, or the workspace itself: reopened
        events = list(drive(iter_open_or_create(folder, ws_path)))
        assert isinstance(events[0], Started) and events[0].job == "workspace open"
        assert stages(events) == ["open"] and isinstance(events[-1], Result)
        with events[-1].value as ws:
            assert ws.root == ws_path and ws.sample_ids() == ["1", "2", "3", "4"]

    before = tree_hashes(ws_path)
    token = CancelToken()
    events = cancelled_at(iter_open_or_create(cvc, ws_path, cancel=token), token, first_progress)
    assert isinstance(events[-1], Cancelled) and tree_hashes(ws_path) == before

    token, other = CancelToken(), tmp_path / "other.medseg"
    events = cancelled_at(
        iter_open_or_create(cvc, other, cancel=token), token, lambda e: isinstance(e, Progress) and e.stage == "import"
    )
    assert isinstance(events[-1], Cancelled) and not other.exists()


# ------------------------------------------------------------------------------------------- export
def test_export_ends_with_its_result_and_a_cancel_leaves_the_target_as_it_was(cvc, tmp_path):
    from medseg.export import ExportResult, iter_export

    out = tmp_path / "clean"
    with Workspace.create(tmp_path / "ws", cvc) as ws:
        events = list(drive(iter_export(ws, out, "folders")))
        assert isinstance(events[0], Started) and events[0].total == 4
        assert stages(events) == ["sample"] * 4 + ["finishing"]
        assert [e.item for e in events if isinstance(e, Progress)] == ["1", "2", "3", "4", None]
        result = events[-1].value
        assert isinstance(result, ExportResult) and result.n_samples == 4 and result.manifest_path.is_file()
        before, around = tree_hashes(out), sorted(os.listdir(tmp_path))

        ws.set_status("1", "excluded", reason="blurred")  # a new export would differ
        for when in (first_progress, lambda e: isinstance(e, Progress) and e.stage == "finishing"):
            token = CancelToken()
            events = cancelled_at(iter_export(ws, out, "folders", overwrite=True, cancel=token), token, when)
            assert isinstance(events[-1], Cancelled) and not any(isinstance(e, Result) for e in events)
            assert tree_hashes(out) == before and sorted(os.listdir(tmp_path)) == around  # no staging left
