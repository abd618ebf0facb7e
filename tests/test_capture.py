"""Capture: batching, chunked writing around the page cache, padding independence and store
layout."""

import errno
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from actspace.data.batching import batches
from actspace.data.corpora import build_corpus
from actspace.methods.capture.job import CaptureSettings, capture_residuals
from actspace.methods.capture import record
from actspace.methods.capture.record import ChunkWriter, residual_hook_names, write_uncached
from actspace.models import load_model
from actspace.models.sources import materialise
from actspace.store import atomic_store, open_store
from conftest import with_defaults


def settings(**values) -> CaptureSettings:
    """Capture settings: the schema's defaults with ``values`` changed."""
    section = {"models": ["tiny"], "corpora": ["p"], **values}
    return CaptureSettings.from_config(with_defaults(section, "capture"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_llama_dir):
    root = tmp_path_factory.mktemp("capture")
    materialise("tiny", {"source": "local", "path": str(tiny_llama_dir)}, root / "model")
    prompts = ["the cat sat on a mat", "a dog", "one two three four five six seven", "red"]
    spec = with_defaults({"type": "prompts", "prompts": prompts}, "corpora", "*")
    build_corpus("p", spec, root / "model", root / "p.zarr", "cpu")
    return root, load_model(root / "model")


def test_batches_respect_the_token_budget():
    offsets = np.cumsum([0, 3, 5, 2, 9, 1])
    groups = list(batches(offsets, batch_tokens=10))
    assert [d for g in groups for d in g] == [0, 1, 2, 3, 4]
    for group in groups:
        lengths = [offsets[d + 1] - offsets[d] for d in group]
        assert len(group) == 1 or max(lengths) * len(group) <= 10


@pytest.mark.parametrize("background", [False, True])
def test_chunk_writer_writes_every_row_once(background):
    """Layer-major blocks land token-major, in chunk-aligned writes, also from the thread."""
    array = np.full((23, 3, 2), -1.0)
    writes = []

    class Recorder:
        def __setitem__(self, key, value):
            writes.append((key[0].start, key[0].stop))
            array[key] = value

    writer = ChunkWriter(Recorder(), chunk_rows=5, background=background)
    rows = np.arange(23 * 3 * 2, dtype=float).reshape(23, 3, 2)
    for start, stop in [(0, 3), (3, 4), (4, 12), (12, 23)]:
        writer.append(np.ascontiguousarray(rows[start:stop].transpose(1, 0, 2)))
    writer.close()
    np.testing.assert_array_equal(array, rows)
    assert all(start % 5 == 0 for start, _ in writes)  # chunk-aligned writes only
    assert all((stop - start) % 5 == 0 or stop == 23 for start, stop in writes)  # but the end


@pytest.mark.parametrize("refused", [False, True])
def test_the_direct_chunk_writer_stores_every_row(tmp_path, monkeypatch, refused):
    """With direct writes (or Zarr's, where the file system refuses them) the array holds
    every row, its checksums verify, and the chunk files are exactly the array's."""
    if refused:

        def refuse(path, data):
            raise OSError(errno.EINVAL, "Invalid argument", str(path))

        monkeypatch.setattr(record, "write_uncached", refuse)
    rows = np.random.default_rng(0).normal(size=(23, 3, 7)).astype(np.float32)
    with atomic_store(tmp_path / "a.zarr", {}) as group:
        array = group.create_array("x", shape=(23, 3, 7), chunks=(5, 1, 7), dtype="float32")
        writer = ChunkWriter(array, chunk_rows=5, direct=True)
        for start, stop in [(0, 3), (3, 12), (12, 23)]:
            writer.append(np.ascontiguousarray(rows[start:stop].transpose(1, 0, 2)))
        writer.close()
        assert writer.array.store.direct is (not refused and hasattr(os, "O_DIRECT"))
    np.testing.assert_array_equal(open_store(tmp_path / "a.zarr", ["x"])["x"][:], rows)
    with atomic_store(tmp_path / "zarr.zarr", {}) as group:  # Zarr's own write
        group.create_array("x", shape=(23, 3, 7), chunks=(5, 1, 7), dtype="float32")[:] = rows
    ours, zarrs = (_chunk_bytes(tmp_path / name / "x") for name in ("a.zarr", "zarr.zarr"))
    assert len(ours) == 5 * 3 and ours == zarrs  # byte for byte, no temporary file left


def _chunk_bytes(folder: Path) -> dict[str, bytes]:
    chunks = (p for p in folder.rglob("*") if p.is_file() and p.name != "zarr.json")
    return {str(p.relative_to(folder)): p.read_bytes() for p in chunks}


def test_a_failed_background_write_is_raised():
    class Full:
        def __setitem__(self, key, value):
            raise OSError("No space left on device")

    writer = ChunkWriter(Full(), chunk_rows=2)
    writer.append(np.zeros((1, 4, 1)))
    with pytest.raises(OSError, match="No space"):
        writer.append(np.zeros((1, 4, 1)))
        writer.close()


@pytest.mark.parametrize("batch_tokens", [1, 16, 1000])
def test_capture_is_independent_of_batching(tmp_path, tiny, batch_tokens):
    root, adapter = tiny
    capture_residuals(
        adapter,
        root / "p.zarr",
        tmp_path / "a.zarr",
        settings(batch_tokens=batch_tokens, chunk_tokens=4),
    )
    group = open_store(tmp_path / "a.zarr", ["resid", "tokens", "doc_offsets"])
    tokens, offsets, resid = group["tokens"][:], group["doc_offsets"][:], group["resid"][:]
    assert resid.shape == (len(tokens), adapter.n_layers + 1, adapter.d_model)
    assert group["resid"].chunks == (4, 1, adapter.d_model)
    for doc in range(len(offsets) - 1):  # reference: each document alone, no padding
        ids = torch.tensor(tokens[offsets[doc] : offsets[doc + 1]], dtype=torch.long)[None]
        _, cache = adapter.run_with_cache(ids, residual_hook_names(adapter.n_layers))
        expected = torch.stack([cache[n][0] for n in residual_hook_names(adapter.n_layers)], 1)
        np.testing.assert_allclose(
            resid[offsets[doc] : offsets[doc + 1]], expected.numpy(), rtol=1e-5, atol=1e-5
        )


def test_float16_storage_and_codec(tmp_path, tiny):
    root, adapter = tiny
    attrs = capture_residuals(
        adapter, root / "p.zarr", tmp_path / "h.zarr", settings(dtype="float16", codec="zstd")
    )
    group = open_store(tmp_path / "h.zarr", ["resid"])
    assert group["resid"].dtype == np.float16
    assert attrs["codec"] == "zstd" and attrs["tokens_per_s"] > 0
    assert 0 < attrs["bytes_per_activation"] < 4


@pytest.mark.parametrize(
    ("dtype", "scale", "message"),
    [
        ("float32", float("nan"), r"capture: NaN in resid\[:, 2\]"),
        ("float16", 1e9, r"capture: Inf in resid\[:, 2\].*set capture.dtype: float32"),
    ],
)
def test_a_non_finite_residual_stops_the_capture(tmp_path, tiny, dtype, scale, message):
    """NaN from the model, or a value beyond float16's range, stops the job naming the
    layer and documents; no store is left behind."""
    from actspace.errors import ActspaceError

    root, _ = tiny
    adapter = load_model(root / "model")  # a fresh copy: the fixture's stays intact
    with torch.no_grad():
        block = adapter.base_model.layers[1]
        block.mlp.down_proj.weight.mul_(scale)  # the stream after block 1 = resid[:, 2]
    with pytest.raises(ActspaceError, match=message):
        capture_residuals(adapter, root / "p.zarr", tmp_path / "n.zarr", settings(dtype=dtype))
    assert not (tmp_path / "n.zarr").exists()


def test_several_sites_come_from_one_pass_and_equal_the_adapters_cache(tmp_path, tiny):
    from actspace.methods.capture.record import site_hook_names

    root, adapter = tiny
    sites = ["resid", "attn_out", "mlp_out"]
    attrs = capture_residuals(
        adapter, root / "p.zarr", tmp_path / "s.zarr", settings(sites=sites, chunk_tokens=4)
    )
    assert attrs["sites"] == sites
    group = open_store(tmp_path / "s.zarr", sites)
    tokens, offsets = group["tokens"][:], group["doc_offsets"][:]
    n = adapter.n_layers
    assert [group[s].shape[1] for s in sites] == [n + 1, n, n]
    for doc in range(len(offsets) - 1):
        ids = torch.tensor(tokens[offsets[doc] : offsets[doc + 1]], dtype=torch.long)[None]
        for site in sites:
            names = site_hook_names(site, n)
            _, cache = adapter.run_with_cache(ids, names)
            expected = torch.stack([cache[name][0] for name in names], 1).numpy()
            np.testing.assert_allclose(
                group[site][offsets[doc] : offsets[doc + 1]], expected, rtol=1e-5, atol=1e-6
            )


def test_a_bfloat16_model_is_stored_bit_exactly(tmp_path, tiny):
    """bfloat16 storage keeps a bfloat16 model's bits (uint16) and reads back exactly; asked
    of a float32 model it is refused rather than silently rounding."""
    from actspace.errors import ActspaceError
    from actspace.methods.capture.record import residual_hook_names
    from actspace.store import read_site

    root, adapter = tiny
    with pytest.raises(ActspaceError, match="runs in float32: store float32"):
        capture_residuals(adapter, root / "p.zarr", tmp_path / "x.zarr", settings(dtype="bfloat16"))
    half = load_model(root / "model")
    half.model.to(torch.bfloat16)
    capture_residuals(half, root / "p.zarr", tmp_path / "b.zarr", settings(dtype="bfloat16"))
    group = open_store(tmp_path / "b.zarr", ["resid"])
    assert group["resid"].dtype == np.uint16 and group.attrs["model_dtype"] == "bfloat16"
    stored = read_site(group, "resid")
    tokens, offsets = group["tokens"][:], group["doc_offsets"][:]
    names = residual_hook_names(half.n_layers)
    for doc in range(len(offsets) - 1):
        ids = torch.tensor(tokens[offsets[doc] : offsets[doc + 1]], dtype=torch.long)[None]
        _, cache = half.run_with_cache(ids, names)
        expected = torch.stack([cache[name][0] for name in names], 1).float().numpy()
        rows = stored[offsets[doc] : offsets[doc + 1]]
        assert rows.dtype == np.float32
        np.testing.assert_array_equal(rows.view(np.uint32), expected.view(np.uint32))


def test_weights_changed_after_materialising_are_refused(tmp_path, tiny):
    from actspace.errors import ActspaceError

    root, _ = tiny
    copy = tmp_path / "model"
    shutil.copytree(root / "model", copy)
    weights = copy / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0x01  # one bit of the last weight
    weights.write_bytes(bytes(raw))
    with pytest.raises(ActspaceError, match=r"no longer match the sha256.*--forcerun"):
        load_model(copy)


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="the platform has no O_DIRECT")
@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 4096 + 5])
def test_a_direct_write_is_the_whole_file_at_any_size(tmp_path, size):
    """Padded to whole blocks, truncated back: the file is exactly the bytes, also when it
    replaces a longer file."""
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    path = tmp_path / "nested" / "chunk"
    path.parent.mkdir()
    path.write_bytes(b"x" * (size + 9000))
    write_uncached(path, data)
    assert path.read_bytes() == data


def _resident_pages(path: Path) -> int:
    out = subprocess.run(
        ["fincore", "--raw", "--noheadings", "--output", "PAGES", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.split()[0])


@pytest.mark.skipif(shutil.which("fincore") is None, reason="needs util-linux's fincore")
@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="the platform has no O_DIRECT")
def test_a_direct_write_leaves_nothing_in_the_page_cache(tmp_path):
    """The same bytes written through the page cache are resident; written directly, none."""
    data = np.ones(1 << 20, dtype=np.float32).tobytes()
    cached, direct = tmp_path / "cached", tmp_path / "direct"
    cached.write_bytes(data)
    try:
        write_uncached(direct, data)
    except OSError as error:
        if error.errno == errno.EINVAL:
            pytest.skip("this file system refuses O_DIRECT")
        raise
    assert _resident_pages(cached) > 0
    assert _resident_pages(direct) == 0
    assert direct.read_bytes() == data
