"""Text subspaces: the directions of the residual stream that a text uses (tailcalled 2024).

``math``     per-text SVD, projectors, k* by bisection, overlaps, usage (tensors in, out)
``passes``   projected forward passes: NLL and greedy generation under P_k
``job``      rule ``text_subspaces``: reads the activation store, writes the result store
``summary``  headline numbers beside the published ones
``figures``  spectra, NLL curves, overlaps, usage
"""
