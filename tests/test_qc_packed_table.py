"""QC's per-sample number measures held packed (medseg.qc.spill.PackedTable): every value read back equal,
of the same types, in far less memory than the dicts they were."""

from __future__ import annotations

import sys
import tracemalloc

import numpy as np

from medseg.qc.spill import PackedTable, measure_table


def _outline(k: int) -> dict:
    return {"quality": 0.1 + k / 7, "fit": 1 / (k + 3), "contrast": None, "class_id": 1, "sizes": (k, 2 * k)}


def test_values_read_back_equal_with_their_types_keys_and_order():
    t = PackedTable()
    values = {
        "a": _outline(1),
        "b": {1: 3072, 2: {"n": 5, "classes": [1, 2]}},
        "c": 0.006440391764044762,
        "d": None,
        "e": 7,
        "f": b"raw bytes",
        "g": "text",
        "h": {"x": np.float32(0.25), "arr": np.arange(3)},  # marshal cannot take numpy: pickled
    }
    for k, v in values.items():
        t[k] = v
    assert list(t) == list(values) and len(t) == len(values) and "a" in t and "z" not in t
    for k, v in values.items():
        got = t[k]
        if k == "h":
            assert type(got["x"]) is np.float32 and got["x"] == v["x"] and np.array_equal(got["arr"], v["arr"])
            continue
        assert got == v and type(got) is type(v)
    assert list(t["a"]) == list(values["a"]) and type(t["a"]["sizes"]) is tuple
    assert t.get("z") is None and dict(t.items())["e"] == 7
    del t["e"]
    assert "e" not in t


def test_packed_measures_take_a_fraction_of_the_dicts_memory():
    def held(make) -> int:
        tracemalloc.start()
        table = make()
        for k in range(5000):
            table[f"sample-{k:05d}"] = _outline(k)
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return size

    assert held(PackedTable) < 0.6 * held(dict)


def test_measure_tables_pack_numbers_and_spill_pictures():
    tables = measure_table(["outline", "fingerprint", "thumbs"])
    try:
        assert type(tables["outline"]) is PackedTable
        assert all(type(tables[f]).__name__ == "SpillTable" for f in ("fingerprint", "thumbs"))
    finally:
        for t in tables.values():
            getattr(t, "close", lambda: None)()
    assert sys.getsizeof(PackedTable()) > 0
