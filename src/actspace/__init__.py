"""actspace: the geometry of transformer activations and weights, as a Snakemake pipeline.

Modules
-------
models      load, materialise and hook any supported causal LM (one adapter over architectures)
corpora     turn a corpus spec (prompts, files, model samples) into a token store
capture     record residual-stream activations into a Zarr store
store       atomic Zarr v3 I/O with provenance attributes
summary     headline numbers beside the published ones
"""

__version__ = "0.1.0"

from actspace.errors import ActspaceError  # noqa: E402  (light import, no torch)

__all__ = ["ActspaceError", "__version__"]
