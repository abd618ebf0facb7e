"""Stable regions: interpolate between model-generated residual activations and measure how
sharply the output changes (Janiak et al. 2024, arXiv 2409.17113, ``shared/papers/004``;
specification in ``shared/research/melbo_stable_regions.md`` part 3).

``math``      interpolation, relative curves, sharpness, quartiles, the 2-D slice's plane
``passes``    clean and last-position-patched forward passes through the adapter's hooks
``runs``      the config section: runs, settings, checks
``job``       rule ``find_stable_regions`` (trained, random init, every toy checkpoint)
``read``      a finished store as objects
``summary``   headline numbers beside the published ones
``figures``   curves, sharpness distributions, RGB slices and their animation, sharpness
              against training step and model size
"""
