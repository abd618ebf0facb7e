"""Shared data layer: corpora, batching and generation, used by every method that runs text.

``corpora``     a corpus spec (prompts, files, model samples) -> a token store
``batching``    documents grouped into bounded batches, right padding
``generation``  greedy and sampled generation, the pad-token fallback
``tasks``       the copy tasks of the toy transformers (sequences and batches)
"""
