"""Zarr v3 stores written atomically, with provenance attributes and checked chunks.

Every intermediate of the pipeline is a Zarr v3 group. A writer builds it under a hidden
temporary name beside the target and renames it into place only when the job succeeded, so an
interrupted run never leaves a store that looks complete. Every array ends its codec chain
with Zarr's ``crc32c`` checksum codec (verified by Zarr on every read of a chunk) and writes
every chunk, even one equal to the fill value, so that a missing chunk file means damage,
never "all zeros". Readers check the ``complete`` mark, the arrays they need and that each
array has all its chunks, and name the store and the fix when something is wrong.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import os
import shutil
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
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


# set on a store whose arrays carry checksums and every chunk (see module docstring); older
# stores lack it and are read without the chunk count check
CHECKED = "checked_chunks"


def with_checksum(compressors: Any = "auto") -> tuple[Any, ...]:
    """``compressors`` (as Zarr's ``create_array`` takes them; "auto" = Zarr's default zstd)
    followed by the crc32c checksum codec."""
    if isinstance(compressors, str) and compressors == "auto":
        base: tuple[Any, ...] = (zarr.codecs.ZstdCodec(),)
    elif compressors is None:
        base = ()
    elif isinstance(compressors, (list, tuple)):
        base = tuple(compressors)
    else:
        base = (compressors,)
    return (*base, zarr.codecs.Crc32cCodec())


class CheckedGroup:
    """A group being written: every array it creates gets the checksum codec last; every
    other attribute is the underlying :class:`zarr.Group`'s."""

    def __init__(self, group: zarr.Group):
        self._group = group

    def __getattr__(self, name: str) -> Any:
        return getattr(self._group, name)

    def __getitem__(self, key: str) -> Any:
        return self._group[key]

    def __contains__(self, key: str) -> bool:
        return key in self._group

    def create_array(self, name: str, *, compressors: Any = "auto", **kwargs: Any) -> Any:
        return self._group.create_array(name, compressors=with_checksum(compressors), **kwargs)

    def create_group(self, name: str, **kwargs: Any) -> CheckedGroup:
        return CheckedGroup(self._group.create_group(name, **kwargs))


def rerun_hint(path: str | os.PathLike) -> str:
    """How to rebuild a damaged result."""
    return f"delete it or rerun the job that wrote it: snakemake --forcerun {path}"


def provenance(**fields: Any) -> dict[str, Any]:
    """Attributes every store carries: what made it, from what, with which versions, when."""
    return {"created": utc_now(), "versions": package_versions(), **fields}


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary folders that earlier writers of ``path`` left when they were
    killed (SIGKILL, power loss: no cleanup ran), i.e. whose process no longer runs. Only one
    job writes a given output at a time, so a temporary of ``path`` is either ours or dead."""
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[1]
        if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


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
    remove_stale_temporaries(path)
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
        with zarr.config.set({"array.write_empty_chunks": True}):
            yield CheckedGroup(group)
        group.attrs[CHECKED] = True
        group.attrs["complete"] = True


def open_store(path: str | os.PathLike, arrays: Sequence[str] = ()) -> zarr.Group:
    """Open a finished store read-only, checking it is complete, holds ``arrays`` and that
    every array has all its chunks (stores written with checksums)."""
    path = Path(path)
    if not path.exists():
        raise ActspaceError(f"store {path} does not exist")
    try:
        group = zarr.open_group(path, mode="r", zarr_format=3)
    except Exception as err:  # zarr raises several types for a damaged store
        raise ActspaceError(f"store {path} is not a readable Zarr v3 group ({err})") from err
    if not group.attrs.get("complete", False):
        raise ActspaceError(f"store {path} is incomplete (its writer did not finish); rerun it")
    present = dict(_all_arrays(group))
    missing = [name for name in arrays if name not in present]
    if missing:
        raise ActspaceError(f"store {path} lacks the arrays {missing} (corrupt or foreign store)")
    if group.attrs.get(CHECKED, False):
        for name in arrays or present:
            _require_every_chunk(path, name, present[name])
    return group


def _require_every_chunk(path: str | os.PathLike, name: str, array: Any) -> None:
    """Raise unless every chunk file of ``array`` (of the store at ``path``) exists."""
    if array.nchunks_initialized < array.nchunks:
        raise ActspaceError(
            f"store {path}: array {name!r} has {array.nchunks_initialized} of its "
            f"{array.nchunks} chunk files (some were deleted or never written); the "
            f"store is damaged: {rerun_hint(path)}"
        )


def is_checksum_failure(err: Exception) -> bool:
    """Whether ``err`` is Zarr's report of a chunk whose crc32c does not match its bytes."""
    return isinstance(err, ValueError) and "checksum" in str(err)


def verify_store(path: str | os.PathLike) -> int:
    """Read every chunk of every array of a store (Zarr checks each chunk's crc32c on read);
    raise an :class:`ActspaceError` naming the first damaged array and chunk. Returns the
    number of chunks checked."""
    group = open_store(path)
    checked = 0
    for name, array in _all_arrays(group):
        _require_every_chunk(path, name, array)
        for region in _chunk_regions(array):
            try:
                array[region]
            except ValueError as err:
                if not is_checksum_failure(err):
                    raise
                where = ", ".join(f"{s.start}:{s.stop}" for s in region)
                raise ActspaceError(
                    f"store {path}: array {name!r}, chunk [{where}] fails its crc32c checksum "
                    f"(changed on disk); {rerun_hint(path)}"
                ) from None
            checked += 1
    return checked


# attributes that differ between two runs of the same job (when, how fast, with which
# packages); everything else in a store is content and must be identical for the same config
VOLATILE_ATTRS = frozenset(
    {"created", "seconds", "tokens_per_s", "versions", "elapsed", "wall_seconds", "device"}
)


def store_differences(first: str | os.PathLike, second: str | os.PathLike) -> list[str]:
    """What differs between two stores' content: every array bit for bit (NaN equal to
    NaN), every attribute except :data:`VOLATILE_ATTRS`. Empty when they are identical."""
    a, b = open_store(first), open_store(second)
    differences = []
    for name, group_a, group_b in _all_groups(a, b):
        attrs_a = {k: v for k, v in group_a.attrs.items() if k not in VOLATILE_ATTRS}
        attrs_b = {k: v for k, v in group_b.attrs.items() if k not in VOLATILE_ATTRS}
        for key in sorted(set(attrs_a) | set(attrs_b)):
            if json.dumps(attrs_a.get(key), sort_keys=True) != json.dumps(
                attrs_b.get(key), sort_keys=True
            ):
                differences.append(f"{name or '/'} attribute {key!r}")
    arrays_a, arrays_b = dict(_all_arrays(a)), dict(_all_arrays(b))
    for name in sorted(set(arrays_a) | set(arrays_b)):
        if name not in arrays_a or name not in arrays_b:
            differences.append(f"array {name!r} in one store only")
            continue
        x, y = arrays_a[name][...], arrays_b[name][...]
        if x.shape != y.shape or x.dtype != y.dtype:
            differences.append(f"array {name!r}: {x.shape} {x.dtype} vs {y.shape} {y.dtype}")
        elif x.tobytes() != y.tobytes():
            differences.append(f"array {name!r}: values differ")
    return differences


def _all_groups(a: zarr.Group, b: zarr.Group, prefix: str = "") -> Iterator[tuple[str, Any, Any]]:
    yield prefix, a, b
    groups_b = dict(b.groups())
    for name, sub in a.groups():
        if name in groups_b:
            yield from _all_groups(sub, groups_b[name], f"{prefix}{name}/")


def _all_arrays(group: zarr.Group, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, member in group.members():
        if isinstance(member, zarr.Group):
            yield from _all_arrays(member, f"{prefix}{name}/")
        else:
            yield f"{prefix}{name}", member


def _chunk_regions(array: Any) -> Iterator[tuple[slice, ...]]:
    """The index region of each chunk of ``array``."""
    grid = [range(0, max(n, 1), c) for n, c in zip(array.shape, array.chunks)]
    for corner in itertools.product(*grid):
        yield tuple(slice(a, min(a + c, n)) for a, c, n in zip(corner, array.chunks, array.shape))


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


# ---------------------------------------------------------------- activation sites
# how a bfloat16 model's activations are kept exactly: their bits in a uint16 array
BFLOAT16_BITS = "bfloat16-bits"


def from_bfloat16_bits(bits: np.ndarray) -> np.ndarray:
    """float32 values of stored bfloat16 bits (exact: every bfloat16 is a float32)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


class SiteArray:
    """A stored site read as float32 whatever its storage: the array itself, or a view that
    decodes bfloat16 bits on every read (``shape``, ``dtype`` and indexing as an array)."""

    def __init__(self, array: Any):
        self.array = array
        self.shape = array.shape
        self.encoded = array.attrs.get("encoding") == BFLOAT16_BITS
        self.dtype = np.dtype(np.float32) if self.encoded else np.dtype(array.dtype)

    def __getitem__(self, index: Any) -> np.ndarray:
        values = self.array[index]
        return from_bfloat16_bits(values) if self.encoded else values


def read_site(group: Any, site: str = "resid") -> SiteArray:
    """Site ``site`` of an activation store, decoded to floats on read."""
    return SiteArray(group[site])
