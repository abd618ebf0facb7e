"""The known-circuit check of a partition on a copy toy: how much of each subspace is the
current token, the previous token (on the bigram toy also the token two back) and the
position, against a random rotation with the same sizes.

In a copy toy ``<bos> x <sep> x <eos>`` the residual stream entering the induction layer
holds, at the positions of the first copy (the induction head's keys), the current token and,
written by the previous-token head, the previous one. A partition that finds the circuit's
subspaces has one subspace made of the current token and another of the previous token, each
far more than the other subspace and than a random subspace of that size. On the
unique-bigram toy the bigram head matches the query's (previous, current) against the key's
(two back, previous) and copies the key's current token, so the stream entering its block
holds three token variables at the keys: current, previous and two back. Two measures per
subspace and label: the share of the subspace's variance the label explains (the correlation
ratio eta^2 = between-class over total variance, descriptive: which variable a subspace
holds), and the held-out accuracy of a linear probe (whether it can be read at all; in d = 64
any random half-space reads either token almost perfectly, so this one cannot tell subspaces
apart).

Only the first copy is probed (from the first data token through the first ``<sep>``): in
the copies the previous-token head no longer writes the previous token (the toys read it
there at 0.08-0.17 accuracy from the whole stream, against 1.0 in the first copy), so the
label would mix positions that carry it with positions that do not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the summary and the figures read TOKEN_LABELS without importing torch
    import torch

TOKEN_LABELS = ("current_token", "previous_token", "two_back_token")  # the token 0, 1, 2 back


def token_variables(table: Sequence[dict]) -> list[str]:
    """The token labels a probe table (rows of :func:`subspace_probes`) measured."""
    return [name for name in TOKEN_LABELS if f"{name}_share" in table[0]]


def token_labels(
    tokens: np.ndarray, offsets: np.ndarray, sep: int | None = None, n_tokens: int = 2
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Rows that have ``n_tokens - 1`` earlier tokens in their document (with ``sep``: only
    rows up to and including each document's first ``sep`` token, the first copy) and their
    labels: the first ``n_tokens`` of ``TOKEN_LABELS`` and ``position`` (index in the
    document)."""
    if not 1 <= n_tokens <= len(TOKEN_LABELS):
        raise ValueError(f"n_tokens must be 1..{len(TOKEN_LABELS)}, not {n_tokens}")
    doc_start = offsets[np.searchsorted(offsets, np.arange(len(tokens)), side="right") - 1]
    keep = np.arange(len(tokens)) >= doc_start + max(1, n_tokens - 1)
    if sep is not None:  # keep rows with no separator before them in their document
        before = np.cumsum(tokens == sep) - (tokens == sep)  # separators before each row
        keep &= before == before[doc_start]
    rows = np.flatnonzero(keep)
    labels = {name: tokens[rows - back] for back, name in enumerate(TOKEN_LABELS[:n_tokens])}
    return rows, {**labels, "position": rows - doc_start[rows]}


def variance_share(z: np.ndarray, labels: np.ndarray) -> float:
    """Share of the total variance of ``z`` (n, k) explained by the class means of
    ``labels``: the correlation ratio eta^2 (1 = the subspace is a function of the label)."""
    z = np.asarray(z, dtype=np.float64)
    centred = z - z.mean(axis=0)
    total = float((centred**2).sum())
    if total <= 0:
        return 0.0
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    sums = np.zeros((len(classes), z.shape[1]))
    np.add.at(sums, inverse, centred)
    between = float(((sums**2).sum(axis=1) / counts).sum())
    return between / total


def document_split(offsets: np.ndarray, rows: np.ndarray, test_share: float, seed: int):
    """Boolean mask over ``rows``: True for rows of held-out documents (no document is split)."""
    n_docs = len(offsets) - 1
    rng = np.random.default_rng(seed)
    held_out = rng.permutation(n_docs)[: max(1, int(round(test_share * n_docs)))]
    doc_of_row = np.searchsorted(offsets, rows, side="right") - 1
    return np.isin(doc_of_row, held_out)


def probe_accuracy(features: np.ndarray, labels: np.ndarray, test: np.ndarray) -> float:
    """Held-out accuracy of a multinomial logistic regression (scikit-learn) trained on the
    other rows; features standardised on the training rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(labels[~test])) < 2:
        return float(np.mean(labels[test] == labels[~test][0]))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, C=1.0))
    model.fit(features[~test], labels[~test])
    return float(model.score(features[test], labels[test]))


def subspace_probes(
    activations: np.ndarray,
    R: torch.Tensor,
    sizes: Sequence[int],
    labels: dict[str, np.ndarray],
    test: np.ndarray,
) -> list[dict[str, float]]:
    """For each subspace of (R, sizes): the variance share of every label set (``{name}
    _share``) and the held-out probe accuracy of each token label (``{name}``)."""
    from actspace.methods.partition.math import bounds

    z = activations @ R.numpy().astype(activations.dtype)
    rows = []
    for index, (start, end) in enumerate(bounds(sizes)):
        row: dict[str, float] = {"subspace": index, "size": end - start}
        for name, y in labels.items():
            row[f"{name}_share"] = variance_share(z[:, start:end], y)
        for name in TOKEN_LABELS:
            if name in labels:
                row[name] = probe_accuracy(z[:, start:end], labels[name], test)
        rows.append(row)
    return rows
