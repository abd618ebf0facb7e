"""Stable-regions benchmark: seconds per interpolation point of the patched passes, in one run.

Same model, prompt windows, pairs and thread count for every row; ratios against the plain
form (one full forward pass of A's prompt per interpolation point, a pair's points in one
batch, the authors' shape):

- full passes, one pair per batch (the plain form);
- full passes, ``batch_rows`` rows per batch;
- the job's path (``patched_outputs``): each context's earlier positions run once into a
  key/value cache shared by its rows, only the patched last position per point.

    python benchmarks/regions.py --model results/models/smollm2-135m \\
        --corpus results/corpora/smollm2-135m/generated-200.zarr --threads 2

Writes results/benchmarks/regions.json.
"""

from __future__ import annotations

import time

import torch

from actspace.data.corpora import documents_of, read_corpus
from actspace.data.windows import sample_windows
from actspace.methods.regions import math as rm
from actspace.methods.regions.passes import clean_pass, patched_outputs, patched_outputs_full
from actspace.models import load_model
from machine import arguments, smollm2, write_record


def timed(fn) -> tuple[float, torch.Tensor]:
    """Seconds of one call after a warm-up call, and its result."""
    fn()
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


# the default run's shape: 10-token windows, 30 points per pair, 256 rows per pass
OPTIONS = {"pairs": 32, "steps": 30, "window": 10, "batch_rows": 256}


def main() -> None:
    args = arguments(__doc__, "regions", **smollm2("generated-200"), **OPTIONS)
    adapter = load_model(args.model, "cpu")
    documents = documents_of(*read_corpus(args.corpus))
    bos = adapter.manifest.get("bos_token_id")
    tokens, _ = sample_windows(documents, args.window, args.pairs + 1, 0, bos)
    ids = torch.from_numpy(tokens)
    clean = clean_pass(adapter, ids, 0, args.batch_rows)
    a, b = rm.consecutive_pairs(len(ids))
    points = rm.interpolate(clean.write[a], clean.write[b], rm.alphas(args.steps))
    rows_ids = ids[a].repeat_interleave(args.steps, 0)
    rows_values = points.flatten(0, 1)
    n_rows = len(rows_ids)

    def full_per_pair():
        return torch.cat(
            [
                patched_outputs_full(
                    adapter, rows_ids[r : r + args.steps], rows_values[r : r + args.steps], 0
                )
                for r in range(0, n_rows, args.steps)
            ]
        )

    def full_batched():
        return torch.cat(
            [
                patched_outputs_full(
                    adapter,
                    rows_ids[r : r + args.batch_rows],
                    rows_values[r : r + args.batch_rows],
                    0,
                )
                for r in range(0, n_rows, args.batch_rows)
            ]
        )

    def job_path():
        return patched_outputs(adapter, rows_ids, rows_values, 0, args.batch_rows)

    results = {
        "full passes, one pair per batch (plain)": timed(full_per_pair),
        f"full passes, {args.batch_rows} rows per batch": timed(full_batched),
        f"job path, shared context cache, {args.batch_rows} rows per batch": timed(job_path),
    }
    plain_seconds, plain_out = next(iter(results.values()))
    print(
        f"{'seconds per interpolation point':<64} {'seconds':>9} {'ratio':>6} {'max rel diff':>12}"
    )
    rows = {}
    for name, (seconds, out) in results.items():
        diff = float((out - plain_out).norm(dim=-1).max() / plain_out.norm(dim=-1).min())
        rows[name] = {
            "seconds_per_point": seconds / n_rows,
            "ratio": seconds / plain_seconds,
            "max_relative_difference": diff,
        }
        print(f"{name:<64} {seconds / n_rows:>9.5f} {seconds / plain_seconds:>6.2f} {diff:>12.1e}")
    write_record(
        args.out,
        {
            "rows": rows,
            "model": args.model,
            "pairs": args.pairs,
            "steps": args.steps,
            "window": args.window,
        },
    )


if __name__ == "__main__":
    main()
