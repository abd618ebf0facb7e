"""Weight-SVD benchmark: the decomposition of every matrix of a model and the top tokens of
its directions, the job's path against the plain loop with the same math, in one run.

Same model, matrices and thread count for every row:

- SVD, plain loop: each matrix formed in full (an OV circuit is d x d) and decomposed by
  ``torch.linalg.svd`` in float64, one at a time (Millidge & Black's procedure).
- SVD, the job's path: ``decompose_matrix``: an OV circuit through its rank-d_head factors
  (QR of each factor and the SVD of the small core, as TransformerLens' FactoredMatrix),
  an MLP matrix by the thin SVD; checked to give the same singular values.
- Top tokens, plain loop: each direction projected on the unembedding alone, both ends.
- Top tokens, the job's path: ``top_tokens``, 256 directions per product.

    python benchmarks/weights_svd.py --model results/models/smollm2-135m --threads 2

Writes results/benchmarks/weights_svd.json.
"""

from __future__ import annotations


import torch

from actspace.methods.weights_svd.matrices import (
    decompose_matrix,
    residual_directions,
    svd,
    weight_matrices,
)
from actspace.methods.weights_svd.tokens import top_tokens, unembedding
from actspace.models import load_model
from machine import SMOLLM2_DIR, arguments, timed, write_record


def main() -> None:
    args = arguments(__doc__, "weights_svd", model=SMOLLM2_DIR, k_dirs=8, k_tokens=20, kinds="")
    adapter = load_model(args.model, "cpu")
    seconds_extract, matrices = timed(lambda: weight_matrices(adapter))
    if args.kinds:
        matrices = [m for m in matrices if m.kind in args.kinds.split(",")]
    W_U = unembedding(adapter, fold_final_norm=False, center=False)

    def plain_svd():
        return [svd(m.W)[1] for m in matrices]

    def job_svd():
        return [decompose_matrix(m) for m in matrices]

    seconds_plain, plain_S = timed(plain_svd)
    seconds_job, decomposed = timed(job_svd)
    agreement = max(
        float((S[: len(s)] - s).abs().max() / S[0]) for S, (_, s, _) in zip(plain_S, decomposed)
    )
    directions = torch.cat(
        [residual_directions(m, U, Vh, args.k_dirs) for m, (U, _, Vh) in zip(matrices, decomposed)]
    )

    def plain_tokens():
        out = []
        for direction in directions:
            logits = direction.double() @ W_U
            out.append((logits.topk(args.k_tokens).indices, (-logits).topk(args.k_tokens).indices))
        return out

    seconds_plain_tokens, plain_ids = timed(plain_tokens)
    seconds_job_tokens, (ids, _) = timed(lambda: top_tokens(directions, W_U, args.k_tokens))
    same_tokens = all(
        torch.equal(ids[i, 0], pos) and torch.equal(ids[i, 1], neg)
        for i, (pos, neg) in enumerate(plain_ids)
    )
    rows = {
        "SVD of every matrix, plain loop (full matrices)": (seconds_plain, seconds_plain),
        "SVD of every matrix, job path (factored OV)": (seconds_job, seconds_plain),
        "top tokens of every direction, plain loop": (seconds_plain_tokens, seconds_plain_tokens),
        "top tokens of every direction, job path": (seconds_job_tokens, seconds_plain_tokens),
    }
    kinds = sorted({m.kind for m in matrices})
    print(f"{len(matrices)} matrices ({', '.join(kinds)}), {len(directions)} directions")
    print(f"{'':<52} {'seconds':>8} {'ratio':>6}")
    for name, (seconds, reference) in rows.items():
        print(f"{name:<52} {seconds:>8.2f} {seconds / reference:>6.2f}")
    print(
        f"largest singular-value difference (relative): {agreement:.1e}; same tokens: "
        f"{same_tokens}; extracting the matrices: {seconds_extract:.2f} s"
    )
    record = {
        "seconds": {name: seconds for name, (seconds, _) in rows.items()},
        "ratios": {name: seconds / reference for name, (seconds, reference) in rows.items()},
        "matrices": len(matrices),
        "kinds": kinds,
        "directions": len(directions),
        "seconds_extracting_matrices": seconds_extract,
        "max_relative_singular_value_difference": agreement,
        "same_top_tokens": same_tokens,
        "model": args.model,
    }
    write_record(args.out, record)


if __name__ == "__main__":
    main()
