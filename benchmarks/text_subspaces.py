"""Text-subspace benchmark: the projected passes of the k* bisection against plain forward
passes of the same texts, in one run.

The bisection is most of the SmolLM2 part of the default run: ceil(log2 d) = 10 projected
passes per text (d = 576), each replacing every attention and MLP write f(x) by f(x) P.
Same model, texts (``--texts`` random token sequences of ``--tokens``, the default corpus's
size), batch size and thread count for every row:

- plain forward passes with the NLL, batched (1.00);
- projected passes, batched as the job runs them (one P per text, ``batched_nll``);
- projected passes one text at a time (the plain loop);
- the whole bisection (``binary_search_k`` on ``batched_nll``) against ten plain passes.

    python benchmarks/text_subspaces.py --model results/models/smollm2-135m --threads 2

Writes results/benchmarks/text_subspaces.json.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from actspace.methods.text_subspaces.math import binary_search_k
from actspace.methods.text_subspaces.passes import batched_nll
from actspace.models import load_model
from machine import SMOLLM2_DIR, arguments, timed, write_record


def main() -> None:
    args = arguments(__doc__, "text_subspaces", model=SMOLLM2_DIR, texts=32, tokens=64, batch=16)
    adapter = load_model(args.model, "cpu")
    d = adapter.d_model
    rng = np.random.default_rng(0)
    vocab = adapter.model.config.vocab_size
    texts = [rng.integers(0, vocab, args.tokens) for _ in range(args.texts)]
    generator = torch.Generator().manual_seed(0)
    bases = [torch.linalg.qr(torch.randn(d, d, generator=generator))[0] for _ in texts]
    ks = np.full(len(texts), d // 2)
    batched_nll(adapter, texts[: args.batch], None, None, args.batch)  # warm-up

    plain, baseline = timed(lambda: batched_nll(adapter, texts, None, None, args.batch))
    projected, _ = timed(lambda: batched_nll(adapter, texts, bases, ks, args.batch))
    one_at_a_time, _ = timed(lambda: batched_nll(adapter, texts, bases, ks, 1))
    # the identity check of the passes: at k = d the projected pass is the plain model
    full = batched_nll(adapter, texts[:2], bases[:2], np.full(2, d), args.batch)
    identity_error = float(np.abs(full - baseline[:2]).max())

    def nll_at(active, mids):
        return batched_nll(
            adapter, [texts[i] for i in active], [bases[i] for i in active], mids, args.batch
        )

    bisection, (k_star, steps) = timed(lambda: binary_search_k(nll_at, baseline, d))
    tokens = args.texts * args.tokens
    rows = {
        "plain forward passes (NLL), batched": plain,
        "projected passes, batched (the job)": projected,
        "projected passes, one text at a time": one_at_a_time,
        f"bisection ({steps} steps) per step": bisection / steps,
    }
    print(f"{args.texts} texts x {args.tokens} tokens, batches of {args.batch}, d = {d}")
    print(f"{'':<44} {'tokens/s':>9} {'ratio to plain':>15}")
    for name, seconds in rows.items():
        print(f"{name:<44} {tokens / seconds:>9.0f} {plain / seconds:>15.2f}")
    print(
        f"whole bisection {bisection:.1f} s = {bisection / plain:.1f} plain passes "
        f"(ceil(log2 d) = {math.ceil(math.log2(d))}); |NLL at k = d - plain| = {identity_error:.1e}"
    )
    record = {
        "tokens_per_s": {name: tokens / seconds for name, seconds in rows.items()},
        "ratio_to_plain": {name: plain / seconds for name, seconds in rows.items()},
        "bisection_seconds": bisection,
        "bisection_in_plain_passes": bisection / plain,
        "bisection_steps": steps,
        "identity_error": identity_error,
        "texts": args.texts,
        "tokens_per_text": args.tokens,
        "batch": args.batch,
        "model": args.model,
    }
    write_record(args.out, record)


if __name__ == "__main__":
    main()
