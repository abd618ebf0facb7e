"""How close each prompt's unsteered greedy completion comes to a tie: at every generated
token, the logit of the token chosen minus the largest other logit.

MELBO's published diversity contrast (Mack & Turner 2024: 25 of 32 learned vectors' greedy
completions distinct against 1 of 32 random ones of the same norm) needs random vectors that
leave the unsteered completion alone. With the unsteered completion fed back (teacher
forcing), a vector changes the greedy completion first at the first token whose margin it
lowers below zero; so a completion with many small margins is changed by small random
vectors too, which bounds the contrast a learned vector can show (README "Orthogonal
steering"). This job measures the margins of a run's prompts and how far the run's MELBO
vectors and its random vectors of the same norm move them.

A job of its own (not part of the radius sweep), so that adding it left the stored MELBO,
MELBO-ortho and sweep results current.

Output ``results/steering/{model}/{run}/unsteered_margins.csv``: one row per prompt and
generated token: ``prompt_index``, ``position`` (0 = the first new token), ``token``,
``margin`` (logits; negative where a full forward pass would not pick the token a cached
generation picked, a floating-point near-tie); per vector set (``learned``: the MELBO
store's vectors, ``random``: its random orthogonal vectors of norm R) ``{set}_drop``, the
largest decrease of the margin by any of the set's vectors, and ``{set}_shift``, the median
absolute change over the set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from actspace.methods.steering.job import evaluate_in_blocks, frozen_model, read_prompts
from actspace.methods.steering.passes import add_vectors, generate_steered, resid_post
from actspace.models import ModelAdapter
from actspace.store import open_store, read_csv, write_csv

MARGIN_LEVELS = (0.5, 1.0)  # logits; the summary counts the tokens with a margin below each
VECTOR_SETS = {"learned": "vectors", "random": "random_vectors"}  # column prefix: MELBO array


def chosen_margins(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Per row of ``logits`` (..., n, vocab): the logit of ``tokens`` (n,) minus the largest
    logit of any other token, shape (..., n)."""
    logits = logits.float()
    index = tokens.expand(logits.shape[:-1])[..., None]
    chosen = logits.gather(-1, index)[..., 0]
    others = logits.scatter(-1, index, float("-inf"))
    return chosen - others.max(-1).values


@torch.no_grad()
def completion_margins(
    adapter: ModelAdapter,
    prompt: Sequence[int],
    completion: Sequence[int],
    thetas: torch.Tensor | None = None,
    source: int = 0,
) -> torch.Tensor:
    """:func:`chosen_margins` of each token of ``completion`` (m, len(completion)) in forward
    passes over the prompt followed by the completion, one per row of ``thetas`` added after
    block ``source`` (None: one unsteered pass, m = 1)."""
    m = 1 if thetas is None else thetas.shape[0]
    if not completion:
        return torch.zeros(m, 0)
    ids = torch.as_tensor([list(prompt) + list(completion)] * m, device=adapter.device)
    fns = {} if thetas is None else {resid_post(source): add_vectors(thetas, 1)}
    start = len(prompt) - 1
    with adapter.hooks(fns):
        logits = adapter.model(ids).logits[:, start : start + len(completion)]
    return chosen_margins(logits, ids[0, len(prompt) :]).cpu()


def margin_shifts(
    adapter: ModelAdapter,
    prompt: Sequence[int],
    completion: Sequence[int],
    vectors: torch.Tensor,
    source: int,
    plain: torch.Tensor | None = None,
) -> torch.Tensor:
    """Change of each completion token's margin (n_vectors, len(completion)) when each of
    ``vectors`` is added after block ``source``, the completion fed back (teacher forcing),
    against ``plain``, the unsteered margins (computed when not given)."""
    if plain is None:
        plain = completion_margins(adapter, prompt, completion)
    steered = evaluate_in_blocks(
        lambda block: completion_margins(adapter, prompt, completion, block, source), vectors
    )
    return steered - plain


def margins_job(
    model_dir: str, corpus_store: str, melbo_store: str, out: str, device: str, tokens: int
) -> None:
    """Margins of each prompt's unsteered greedy completion of ``tokens`` new tokens, and
    their shifts under the MELBO store's learned and random vectors (module docstring)."""
    melbo = open_store(melbo_store, list(VECTOR_SETS.values()))
    source = int(melbo.attrs["source_block"])
    sets = {name: torch.as_tensor(melbo[array][:]).float() for name, array in VECTOR_SETS.items()}
    adapter = frozen_model(model_dir, device)
    docs, _ = read_prompts(corpus_store)
    rows = []
    for index, doc in enumerate(docs):
        completion = generate_steered(adapter, doc, None, source, tokens)[0]
        plain = completion_margins(adapter, doc, completion)
        columns = {"margin": plain[0]}
        for name, vectors in sets.items():
            shifts = margin_shifts(adapter, doc, completion, vectors, source, plain)
            columns[f"{name}_drop"] = (-shifts).max(0).values
            columns[f"{name}_shift"] = shifts.abs().median(0).values
        for t, token in enumerate(completion):
            row = {"prompt_index": index, "position": t, "token": token}
            rows.append(row | {key: float(values[t]) for key, values in columns.items()})
    fields = ["prompt_index", "position", "token", "margin"]
    fields += [f"{name}_{kind}" for name in VECTOR_SETS for kind in ("drop", "shift")]
    write_csv(out, rows, fields, float_format=".6g")


def margin_profile(path: str) -> dict[str, float]:
    """From a margins table, means per prompt: the tokens with a margin below each of
    :data:`MARGIN_LEVELS`, the tokens each vector set overturns (some vector's drop exceeds
    the margin), the completion's length; the median shift of each set over every token; and
    the smallest margin of any prompt (``nan`` when no prompt generated a token)."""
    rows = read_csv(path)
    prompts = sorted({r["prompt_index"] for r in rows})
    per_prompt = [[r for r in rows if r["prompt_index"] == p] for p in prompts]
    n = max(len(per_prompt), 1)

    def mean_count(hit) -> float:
        return sum(sum(1 for r in prompt if hit(r)) for prompt in per_prompt) / n

    profile = {
        f"below_{level:g}": mean_count(lambda r, level=level: r["margin"] < level)
        for level in MARGIN_LEVELS
    }
    for name in VECTOR_SETS:
        profile[f"overturned_{name}"] = mean_count(
            lambda r, name=name: r[f"{name}_drop"] > r["margin"]
        )
        shifts = [r[f"{name}_shift"] for r in rows]
        profile[f"shift_{name}"] = float(np.median(shifts)) if shifts else float("nan")
    profile["tokens"] = len(rows) / n
    profile["smallest"] = min((r["margin"] for r in rows), default=float("nan"))
    return profile
