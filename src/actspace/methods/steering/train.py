"""The two optimisations: MELBO vectors on the sphere and MELBO-ortho's orthogonal set.

Both take the model as a function (``thetas (m, d) -> activations``) so the loops run on any
differentiable map, a tiny random model in the tests or SmolLM2 in the pipeline. Vectors are
learned in blocks of ``block`` vectors optimised together, one batched forward pass per step
instead of ``block`` passes; every vector stays orthogonal to every stored vector and to the
rest of its block after every step, and ``block = 1`` is exactly the reference's loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from actspace.checkpoint import Checkpoint
from actspace.errors import ActspaceError
from actspace.methods.steering.math import (
    OrthonormalBasis,
    orthogonalise_block,
    symmetric_orthogonal,
    symmetric_orthonormal,
    tangent,
    to_sphere,
)

Objective = Callable[[torch.Tensor], torch.Tensor]  # thetas (m, d) -> values (m,)


def random_orthogonal(
    n: int, d: int, norms: torch.Tensor | float, basis: OrthonormalBasis, generator: torch.Generator
) -> torch.Tensor:
    """``n`` random directions orthogonal to ``basis`` and to each other, with the given norms."""
    draws = torch.randn(n, d, generator=generator, dtype=torch.float64)
    directions = orthogonalise_block(draws, basis)
    return to_sphere(directions, 1.0) * torch.as_tensor(norms, dtype=torch.float64).reshape(-1, 1)


def _check_finite(values: torch.Tensor, what: str, step: int) -> None:
    if not torch.isfinite(values).all():
        raise ActspaceError(
            f"{what}: non-finite value at step {step} (lower the learning rate or the radius R)"
        )


def _save_blocks(
    checkpoint: Checkpoint | None,
    generator: torch.Generator,
    produced: int,
    arrays: dict[str, list],
    **meta,
) -> None:
    """After a finished block: the vectors and per-vector arrays so far (concatenated) and the
    generator, enough for :func:`_load_blocks` to continue with the next block."""
    if checkpoint is None:
        return
    tensors = {name: torch.as_tensor(np.concatenate(parts)) for name, parts in arrays.items()}
    checkpoint.save({**tensors, "generator": generator.get_state()}, {"produced": produced, **meta})


def _load_blocks(
    checkpoint: Checkpoint | None, generator: torch.Generator, basis: OrthonormalBasis
) -> tuple[dict[str, list], dict]:
    """The saved arrays (one part each) and meta, the generator restored and the saved
    vectors added to ``basis`` in their order; empty when nothing of this key is saved."""
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is None:
        return {}, {"produced": 0}
    tensors, meta = saved
    generator.set_state(tensors.pop("generator"))
    for row in tensors["vectors"]:
        if torch.isfinite(row).all():
            basis.add(row)
    return {name: [value.numpy()] for name, value in tensors.items()}, meta


@dataclass
class MelboResult:
    """MELBO's vectors (n, d), final objectives (n,) and objective per step (n, steps)."""

    vectors: torch.Tensor
    objective: np.ndarray
    history: np.ndarray


def learn_melbo(
    objective: Objective,
    d: int,
    n_vectors: int,
    radius: float,
    steps: int,
    lr: float,
    block: int,
    seed: int,
    progress: bool = True,
    checkpoint: Checkpoint | None = None,
) -> MelboResult:
    """Learn ``n_vectors`` mutually orthogonal vectors of norm ``radius`` maximising
    ``objective`` (MELBO, Mack & Turner 2024).

    Each step, as the reference code: the gradient of the negated objective is projected off
    the stored vectors and onto the sphere's tangent, AdamW (betas 0.9/0.98, no weight decay,
    amsgrad) steps, then theta is projected off the stored vectors and rescaled to
    ``radius``; the vectors of one block are made orthonormal symmetrically
    (:func:`~actspace.methods.steering.math.symmetric_orthonormal`: the block maximises the
    sum of its objectives on the set of orthogonal vectors; ``block = 1`` is the reference).
    With ``checkpoint``, the vectors so far are saved after every block and a killed run
    continues with the next block, ending as an uninterrupted run would.
    """
    generator = torch.Generator().manual_seed(seed)
    basis = OrthonormalBasis(d)
    saved, meta = _load_blocks(checkpoint, generator, basis)
    vectors, finals, history = (saved.get(k, []) for k in ("vectors", "objective", "history"))
    produced = meta["produced"]
    bar = tqdm(total=n_vectors * steps, desc="MELBO", unit="step", disable=not progress)
    bar.update(produced * steps)
    while produced < n_vectors:
        m = min(block, n_vectors - produced)
        produced += m
        start = random_orthogonal(m, d, radius, basis, generator).float()
        theta = torch.nn.Parameter(start)
        optimiser = torch.optim.AdamW(
            [theta], lr=lr, betas=(0.9, 0.98), weight_decay=0.0, amsgrad=True
        )
        curve = np.zeros((m, steps))
        for step in range(steps):
            optimiser.zero_grad()
            values = objective(theta)
            _check_finite(values.detach(), "MELBO objective", step)
            (-values.sum()).backward()
            with torch.no_grad():
                theta.grad.copy_(tangent(basis.project_off(theta.grad), theta))
            optimiser.step()
            with torch.no_grad():
                theta.copy_(radius * symmetric_orthonormal(theta, basis))
            curve[:, step] = values.detach().numpy()
            bar.update(m)
        with torch.no_grad():
            final = objective(theta.detach())
        for row in theta.detach():
            basis.add(row)
        vectors.append(theta.detach().clone().numpy())
        finals.append(final.numpy())
        history.append(curve)
        arrays = {"vectors": vectors, "objective": finals, "history": history}
        _save_blocks(checkpoint, generator, produced, arrays)
    bar.close()
    return MelboResult(
        torch.from_numpy(np.concatenate(vectors)), np.concatenate(finals), np.concatenate(history)
    )


@dataclass
class OrthoResult:
    """MELBO-ortho's vectors (n, d) in order of discovery (theta_0 excluded), their final
    losses, loss per step (n, steps) and which are kept (finite, norm above the floor)."""

    vectors: torch.Tensor
    loss: np.ndarray
    history: np.ndarray
    kept: np.ndarray
    stopped: str


def learn_ortho(
    loss_fn: Objective,
    theta0: torch.Tensor,
    n_max: int,
    steps: int,
    lr: float,
    block: int,
    min_norm: float,
    collapse_blocks: int,
    seed: int,
    progress: bool = True,
    checkpoint: Checkpoint | None = None,
) -> OrthoResult:
    """Vectors orthogonal to ``theta0`` and to each other, each minimising ``loss_fn``
    (MELBO-ortho, Goldman-Wetzler 2024): Adam (lr ``lr``), no norm constraint, theta projected
    off theta_0 and the earlier vectors after every step (a block's vectors made orthogonal
    to each other symmetrically, keeping their norms; ``block = 1`` is the reference).

    Starts from a random direction with theta_0's norm orthogonal to the set (the reference
    leaves the start to the caller). Stops at ``n_max`` vectors, at d - 1 (the whole orthogonal
    complement), or after ``collapse_blocks`` consecutive blocks
    whose vectors all end at norm <= ``min_norm`` (the norms have collapsed). With
    ``checkpoint``, saved after every block as :func:`learn_melbo`.
    """
    d = theta0.numel()
    start_norm = float(theta0.norm())
    if not math.isfinite(start_norm) or start_norm == 0:
        raise ActspaceError("MELBO-ortho: the base vector theta_0 is zero or not finite")
    n_max = min(n_max, d - 1)
    generator = torch.Generator().manual_seed(seed)
    basis = OrthonormalBasis(d)
    basis.add(theta0)
    saved, meta = _load_blocks(checkpoint, generator, basis)
    vectors, finals, history, kept = (
        saved.get(k, []) for k in ("vectors", "loss", "history", "kept")
    )
    produced, collapsed = meta["produced"], meta.get("collapsed", 0)
    stopped = meta.get("stopped", f"n_max ({n_max})")
    bar = tqdm(total=n_max * steps, desc="MELBO-ortho", unit="step", disable=not progress)
    bar.update(produced * steps)
    while produced < n_max and not meta.get("stopped"):
        m = min(block, n_max - produced)
        produced += m
        theta = torch.nn.Parameter(random_orthogonal(m, d, start_norm, basis, generator).float())
        optimiser = torch.optim.Adam([theta], lr=lr)
        curve = np.zeros((m, steps))
        for step in range(steps):
            optimiser.zero_grad()
            values = loss_fn(theta)  # a vector that turns NaN is dropped, as the reference
            values.sum().backward()
            optimiser.step()
            with torch.no_grad():
                theta.copy_(symmetric_orthogonal(theta, basis))
            curve[:, step] = values.detach().numpy()
            bar.update(m)
        result = theta.detach().clone()
        with torch.no_grad():
            final = loss_fn(result)
        norms = result.norm(dim=1)
        keep = torch.isfinite(result).all(1) & (norms > min_norm)
        for row in result:
            if torch.isfinite(row).all():
                basis.add(row)
        vectors.append(result.numpy())
        finals.append(final.numpy())
        history.append(curve)
        kept.append(keep.numpy())
        collapsed = 0 if bool(keep.any()) else collapsed + 1
        done = collapsed >= collapse_blocks
        if done:
            stopped = f"norms collapsed ({collapse_blocks} blocks at norm <= {min_norm})"
        arrays = {"vectors": vectors, "loss": finals, "history": history, "kept": kept}
        extra = {"stopped": stopped} if done else {}
        _save_blocks(checkpoint, generator, produced, arrays, collapsed=collapsed, **extra)
        if done:
            break
    bar.close()
    return OrthoResult(
        torch.from_numpy(np.concatenate(vectors)),
        np.concatenate(finals),
        np.concatenate(history),
        np.concatenate(kept),
        stopped,
    )
