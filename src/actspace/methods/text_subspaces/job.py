"""Rule ``text_subspaces``: the whole analysis of one model x corpus (store and generations).

The method and its store's layout: see :mod:`actspace.methods.text_subspaces`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from actspace.data.batching import batches
from actspace.data.corpora import documents_of
from actspace.errors import ActspaceError
from actspace.methods.text_subspaces.math import (
    binary_search_k,
    is_monotone_crossing,
    k_grid,
    overlap_matrix,
    product_identity_error,
    projector,
    right_singular,
    text_matrix,
    usage_spectrum,
)
from actspace.methods.text_subspaces.passes import batched_nll, generate_projected
from actspace.models import ModelAdapter, load_model
from actspace.settings import SectionSettings
from actspace.store import atomic_store, open_store, provenance, read_site

log = logging.getLogger(__name__)

VARIANTS = ("all_positions", "exclude_first")


@dataclass(frozen=True)
class TextSubspaceSettings(SectionSettings):
    """``config.text_subspaces`` less the model and corpus lists (defaults: the schema)."""

    grid_points: int
    curve_texts: int
    generate_texts: int
    generate_tokens: int
    batch_size: int


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


def text_subspaces_job(
    model_dir: str,
    activations: str,
    corpus_store: str,
    out: str,
    generations: str,
    device: str,
    settings: dict[str, Any],
) -> None:
    """Run the whole analysis for one model x corpus and write the store and generations;
    ``settings`` is the validated ``config.text_subspaces`` section."""
    config = TextSubspaceSettings.from_config(settings)
    batch_size = config.batch_size
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
    resid = read_site(acts, "resid")  # read block by block in text_bases
    baseline = batched_nll(adapter, texts, None, None, batch_size)
    grid = k_grid(d, config.grid_points)
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
            config.curve_texts,
            batch_size,
        )
    write_generations(
        adapter,
        texts,
        prompt_lengths,
        results,
        config.generate_texts,
        config.generate_tokens,
        generations,
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
        settings=dict(
            grid_points=config.grid_points, curve_texts=config.curve_texts, batch_size=batch_size
        ),
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
