"""Text subspaces: the directions of the residual stream that a text uses.

Reproduces tailcalled, "Each Llama3-8b text uses a different 'random' subspace of the
activation space" (LessWrong, 2024) on any model the adapter loads.

For a text t (prompt plus what the model wrote), M_t stacks its residual-stream vectors over
layers and tokens ((n_layers + 1) * n_tokens x d_model). With M_t = U S V^T, the projector
P_k = V_k V_k^T keeps the top-k right singular directions. A projected forward pass replaces
every write into the residual stream f(x) (each attention and each MLP write) by f(x) P_k,
so ``out = x + f(x) @ P_k``; at k = d the model is unchanged. k*(t) is the smallest k whose
NLL of the text is at or below the unprojected NLL, found by binary search on the
assumption that NLL falls as k grows (checked against a grid of k, and reported).

Subspaces of texts a, b overlap by tr(P_a P_b) = ||V_a^T V_b||_F^2; for random subspaces
tr(P_a P_b) / d = (k_a / d)(k_b / d). The eigenvalues of sum_t P_t (the squared singular
values of [V_{k_1} ... V_{k_N}]) count how many texts use each direction.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from actspace.capture import batches, right_pad
from actspace.corpora import documents_of
from actspace.errors import ActspaceError
from actspace.models import ModelAdapter, load_model
from actspace.store import atomic_store, open_store, provenance
from actspace.summary import row

log = logging.getLogger(__name__)

VARIANTS = ("all_positions", "exclude_first")


# ----------------------------------------------------------------------------- pure functions
def text_matrix(resid: np.ndarray | torch.Tensor, exclude_first: bool = False) -> torch.Tensor:
    """M_t from a text's residual stream (n_tokens, n_layers + 1, d): rows are vectors.

    ``exclude_first`` drops the first position, whose huge norm (the attention sink) makes
    the first singular direction dominate.
    """
    resid = torch.as_tensor(np.asarray(resid), dtype=torch.float64)
    if exclude_first:
        resid = resid[1:]
    return resid.reshape(-1, resid.shape[-1])


def right_singular(M: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Singular values (descending, padded with zeros to d) and a complete d x d basis V."""
    _, S, Vh = torch.linalg.svd(M, full_matrices=True)
    d = M.shape[1]
    values = torch.zeros(d, dtype=S.dtype)
    values[: S.numel()] = S
    return values, Vh.T


def projector(V: torch.Tensor, k: int) -> torch.Tensor:
    """P_k = V_k V_k^T, the orthogonal projector onto the top-k right singular directions."""
    return V[:, :k] @ V[:, :k].T


def overlap_matrix(bases: Sequence[torch.Tensor], ks: Sequence[int]) -> np.ndarray:
    """O_ab = tr(P_a P_b) = ||V_a^T V_b||_F^2 for every pair of texts."""
    n = len(bases)
    out = np.zeros((n, n))
    for a in range(n):
        for b in range(a, n):
            cross = bases[a][:, : ks[a]].double().T @ bases[b][:, : ks[b]].double()
            out[a, b] = out[b, a] = float((cross**2).sum())
    return out


def product_identity_error(overlap: np.ndarray, ks: Sequence[int], d: int) -> np.ndarray:
    """Relative error of O_ab / d against (k_a / d)(k_b / d), per pair (NaN on the diagonal)."""
    fractions = np.asarray(ks, dtype=float) / d
    predicted = np.outer(fractions, fractions)
    error = np.abs(overlap / d - predicted) / predicted
    np.fill_diagonal(error, np.nan)
    return error


def usage_spectrum(bases: Sequence[torch.Tensor], ks: Sequence[int]) -> np.ndarray:
    """Squared singular values of [V_{k_1} ... V_{k_N}], descending: the eigenvalues of
    sum_t P_t, i.e. how many texts use each direction."""
    total = sum(projector(V.double(), k) for V, k in zip(bases, ks))
    return np.sort(np.linalg.eigvalsh(total.numpy()))[::-1].clip(min=0.0)


def binary_search_k(
    nll_at: Callable[[np.ndarray, np.ndarray], np.ndarray], baseline: np.ndarray, d: int
) -> tuple[np.ndarray, int]:
    """Smallest k in 1..d with nll(k) <= baseline, per text, by bisection over all texts at once.

    ``nll_at(texts, ks)`` returns the NLL of each listed text projected to its k. Assumes
    NLL is non-increasing in k (k = d is the unprojected model, so it always qualifies);
    when it is not, the result is a crossing point, not necessarily the smallest.
    Returns k* per text and the number of projected passes each text took (ceil(log2 d)).
    """
    lo = np.ones(len(baseline), dtype=np.int64)
    hi = np.full(len(baseline), d, dtype=np.int64)
    steps = 0
    progress = tqdm(total=int(np.ceil(np.log2(d))), desc="bisection for k*", unit="step")
    while np.any(lo < hi):
        active = np.flatnonzero(lo < hi)
        mid = (lo[active] + hi[active]) // 2
        ok = nll_at(active, mid) <= baseline[active]
        hi[active[ok]] = mid[ok]
        lo[active[~ok]] = mid[~ok] + 1
        steps += 1
        progress.update(1)
    progress.close()
    return hi, steps


def is_monotone_crossing(grid: np.ndarray, curve: np.ndarray, baseline: float, k_star: int) -> bool:
    """Whether a grid curve agrees with k*: above the baseline below k*, at or below from k*."""
    below = curve[grid < k_star]
    above = curve[grid >= k_star]
    return bool(np.all(below > baseline) and np.all(above <= baseline))


# ----------------------------------------------------------------------------- model passes
def _projection_hooks(adapter: ModelAdapter, projectors: torch.Tensor) -> dict:
    """Hooks replacing each attention and MLP write f(x) by f(x) @ P (one P per batch row)."""

    def project(x: torch.Tensor, _name: str) -> torch.Tensor:
        return torch.bmm(x, projectors.to(x.dtype))

    hooks = {}
    for layer in range(adapter.n_layers):
        hooks[f"blocks.{layer}.hook_attn_out"] = project
        hooks[f"blocks.{layer}.hook_mlp_out"] = project
    return hooks


@torch.no_grad()
def projected_nll(
    adapter: ModelAdapter, texts: Sequence[np.ndarray], projectors: torch.Tensor | None
) -> np.ndarray:
    """Mean NLL (nats per token, over each text's tokens after the first) under projection.

    ``projectors`` is (batch, d, d), one per text, or None for the unprojected model. Texts
    are right-padded; padding is masked out of the loss.
    """
    ids, mask = right_pad(texts, pad_id=0)  # padding is masked out of the loss
    ids, mask = ids.to(adapter.device), mask.to(adapter.device)
    hooks = {} if projectors is None else _projection_hooks(adapter, projectors.to(adapter.device))
    with adapter.hooks(hooks):
        logits = adapter.model(input_ids=ids, attention_mask=mask).logits.float()
    losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    weights = mask[:, 1:].float()
    return ((losses * weights).sum(1) / weights.sum(1)).cpu().numpy()


def batched_nll(
    adapter: ModelAdapter,
    texts: Sequence[np.ndarray],
    bases: Sequence[torch.Tensor] | None,
    ks: np.ndarray | None,
    batch_size: int,
) -> np.ndarray:
    """:func:`projected_nll` of ``texts[i]`` under P_{ks[i]} of ``bases[i]``, in batches."""
    out = []
    for start in range(0, len(texts), batch_size):
        chunk = range(start, min(start + batch_size, len(texts)))
        projectors = None
        if bases is not None:
            projectors = torch.stack([projector(bases[i], int(ks[i])) for i in chunk]).float()
        out.append(projected_nll(adapter, [texts[i] for i in chunk], projectors))
    return np.concatenate(out) if out else np.zeros(0)


@torch.no_grad()
def generate_projected(
    adapter: ModelAdapter, prompt: np.ndarray, P: torch.Tensor | None, n_new: int
) -> list[int]:
    """Greedy continuation of ``prompt`` with every residual write projected by ``P``."""
    ids = torch.as_tensor(prompt.astype(np.int64))[None].to(adapter.device)
    hooks = {} if P is None else _projection_hooks(adapter, P[None].float().to(adapter.device))
    with adapter.hooks(hooks):
        out = adapter.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=n_new,
            pad_token_id=adapter.tokenizer.eos_token_id,
        )
    return out[0, ids.shape[1] :].tolist()


# ----------------------------------------------------------------------------- analysis
def text_bases(
    resid: Any, offsets: np.ndarray, exclude_first: bool, block_tokens: int = 4096
) -> tuple[np.ndarray, list[torch.Tensor]]:
    """Singular values (n_texts, d) and float32 bases V (d x d each) of every text's M_t.

    Reads the activation store in blocks of consecutive texts (about ``block_tokens``
    tokens each), so memory holds one block of activations rather than the whole corpus.
    """
    spectra, bases = [], []
    progress = tqdm(total=len(offsets) - 1, desc="SVD of text matrices", unit="text", mininterval=5)
    for group in batches(offsets, block_tokens):
        start = offsets[group[0]]
        block = resid[start : offsets[group[-1] + 1]]
        for i in group:
            M = text_matrix(block[offsets[i] - start : offsets[i + 1] - start], exclude_first)
            values, V = right_singular(M)
            spectra.append(values.numpy())
            bases.append(V.float())
        progress.update(len(group))
    progress.close()
    return np.stack(spectra), bases


def analyse_variant(
    adapter: ModelAdapter,
    texts: list[np.ndarray],
    resid: Any,
    offsets: np.ndarray,
    exclude_first: bool,
    baseline: np.ndarray,
    grid: np.ndarray,
    curve_texts: int,
    batch_size: int,
) -> dict[str, Any]:
    """Spectra, NLL curves, k*, overlaps and usage for one definition of M_t."""
    d = adapter.d_model
    spectra, bases = text_bases(resid, offsets, exclude_first)

    def nll_at(active: np.ndarray, ks: np.ndarray) -> np.ndarray:
        return batched_nll(
            adapter, [texts[i] for i in active], [bases[i] for i in active], ks, batch_size
        )

    k_star, passes = binary_search_k(nll_at, baseline, d)
    n_curve = min(curve_texts, len(texts))
    curves = np.full((len(texts), len(grid)), np.nan)
    for i in tqdm(range(n_curve), desc="NLL curves", unit="text", mininterval=5):
        curves[i] = batched_nll(
            adapter, [texts[i]] * len(grid), [bases[i]] * len(grid), grid, batch_size
        )
    # checked only where a full curve exists (the first n_curve texts)
    monotone = np.array(
        [is_monotone_crossing(grid, curves[i], baseline[i], k_star[i]) for i in range(n_curve)],
        dtype=bool,
    )
    overlap = overlap_matrix(bases, k_star)
    errors = product_identity_error(overlap, k_star, d)
    return {
        "spectra": spectra,
        "k_star": k_star,
        "passes_per_text": passes,
        "nll_curves": curves,
        "curve_monotone": monotone,
        "overlap": overlap,
        "product_error": errors,
        "usage": usage_spectrum(bases, k_star),
        "bases": bases,
    }


def write_generations(
    adapter: ModelAdapter,
    texts: Sequence[np.ndarray],
    prompt_lengths: np.ndarray,
    results: dict[str, dict[str, Any]],
    n_texts: int,
    n_tokens: int,
    path: str | os.PathLike,
) -> None:
    """Markdown of the first ``n_texts`` texts regenerated greedily under their P_k*, from
    their own prompt and from BOS alone, for each variant (the study's sanity check)."""
    tokenizer = adapter.tokenizer
    start_id = tokenizer.bos_token_id
    bos = np.array([start_id if start_id is not None else tokenizer.eos_token_id])
    lines = []
    for i in range(min(n_texts, len(texts))):
        prompt, written = texts[i][: prompt_lengths[i]], texts[i][prompt_lengths[i] :]
        lines += [
            f"## text {i}",
            "",
            f"[{tokenizer.decode(prompt)}]{tokenizer.decode(written)}",
            "",
        ]
        for variant in VARIANTS:
            k = int(results[variant]["k_star"][i])
            P = projector(results[variant]["bases"][i], k)
            for label, start in (("from its prompt", prompt), ("from BOS only", bos)):
                new = generate_projected(adapter, start, P, n_tokens)
                header = f"### {variant}, k* = {k} of {adapter.d_model}, {label}"
                lines += [header, "", f"{tokenizer.decode(start)}|{tokenizer.decode(new)}", ""]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines))


def k_grid(d: int, points: int) -> np.ndarray:
    """Roughly log-spaced k from 1 to d (d included)."""
    grid = np.unique(np.round(np.geomspace(1, d, points)).astype(np.int64))
    return grid


def text_subspaces_job(
    model_dir: str,
    activations: str,
    corpus_store: str,
    out: str,
    generations: str,
    device: str,
    grid_points: int = 24,
    curve_texts: int = 8,
    generate_texts: int = 4,
    generate_tokens: int = 48,
    batch_size: int = 16,
) -> None:
    """Run the whole analysis for one model x corpus and write the store and generations."""
    adapter = load_model(model_dir, device)
    acts = open_store(activations, ["resid", "tokens", "doc_offsets"])
    corpus = open_store(corpus_store, ["tokens", "doc_offsets", "prompt_lengths"])
    tokens, offsets = acts["tokens"][:], acts["doc_offsets"][:]
    if not np.array_equal(tokens, corpus["tokens"][:]):
        raise ActspaceError(f"{activations} was not captured from {corpus_store}")
    texts = documents_of(tokens, offsets)
    if any(len(t) < 2 for t in texts):
        raise ActspaceError("every text needs at least two tokens to have an NLL")
    prompt_lengths = corpus["prompt_lengths"][:]
    d = adapter.d_model
    resid = acts["resid"]  # read block by block in text_bases
    baseline = batched_nll(adapter, texts, None, None, batch_size)
    grid = k_grid(d, grid_points)
    results = {}
    for variant in VARIANTS:
        log.info("variant %s", variant)
        results[variant] = analyse_variant(
            adapter,
            texts,
            resid,
            offsets,
            variant == "exclude_first",
            baseline,
            grid,
            curve_texts,
            batch_size,
        )
    write_generations(
        adapter, texts, prompt_lengths, results, generate_texts, generate_tokens, generations
    )
    tokenizer = adapter.tokenizer
    attrs = provenance(
        kind="text_subspaces",
        model=adapter.manifest["name"],
        weights_sha256=adapter.manifest["weights_sha256"],
        corpus=acts.attrs["corpus"],
        d_model=d,
        nll="mean nats per token over each text's tokens after the first",
        variants={
            "all_positions": "M_t stacks every position (the original study's setting)",
            "exclude_first": "M_t without the first position (attention-sink token)",
        },
        settings=dict(grid_points=grid_points, curve_texts=curve_texts, batch_size=batch_size),
        text_labels=[
            tokenizer.decode(texts[i][: prompt_lengths[i]])[:40].strip()
            for i in range(min(16, len(texts)))
        ],
    )
    with atomic_store(out, attrs) as group:
        group.create_array("tokens", data=tokens)
        group.create_array("doc_offsets", data=offsets)
        group.create_array("prompt_lengths", data=prompt_lengths)
        group.create_array("baseline_nll", data=baseline)
        group.create_array("k_grid", data=grid)
        for variant, result in results.items():
            target = group if variant == "all_positions" else group.create_group(variant)
            for name in (
                "spectra",
                "k_star",
                "nll_curves",
                "curve_monotone",
                "overlap",
                "product_error",
                "usage",
            ):
                target.create_array(name, data=np.asarray(result[name]))
            target.attrs.update(
                passes_per_text=result["passes_per_text"],
                mean_product_error=(
                    float(np.nanmean(result["product_error"])) if len(texts) > 1 else None
                ),
                usage_min_over_max=float(result["usage"][-1] / result["usage"][0]),
                mean_k_star_over_d=float(np.mean(result["k_star"]) / d),
                n_non_monotone=int((~result["curve_monotone"]).sum()),
                n_curves_checked=int(result["curve_monotone"].size),
            )
    log.info("text subspaces of %d texts written to %s", len(texts), out)


# ----------------------------------------------------------------------------- summary
STUDY = "tailcalled 2024, 'Each Llama3-8b text uses a different random subspace'"


def _row(quantity, value, model, setting, published=None, study_setting=None):
    """A summary row; the study is named where a published value stands beside ours."""
    study = STUDY if published is not None else None
    return row(quantity, value, model, setting, "", published, study, study_setting)


def text_subspaces_summary(stores: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """Headline numbers: k*/d per text, the product identity's error, dimension usage."""
    rows = []
    for path in stores:
        group = open_store(path, ["k_star", "overlap", "usage"])
        attrs = group.attrs
        model, corpus, d = attrs["model"], attrs["corpus"], attrs["d_model"]
        # per-text rows only for texts that continue a prompt (sampled texts start from BOS)
        prompted = int((group["prompt_lengths"][:] > 1).sum())
        labels = attrs.get("text_labels", [])[: min(prompted, 4)]
        for variant, g in (
            ("all positions", group),
            ("first position excluded", group["exclude_first"]),
        ):
            k_star = g["k_star"][:]
            setting = f"{corpus}, {len(k_star)} texts, M_t over {variant}"
            # the study stacked every position; its seed figures are for prompted texts and
            # its usage figure for ~1200 sampled texts
            original = variant == "all positions"
            seeds = original and prompted == len(k_star)
            sampled = original and prompted == 0 and len(k_star) >= 100
            for i, label in enumerate(labels):
                meaning = seeds and label.startswith("I believe the meaning of life")
                rows.append(
                    _row(
                        f"k*/d, text {i} [{label}]",
                        k_star[i] / d,
                        model,
                        setting,
                        2000 / 4096 if meaning else None,
                        "meaning-of-life text, Llama3-8B, ~2000 of 4096 dims" if meaning else None,
                    )
                )
            rows.append(
                _row(
                    "mean k*/d",
                    float(np.mean(k_star) / d),
                    model,
                    setting,
                    0.64 if seeds else None,
                    "four seed texts, Llama3-8B" if seeds else None,
                )
            )
            if g.attrs.get("mean_product_error") is not None:
                rows.append(
                    _row(
                        "mean relative error of tr(P_a P_b)/d = (k_a/d)(k_b/d)",
                        g.attrs["mean_product_error"],
                        model,
                        setting,
                        0.01 if seeds else None,
                        "four seed texts, Llama3-8B" if seeds else None,
                    )
                )
            rows.append(
                _row(
                    "least-used / most-used direction",
                    g.attrs["usage_min_over_max"],
                    model,
                    setting,
                    0.5 if sampled else None,
                    (
                        "~1200 sampled texts, Llama3-8B: least-used direction used by at least half the texts"
                        if sampled
                        else None
                    ),
                )
            )
            rows.append(
                _row(
                    f"texts whose NLL curve is not monotone around k* (of {g.attrs['n_curves_checked']} "
                    "with a curve)",
                    g.attrs["n_non_monotone"],
                    model,
                    setting,
                )
            )
    notes = [
        "'M_t over all positions' is the original study's setting (it stacked every residual "
        "vector of the text); published values are shown beside that variant only.",
        "'first position excluded' drops the first token, whose huge residual norm (the "
        "attention sink) dominates the first singular direction.",
        "NLL: mean nats per token over each text's tokens after the first; k* is the smallest "
        "k with NLL at or below the unprojected NLL, by bisection assuming NLL falls with k.",
    ]
    return {
        "method": "text_subspaces",
        "title": "Text subspaces (per-text SVD of the residual stream)",
        "rows": rows,
        "notes": notes,
    }
