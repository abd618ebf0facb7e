"""The NDM optimisation with the published merge schedule (Huang & Hahn 2025).

R is kept orthogonal by torch's orthogonal parametrisation (matrix exponential, dynamic
trivialisation, as the authors). Training starts from equal subspaces of ``unit_size``; from
``merge_start``, every ``merge_interval`` steps, the pairwise KSG MI of the subspaces is
estimated, the most dependent disjoint pairs above ``merge_thr`` (normalised by the pair's
size) are merged, at most max(1, n / 8) per round, and the optimiser is reset; training stops
when no pair qualifies, or (the research log's crutch) once ``stop_at_n_subspaces`` remain.

``reinit_interval`` adds the authors' toy-model schedule (their ``toy-model`` code, not the
language-model runs): before ``merge_start``, every ``reinit_interval`` steps, the current R
is evaluated and the best kept; the worst subspace and a partner drawn by loss x MI get a
random rotation inside their union and Adam is reset; at ``merge_start`` merging proceeds
from the better of the last and the best R.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from actspace.checkpoint import Checkpoint, optimiser_state, optimiser_tensors
from actspace.errors import ActspaceError
from actspace.methods.partition.math import (
    ksg_mutual_information,
    merge_columns,
    normalised_mi,
    pairs_to_merge,
    reinit_partner,
    rotate_within,
    shuffled_pairing,
    subspace_losses,
    subspace_variances,
)
from actspace.settings import SectionSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartitionSettings(SectionSettings):
    """``config.partition`` less the sites it runs on (defaults: the schema)."""

    unit_size: int
    batch_size: int
    key_pool: int
    search_block: int
    lr: float
    clip_grad: float
    max_steps: int
    merge_start: int
    merge_interval: int
    merge_thr: float
    mi_null: bool
    reinit_interval: int | None  # None: the published schedule (no re-initialisation)
    stop_at_n_subspaces: int | None  # the variant, set per job (partition.sites.stop_at)
    mi_queries: int
    mi_keys: int
    max_activations: int
    seed: int


class _Rotation(nn.Module):
    """Holds R as ``weight``; the orthogonal parametrisation keeps it orthogonal."""

    def __init__(self, initial: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(initial.clone())


def orthogonal_rotation(initial: torch.Tensor) -> nn.Module:
    """A module whose ``weight`` is orthogonal, starting at the orthogonal ``initial``."""
    return nn.utils.parametrizations.orthogonal(_Rotation(initial))


def restart(R: torch.Tensor, lr: float) -> tuple[nn.Module, torch.optim.Adam]:
    """A new parametrisation starting at ``R`` and a new Adam: the schedule's reset (start,
    merge, re-init)."""
    rotation = orthogonal_rotation(R)
    return rotation, torch.optim.Adam(rotation.parameters(), lr=lr)


@dataclass
class PartitionResult:
    """A trained partition and how it got there."""

    R: torch.Tensor
    sizes: list[int]
    losses: list[float] = field(default_factory=list)
    merges: list[dict[str, Any]] = field(default_factory=list)
    reinits: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = "max_steps"
    steps: int = 0
    seconds: float = 0.0
    # R and sizes as the first merge round found them (the trained units; the final R and
    # sizes when no round ran): what the merges start from, for the known-circuit diagnosis
    units_R: torch.Tensor | None = None
    unit_sizes: list[int] = field(default_factory=list)


def disjoint_split(
    n: int, n_queries: int, n_keys: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random indices of at most ``n_queries`` queries (half the pool at most) and of
    ``n_keys`` other rows (at least one, however small the pool)."""
    order = torch.randperm(n, generator=generator)
    n_queries = min(n_queries, n // 2)
    n_keys = max(1, min(n_keys, n - n_queries))
    return order[:n_queries], order[n_queries : n_queries + n_keys]


def estimate_mi(
    activations: torch.Tensor,
    R: torch.Tensor,
    sizes: list[int],
    n_queries: int,
    n_keys: int,
    generator: torch.Generator,
    null: bool = False,
) -> torch.Tensor:
    """Pairwise KSG MI of the subspaces on a random disjoint query/key split of the pool,
    each subspace's distances scaled by the square root of its total variance; with
    ``null``, of the same data with every subspace shuffled across samples independently
    (what the estimator reports for independent subspaces with these marginals)."""
    query_rows, key_rows = disjoint_split(len(activations), n_queries, n_keys, generator)
    with torch.no_grad():
        queries = activations[query_rows] @ R
        keys = activations[key_rows] @ R
        if null:
            queries = shuffled_pairing(queries, sizes, generator)
            keys = shuffled_pairing(keys, sizes, generator)
        scales = subspace_variances(keys, sizes).clamp(min=1e-12).sqrt()
        return ksg_mutual_information(queries, keys, sizes, scales)


def evaluate_subspaces(
    activations: torch.Tensor,
    R: torch.Tensor,
    sizes: list[int],
    settings: PartitionSettings,
    generator: torch.Generator,
) -> torch.Tensor:
    """Each subspace's mean nearest-neighbour distance on a fresh disjoint split of
    ``mi_queries`` queries and ``mi_keys`` keys (the re-init rounds' evaluation)."""
    query_rows, key_rows = disjoint_split(
        len(activations), settings.mi_queries, settings.mi_keys, generator
    )
    with torch.no_grad():
        queries, keys = activations[query_rows], activations[key_rows]
        return subspace_losses(R, queries, keys, sizes, settings.search_block)


def reinit_due(settings: PartitionSettings, step: int) -> bool:
    """A re-init round after ``step``: every ``reinit_interval`` steps before merging."""
    interval = settings.reinit_interval
    return bool(interval) and step % interval == 0 and step < settings.merge_start


def reinit_round(
    activations: torch.Tensor,
    R: torch.Tensor,
    sizes: list[int],
    settings: PartitionSettings,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """One round of the authors' toy re-initialisation: the per-subspace losses of ``R``, the
    worst subspace, a partner drawn with probability proportional to loss x positive MI with
    it, and R rotated at random inside the pair's union. Returns (new R, losses, worst,
    partner)."""
    losses = evaluate_subspaces(activations, R, sizes, settings, generator)
    worst = int(torch.argmax(losses))
    mi = estimate_mi(activations, R, sizes, settings.mi_queries, settings.mi_keys, generator)
    partner = reinit_partner(losses, mi, worst, generator)
    return rotate_within(R, sizes, (worst, partner), generator), losses, worst, partner


def _save(
    checkpoint: Checkpoint,
    step: int,
    rotation: nn.Module,
    optimiser: torch.optim.Optimizer,
    generator: torch.Generator,
    result: PartitionResult,
    sizes: list[int],
    seconds: float,
    best: tuple[torch.Tensor, float] | None,
) -> None:
    """The whole state after ``step``: what :func:`train_partition` needs to continue."""
    tensors = {f"rotation.{k}": v for k, v in rotation.state_dict().items()}
    if best is not None:
        tensors["best_R"] = best[0]
    if result.units_R is not None:
        tensors["units_R"] = result.units_R
    optimiser_part, optimiser_meta = optimiser_tensors("optim", optimiser.state_dict())
    tensors.update(optimiser_part, generator=generator.get_state(), torch_rng=torch.get_rng_state())
    meta = {
        "step": step,
        "sizes": sizes,
        "losses": result.losses,
        "merges": result.merges,
        "reinits": result.reinits,
        "best_loss": None if best is None else best[1],
        "unit_sizes": result.unit_sizes,
        "optimiser": optimiser_meta,
        "seconds": seconds,
    }
    checkpoint.save(tensors, meta)


def train_partition(
    activations: torch.Tensor,
    settings: PartitionSettings,
    progress: bool = True,
    checkpoint: Checkpoint | None = None,
) -> PartitionResult:
    """Learn R and the partition of ``activations`` (n, d) by NDM with merging.

    Each step draws ``batch_size`` queries and ``key_pool`` keys from the pool, disjoint
    (the key pool is never empty, however small the pool), and takes one Adam step. With
    ``checkpoint``, the whole state (R's parametrisation, Adam's moments, the random
    generators, sizes, losses and merges so far) is saved every ``checkpoint.every`` steps
    and a saved state of the same key is continued from, with the same result as an
    uninterrupted run (``seconds`` counts every attempt).
    """
    n, d = activations.shape
    if d % settings.unit_size:
        raise ActspaceError(f"unit_size {settings.unit_size} does not divide d_model {d}")
    if n < 4:
        raise ActspaceError(f"{n} distinct activations are too few to partition")
    generator = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    sizes = [settings.unit_size] * (d // settings.unit_size)
    rotation, optimiser = restart(torch.eye(d), settings.lr)
    result = PartitionResult(rotation.weight.detach().clone(), sizes)
    start, earlier = 0, 0.0
    best: tuple[torch.Tensor, float] | None = None  # the re-init phase's best R and its loss
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        tensors, meta = saved
        start, earlier, sizes = meta["step"], meta["seconds"], meta["sizes"]
        result.losses, result.merges, result.steps = meta["losses"], meta["merges"], start
        result.reinits = meta.get("reinits", [])
        result.units_R, result.unit_sizes = tensors.get("units_R"), meta.get("unit_sizes", [])
        if meta.get("best_loss") is not None:
            best = (tensors["best_R"], meta["best_loss"])
        prefix = "rotation."
        rotation.load_state_dict(
            {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        )
        optimiser = torch.optim.Adam(rotation.parameters(), lr=settings.lr)
        optimiser.load_state_dict(optimiser_state("optim", tensors, meta["optimiser"]))
        generator.set_state(tensors["generator"])
        torch.set_rng_state(tensors["torch_rng"])
        log.info("resumed from the state saved at step %d (%d subspaces)", start, len(sizes))
    started = time.perf_counter() - earlier
    steps = range(start + 1, settings.max_steps + 1)
    total, quiet = settings.max_steps, not progress
    bar = tqdm(steps, desc="NDM", total=total, initial=start, disable=quiet, mininterval=5)
    for step in bar:
        if checkpoint is not None and checkpoint.due(step - 1, start):
            seconds = time.perf_counter() - started
            _save(
                checkpoint, step - 1, rotation, optimiser, generator, result, sizes, seconds, best
            )
        query_rows, key_rows = disjoint_split(n, settings.batch_size, settings.key_pool, generator)
        queries, keys = activations[query_rows], activations[key_rows]
        loss = subspace_losses(rotation.weight, queries, keys, sizes, settings.search_block)
        loss = loss.mean()  # the NDM loss: unweighted over subspaces
        if not torch.isfinite(loss):
            raise ActspaceError(
                f"the NDM loss is {loss.item()} at step {step}; a non-finite activation in the "
                "pool, or lower partition.lr"
            )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(rotation.parameters(), settings.clip_grad)
        optimiser.step()
        result.losses.append(loss.item())
        result.steps = step
        bar.set_postfix(loss=f"{result.losses[-1]:.4f}", subspaces=len(sizes), refresh=False)
        if reinit_due(settings, step) and len(sizes) > 1:
            R = rotation.weight.detach().clone()
            new_R, losses, worst, partner = reinit_round(activations, R, sizes, settings, generator)
            loss_now = float(losses.mean())
            if best is None or loss_now < best[1]:
                best = (R, loss_now)
            result.reinits.append(
                {
                    "step": step,
                    "loss": loss_now,
                    "losses": [float(x) for x in losses],
                    "rotated": [worst, partner],
                }
            )
            log.info("step %d: re-init of subspaces %d and %d", step, worst, partner)
            rotation, optimiser = restart(new_R, settings.lr)
            continue
        if best is not None and step == settings.merge_start:  # end of the re-init phase
            R = better_rotation(
                activations, rotation.weight.detach(), sizes, settings, generator, best
            )
            rotation, optimiser = restart(R, settings.lr)
        due = (
            step >= settings.merge_start
            and (step - settings.merge_start) % settings.merge_interval == 0
        )
        if not due or step >= settings.max_steps - 100:  # as published: none near the end
            continue
        stop_at = settings.stop_at_n_subspaces
        if stop_at is not None and len(sizes) <= stop_at:
            result.stopped = f"stop_at_n_subspaces ({stop_at})"
            break
        R = rotation.weight.detach()
        if result.units_R is None:
            result.units_R, result.unit_sizes = R.clone(), list(sizes)
        mi = estimate_mi(activations, R, sizes, settings.mi_queries, settings.mi_keys, generator)
        if settings.mi_null:  # merge on the MI above what independent subspaces would show
            mi = mi - estimate_mi(
                activations, R, sizes, settings.mi_queries, settings.mi_keys, generator, True
            )
        nmi = normalised_mi(mi, sizes)
        pairs = pairs_to_merge(nmi, settings.merge_thr)
        result.merges.append(
            {
                "step": step,
                "sizes": list(sizes),
                "max_nmi": float(nmi.max()) if len(sizes) > 1 else 0.0,
                "merged": [[int(i), int(j)] for i, j in pairs],
                "nmi": [[float(x) for x in row] for row in nmi],
            }
        )
        log.info(
            "step %d: %d subspaces, max normalised MI %.3f, merging %s",
            step,
            len(sizes),
            result.merges[-1]["max_nmi"],
            pairs or "nothing",
        )
        if not pairs:
            result.stopped = "no pair above merge_thr"
            break
        R, sizes, _ = merge_columns(R, sizes, pairs)
        rotation, optimiser = restart(R, settings.lr)
    result.R = rotation.weight.detach().clone()
    if best is not None and result.steps < settings.merge_start:  # stopped while re-initialising
        result.R = better_rotation(activations, result.R, sizes, settings, generator, best)
    result.sizes = list(sizes)
    if result.units_R is None:  # no merge round ran
        result.units_R, result.unit_sizes = result.R.clone(), list(sizes)
    result.seconds = time.perf_counter() - started
    return result


def better_rotation(
    activations: torch.Tensor,
    current: torch.Tensor,
    sizes: list[int],
    settings: PartitionSettings,
    generator: torch.Generator,
    best: tuple[torch.Tensor, float],
) -> torch.Tensor:
    """The R to merge from after the re-init phase: ``current`` or the best kept, whichever
    has the lower evaluated loss."""
    loss = float(evaluate_subspaces(activations, current, sizes, settings, generator).mean())
    chosen = current if loss <= best[1] else best[0]
    log.info("re-init phase over: merging from the %s R", "last" if chosen is current else "best")
    return chosen.clone()
