"""The napari writers go through the write guard: a layer's provenance (its metadata) is never written into,
nor any dataset source folder or workspace; an existing file is replaced only when medseg wrote it."""

from __future__ import annotations

import numpy as np
import pytest
from _guard_data import stem_mask_dataset, tree_hashes

from medseg.errors import DestinationError
from napari_medseg._reader import napari_get_reader
from napari_medseg._writers import layer_sources, write_dataset, write_labels


@pytest.fixture
def ds(cvc_dir, tmp_path):
    return stem_mask_dataset(cvc_dir, tmp_path / "cvc")


def _layers(path):
    return napari_get_reader(str(path))(str(path))


def test_labels_are_never_written_into_their_source(ds, tmp_path):
    image, labels = _layers(ds)[:2]  # the dataset's image stack and its masks
    data, meta, kind = labels
    assert kind == "labels" and str(ds) in layer_sources(meta)
    frame = np.asarray(data[0])
    before = tree_hashes(ds)
    # anywhere under the dataset the layer came from (the dataset itself is given, not just found)
    for dest in (ds / "masks" / "1_mask.png", ds / "edited" / "1.png"):
        with pytest.raises(DestinationError) as e:
            write_labels(str(dest), frame, {**meta, "scale": meta.get("scale", (1, 1, 1))[-2:]})
        assert str(dest) in str(e.value) and str(ds) in str(e.value)
    with pytest.raises(DestinationError, match="is inside the source folder " + str(ds)):
        write_dataset(
            str(ds / "masks" / "out"),
            [(np.asarray(image[0][:1]), image[1], "image"), (np.asarray(data[:1]), meta, "labels")],
        )
    assert tree_hashes(ds) == before


def test_a_file_layer_protects_its_folder_and_a_workspace_layer_its_workspace(ds, tmp_path):
    from medseg.workspace import Workspace

    data, meta, _ = _layers(ds / "masks" / "1_mask.png")[0]
    with pytest.raises(DestinationError, match="the folder holding the input 1_mask.png|the masks/ folder"):
        write_labels(str(ds / "masks" / "copy.png"), np.asarray(data), meta)
    Workspace.create(tmp_path / "ws", ds).close()
    ws_meta = {"metadata": {"medseg": {"source": str(tmp_path / "ws"), "workspace": str(tmp_path / "ws")}}}
    with pytest.raises(DestinationError, match="the workspace"):
        write_labels(str(tmp_path / "ws" / "labels.tif"), np.asarray(data), ws_meta)


def test_own_files_are_replaced_foreign_ones_never(ds, tmp_path):
    data, meta, _ = _layers(ds / "masks" / "1_mask.png")[0]
    ids = (np.asarray(data) > 0).astype(np.uint8)
    out = tmp_path / "labels" / "1.tif"
    assert write_labels(str(out), ids, meta) == [str(out)]
    assert write_labels(str(out), ids * 2, meta) == [str(out)]  # its own earlier file, unchanged since
    (tmp_path / "labels" / "theirs.png").write_bytes(b"someone's file")
    with pytest.raises(DestinationError, match="medseg did not write it"):
        write_labels(str(tmp_path / "labels" / "theirs.png"), ids, meta)
    assert (tmp_path / "labels" / "theirs.png").read_bytes() == b"someone's file"
