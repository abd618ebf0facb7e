"""Capture codec benchmark: throughput and bytes per activation of each Zarr codec.

Runs the same corpus through the same loaded model once per codec, in one process, and
reports each codec's capture throughput as a ratio to the uncompressed store (the peer),
so the numbers compare across machines. The model forward pass is shared cost; the codec
decides the rest.

    python benchmarks/capture_codec.py results/models/smollm2-135m \
        --n-texts 32 --n-tokens 64 --repeats 2

Result on the development machine (2 CPU cores, SmolLM2-135M, 32 sampled texts of
64 tokens, float32): see README "Capture codec".
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import yaml

from actspace.data.corpora import build_corpus
from actspace.methods.capture.job import CaptureSettings, capture_residuals
from actspace.models import load_model
from actspace.store import CODECS

SCHEMA = Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml"


def default_settings() -> dict:
    """The capture's batch and chunk sizes as the config schema sets them by default."""
    keys = yaml.safe_load(SCHEMA.read_text())["properties"]["capture"]["properties"]
    return {key: keys[key]["default"] for key in ("batch_tokens", "chunk_tokens")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="a materialised model directory")
    parser.add_argument("--n-texts", type=int, default=32)
    parser.add_argument("--n-tokens", type=int, default=64)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    parser.add_argument("--repeats", type=int, default=2, help="best of N per codec")
    args = parser.parse_args()

    adapter = load_model(args.model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.zarr"
        spec = {"type": "generated", "n_texts": args.n_texts, "n_tokens": args.n_tokens}
        spec |= {"seed": 0, "batch_size": 32}  # sampled in batches of 32, seed 0
        build_corpus("bench", spec, args.model_dir, corpus, "cpu")
        # warm-up: first forward passes pay one-off allocation costs
        plain = CaptureSettings(dtype=args.dtype, codec="none", **default_settings())
        capture_residuals(adapter, corpus, Path(tmp) / "warmup.zarr", plain)
        rows = {}
        for codec in CODECS:
            best = None
            for repeat in range(args.repeats):
                out = Path(tmp) / f"{codec}-{repeat}.zarr"
                settings = CaptureSettings(dtype=args.dtype, codec=codec, **default_settings())
                attrs = capture_residuals(adapter, corpus, out, settings)
                if best is None or attrs["tokens_per_s"] > best["tokens_per_s"]:
                    best = attrs
            rows[codec] = {
                "tokens_per_s": best["tokens_per_s"],
                "bytes_per_activation": best["bytes_per_activation"],
            }
    peer = rows["none"]
    print(f"{'codec':<10} {'tokens/s':>10} {'vs none':>8} {'bytes/act':>10} {'vs none':>8}")
    for codec, row in rows.items():
        print(
            f"{codec:<10} {row['tokens_per_s']:>10.0f} "
            f"{row['tokens_per_s'] / peer['tokens_per_s']:>8.2f} "
            f"{row['bytes_per_activation']:>10.3f} "
            f"{row['bytes_per_activation'] / peer['bytes_per_activation']:>8.2f}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
