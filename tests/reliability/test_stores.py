"""Atomic Zarr v3 stores: complete-or-absent, never silently overwritten, damage named."""

from pathlib import Path

import numpy as np
import pytest
import zarr

from actspace.errors import ActspaceError
from actspace.store import atomic_store, open_store, provenance, verify_store


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


def _store_with_blank_chunk(path, compressors="auto"):
    """A store whose array has 3 chunks, the middle one all fill value (zeros)."""
    data = np.arange(12, dtype=np.float32).reshape(6, 2)
    data[2:4] = 0
    with atomic_store(path, {}) as group:
        group.create_array("x", data=data, chunks=(2, 2), compressors=compressors)
        group.create_group("sub").create_array("y", data=np.ones(4), chunks=(2,))
    return data


@pytest.mark.parametrize("compressors", ["auto", None])
def test_every_chunk_is_written_and_checksummed(tmp_path, compressors):
    path = tmp_path / "a.zarr"
    data = _store_with_blank_chunk(path, compressors)
    group = open_store(path, ["x", "sub/y"])
    assert group["x"].nchunks_initialized == 3  # the blank chunk is a file too
    assert type(group["x"].metadata.codecs[-1]).__name__ == "Crc32cCodec"
    assert type(group["sub/y"].metadata.codecs[-1]).__name__ == "Crc32cCodec"
    np.testing.assert_array_equal(group["x"][:], data)
    assert verify_store(path) == 5
    from actspace.cli import main

    assert main(["verify", str(path)]) == 0


def test_a_deleted_chunk_is_refused_not_read_as_zeros(tmp_path):
    path = tmp_path / "a.zarr"
    _store_with_blank_chunk(path)
    (path / "x" / "c" / "2" / "0").unlink()
    for read in (
        lambda: open_store(path, ["x"]),
        lambda: open_store(path),
        lambda: verify_store(path),
    ):
        with pytest.raises(ActspaceError, match=r"'x'.*(2 of its 3 chunk|lacks 1 chunk)") as err:
            read()
        assert f"snakemake --forcerun {path}" in str(err.value)


def test_changed_bytes_fail_the_checksum_naming_the_chunk(tmp_path):
    path = tmp_path / "a.zarr"
    _store_with_blank_chunk(path, None)
    chunk = path / "x" / "c" / "1" / "0"
    raw = bytearray(chunk.read_bytes())
    raw[3] ^= 0x01
    chunk.write_bytes(bytes(raw))
    group = open_store(path, ["x"])  # present, so it opens; the read is what fails
    with pytest.raises(ValueError, match="checksum"):
        group["x"][:]
    with pytest.raises(ActspaceError, match=r"'x', chunk \[2:4, 0:2\] fails its crc32c"):
        verify_store(path)
    from actspace.cli import main

    assert main(["verify", str(path)]) == 1


def test_a_job_names_the_damaged_input_store(tmp_path, capsys):
    """The glue turns Zarr's bare checksum error into one line naming store, chunk, fix."""
    from types import SimpleNamespace

    from actspace.jobs import job

    path = tmp_path / "a.zarr"
    _store_with_blank_chunk(path, None)
    chunk = path / "x" / "c" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-1] + b"\x00")
    smk = SimpleNamespace(input=[str(path)], log=[], threads=1, rule="reader")
    with pytest.raises(SystemExit):
        with job(smk):
            open_store(path, ["x"])["x"][:]
    message = capsys.readouterr().err
    assert "error in rule reader" in message and "chunk [0:2, 0:2]" in message
    assert "forcerun" in message and "Traceback" not in message


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path):
    """SIGKILL leaves `.{name}.tmp-{pid}`; the next writer of that output removes it (its
    process is gone), never a temporary of a process that still runs."""
    import os
    import subprocess
    import sys

    path = tmp_path / "a.zarr"
    script = (
        "import os, sys, signal\n"
        "sys.path[:0] = [sys.argv[2]]\n"
        "from actspace.store import atomic_store\n"
        "with atomic_store(sys.argv[1], {}) as group:\n"
        "    group.create_array('x', shape=(10,), dtype='f4')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    result = subprocess.run([sys.executable, "-c", script, str(path), src])
    assert result.returncode == -9
    stale = list(tmp_path.glob(".a.zarr.tmp-*"))
    assert len(stale) == 1 and not path.exists()
    living = tmp_path / f".a.zarr.tmp-{os.getppid()}"  # a process that still runs
    living.mkdir()
    with atomic_store(path, {}) as group:
        group.create_array("x", data=np.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.zarr", living.name])
    np.testing.assert_array_equal(open_store(path, ["x"])["x"][:], np.ones(2))


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, capsys):
    """A write that fails for lack of space (or permission) ends the job with one line
    naming the path; the half-written store is removed, an earlier result is untouched."""
    import errno
    import os
    from types import SimpleNamespace

    from actspace.jobs import job

    earlier = tmp_path / "earlier.zarr"
    with atomic_store(earlier, {}) as group:
        group.create_array("x", data=np.ones(3))
    path = tmp_path / "a.zarr"
    smk = SimpleNamespace(input=[], log=[], threads=1, rule="writer")
    with pytest.raises(SystemExit):
        with job(smk):
            with atomic_store(path, {}) as group:
                group.create_array("x", data=np.ones(3))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path / "x"))
    message = capsys.readouterr().err
    assert f"cannot write {path / 'x'}: No space left on device" in message
    assert "Traceback" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier.zarr"]
    np.testing.assert_array_equal(open_store(earlier, ["x"])["x"][:], np.ones(3))
