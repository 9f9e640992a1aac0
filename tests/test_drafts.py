"""Crash-safe drafts of unsaved label edits (engine, no Qt)."""

from __future__ import annotations

import signal

import numpy as np
import pytest
from _killpoints import run_killed_at
from _volume_data import make_nnunet3d
from _workspace_data import box, make_binary

from medseg.errors import ReadError, WorkspaceError
from medseg.workspace import Workspace
from medseg.workspace.drafts import (
    DRAFTS_DIR,
    discard_draft,
    draft_path,
    draft_sample_ids,
    pending_draft,
    read_draft,
    write_draft,
    write_slice_draft,
)


@pytest.fixture
def ws(tmp_path):
    with Workspace.create(tmp_path / "ws", make_binary(tmp_path / "data", n=3)) as w:
        yield w


def test_write_read_round_trip_and_nothing_else_left(ws):
    mask = ws.current_mask("1").copy()
    mask[0:3, 0:3] = 1
    head = ws.sample("1").head_revision
    path = write_draft(ws, "1", mask, base_revision=head)
    assert path == draft_path(ws, "1") and path.parent == ws.root / DRAFTS_DIR
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    draft = read_draft(ws, "1")
    np.testing.assert_array_equal(draft.mask, mask)
    assert (draft.sample_id, draft.base_revision) == ("1", head) and draft.saved > ws.revision(head).created
    assert read_draft(ws, "2") is None and draft_sample_ids(ws) == ["1"]
    assert discard_draft(ws, "1") and not discard_draft(ws, "1") and read_draft(ws, "1") is None


def test_ids_with_separators_get_distinct_safe_files(ws):
    a, b = draft_path(ws, "case1/day 2"), draft_path(ws, "case1_day_2")
    assert a != b and a.parent == b.parent == ws.root / DRAFTS_DIR and "/" not in a.name[:-4]


def test_pending_only_when_it_holds_edits_the_head_lacks(ws):
    head = ws.sample("2").head_revision
    same = ws.current_mask("2")
    write_draft(ws, "2", same, base_revision=head)
    assert pending_draft(ws, "2") is None  # equal to the current revision: nothing to restore

    edited = same.copy()
    edited[20:25, 25:30] = 1
    write_draft(ws, "2", edited, base_revision=head)
    assert pending_draft(ws, "2") is not None

    # the head moved on after the draft (saved elsewhere): the older draft is stale
    other = same.copy()
    other[0, 0] = 1
    ws.save_revision("2", other, origin="manual")
    assert pending_draft(ws, "2") is None
    # ... but a draft written after that revision is restored even on an older base
    write_draft(ws, "2", edited, base_revision=head)
    assert pending_draft(ws, "2").base_revision == head


def test_unsaveable_edits_are_kept_and_bad_input_refused(ws):
    odd = ws.current_mask("3").astype(np.int32)
    odd[1, 1] = 9  # not in the class map: a draft keeps it until the user fixes it
    write_draft(ws, "3", odd)
    assert read_draft(ws, "3").mask[1, 1] == 9
    with pytest.raises(WorkspaceError, match="no sample 'nope'"):
        write_draft(ws, "nope", odd)
    with pytest.raises(WorkspaceError, match="integer or boolean mask"):
        write_draft(ws, "3", odd.astype(np.float32))
    draft_path(ws, "3").write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(ReadError, match=r"drafts/.*\.npz: draft of sample '3' cannot be read"):
        read_draft(ws, "3")


@pytest.fixture
def vws(tmp_path):
    with Workspace.create(tmp_path / "vws", make_nnunet3d(tmp_path / "vol", n_cases=1)) as w:
        yield w


def test_a_volume_draft_holds_only_its_slices_and_restores_them_over_the_revision(vws):
    sid = vws.sample_ids()[0]
    head = vws.sample(sid).head_revision
    volume = vws.current_mask(sid)
    edited = {7: volume[7].copy(), 3: volume[3].copy()}
    edited[3][5:9, 5:9] = 2
    path = write_slice_draft(vws, sid, edited, volume.shape, base_revision=head)
    with np.load(path) as npz:  # the two slices, not the volume
        assert sorted(npz.files) == ["meta", "slices", "zs"] and npz["slices"].shape == (2, *volume.shape[1:])
    draft = read_draft(vws, sid)
    assert draft.mask is None and draft.shape == volume.shape and list(draft.slices) == [3, 7]
    assert (draft.base_revision, draft_sample_ids(vws)) == (head, [sid])
    assert pending_draft(vws, sid) is not None  # slice 3 differs from the revision's
    expected = volume.copy()
    expected[3] = edited[3]
    np.testing.assert_array_equal(draft.apply_to(volume.copy()), expected)

    write_slice_draft(vws, sid, {7: volume[7]}, volume.shape, base_revision=head)
    assert pending_draft(vws, sid) is None  # every slice it holds is the revision's (a stroke undone)

    write_slice_draft(vws, sid, edited, volume.shape, base_revision=head, saved="2000-01-01T00:00:00+00:00")
    moved = volume[0].copy()
    moved[0, 0] = 1
    vws.save_slices(sid, {0: moved}, origin="manual")
    assert pending_draft(vws, sid) is None  # the head moved on after an older draft: stale, not restored
    write_slice_draft(vws, sid, edited, volume.shape, base_revision=head)
    assert pending_draft(vws, sid) is not None  # written after that revision: restored over it


def test_a_volume_draft_refuses_slices_off_the_volume(vws):
    sid = vws.sample_ids()[0]
    volume = vws.current_mask(sid)
    for slices, shape in (
        ({volume.shape[0]: volume[0]}, volume.shape),
        ({1: volume[1][:-1]}, volume.shape),
        ({1: volume[1].astype(np.float32)}, volume.shape),
        ({1: volume[1]}, volume.shape[1:]),
    ):
        with pytest.raises(WorkspaceError, match=f"sample {sid}: .*slice"):
            write_slice_draft(vws, sid, slices, shape)
    assert read_draft(vws, sid) is None  # nothing written
    deeper = (volume.shape[0] + 5, *volume.shape[1:])
    write_slice_draft(vws, sid, {volume.shape[0] + 2: volume[0]}, deeper)
    with pytest.raises(ReadError, match=r"drafts/.*\.npz: draft of sample .* does not fit its volume: .*slice"):
        pending_draft(vws, sid)


DRAFT_WRITER = """
import sys, numpy as np
from medseg.workspace import Workspace
from medseg.workspace.drafts import write_draft
ws = Workspace.open(sys.argv[1], verify="none")
arm()
write_draft(ws, "1", np.full((200, 300), 2, np.uint8), base_revision=1)
finished()
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="no SIGKILL on this platform")
def test_a_writer_killed_at_each_step_leaves_the_old_draft_or_the_new_one(ws):
    """SIGKILL before each file-system step of replacing a draft in turn: the draft read after is always whole."""
    old = np.ones((200, 300), np.uint8)
    seen = set()
    step = 0
    while True:
        step += 1
        write_draft(ws, "1", old)
        code, steps = run_killed_at(step, DRAFT_WRITER, ws.root)
        draft = read_draft(ws, "1")  # a torn file raises ReadError here
        assert draft.mask.shape == (200, 300) and np.unique(draft.mask).size == 1, f"step {step}"
        seen.add(int(draft.mask[0, 0]))
        assert draft_sample_ids(ws) == ["1"]  # a killed write's temporary file is no draft
        if code == 0:
            break
    assert steps == step - 1 >= 4 and seen == {1, 2}, (steps, seen)
    np.testing.assert_array_equal(ws.current_mask("1"), box(5, 15, 5, 20))  # the workspace itself untouched
