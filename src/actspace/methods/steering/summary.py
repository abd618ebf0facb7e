"""Summary of the steering runs: MELBO's diversity against random vectors of the same norm,
the objective margin, and how many MELBO-ortho vectors keep theta_0's effect (of the default
run's search, and of the whole orthogonal complement: :func:`complement_summary`)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from actspace.methods.steering.margins import MARGIN_LEVELS, margin_profile
from actspace.methods.steering.math import DIVERSITY_PREFIX, diversity, moving_average
from actspace.reporting.rows import judge, method_summary, published_values, row
from actspace.store import open_store, read_csv, write_json

CONTRAST = 5  # learned / random distinct completions (research note, part 4)
BELOW_CONTROL = 0.6  # share of the searched orthogonal vectors below their random control
NORM_RATIO = 2  # median norm over theta_0's taken as "about 20 against 7"
WINDOW = 50  # the reference's moving-average width

NOTES = [
    "Blocks are 0-based; theta is added to the output of the source block at every position "
    "and the objective reads the output of the target block at the run's target positions "
    "(in parentheses: every position when none are named).",
    "Distinct completions: per prompt, the number of different greedy completions among the "
    "run's MELBO vectors and among as many random orthogonal vectors of norm R (mean over prompts).",
    "KL: at each prompt's last position between the next-token distributions steered by "
    "theta_i and by theta_0, KL(P_i || P_0) (the reference code's), mean over prompts; below "
    "control = below the KL of a random vector orthogonal to theta_0..theta_{i-1} with "
    "theta_i's norm.",
    "Margin: at a token of the unsteered greedy completion, its logit minus the largest other "
    "logit. With the unsteered completion fed back, a vector overturns a token when it lowers "
    "that margin below zero, and changes the greedy completion first at the first token it "
    "overturns; many small margins let random vectors change a completion too.",
    "Closer than the unsteered prompts: KL(P_i || P_0) below KL(P_unsteered || P_0) (mean over "
    "prompts): closer to theta_0's distribution than no steering at all; when theta_0 moves "
    "the distribution little, a vector of small norm beats its small random control without "
    "carrying theta_0's effect, and this count tells the two apart.",
]


def positions_label(positions: Sequence[int | None] | None) -> str:
    """How a store's ``target_positions`` reads in a setting ('' for every position)."""
    start, stop = positions if positions is not None else (None, None)
    if start is None and stop is None:
        return ""
    if start == 1 and stop is None:
        return " (first token excluded)"
    if start is not None and start < 0 and stop is None:
        return f" (last {-start} tokens)"
    return f" (positions [{'' if start is None else start}:{'' if stop is None else stop}])"


def set_diversity(generations: str | os.PathLike) -> dict[str, dict[str, float]]:
    """:func:`~actspace.methods.steering.math.diversity` of the MELBO and the random set's
    greedy completions in a run's generations."""
    records = [json.loads(line) for line in Path(generations).read_text().splitlines() if line]
    greedy = [r for r in records if r["mode"] == "greedy"]
    unsteered = {r["prompt_index"]: r["completion_ids"] for r in greedy if r["set"] == "unsteered"}
    out = {}
    for name in ("melbo", "melbo_random"):
        per_prompt: dict[int, list[list[int]]] = {}
        for r in greedy:
            if r["set"] == name:
                per_prompt.setdefault(r["prompt_index"], []).append(r["completion_ids"])
        prompts = sorted(per_prompt)
        out[name] = diversity([per_prompt[p] for p in prompts], [unsteered[p] for p in prompts])
    return out


def steering_summary(
    melbo_stores: Sequence[str],
    ortho_stores: Sequence[str],
    unsteered_stores: Sequence[str],
    generations: Sequence[str],
    sweeps: Sequence[str],
    margins: Sequence[str],
    published: str | os.PathLike,
) -> dict[str, Any]:
    ref = published_values("steering", published)
    rows = []
    for melbo_path, ortho_path, unsteered_path, gen_path, sweep_path, margins_path in zip(
        melbo_stores, ortho_stores, unsteered_stores, generations, sweeps, margins, strict=True
    ):
        melbo = open_store(melbo_path, ["objective", "random_objective"])
        ortho = open_store(ortho_path, ["norms", "kept", "kl_i_to_0", "control_kl_i_to_0"])
        a, o = melbo.attrs, ortho.attrs
        model = Path(melbo_path).parent.parent.name
        s = a["settings"]
        setting = (
            f"run {a['run']}, {len(a['prompts'] or [])} prompts, blocks {a['source_block']} -> "
            f"{a['target_block']}{positions_label(a.get('target_positions'))}, R = {s['radius']}, "
            f"p = {s['p']}, {s['steps']} steps"
        )
        n = melbo["objective"].shape[0]
        div = set_diversity(gen_path)
        learned, random = melbo["objective"][:], melbo["random_objective"][:]
        kept = ortho["kept"][:]
        norms = ortho["norms"][:][kept]
        unsteered = unsteered_level(unsteered_path)
        below_unsteered = int((ortho["kl_i_to_0"][:][kept] < unsteered).sum())
        ortho_setting = (
            f"run {a['run']}, theta_0 = MELBO vector {o['base_index']} (norm "
            f"{o['base_norm']:.2f}), {o['settings']['steps']} Adam steps per vector, "
            f"stopped: {o['stopped']}"
        )
        learned_n, random_n = div["melbo"]["distinct"], div["melbo_random"]["distinct"]
        contrast = judge(
            learned_n >= CONTRAST * max(random_n, 1),
            f"learned vectors give {learned_n:.1f} distinct completions, at least {CONTRAST}x "
            f"the random vectors' {random_n:.1f}",
            f"learned {learned_n:.1f} against random {random_n:.1f} distinct completions: not the "
            f"published {CONTRAST}x contrast",
        )
        ratio = float(np.median(norms)) / o["base_norm"] if len(norms) else 0.0
        rows += [
            row(
                "distinct greedy completions, MELBO vectors",
                f"{div['melbo']['distinct']:.1f} of {n}",
                model,
                setting,
                reference=ref["distinct_learned"],
                verdict=contrast,
            ),
            row(
                "distinct greedy completions, random vectors of norm R",
                f"{div['melbo_random']['distinct']:.1f} of {n}",
                model,
                setting,
                reference=ref["distinct_random"],
                verdict=contrast,
            ),
            row(
                f"distinct first {DIVERSITY_PREFIX} tokens, MELBO / random vectors",
                f"{div['melbo']['distinct_prefix']:.1f} / {div['melbo_random']['distinct_prefix']:.1f} of {n}",
                model,
                setting,
            ),
            row(
                "first token differing from the unsteered completion, MELBO / random (mean)",
                f"{div['melbo']['divergence']:.1f} / {div['melbo_random']['divergence']:.1f}",
                model,
                setting,
                "tokens",
            ),
            row(
                "objective, weakest MELBO vector / strongest random vector",
                f"{learned.min():.4g} / {random.max():.4g}",
                model,
                setting,
            ),
            row(
                "orthogonal vectors with KL to theta_0 below the random control",
                f"{o['n_below_control']} of {o['n_vectors']} found (d_model {o['d_model']})",
                model,
                ortho_setting,
                reference=ref["ortho_below_control"],
                verdict=judge(
                    o["n_below_control"] >= BELOW_CONTROL * o["n_vectors"],
                    f"most of the {o['n_vectors']} searched vectors keep theta_0's effect better "
                    "than random ones (the published run searched 2047)",
                    f"fewer than {BELOW_CONTROL:.0%} of the {o['n_vectors']} searched vectors beat "
                    "the random control",
                ),
            ),
            row(
                "orthogonal vectors closer to theta_0's distribution than the unsteered prompts",
                f"{below_unsteered} of {o['n_kept']} kept (unsteered: {unsteered:.3g} nats)",
                model,
                ortho_setting,
            ),
            row(
                "norm of the kept orthogonal vectors, median (first 10)",
                (
                    f"{np.median(norms):.2f} ({np.median(norms[:10]):.2f})"
                    if len(norms)
                    else "none kept"
                ),
                model,
                ortho_setting,
                reference=ref["ortho_norm"],
                verdict=judge(
                    ratio >= NORM_RATIO,
                    f"median norm {ratio:.1f}x theta_0's (published about 2.9x)",
                    f"median norm {ratio:.1f}x theta_0's, against about 2.9x published",
                ),
            ),
            row(
                "max |cos| between theta_0 and the kept vectors",
                f"{o['max_abs_cosine']:.1e}",
                model,
                ortho_setting,
            ),
        ]
        ties = margin_profile(margins_path)
        levels = " / ".join(f"{level:g}" for level in MARGIN_LEVELS)
        rows.append(
            row(
                f"unsteered greedy completions: tokens within {levels} logit of the runner-up; "
                "tokens some MELBO / random vector overturns (mean per prompt)",
                " / ".join(f"{ties[f'below_{level:g}']:.1f}" for level in MARGIN_LEVELS)
                + f"; {ties['overturned_learned']:.1f} / {ties['overturned_random']:.1f} of "
                f"{ties['tokens']:.1f} (median shift {ties['shift_learned']:.3g} / "
                f"{ties['shift_random']:.3g} logit, smallest margin {ties['smallest']:.3g})",
                model,
                f"{setting}; the unsteered completion fed back",
            )
        )
        sweep = read_csv(sweep_path)
        beating = [
            r["radius"] for r in sweep if r["objective_learned_min"] > r["objective_random_max"]
        ]
        rows.append(
            row(
                "radius sweep: largest R at which every learned objective beats every random one",
                f"R = {max(beating)}" if beating else "none",
                model,
                f"run {a['run']}, R in {[r['radius'] for r in sweep]}, "
                f"{sweep[0]['n_vectors']} vectors per R (the run uses R = {s['radius']})",
            )
        )
    return method_summary("steering", "Orthogonal MELBO steering", rows, NOTES)


def low_kl_prefix(kl: np.ndarray, control: np.ndarray, width: int = WINDOW) -> int:
    """How many leading vectors keep theta_0's effect better than random ones (the post's "up
    until around vector 700, the KL divergence is low"): the centre of the first
    ``width``-wide window whose mean KL reaches its controls' mean, or the whole series when
    none does (``width`` narrowed to the series when shorter)."""
    width = max(1, min(width, len(kl)))
    learned = moving_average(torch.as_tensor(kl, dtype=torch.float64), width).numpy()
    random = moving_average(torch.as_tensor(control, dtype=torch.float64), width).numpy()
    crossed = np.flatnonzero(learned >= random)
    return len(kl) if len(crossed) == 0 else int(crossed[0]) + width // 2


def unsteered_level(store_path: str | os.PathLike) -> float:
    """KL(P_unsteered || P_0), mean over prompts, of a ``steering_unsteered_kl`` store
    (:mod:`actspace.methods.steering.baseline`)."""
    return float(open_store(store_path, ["kl_i_to_0"])["kl_i_to_0"][:].mean())


def complement_summary(
    store_path: str | os.PathLike,
    unsteered_path: str | os.PathLike,
    out: str | os.PathLike,
    published: str | os.PathLike,
) -> dict[str, Any]:
    """A complement store's counts beside the published ones (``published``'s MELBO-ortho
    entries: 1558 non-zero of 2047, low KL for about the first 700, norms about 20 against
    theta_0's 7), written as JSON to ``out``: against the random controls, and against the
    unsteered prompts' KL to theta_0 (``unsteered_path``). Indices count the kept (non-zero)
    vectors in order of discovery."""
    store = open_store(store_path, ["kept", "norms", "kl_i_to_0", "control_kl_i_to_0"])
    kept, attrs = store["kept"][:], store.attrs
    norms = store["norms"][:][kept]
    kl, control = store["kl_i_to_0"][:][kept], store["control_kl_i_to_0"][:][kept]
    prefix = low_kl_prefix(kl, control) if len(kl) else 0
    unsteered = unsteered_level(unsteered_path)
    unsteered_prefix = low_kl_prefix(kl, np.full_like(kl, unsteered)) if len(kl) else 0
    complement = int(attrs["d_model"]) - 1
    summary = {
        "store": str(store_path),
        "run": attrs["run"],
        "d_model": int(attrs["d_model"]),
        "complement": complement,
        "searched": len(kept),
        "stopped": attrs["stopped"],
        "steps_per_vector": attrs["settings"]["steps"],
        "base_norm": float(attrs["base_norm"]),
        "non_zero": int(kept.sum()),
        "non_zero_share": float(kept.sum()) / complement,
        "below_control": int((kl < control).sum()),
        "low_kl_prefix": prefix,
        "low_kl_prefix_median_norm": float(np.median(norms[:prefix])) if prefix else None,
        "unsteered_kl": unsteered,
        "below_unsteered": int((kl < unsteered).sum()),
        "below_half_unsteered": int((kl < unsteered / 2).sum()),
        "unsteered_prefix": unsteered_prefix,
        "unsteered_prefix_median_norm": (
            float(np.median(norms[:unsteered_prefix])) if unsteered_prefix else None
        ),
        "max_abs_cosine": float(attrs["max_abs_cosine"]),
        "published": {
            key: {"value": ref.value, "study": ref.study, "setting": ref.setting}
            for key, ref in published_values("steering", published).items()
            if key in ("ortho_below_control", "ortho_norm")
        },
    }
    write_json(summary, out)
    return summary
