"""Capture benchmark: the capture job's tokens/s against a bare forward pass and two peers.

Same model, same documents, same batches and thread count for every row, in one process;
each row is the best of ``--repeats`` runs, as a ratio to the bare forward pass:

- bare forward: ``base_model(ids, mask)`` with no hook and nothing kept (the ceiling);
- transformers ``output_hidden_states=True``, every layer's real rows gathered to CPU numpy;
- nnsight (``pip install -e ".[bench]"``) saving the embeddings and every block's output,
  gathered the same way;
- the floor of any capture storing ``--dtype`` on this machine: the bare forward pass plus
  writing the same bytes (``n_layers + 1`` slices of the batch's rows x d_model, fresh files,
  from one reused buffer, no hook, copy, codec or Zarr) through the capture's own
  :class:`ChunkWriter` (background thread, one write in flight), around the page cache as
  the capture writes (``O_DIRECT``, :func:`write_uncached`); and the same floor written
  through the page cache (``bare_write_cached``);
- the capture job's own path (:func:`actspace.methods.capture.job.capture_residuals`:
  forward, hooks, device copy, conversion, Zarr write), its measured loop (the store's
  ``seconds``) plus the closing sync; "vs floor" sets
  every row against the bare pass plus raw write.

Every writing row's time runs until its bytes are on disk (``os.sync()`` at the end, and an
untimed one before every run): a write the kernel defers past the timed window is still paid
for on the same cores, and a short run would otherwise flatter whichever path defers most.
``--pairs N`` adds, per length, N back-to-back pairs of a bare pass and a capture and their
median ratio, less exposed than best-of rows to the machine's drift over a run.
The bare pass is also set against the machine's matmul limit: forward FLOPs per token
(2 x the non-embedding parameters, plus attention) x tokens/s over a measured float32 GEMM
peak. ``--memory 1`` adds peak RSS of a capture of ``--tokens`` and 10x as many tokens, and
of a 3-site capture (resid, attn_out, mlp_out), each in a fresh process (goal: flat within
10%).

    python benchmarks/capture.py --model results/models/smollm2-135m --threads 2 --memory 1
    python benchmarks/capture.py --dtype float16   # the capture storing float16

Writes results/benchmarks/capture.json.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from actspace.data.batching import batches, right_pad
from actspace.data.corpora import documents_of, read_corpus
from actspace.data.generation import pad_token_id
from actspace.methods.capture.job import STORAGE_DTYPES, CaptureSettings, capture_residuals
from actspace.methods.capture.record import ChunkWriter, write_uncached
from actspace.models import load_model
from actspace.store import atomic_store, provenance
from machine import arguments, smollm2, write_record

OPTIONS = {
    "lengths": "64,256",  # document lengths, one table row group each
    "tokens": 4096,  # tokens per corpus
    "batch_tokens": 2048,  # the capture default
    "chunk_tokens": 1024,
    "repeats": 2,
    "dtype": "float32",  # the capture's storage dtype (capture.dtype): float32 or float16
    "memory": 0,  # 1: also peak RSS at 1x and 10x the tokens
    "pairs": 0,  # N: also N back-to-back pairs (bare pass, capture) per length, median ratio
    "child": "",  # internal: capture this corpus in this process and print peak RSS
    "sites": "resid",  # internal: the child's capture sites
}


def write_corpus(path: Path, n_docs: int, length: int, vocab: int, seed: int = 0) -> None:
    """A token store of ``n_docs`` random documents of ``length`` tokens (the speed of a
    forward pass does not depend on which tokens it sees)."""
    tokens = np.random.default_rng(seed).integers(0, vocab, n_docs * length, dtype=np.int32)
    offsets = np.arange(n_docs + 1, dtype=np.int64) * length
    with atomic_store(path, provenance(kind="corpus", corpus="bench")) as group:
        group.create_array("tokens", data=tokens)
        group.create_array("doc_offsets", data=offsets)
        group.create_array("prompt_lengths", data=np.ones(n_docs, dtype=np.int64))


def real_rows(layers: list[torch.Tensor], lengths: list[int]) -> np.ndarray:
    """(real tokens, n layers, d) on the CPU from per-layer (batch, pos, d) tensors."""
    stacked = torch.stack(layers, dim=2)
    rows = torch.cat([stacked[row, :length] for row, length in enumerate(lengths)])
    return rows.to("cpu", torch.float32).numpy()


class RawFiles:
    """A stand-in for the capture's Zarr array under :class:`ChunkWriter`: each assignment
    ``files[start:stop, slot] = values`` becomes one fresh file (no codec, no Zarr), so the
    floor overlaps its writes exactly as the job does; with ``direct`` written around the
    page cache as the capture writes (:func:`write_uncached`), else with plain ``os.write``."""

    def __init__(self, folder: Path, direct: bool):
        self.folder, self.n_files, self.direct = folder, 0, direct

    def __setitem__(self, _where, values: np.ndarray) -> None:
        path, self.n_files = self.folder / str(self.n_files), self.n_files + 1
        data = memoryview(np.ascontiguousarray(values)).cast("B")
        if self.direct:
            write_uncached(path, data)
            return
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


@torch.inference_mode()
def run_peer(
    adapter, documents, offsets, batch_tokens, pad_id, kind: str, folder=None, sink=None
) -> float:
    """Tokens/s of one pass over the corpus with a peer's way of getting activations
    (``bare_write`` and ``bare_write_cached`` write values of ``sink`` = (stored dtype, chunk
    rows) in files under ``folder``, the first around the page cache as the capture does)."""
    model = adapter.base_model
    traced, writer = None, None
    if kind == "nnsight":
        from nnsight import NNsight

        traced = NNsight(model)
    if kind.startswith("bare_write"):
        folder.mkdir(parents=True)
        dtype, chunk_rows = sink
        files = RawFiles(folder, direct=kind == "bare_write")
        writer = ChunkWriter(files, chunk_rows)
        # one reused block of the stored dtype: what is written does not change its cost
        block = np.zeros((adapter.n_layers + 1, batch_tokens, adapter.d_model), dtype=dtype)
    n_tokens, started = 0, time.perf_counter()
    for batch in batches(offsets, batch_tokens):
        docs = [documents[i] for i in batch]
        lengths = [len(doc) for doc in docs]
        ids, mask = right_pad(docs, pad_id)
        ids, mask = ids.to(adapter.device), mask.to(adapter.device)
        if kind == "bare":
            model(input_ids=ids, attention_mask=mask)
        elif kind.startswith("bare_write"):
            model(input_ids=ids, attention_mask=mask)
            writer.append(block[:, : sum(lengths)])
        elif kind == "hidden_states":
            out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            real_rows(list(out.hidden_states), lengths)
        elif kind == "nnsight":
            real_rows(_nnsight_layers(traced, adapter.n_layers, ids, mask), lengths)
        n_tokens += sum(lengths)
    if writer is not None:
        writer.close()
        os.sync()  # the write is done when its bytes are on disk (see the module docstring)
    return n_tokens / (time.perf_counter() - started)


def _nnsight_layers(traced, n_layers: int, ids, mask) -> list[torch.Tensor]:
    """The embeddings and every block's output, saved by an nnsight trace."""
    saved = []
    with traced.trace(input_ids=ids, attention_mask=mask):
        saved.append(traced.embed_tokens.output.save())
        for layer in range(n_layers):
            saved.append(traced.layers[layer].output.save())
    return [s[0] if isinstance(s, tuple) else s for s in saved]


def synced_capture_rate(adapter, corpus: Path, out: Path, settings: CaptureSettings) -> float:
    """Tokens/s of the capture job's measured loop plus the sync that puts its bytes on disk."""
    attrs = capture_residuals(adapter, corpus, out, settings)
    synced = time.perf_counter()
    os.sync()
    return attrs["n_tokens"] / (attrs["seconds"] + time.perf_counter() - synced)


def gemm_peak(n: int = 1024, repeats: int = 5) -> float:
    """Measured float32 matmul FLOP/s (best of ``repeats``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best


def forward_flops_per_token(adapter, length: int) -> float:
    """2 x non-embedding parameters, plus QK^T and AV over the mean causal context."""
    params = sum(p.numel() for n, p in adapter.base_model.named_parameters() if "embed" not in n)
    attention = 2 * 2 * adapter.n_layers * adapter.d_model * (length + 1) / 2
    return 2 * params + attention


def peak_rss_of_capture(args, corpus: Path, sites: str = "resid") -> float:
    """Peak RSS (MB) of a fresh process that loads the model and captures ``corpus``."""
    command = [sys.executable, __file__, "--model", args.model, "--threads", str(args.threads)]
    command += ["--child", str(corpus), "--batch-tokens", str(args.batch_tokens)]
    command += ["--sites", sites, "--dtype", args.dtype]
    command += ["--chunk-tokens", str(args.chunk_tokens)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def child(args) -> None:
    """``--child``: capture one corpus, print this process's peak RSS in MB."""
    adapter = load_model(args.model, "cpu")
    sites = tuple(args.sites.split(","))
    settings = CaptureSettings(args.dtype, args.batch_tokens, args.chunk_tokens, "none", sites)
    with tempfile.TemporaryDirectory() as tmp:
        capture_residuals(adapter, args.child, Path(tmp) / "out.zarr", settings)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    args = arguments(__doc__, "capture", model=smollm2("")["model"], **OPTIONS)
    if args.child:
        return child(args)
    adapter = load_model(args.model, "cpu")
    pad_id = pad_token_id(adapter.tokenizer)
    settings = CaptureSettings(args.dtype, args.batch_tokens, args.chunk_tokens, "none")
    peak = gemm_peak()
    table, memory, paired = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for length in (int(x) for x in args.lengths.split(",")):
            corpus = Path(tmp) / f"corpus-{length}.zarr"
            write_corpus(corpus, max(1, args.tokens // length), length, adapter.vocab_size)
            tokens, offsets = read_corpus(corpus)
            documents = documents_of(tokens, offsets)
            kinds = (
                "bare",
                "hidden_states",
                "nnsight",
                "bare_write_cached",
                "bare_write",
                "capture",
            )
            rates = {kind: 0.0 for kind in kinds}
            run_peer(adapter, documents, offsets, args.batch_tokens, pad_id, "bare")  # warm-up
            for repeat in range(args.repeats):
                for kind in rates:
                    os.sync()  # no run pays for an earlier run's writeback
                    if kind == "capture":
                        out = Path(tmp) / f"capture-{length}-{repeat}.zarr"
                        rate = synced_capture_rate(adapter, corpus, out, settings)
                    else:
                        folder = Path(tmp) / f"{kind}-{length}-{repeat}"
                        rate = run_peer(
                            adapter,
                            documents,
                            offsets,
                            args.batch_tokens,
                            pad_id,
                            kind,
                            folder,
                            (STORAGE_DTYPES[args.dtype][1], args.chunk_tokens),
                        )
                    rates[kind] = max(rates[kind], rate)
            for pair in range(args.pairs):
                os.sync()
                bare = run_peer(adapter, documents, offsets, args.batch_tokens, pad_id, "bare")
                os.sync()
                out = Path(tmp) / f"pair-{length}-{pair}.zarr"
                paired.setdefault(length, []).append(
                    synced_capture_rate(adapter, corpus, out, settings) / bare
                )
            flops = forward_flops_per_token(adapter, length)
            for kind, rate in rates.items():
                table.append(
                    {
                        "length": length,
                        "path": kind,
                        "tokens_per_s": rate,
                        "vs_bare": rate / rates["bare"],
                        "vs_bare_write": rate / rates["bare_write"],
                        "of_gemm_peak": flops * rate / peak if kind == "bare" else None,
                    }
                )
        if args.memory:
            length = int(args.lengths.split(",")[0])
            for scale in (1, 10):
                corpus = Path(tmp) / f"memory-{scale}.zarr"
                n_docs = max(1, scale * args.tokens // length)
                write_corpus(corpus, n_docs, length, adapter.vocab_size)
                memory[f"{scale}x ({n_docs * length} tokens)"] = peak_rss_of_capture(args, corpus)
            corpus = Path(tmp) / "memory-1.zarr"
            three = peak_rss_of_capture(args, corpus, "resid,attn_out,mlp_out")
            memory["1x, 3 sites (resid, attn_out, mlp_out)"] = three
    print(f"GEMM peak {peak / 1e9:.1f} GFLOP/s (float32, 1024^3)")
    header = f"{'length':>6} {'path':<17} {'tokens/s':>9} {'vs bare':>8} {'vs floor':>9}"
    print(f"{header} {'of peak':>8}")
    for row in table:
        of_peak = f"{row['of_gemm_peak']:.2f}" if row["of_gemm_peak"] is not None else ""
        print(
            f"{row['length']:>6} {row['path']:<17} {row['tokens_per_s']:>9.0f} "
            f"{row['vs_bare']:>8.2f} {row['vs_bare_write']:>9.2f} {of_peak:>8}"
        )
    for length, ratios in paired.items():
        print(
            f"capture / bare in {len(ratios)} back-to-back pairs, {length}-token documents: "
            f"median {np.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        )
    for label, mb in memory.items():
        print(f"peak RSS of a capture, {label}: {mb:.0f} MB")
    if memory:
        low, high, three = memory.values()
        print(f"10x / 1x peak RSS: {high / low:.3f}; 3 sites / 1 site: {three / low:.3f}")
    record = {
        "gemm_peak_flops": peak,
        "rows": table,
        "paired_capture_vs_bare": paired,
        "peak_rss_mb": memory,
        "args": vars(args),
    }
    write_record(args.out, record)
    print(json.dumps({"written": args.out}))


if __name__ == "__main__":
    main()
