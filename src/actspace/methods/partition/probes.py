"""The known-circuit check of a partition on a copy toy: how well the current token and the
previous token can be read from each subspace (held-out accuracy of a linear probe), against
the same for a random rotation with the same sizes.

In a copy toy the residual stream entering the induction layer holds the current token and,
written by the previous-token head, the previous one; a partition that finds the circuit's
subspaces has one subspace that reads the current token and another that reads the
previous token, each far better than the other and than a random subspace of that size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from actspace.methods.partition.math import bounds


def token_labels(tokens: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows that have a previous token in their document, and for those rows the current and
    previous token ids: (rows, current, previous)."""
    starts = np.zeros(len(tokens), dtype=bool)
    starts[offsets[:-1]] = True
    rows = np.flatnonzero(~starts)
    return rows, tokens[rows], tokens[rows - 1]


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
    """For each subspace of (R, sizes): probe accuracy of every label set (e.g. current and
    previous token) on that subspace's coordinates."""
    z = activations @ R.numpy().astype(activations.dtype)
    rows = []
    for index, (start, end) in enumerate(bounds(sizes)):
        row = {"subspace": index, "size": end - start}
        for name, y in labels.items():
            row[name] = probe_accuracy(z[:, start:end], y, test)
        rows.append(row)
    return rows
