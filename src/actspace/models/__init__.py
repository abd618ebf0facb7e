"""Shared model layer: materialise any supported causal LM once, load it, read and hook it.

``adapter``  one interface over architectures (weights in row-vector form, named hook points)
``sources``  package-gguf / hub / local sources -> a safetensors model directory + manifest
"""

from actspace.models.adapter import (
    AttentionWeights,
    MLPWeights,
    ModelAdapter,
    describe,
    resid_post,
)
from actspace.models.sources import load_model, materialise, random_init, read_manifest

__all__ = [
    "AttentionWeights",
    "MLPWeights",
    "ModelAdapter",
    "describe",
    "load_model",
    "materialise",
    "random_init",
    "read_manifest",
    "resid_post",
]
