"""actspace: the geometry of transformer activations and weights, as a Snakemake pipeline.

Layout
------
models      shared: load, materialise and hook any supported causal LM (one adapter)
data        shared: corpora, batching, generation
store       shared: atomic Zarr v3 stores and CSV/JSON tables with provenance attributes
provenance  shared: package versions and the code hashes that decide staleness
plotting    shared: figure style
methods     one package per method (capture, text_subspaces, weights_svd, toys), split by
            role: math, job, summary, figures
registry    the list of methods the workflow is built from
reporting   the summary of results (never imported by a computation)
"""

__version__ = "0.1.0"

from actspace.errors import ActspaceError  # noqa: E402  (light import, no torch)

__all__ = ["ActspaceError", "__version__"]
