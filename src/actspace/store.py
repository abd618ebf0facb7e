"""Zarr v3 stores written atomically, with provenance attributes.

Every intermediate of the pipeline is a Zarr v3 group. A writer builds it under a hidden
temporary name beside the target and renames it into place only when the job succeeded, so an
interrupted run never leaves a store that looks complete. Readers check the ``complete`` mark
and the arrays they need, and name the store when something is wrong.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import zarr
import zarr.codecs

from actspace.errors import ActspaceError
from actspace.provenance import package_versions, utc_now

CODECS = ("none", "zstd", "blosc-lz4")

# Snakemake marks each directory() output with a .snakemake_timestamp file, which zarr
# reports as a foreign object whenever it lists a store's members.
warnings.filterwarnings("ignore", message=r"Object at \.snakemake_timestamp is not recognized")


def compressors_for(codec: str) -> Any:
    """Zarr v3 compressor list for a codec name (see ``benchmarks/capture_codec.py``)."""
    if codec == "none":
        return None
    if codec == "zstd":
        return [zarr.codecs.ZstdCodec(level=1)]
    if codec == "blosc-lz4":
        return [zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")]
    raise ActspaceError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")


def provenance(**fields: Any) -> dict[str, Any]:
    """Attributes every store carries: what made it, from what, with which versions, when."""
    return {"created": utc_now(), "versions": package_versions(), **fields}


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; rename it to ``path`` if the block succeeds.

    On any exception (or interrupt) the temporary folder is removed and ``path`` is left as
    it was. An existing non-empty ``path`` is an error unless ``overwrite``: a finished
    result is never silently replaced (Snakemake removes a stale output itself before
    rerunning its job, and may leave an empty folder in its place).
    """
    path = Path(path)
    if path.exists() and not _is_empty_dir(path) and not overwrite:
        raise ActspaceError(f"{path} already exists; refusing to overwrite a finished result")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        shutil.rmtree(path)
    os.rename(tmp, path)


@contextlib.contextmanager
def atomic_store(
    path: str | os.PathLike, attrs: Mapping[str, Any], overwrite: bool = False
) -> Iterator[zarr.Group]:
    """Create a Zarr v3 group under a temporary name; rename it to ``path`` on success.

    Parameters
    ----------
    path
        Final location of the store.
    attrs
        Attributes written at creation (provenance); more can be added inside the block.
    overwrite
        Replace an existing store (see :func:`atomic_directory`).
    """
    with atomic_directory(path, overwrite) as tmp:
        group = zarr.open_group(tmp, mode="w", zarr_format=3)
        group.attrs.update(dict(attrs))
        yield group
        group.attrs["complete"] = True


def open_store(path: str | os.PathLike, arrays: Sequence[str] = ()) -> zarr.Group:
    """Open a finished store read-only, checking it is complete and holds ``arrays``."""
    path = Path(path)
    if not path.exists():
        raise ActspaceError(f"store {path} does not exist")
    try:
        group = zarr.open_group(path, mode="r", zarr_format=3)
    except Exception as err:  # zarr raises several types for a damaged store
        raise ActspaceError(f"store {path} is not a readable Zarr v3 group ({err})") from err
    if not group.attrs.get("complete", False):
        raise ActspaceError(f"store {path} is incomplete (its writer did not finish); rerun it")
    present = set(group.array_keys())
    missing = [name for name in arrays if name not in present]
    if missing:
        raise ActspaceError(f"store {path} lacks the arrays {missing} (corrupt or foreign store)")
    return group


def stored_bytes(path: str | os.PathLike) -> int:
    """Bytes the store occupies on disk (all chunk and metadata files)."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def write_csv(
    path: str | os.PathLike,
    rows: Sequence[Mapping[str, Any]],
    fields: Sequence[str] | None = None,
    float_format: str | None = None,
) -> None:
    """Rows of dicts as a CSV table, written under a temporary name and renamed when complete.

    Columns are ``fields``, else every key in first-seen order; ``float_format`` (e.g.
    ``".6g"``) formats float cells.
    """
    if fields is None:
        fields = list(dict.fromkeys(key for row in rows for key in row))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields))
        writer.writeheader()
        for row in rows:
            if float_format is not None:
                row = {
                    k: format(v, float_format) if isinstance(v, float) else v
                    for k, v in row.items()
                }
            writer.writerow(row)
    os.replace(tmp, target)


def read_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a CSV table as :func:`write_csv` writes them, numbers parsed (int, else float)."""

    def parse(value: str) -> Any:
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
        return value

    with open(path, newline="", encoding="utf-8") as handle:
        return [{k: parse(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def write_json(data: Any, path: str | os.PathLike) -> None:
    """``data`` as indented JSON, written under a temporary name and renamed when complete."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, target)
