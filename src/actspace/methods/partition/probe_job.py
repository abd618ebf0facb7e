"""Rule ``probe_partition``: check a toy's partition against its known circuit.

Apart from :mod:`~actspace.methods.partition.job` so that a change to the probes reruns the
probe jobs only: a rule's code hash covers its job module and everything it imports.
"""

from __future__ import annotations

import torch

from actspace.methods.partition.job import read_partition, site_activations
from actspace.methods.partition.probes import document_split, subspace_probes, token_labels
from actspace.store import open_store, write_csv


def probe_job(
    activations: str,
    partition: str,
    out: str,
    test_share: float,
    seed: int,
    sep: int | None,
    n_tokens: int = 2,
) -> None:
    """Variance shares (the ``n_tokens`` token variables: current, previous, two back; and
    the position) and probe accuracies (the token variables) of every subspace of a
    partition, of a random rotation with the same sizes and of the units the first merge
    round started from (basis ``units``), on the first copy of each document (through its
    first ``sep`` token; every position when ``sep`` is None), as a CSV table."""
    R, sizes, attrs = read_partition(partition)
    group = open_store(partition, ["random_R", "units_R", "unit_sizes"])
    random_R = torch.from_numpy(group["random_R"][:])
    units_R, unit_sizes = torch.from_numpy(group["units_R"][:]), group["unit_sizes"][:].tolist()
    store = open_store(activations, ["resid", "tokens", "doc_offsets"])
    tokens, offsets = store["tokens"][:], store["doc_offsets"][:]
    site = site_activations(store, attrs["layer"])
    rows, labels = token_labels(tokens, offsets, sep, n_tokens)
    test = document_split(offsets, rows, test_share, seed)
    table = []
    bases = (("trained", R, sizes), ("random", random_R, sizes), ("units", units_R, unit_sizes))
    for basis, rotation, basis_sizes in bases:
        for row in subspace_probes(site[rows], rotation, basis_sizes, labels, test):
            table.append({"basis": basis, **row})
    write_csv(out, table, float_format=".4f")
