"""Atomic Zarr v3 stores: complete-or-absent, never silently overwritten, damage named."""

import numpy as np
import pytest
import zarr

from actspace.errors import ActspaceError
from actspace.store import atomic_store, open_store, provenance


def test_store_round_trip_with_provenance(tmp_path):
    path = tmp_path / "a.zarr"
    with atomic_store(path, provenance(kind="test", model="m")) as group:
        group.create_array("x", data=np.arange(6, dtype=np.float32).reshape(2, 3))
    group = open_store(path, ["x"])
    assert group.attrs["kind"] == "test" and group.attrs["complete"] is True
    assert "torch" in group.attrs["versions"] and group.attrs["created"]
    assert zarr.open_group(path, mode="r").metadata.zarr_format == 3
    np.testing.assert_array_equal(group["x"][:], np.arange(6).reshape(2, 3))


def test_interrupted_write_leaves_nothing(tmp_path):
    path = tmp_path / "a.zarr"
    with pytest.raises(KeyboardInterrupt):
        with atomic_store(path, {}) as group:
            group.create_array("x", data=np.zeros(3))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_existing_store_is_not_overwritten(tmp_path):
    path = tmp_path / "a.zarr"
    with atomic_store(path, {}) as group:
        group.create_array("x", data=np.ones(3))
    with pytest.raises(ActspaceError, match="refusing to overwrite"):
        with atomic_store(path, {}) as group:
            group.create_array("x", data=np.zeros(3))
    np.testing.assert_array_equal(open_store(path, ["x"])["x"][:], np.ones(3))


def test_damaged_stores_are_named(tmp_path):
    with pytest.raises(ActspaceError, match="does not exist"):
        open_store(tmp_path / "missing.zarr")
    not_zarr = tmp_path / "junk.zarr"
    not_zarr.mkdir()
    (not_zarr / "zarr.json").write_text("{not json")
    with pytest.raises(ActspaceError, match="junk.zarr"):
        open_store(not_zarr)
    incomplete = tmp_path / "half.zarr"
    zarr.open_group(incomplete, mode="w", zarr_format=3)
    with pytest.raises(ActspaceError, match="incomplete"):
        open_store(incomplete)
    path = tmp_path / "a.zarr"
    with atomic_store(path, {}) as group:
        group.create_array("x", data=np.ones(3))
    with pytest.raises(ActspaceError, match="lacks the arrays \\['resid'\\]"):
        open_store(path, ["x", "resid"])


def test_write_csv_columns_format_and_no_temp_left(tmp_path):
    from actspace.store import write_csv

    out = tmp_path / "sub" / "table.csv"
    write_csv(out, [{"a": 1, "b": 0.123456789}, {"a": 2, "c": "x"}], float_format=".3g")
    assert out.read_text().splitlines() == ["a,b,c", "1,0.123,", "2,,x"]
    write_csv(out, [{"a": 1, "b": 2}], fields=["b", "a"])
    assert out.read_text().splitlines() == ["b,a", "2,1"]
    assert [p.name for p in out.parent.iterdir()] == ["table.csv"]
