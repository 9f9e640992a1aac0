"""The export format registry: a format added from outside the package goes through the one export path."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from _export_data import make_palette

from medseg.cli import main
from medseg.cli.main import build_parser
from medseg.errors import ExportError
from medseg.export import (
    FORMATS,
    ExportWriter,
    export_dataset,
    format_names,
    get_writer,
    register_format,
    unregister_format,
)
from medseg.export.files import sha256_file
from medseg.export.images import WrittenFile
from medseg.export.item import ExportItem, SplitPlan, Written
from medseg.export.writers_folders import write_image
from medseg.io.rle import rle_decode, rle_encode
from medseg.workspace import Workspace


class RleCsvWriter(ExportWriter):
    """Kaggle-style: ``images/<id>.<suffix>`` and one ``labels.csv`` of (id, class, segmentation) RLE rows."""

    name = "rle_csv"
    description = "images/ and labels.csv holding one run-length row per sample and class"

    def __init__(self, root: Path, classmap, *, mask_scale: int = 1, name: str | None = None):
        if mask_scale != 1:
            raise ExportError("run-length rows hold class membership: no mask scaling")
        self.root, self.classmap, self.rows = root, classmap, []

    def write(self, item: ExportItem) -> Written:
        for c in self.classmap.classes:
            self.rows.append((item.stem, c.name, rle_encode(item.mask == c.id)))
        return Written([write_image(item, self.root / "images" / item.stem)], [])

    def finish(self, written: dict[str, Written], split: SplitPlan | None, meta: dict) -> list[WrittenFile]:
        path = self.root / "labels.csv"
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows([("id", "class", "segmentation"), *self.rows])
        return [WrittenFile(path, sha256_file(path))]

    def manifest_extra(self) -> dict:
        return {"rle": "1-based starts, column-major runs (Kaggle's convention)"}

    def result_note(self, split: SplitPlan | None) -> str:
        return f" {len(self.rows)} RLE rows in labels.csv."


@pytest.fixture
def rle_csv():
    register_format(RleCsvWriter)
    try:
        yield RleCsvWriter
    finally:
        unregister_format(RleCsvWriter.name)


@pytest.fixture
def ws(tmp_path):
    with Workspace.create(tmp_path / "ws", make_palette(tmp_path / "tissue")) as w:
        fixed = w.current_mask("tissue_1").copy()
        fixed[:3, :] = 2  # a correction the export must carry
        w.save_revision("tissue_1", fixed, origin="manual")
        w.set_status("tissue_3", "excluded", "out of focus")
        yield w


def test_the_formats_are_listed_from_the_registry_and_follow_the_protocol(tmp_path, ws):
    assert format_names() == tuple(FORMATS) == ("folders", "nnunet", "monai")
    for name in format_names():
        writer = get_writer(name)(tmp_path / name, ws.classmap)
        assert isinstance(writer, ExportWriter) and writer.name == name
        assert writer.description.strip() and "\n" not in writer.description
    with pytest.raises(ExportError, match="unknown export format 'coco'; valid: folders, nnunet, monai"):
        get_writer("coco")


def test_a_registered_format_is_written_by_the_one_export_path(ws, rle_csv, tmp_path):
    assert "rle_csv" in format_names()
    out = tmp_path / "kaggle"
    result = export_dataset(ws, out, "rle_csv")
    assert result.n_samples == 3 and "3 exported as rle_csv" in result.summary_text
    n_rows = 3 * len(ws.classmap.classes)
    assert result.summary_text.endswith(f" {n_rows} RLE rows in labels.csv.")  # the writer's note
    with open(out / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == n_rows
    names = {c.name: c.id for c in ws.classmap.classes}
    assert {r["id"] for r in rows} == {"tissue_0", "tissue_1", "tissue_2"}
    for r in rows:
        truth = ws.current_mask(r["id"]) == names[r["class"]]
        assert np.array_equal(rle_decode(r["segmentation"], truth.shape), truth), (r["id"], r["class"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "rle_csv" and manifest["rle"].startswith("1-based")
    assert manifest["files"] == [{"path": "labels.csv", "sha256": sha256_file(out / "labels.csv"), "how": "written"}]
    left = {s["id"]: s["left_out"] for s in manifest["samples"] if s["exported"] is None}
    assert list(left) == ["tissue_3"] and "excluded" in left["tissue_3"]
    # the writer's own check runs before anything is written
    with pytest.raises(ExportError, match="no mask scaling"):
        export_dataset(ws, tmp_path / "scaled", "rle_csv", mask_scale=255)
    assert not (tmp_path / "scaled").exists()


def test_the_cli_offers_a_registered_format_and_overwrites_its_export(ws, rle_csv, tmp_path, capsys):
    out = tmp_path / "kaggle"
    assert main(["export", str(ws.root), "--format", "rle_csv", "--out", str(out), "--quiet"]) == 0
    assert "RLE rows in labels.csv" in capsys.readouterr().out
    # --overwrite knows the files it wrote: the manifest vouches for labels.csv
    assert main(["export", str(ws.root), "--format", "rle_csv", "--out", str(out), "--overwrite", "--quiet"]) == 0
    unregister_format("rle_csv")
    try:
        with pytest.raises(SystemExit):
            build_parser().parse_args(["export", str(ws.root), "--format", "rle_csv", "--out", str(out)])
        with pytest.raises(ExportError, match="valid: folders, nnunet, monai"):
            export_dataset(ws, tmp_path / "again", "rle_csv")
    finally:
        register_format(RleCsvWriter)


def test_registering_is_checked(rle_csv):
    with pytest.raises(ValueError, match="already registered"):
        register_format(RleCsvWriter)

    class NoFinish:
        name = "half"

        def write(self, item):
            return Written([], [])

    with pytest.raises(TypeError, match="lacks finish"):
        register_format(NoFinish)
    with pytest.raises(TypeError):
        register_format(RleCsvWriter(Path("x"), None))  # an instance, not the class
    assert "half" not in FORMATS
