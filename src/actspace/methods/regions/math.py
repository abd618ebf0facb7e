"""Pure tensor functions of the stable-regions method (Janiak et al. 2024, arXiv 2409.17113;
``shared/papers/004``, specification in ``shared/research/melbo_stable_regions.md`` part 3).

A pair of prompts (A, B) gives two activations x_A, x_B (the residual stream after the write
block at the last position). Along the segment x(alpha) = (1 - alpha) x_A + alpha x_B the
model's output changes by d(alpha) = ||out(alpha) - out(0)||; the relative curve
r = d / d(1) runs from 0 to 1, and the *sharpness* of the boundary the segment crosses is the
largest finite-difference slope of r per unit alpha.
"""

from __future__ import annotations

import torch


def alphas(steps: int) -> torch.Tensor:
    """``steps`` interpolation weights from 0 to 1, both ends included (the authors'
    ``linspace``), float64."""
    if steps < 2:
        raise ValueError(f"interpolation needs at least 2 steps, got {steps}")
    return torch.linspace(0.0, 1.0, steps, dtype=torch.float64)


def interpolate(start: torch.Tensor, end: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Points (1 - alpha) start + alpha end: (..., d) ends and (S,) weights give
    (..., S, d), in the ends' dtype."""
    w = weights.to(start.dtype)[:, None]
    return (1 - w) * start[..., None, :] + w * end[..., None, :]


def distances(outputs: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Euclidean distance of each output (..., S, d) to its reference output (..., d), in
    float64: d(alpha) of every point of every pair, (..., S)."""
    return torch.linalg.vector_norm(outputs.double() - reference.double()[..., None, :], dim=-1)


def relative_curves(dist: torch.Tensor) -> torch.Tensor:
    """r(alpha) = d(alpha) / d(1) per pair, (..., S). A pair whose end output equals its start
    output (d(1) = 0) has no defined curve: its row is NaN."""
    end = dist[..., -1:]
    safe = torch.where(end > 0, end, torch.ones_like(end))
    return torch.where(end > 0, dist / safe, torch.full_like(dist, float("nan")))


def sharpness(curves: torch.Tensor) -> torch.Tensor:
    """The authors' "maximum slope": max_k (r_{k+1} - r_k) x (S - 1) per pair, (...,).

    The mean slope of a curve from 0 to 1 is exactly 1, so sharpness >= 1 with equality only
    for a linear curve, and <= S - 1 for a monotone one; it depends on S (compare only at the
    same step count)."""
    steps = curves.shape[-1]
    return (curves[..., 1:] - curves[..., :-1]).amax(dim=-1) * (steps - 1)


def quartiles(values: torch.Tensor) -> torch.Tensor:
    """25th, 50th and 75th percentiles of the finite values (NaN when none), float64."""
    finite = values[torch.isfinite(values)].double()
    if finite.numel() == 0:
        return torch.full((3,), float("nan"), dtype=torch.float64)
    return torch.quantile(finite, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))


def consecutive_pairs(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (a, b) of the authors' pairing: prompt i with prompt i + 1 (n prompts give
    n - 1 pairs)."""
    index = torch.arange(n)
    return index[:-1], index[1:]


def split_by_sharpness(values: torch.Tensor, share: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of the ``share`` least sharp and the ``share`` sharpest pairs (finite values
    only; ties at a boundary go to the inner side), for the semantic check."""
    finite = torch.isfinite(values)
    if not finite.any():
        return finite, finite
    low, high = torch.quantile(values[finite].double(), torch.tensor([share, 1 - share]).double())
    return finite & (values.double() <= low), finite & (values.double() >= high)


def semantic_groups(
    sharp: torch.Tensor,
    same_last: torch.Tensor,
    same_top: torch.Tensor,
    share: float,
    thresholds: tuple[float, float],
) -> list[dict[str, object]]:
    """The paper's semantic check as counts: in each group of pairs (sharpness below the low
    threshold, above the high one, the ``share`` least and most sharp, all pairs), how many
    pairs there are, how many end in the same token and how many get the same top
    prediction. The paper's groups are sharpness < 1.2 and > 10 (Qwen2-0.5B, 30 steps)."""
    finite = torch.isfinite(sharp)
    least, most = split_by_sharpness(sharp, share)
    groups = {
        f"sharpness < {thresholds[0]:g}": finite & (sharp < thresholds[0]),
        f"sharpness > {thresholds[1]:g}": finite & (sharp > thresholds[1]),
        f"least sharp {share:.0%}": least,
        f"sharpest {share:.0%}": most,
        "all pairs": finite,
    }
    return [
        {
            "group": name,
            "pairs": int(mask.sum()),
            "same_last_token": int((same_last & mask).sum()),
            "same_top_prediction": int((same_top & mask).sum()),
        }
        for name, mask in groups.items()
    ]


# ---------------------------------------------------------------------- two-dimensional slices
def slice_frame(
    a: torch.Tensor, b: torch.Tensor, c: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The authors' frame of the plane through three activations: the direction B - A, the
    direction from the foot of C on the line AB to C, and t, the foot's position on AB; in
    grid coordinates A = (0, 0), B = (1, 0), C = (t, 1)."""
    u = (b - a).double()
    t = float(torch.dot(u, (c - a).double()) / torch.dot(u, u))
    v = (c - (a + t * (b - a))).double()
    return u, v, t


def slice_points(
    a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, grid: torch.Tensor
) -> tuple[torch.Tensor, float]:
    """Grid points A + alpha (B - A) + beta (C - foot) for alpha, beta in ``grid`` (G,), as
    (G, G, d) indexed [beta, alpha] (image rows = beta, the authors' ``origin="lower"``), and t."""
    u, v, t = slice_frame(a, b, c)
    g = grid.double()
    points = a.double() + g[None, :, None] * u + g[:, None, None] * v
    return points.to(a.dtype), t


def slice_colours(dist: torch.Tensor) -> torch.Tensor:
    """The authors' colouring of a slice: ``dist`` (3, G, G), each grid point's distance to
    the three anchors' own outputs, becomes RGB (G, G, 3) with channel k = 1 - d_k / max d_k
    (each channel normalised by its own maximum over the grid). An anchor's own channel is 1
    there; the other two are generally not 0."""
    top = dist.flatten(1).amax(dim=1).clamp_min(torch.finfo(dist.dtype).tiny)
    return (1 - dist / top[:, None, None]).permute(1, 2, 0)
