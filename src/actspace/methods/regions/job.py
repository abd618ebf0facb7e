"""Rule ``find_stable_regions``: interpolation curves, sharpness per pair, the semantic check
and the two-dimensional slices of one model on one corpus, for the trained model, the same
architecture at random initialisation and, for a toy, every stored training checkpoint.

Store ``results/regions/{model}/{corpus}.zarr``:

top level
    ``prompts`` (n, window) the token windows in draw order and ``origin`` (n, 2) their
    (document, start); ``pair_a`` / ``pair_b`` (P,) the consecutive pairs (prompt i, i + 1);
    ``alphas`` (S,); ``same_last_token`` (P,); ``slice_grid`` (G,). Attributes: settings,
    the site convention, ``variants`` (group names in order), the slice anchors.
one group per variant (``trained``, ``random-init``, ``step-NNNNNN``)
    ``distances`` (P, S) d(alpha) = |out(alpha) - out_A| and ``curves`` (P, S) r = d / d(1);
    ``sharpness`` (P,); ``quartiles`` (3,) of the sharpness; ``top_prediction`` (n,) each
    prompt's own top next token and ``same_top_prediction`` (P,); ``slice_distances``
    (3, G, G) and ``slice`` (G, G, 3) the RGB image. Attributes: kind (trained, random init,
    checkpoint), step, parameter count, the slice's t, the semantic check's counts per group of pairs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr

from actspace.data.corpora import documents_of, read_corpus
from actspace.data.windows import sample_windows
from actspace.errors import ActspaceError
from actspace.methods.regions import math as rm
from actspace.methods.regions.passes import CONVENTION, clean_pass, patched_outputs
from actspace.models import ModelAdapter, load_model, random_init, read_manifest
from actspace.settings import SectionSettings
from actspace.store import atomic_store, provenance

log = logging.getLogger(__name__)

TRAINED, RANDOM, CHECKPOINT = "trained", "random init", "checkpoint"


@dataclass(frozen=True)
class RegionSettings(SectionSettings):
    """``config.regions`` less its runs (defaults: the schema)."""

    n_prompts: int
    window: int
    steps: int
    write_block: int
    random_init: bool
    checkpoints: bool
    batch_rows: int
    semantic_share: float
    semantic_thresholds: list[float]
    slice_steps: int
    slice_range: list[float]
    slice_anchor: int
    seed: int

    @property
    def slice_anchors(self) -> list[int]:
        """The three prompts whose activations span the slice's plane."""
        return list(range(self.slice_anchor, self.slice_anchor + 3))

    @property
    def slice_grid(self) -> torch.Tensor:
        """The slice's grid coordinates along each axis, float64."""
        return torch.linspace(*self.slice_range, self.slice_steps, dtype=torch.float64)


@dataclass(frozen=True)
class Variant:
    """One model measured by a job: its group name, kind, training step and directory
    (None: the architecture at a seeded random initialisation)."""

    name: str
    kind: str
    step: int | None
    path: str | None


def plan_variants(model_dir: str, checkpoints: str | None, s: RegionSettings) -> list[Variant]:
    """The trained model and, as asked, its random initialisation and checkpoints.

    A toy's stored checkpoints (``step-NNNNNN/``) include its own initialisation (step 0,
    the random init) and its last step (the trained model); other models' random init is the
    architecture's initialisation with the run's seed."""
    if checkpoints is None:
        variants = [Variant("trained", TRAINED, None, model_dir)]
        if s.random_init:
            variants.append(Variant("random-init", RANDOM, None, None))
        return variants
    folders = sorted(Path(checkpoints).glob("step-*"))
    if not folders:
        raise ActspaceError(f"{checkpoints} holds no step-NNNNNN checkpoints")
    steps = [int(folder.name.removeprefix("step-")) for folder in folders]
    if steps[0] != 0:
        raise ActspaceError(f"{checkpoints} lacks the step-0 checkpoint (the random init)")
    keep = range(len(folders)) if s.checkpoints else [0, len(folders) - 1]
    if not s.random_init:
        keep = [i for i in keep if i > 0]
    kinds = {0: RANDOM, len(folders) - 1: TRAINED}
    return [
        Variant(folders[i].name, kinds.get(i, CHECKPOINT), steps[i], str(folders[i])) for i in keep
    ]


def load_variant(variant: Variant, model_dir: str, device: str, seed: int) -> ModelAdapter:
    if variant.path is None:
        return random_init(model_dir, seed, device)
    return load_model(variant.path, device)


def measure(
    adapter: ModelAdapter, prompts: torch.Tensor, s: RegionSettings, label: str
) -> dict[str, Any]:
    """Every number of one model on the prompts (n, window): curves, sharpness, the semantic
    check and the slice through the anchors."""
    if not 0 <= s.write_block < adapter.n_layers:
        raise ActspaceError(
            f"regions: write_block {s.write_block} is not a block of this {adapter.n_layers}-block model"
        )
    ids = prompts.to(adapter.device)
    clean = clean_pass(adapter, ids, s.write_block, s.batch_rows)
    a, b = rm.consecutive_pairs(len(ids))
    weights = rm.alphas(s.steps)
    points = rm.interpolate(clean.write[a], clean.write[b], weights)  # (P, S, d)
    outputs = patched_outputs(
        adapter,
        ids[a].repeat_interleave(s.steps, dim=0),
        points.flatten(0, 1),
        s.write_block,
        s.batch_rows,
        progress=f"{label}: interpolations",
    ).reshape(points.shape)
    dist = rm.distances(outputs, clean.output[a])
    curves = rm.relative_curves(dist)
    sharp = rm.sharpness(curves)
    same_top = clean.top[a] == clean.top[b]
    same_last = ids[a, -1] == ids[b, -1]
    slice_dist, t = slice_distances(adapter, ids, clean, s)
    n_params = sum(p.numel() for p in adapter.model.parameters())
    return {
        "arrays": {
            "distances": dist.float(),
            "curves": curves.float(),
            "sharpness": sharp.float(),
            "quartiles": rm.quartiles(sharp),
            "top_prediction": clean.top.int(),
            "same_top_prediction": same_top,
            "slice_distances": slice_dist.float(),
            "slice": rm.slice_colours(slice_dist).float(),
        },
        "attrs": {
            "n_params": int(n_params),
            "slice_t": t,
            "undefined_pairs": int((~torch.isfinite(sharp)).sum()),
            "semantic": rm.semantic_groups(
                sharp, same_last, same_top, s.semantic_share, tuple(s.semantic_thresholds)
            ),
        },
    }


def slice_distances(
    adapter: ModelAdapter, ids: torch.Tensor, clean, s: RegionSettings
) -> tuple[torch.Tensor, float]:
    """The authors' slice: the plane through the write activations of prompts anchor,
    anchor + 1, anchor + 2; each grid point patched into each anchor's context and compared
    with that anchor's own output: (3, G, G) distances indexed [anchor, beta, alpha], and t."""
    anchors = s.slice_anchors
    points, t = rm.slice_points(*(clean.write[i] for i in anchors), s.slice_grid)
    flat = points.flatten(0, 1)
    dist = []
    for k in anchors:
        context = ids[k : k + 1].expand(flat.shape[0], -1)
        out = patched_outputs(adapter, context, flat, s.write_block, s.batch_rows)
        dist.append(torch.linalg.vector_norm(out.double() - clean.output[k].double(), dim=-1))
    return torch.stack(dist).reshape(3, s.slice_steps, s.slice_steps), t


def regions_job(
    model_dir: str,
    corpus: str,
    checkpoints: str | None,
    out: str | os.PathLike,
    device: str,
    settings: dict[str, Any],
) -> None:
    """Rule ``find_stable_regions`` (see the module docstring for the store)."""
    s = RegionSettings.from_config(settings)
    manifest = read_manifest(model_dir)
    if s.n_prompts < max(2, s.slice_anchors[-1] + 1):
        raise ActspaceError(
            f"regions: n_prompts {s.n_prompts} gives no pair or no slice anchors "
            f"(slice_anchor {s.slice_anchor} needs {s.slice_anchors[-1] + 1} prompts)"
        )
    documents = documents_of(*read_corpus(corpus))
    tokens, origin = sample_windows(
        documents, s.window, s.n_prompts, s.seed, manifest.get("bos_token_id"), f"corpus {corpus}"
    )
    prompts = torch.from_numpy(tokens)
    a, b = rm.consecutive_pairs(len(prompts))
    variants = plan_variants(model_dir, checkpoints, s)
    attrs = provenance(
        kind="stable regions",
        model=manifest["name"],
        weights_sha256=manifest["weights_sha256"],
        corpus=Path(corpus).stem,
        settings=asdict(s),
        convention=CONVENTION.format(write_block=s.write_block),
        output="final hidden state after the final norm at the last position; d = Euclidean",
        variants=[v.name for v in variants],
        slice_anchors=s.slice_anchors,
    )
    with atomic_store(out, attrs) as group:
        group.create_array("prompts", data=tokens.astype(np.int32))
        group.create_array("origin", data=origin)
        group.create_array("pair_a", data=a.numpy())
        group.create_array("pair_b", data=b.numpy())
        group.create_array("alphas", data=rm.alphas(s.steps).numpy())
        group.create_array("same_last_token", data=(prompts[a, -1] == prompts[b, -1]).numpy())
        group.create_array("slice_grid", data=s.slice_grid.numpy())
        for variant in variants:
            adapter = load_variant(variant, model_dir, device, s.seed)
            result = measure(adapter, prompts, s, variant.name)
            del adapter  # one model in memory at a time (an 8B model and its random init)
            write_variant(group, variant, result)
            q = result["arrays"]["quartiles"]
            log.info(
                "%s %s: sharpness median %.3f (quartiles %.3f-%.3f) over %d pairs",
                manifest["name"],
                variant.name,
                q[1],
                q[0],
                q[2],
                len(a),
            )


def write_variant(group: zarr.Group, variant: Variant, result: dict[str, Any]) -> None:
    sub = group.create_group(variant.name)
    for name, value in result["arrays"].items():
        sub.create_array(name, data=value.cpu().numpy())
    sub.attrs.update({"kind": variant.kind, "step": variant.step, **result["attrs"]})
