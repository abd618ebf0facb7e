"""Toy copy transformers with known circuits (induction heads), trained in the pipeline.

The subspace-partition research log (``shared/papers/001``) needs transformers whose circuit
is known: a two-layer GPT-2 trained to repeat a sequence of unique tokens forms a
previous-token head in layer 1 and an induction head in layer 2; a model trained to repeat a
sequence of *unique bigrams* must match the previous token as well as the current one (a
bigram-induction head).

``heads``     induction, previous-token, bigram and decoy scores of every head
``model``     the GPT-2 of a toy (attention-only by zeroed, frozen MLPs)
``training``  the training loop, evaluation, checkpoints
``spec``      a config entry as one object, its config checks, the acceptance bars
``job``       rules ``train_toy`` and ``toy_search``
``summary``   headline numbers beside the public toys'
``figures``   training curves and attention patterns

The copy tasks themselves are shared data (:mod:`actspace.data.tasks`): a ``task`` corpus
runs the same sequences through any model.
"""
