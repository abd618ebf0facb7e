"""Reading a finished stable-regions store: its variants in order, each with its numbers
(for the summary and the figures, which never recompute anything)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from actspace.errors import ActspaceError
from actspace.store import open_store

TOP_ARRAYS = ("prompts", "pair_a", "pair_b", "alphas", "same_last_token", "slice_grid")
VARIANT_ARRAYS = ("curves", "sharpness", "quartiles", "same_top_prediction", "slice")


@dataclass(frozen=True)
class VariantResult:
    """One model of a store: group name, kind, step, parameter count and its arrays."""

    name: str
    kind: str
    step: int | None
    n_params: int
    attrs: dict[str, Any]
    curves: np.ndarray
    sharpness: np.ndarray
    quartiles: np.ndarray
    same_top_prediction: np.ndarray
    slice: np.ndarray

    @property
    def label(self) -> str:
        if self.step is None:
            return self.kind
        return f"step {self.step}" + ("" if self.kind == "checkpoint" else f" ({self.kind})")


@dataclass(frozen=True)
class RegionsResult:
    """A store's shared arrays and its variants, in the order they were measured."""

    model: str
    corpus: str
    attrs: dict[str, Any]
    alphas: np.ndarray
    same_last_token: np.ndarray
    slice_grid: np.ndarray
    variants: list[VariantResult]

    def of_kind(self, kind: str) -> VariantResult | None:
        return next((v for v in self.variants if v.kind == kind), None)

    @property
    def checkpoints(self) -> list[VariantResult]:
        """The variants with a training step (a toy's stored checkpoints), in order."""
        return [v for v in self.variants if v.step is not None]


def read_regions(path: str | os.PathLike) -> RegionsResult:
    group = open_store(path, TOP_ARRAYS)
    variants = []
    for name in group.attrs["variants"]:
        if name not in group.group_keys():
            raise ActspaceError(f"store {path} lacks the group of variant {name!r} (corrupt store)")
        sub = group[name]
        missing = [a for a in VARIANT_ARRAYS if a not in set(sub.array_keys())]
        if missing:
            raise ActspaceError(f"store {path}: variant {name!r} lacks the arrays {missing}")
        attrs = dict(sub.attrs)
        variants.append(
            VariantResult(
                name,
                attrs["kind"],
                attrs["step"],
                attrs["n_params"],
                attrs,
                *(sub[a][:] for a in VARIANT_ARRAYS),
            )
        )
    return RegionsResult(
        group.attrs["model"],
        Path(path).name.removesuffix(".zarr"),
        dict(group.attrs),
        group["alphas"][:],
        group["same_last_token"][:],
        group["slice_grid"][:],
        variants,
    )
