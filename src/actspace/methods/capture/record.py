"""Recording hook sites of every token at every layer into a Zarr v3 store.

``resid[t, l]`` is the residual stream entering block ``l`` (``l < n_layers``) and
``resid[t, n_layers]`` the output of the last block before the final norm, for token ``t`` of
the corpus (documents concatenated, no padding rows); ``attn_out[t, l]`` and ``mlp_out[t, l]``
(when ``capture.sites`` asks for them) are what block ``l``'s attention and MLP add to the
stream. All sites come from the same forward pass of each batch. Documents run in
right-padded batches of at most ``batch_tokens`` padded tokens; rows are written in whole chunks of ``chunk_tokens``
tokens x one layer x d_model, by a background thread while the next batch runs, so memory
stays bounded by two batches plus a chunk whatever the corpus size, and the chunks go to
disk around the page cache (:class:`UncachedLocalStore`).
"""

from __future__ import annotations

import asyncio
import errno
import mmap
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr
from zarr.storage import LocalStore

from actspace.data.batching import right_pad
from actspace.models import ModelAdapter

SITES = ("resid", "attn_out", "mlp_out")


def residual_hook_names(n_layers: int) -> list[str]:
    """Hook points whose activations make up ``resid``'s layer axis, in order."""
    return [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)] + ["hook_resid_final"]


def site_hook_names(site: str, n_layers: int) -> list[str]:
    """Hook points of one capture site, in the order of its layer axis."""
    if site == "resid":
        return residual_hook_names(n_layers)
    if site in SITES:
        return [f"blocks.{layer}.hook_{site}" for layer in range(n_layers)]
    raise ValueError(f"unknown capture site {site!r}; choose from {', '.join(SITES)}")


def bfloat16_bits(values: torch.Tensor) -> np.ndarray:
    """A bfloat16 tensor's bits as uint16 (stored exactly)."""
    return values.view(torch.int16).numpy().view(np.uint16)


@torch.no_grad()
def layer_major_sites(
    adapter: ModelAdapter,
    docs: list[np.ndarray],
    pad_id: int,
    sites: tuple[str, ...] = ("resid",),
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Each site's activations for a batch of documents from one forward pass, layer-major:
    (layers of the site, sum of lengths, d_model) on the CPU in ``dtype``.

    Each hook copies its layer's real rows straight into the output as the forward pass
    produces them (device copy and dtype conversion in one step, padding rows dropped), so
    no stack of all layers is ever built and no layer outlives its block. Right padding keeps
    every real token at its own position (rotary or learned), and the causal mask keeps real
    tokens from seeing padding.
    """
    lengths = [len(doc) for doc in docs]
    ids, mask = right_pad(docs, pad_id)
    padded = sum(lengths) < mask.numel()
    real = mask.reshape(-1).nonzero().squeeze(1).to(adapter.device) if padded else None
    outputs, hooks = {}, {}
    for site in sites:
        names = site_hook_names(site, adapter.n_layers)
        out = torch.empty((len(names), sum(lengths), adapter.d_model), dtype=dtype)
        outputs[site] = out
        for slot, name in enumerate(names):
            hooks[name] = _copy_rows(out[slot], real)
    with adapter.hooks(hooks):
        adapter.base_model(input_ids=ids.to(adapter.device), attention_mask=mask.to(adapter.device))
    return outputs


def _copy_rows(target: torch.Tensor, real: torch.Tensor | None):
    def hook(activation: torch.Tensor, name: str) -> None:
        rows = activation.reshape(-1, activation.shape[-1])
        target.copy_(rows if real is None else rows.index_select(0, real))

    return hook


def residuals_of_batch(adapter: ModelAdapter, docs: list[np.ndarray], pad_id: int) -> torch.Tensor:
    """Residual stream of a batch of documents, token-major: (sum of lengths, n_layers + 1,
    d_model), float32 (a view of :func:`layer_major_sites`' ``resid``)."""
    return layer_major_sites(adapter, docs, pad_id)["resid"].transpose(0, 1)


class ChunkWriter:
    """Append layer-major blocks (n_layers + 1, rows, d_model) to a token-major Zarr array
    (tokens, n_layers + 1, d_model), writing only whole, chunk-aligned row ranges until the end.

    With ``background`` the Zarr writes (encoding and file I/O) run in one worker thread, so
    a batch's write overlaps the next batch's forward pass; at most one write is in flight,
    so memory stays bounded by two blocks. A failed write is raised by the next ``append``
    or by ``close``. With ``direct`` (a Zarr array in a local store) the chunk files are
    written around the page cache (:class:`UncachedLocalStore`).
    """

    def __init__(self, array: Any, chunk_rows: int, background: bool = True, direct: bool = False):
        self.array = uncached(array) if direct else array
        self.chunk_rows = chunk_rows
        self.pending: list[np.ndarray] = []
        self.n_pending = 0
        self.written = 0
        self.worker = ThreadPoolExecutor(max_workers=1) if background else None
        self.in_flight: Future | None = None

    def append(self, block: np.ndarray) -> None:
        self.pending.append(block)
        self.n_pending += block.shape[1]
        if self.n_pending >= self.chunk_rows:
            self._flush(final=False)

    def close(self) -> None:
        """Write what is left and wait for every write (raising a failed one)."""
        try:
            self._flush(final=True)
            self._wait()
        finally:
            if self.worker is not None:
                self.worker.shutdown(wait=True)

    def _wait(self) -> None:
        if self.in_flight is not None:
            future, self.in_flight = self.in_flight, None
            future.result()

    def _flush(self, final: bool) -> None:
        if not self.pending:
            return
        block = self.pending[0] if len(self.pending) == 1 else np.concatenate(self.pending, 1)
        n_rows = block.shape[1]
        n_out = n_rows if final else (n_rows // self.chunk_rows) * self.chunk_rows
        rest = block[:, n_out:]
        self.pending = [rest] if rest.shape[1] else []
        self.n_pending = rest.shape[1]
        if not n_out:
            return
        start, self.written = self.written, self.written + n_out
        self._wait()  # one write in flight at most
        if self.worker is None:
            self._write(start, block[:, :n_out])
        else:
            self.in_flight = self.worker.submit(self._write, start, block[:, :n_out])

    def _write(self, start: int, block: np.ndarray) -> None:
        # one layer at a time: each slice is contiguous and maps onto whole chunks, about 3x
        # faster than one write of the transposed block (which Zarr copies chunk by chunk)
        stop = start + block.shape[1]
        for slot in range(block.shape[0]):
            self.array[start:stop, slot] = block[slot]


class UncachedLocalStore(LocalStore):
    """A local Zarr store whose writes bypass the page cache (``O_DIRECT``, see
    :func:`write_uncached`); reads are Zarr's own.

    A capture writes gigabytes its own job never reads back. Through the page cache every
    written page is first a new cache page, which on a virtual machine whose host reclaims
    free guest memory costs a fault into the host (here one 2,048-token batch, 146 MB, took
    0.22-0.33 s of CPU to write, plus the kernel's writeback, on the same 2 cores as the
    forward pass), and the cache grows by the whole store, which counts against a cluster
    job's memory limit. Written directly, the same bytes take 0.03-0.04 s of CPU (0.11 s
    with Zarr's checksum and encoding) and the cache does not grow. Where the file system
    refuses ``O_DIRECT`` (tmpfs before Linux 6.6, some FUSE mounts) or the platform has
    none (macOS), writes fall back to Zarr's.
    """

    def __init__(self, root: str | os.PathLike, **kwargs: Any):
        super().__init__(root, **kwargs)
        self.direct = hasattr(os, "O_DIRECT")

    async def set(self, key: str, value: Any) -> None:
        if not self.direct:
            return await super().set(key, value)
        if not self._is_open:
            await self._open()
        self._check_writable()
        try:
            await asyncio.to_thread(write_uncached, self.root / key, value.as_buffer_like())
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
            self.direct = False  # this file system refuses O_DIRECT: Zarr's write from now on
            await super().set(key, value)


def uncached(array: Any) -> Any:
    """The same Zarr array (in a local store), opened on an :class:`UncachedLocalStore`."""
    return zarr.open_array(UncachedLocalStore(array.store.root), path=array.path, mode="r+")


# O_DIRECT wants buffer addresses, file offsets and lengths in whole logical blocks (512 or
# 4,096 bytes): a page-aligned buffer and lengths padded to 4,096 satisfy both
DIRECT_ALIGNMENT = 4096
_thread_buffers = threading.local()


def write_uncached(path: Path, data: Any) -> None:
    """Write ``data`` (any buffer) as the whole file ``path`` with ``O_DIRECT``: through a
    reused page-aligned buffer of this thread, padded to whole blocks, then truncated to
    its size. Raises ``OSError(EINVAL)`` where the file system refuses direct writes."""
    data = memoryview(data).cast("B")
    size = len(data)
    padded = -(-size // DIRECT_ALIGNMENT) * DIRECT_ALIGNMENT
    buffer = getattr(_thread_buffers, "buffer", None)
    if padded and (buffer is None or len(buffer) < padded):
        buffer = _thread_buffers.buffer = mmap.mmap(-1, padded)  # page-aligned, reused
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o666)
    try:
        if padded:
            buffer[:size] = data
            view = memoryview(buffer)[:padded]
            while view:
                view = view[os.write(fd, view) :]
        os.ftruncate(fd, size)
    finally:
        os.close(fd)
