"""Partition benchmark: one NDM step and the two searches inside it, against peers, in one run.

Same data, queries, keys and thread count for every row; the table reports seconds per call
and the ratio to the reference of each group:

- step: one optimisation step (search, loss, backward, Adam) of the NDM loss with the blocked
  search, against the plain loop with the same math (``torch.cdist`` over the whole key pool
  per subspace: the same loss with one block covering the pool);
- search: the blocked exact search against faiss-cpu's exact flat index (``IndexFlatL2``, one
  index per subspace built on the rotated keys, as a step needs);
- KSG counts: the marginal neighbour counts of the MI estimate in torch (as
  ``ksg_mutual_information`` does them) against scikit-learn's KD-tree ``query_radius``.

Data: SmolLM2-sized (d = 576, 18 subspaces of 32) Gaussian activations by default, or one
site of an activation store (``--store results/activations/smollm2-135m/generated-200.zarr
--layer 15``). Writes results/benchmarks/partition.json.

    pip install faiss-cpu          # the peer of the search (not a dependency of the pipeline)
    python benchmarks/partition.py --threads 2
"""

from __future__ import annotations

import time

import numpy as np
import torch

from actspace.methods.partition import math as pm
from actspace.methods.partition.train import orthogonal_rotation
from machine import arguments, write_record


def best_of(fn, repeats: int) -> float:
    """Fastest of ``repeats`` timed calls (seconds), after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def step_time(data, n_queries, n_keys, sizes, block, repeats) -> float:
    """Seconds of one NDM step (the loss, backward, Adam) searching ``block`` keys at a
    time; ``block`` = the whole pool is the plain loop (one ``cdist`` per subspace)."""
    rotation = orthogonal_rotation(torch.eye(data.shape[1]))
    optimiser = torch.optim.Adam(rotation.parameters(), lr=3e-4)
    queries, keys = data[:n_queries], data[n_queries : n_queries + n_keys]

    def step():
        loss = pm.subspace_losses(rotation.weight, queries, keys, sizes, block).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    return best_of(step, repeats)


def faiss_search(queries: torch.Tensor, keys: torch.Tensor, sizes) -> tuple:
    """Exact nearest neighbours per subspace with faiss' flat L2 index."""
    import faiss

    indices, distances = [], []
    for a, b in pm.bounds(sizes):
        index = faiss.IndexFlatL2(b - a)
        index.add(np.ascontiguousarray(keys[:, a:b].numpy(), dtype=np.float32))
        dist, idx = index.search(np.ascontiguousarray(queries[:, a:b].numpy(), dtype=np.float32), 1)
        indices.append(torch.from_numpy(idx[:, 0]))
        distances.append(torch.from_numpy(np.sqrt(np.maximum(dist[:, 0], 0))))
    return torch.stack(indices), torch.stack(distances)


def counts_torch(queries, keys, eps):
    return (torch.cdist(queries, keys) < eps[:, None]).sum(1)


def counts_kdtree(queries, keys, eps):
    from sklearn.neighbors import KDTree

    tree = KDTree(keys.numpy())
    radius = np.nextafter(eps.numpy().astype(np.float64), 0)  # strict "<", as KSG counts
    return tree.query_radius(queries.numpy(), radius, count_only=True)


def main() -> None:
    args = arguments(
        __doc__,
        "partition",
        store=None,  # an activation store (default: Gaussian data)
        layer=15,
        queries=128,
        keys=8192,
        unit=32,
        repeats=3,
    )
    if args.store:
        from actspace.methods.partition.job import site_activations
        from actspace.store import open_store

        data = torch.from_numpy(site_activations(open_store(args.store, ["resid"]), args.layer))
        data = data[torch.randperm(len(data), generator=torch.Generator().manual_seed(0))]
    else:
        data = torch.randn(
            args.queries + args.keys, 576, generator=torch.Generator().manual_seed(0)
        )
    d = data.shape[1]
    sizes = [args.unit] * (d // args.unit)
    n_keys = min(args.keys, len(data) - args.queries)
    queries, keys = data[: args.queries], data[args.queries : args.queries + n_keys]
    blocked = lambda q, k, s: pm.nearest_neighbours(q, k, s, 4096)  # noqa: E731
    rows = {
        "step, blocked search": step_time(data, args.queries, n_keys, sizes, 4096, args.repeats),
        "step, plain loop (cdist over the pool)": step_time(
            data, args.queries, n_keys, sizes, n_keys, args.repeats
        ),
        "search, blocked torch": best_of(lambda: blocked(queries, keys, sizes), args.repeats),
    }
    try:
        rows["search, faiss IndexFlatL2"] = best_of(
            lambda: faiss_search(queries, keys, sizes), args.repeats
        )
        ours, theirs = blocked(queries, keys, sizes), faiss_search(queries, keys, sizes)
        agree = float((ours[0] == theirs[0]).float().mean())
    except ImportError:
        agree = None
    a, b = pm.bounds(sizes)[0]
    joint = torch.maximum(
        torch.cdist(queries[:, a:b], keys[:, a:b]),
        torch.cdist(queries[:, b : 2 * b - a], keys[:, b : 2 * b - a]),
    )
    eps = joint.min(1).values
    rows["KSG counts, torch"] = best_of(
        lambda: counts_torch(queries[:, a:b], keys[:, a:b], eps), args.repeats
    )
    rows["KSG counts, scikit-learn KDTree"] = best_of(
        lambda: counts_kdtree(queries[:, a:b], keys[:, a:b], eps), args.repeats
    )
    same = np.array_equal(
        counts_torch(queries[:, a:b], keys[:, a:b], eps).numpy(),
        counts_kdtree(queries[:, a:b], keys[:, a:b], eps),
    )
    reference = {
        "step": rows["step, plain loop (cdist over the pool)"],
        "search": rows["search, blocked torch"],
        "KSG counts": rows["KSG counts, torch"],
    }
    print(f"{'what':<42} {'seconds':>9} {'ratio':>6}")
    for name, seconds in rows.items():
        print(f"{name:<42} {seconds:>9.4f} {seconds / reference[name.split(',')[0]]:>6.2f}")
    print(f"faiss and the blocked search agree on {agree} of neighbours; KSG counts equal: {same}")
    record = {
        "seconds": rows,
        "faiss_agreement": agree,
        "ksg_counts_equal": bool(same),
        "data": args.store or "gaussian",
        "queries": args.queries,
        "keys": n_keys,
        "sizes": sizes,
    }
    write_record(args.out, record)


if __name__ == "__main__":
    main()
