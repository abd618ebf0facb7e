"""Recording hook sites of every token at every layer into a Zarr v3 store.

``resid[t, l]`` is the residual stream entering block ``l`` (``l < n_layers``) and
``resid[t, n_layers]`` the output of the last block before the final norm, for token ``t`` of
the corpus (documents concatenated, no padding rows); ``attn_out[t, l]`` and ``mlp_out[t, l]``
(when ``capture.sites`` asks for them) are what block ``l``'s attention and MLP add to the
stream. All sites come from the same forward pass of each batch. Documents run in
right-padded batches of at most ``batch_tokens`` padded tokens; rows are written in whole chunks of ``chunk_tokens``
tokens x one layer x d_model, by a background thread while the next batch runs, so memory
stays bounded by two batches plus a chunk whatever the corpus size, and the written chunks
leave the page cache a batch later (:class:`PageCacheEvictor`).
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

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
    or by ``close``. With ``evict_pages`` (a Zarr array in a local store) each write's chunk
    files leave the page cache a write later (:class:`PageCacheEvictor`).
    """

    def __init__(
        self, array: Any, chunk_rows: int, background: bool = True, evict_pages: bool = False
    ):
        self.array = array
        self.evictor = PageCacheEvictor() if evict_pages else None
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
            if self.evictor is not None:
                self.evictor.close()
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
        if self.evictor is not None:
            self.evictor.written(chunk_files(self.array, range(start, stop)))


def chunk_files(array: Any, rows: range) -> list[Path]:
    """The files of the chunks that hold ``rows`` (of the first axis, every other axis whole)
    of an array in a local store, in the store's own chunk key encoding."""
    root = Path(array.store.root) / array.path
    first_axis = range(rows.start // array.chunks[0], -(-rows.stop // array.chunks[0]))
    other_axes = [range(n) for n in array.cdata_shape[1:]]
    return [
        root / array.metadata.encode_chunk_key(coords)
        for coords in itertools.product(first_axis, *other_axes)
    ]


class PageCacheEvictor:
    """Drops a streaming writer's files from the page cache one round after writing them.

    A capture writes gigabytes its own job never reads back; left in the page cache, every
    new page is fresh memory, which costs far more than a recycled page on a virtual machine
    whose host reclaims free guest memory (here 1 GB written took 3 s of CPU, 0.3 s with
    eviction, on the same 2 cores as the forward pass), and it counts against a cluster job's
    memory limit. ``POSIX_FADV_DONTNEED`` on a round's files starts their writeback; the
    same call one round later, when they are clean, drops them, so the cache holds about
    two rounds. No fsync: durability is what it was, and a later reader reads from disk.
    A no-op where the platform has no ``posix_fadvise``.
    """

    def __init__(self) -> None:
        self.previous: list[Path] = []

    def written(self, files: list[Path]) -> None:
        """Files whose writing just finished (the round before them is now dropped)."""
        for path in self.previous + files:
            drop_from_page_cache(path)
        self.previous = list(files)

    def close(self) -> None:
        """Start the writeback of the last round (it stays cached until the kernel needs it)."""
        for path in self.previous:
            drop_from_page_cache(path)
        self.previous = []


def drop_from_page_cache(path: Path) -> None:
    """Ask the kernel to drop a file's clean pages and start writing back its dirty ones."""
    if not hasattr(os, "posix_fadvise"):
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
