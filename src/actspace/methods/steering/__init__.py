"""Orthogonal steering: MELBO's unsupervised steering vectors (Mack & Turner 2024) and
MELBO-ortho's hundreds of mutually orthogonal vectors with the same effect (Goldman-Wetzler
2024, ``shared/papers/003``); specification in ``shared/research/melbo_stable_regions.md``.

``math``      objectives, hard orthogonality (an orthonormal float64 basis), KL, combinations
``passes``    steered forward passes and generations through the adapter's hook points
``train``     the MELBO and MELBO-ortho optimisation loops (blocks of vectors per pass)
``runs``      the config section: runs, per-part settings, checks
``job``       rules ``learn_melbo``, ``steering_radius_sweep``, ``learn_orthogonal_vectors``,
              ``steering_generations``, ``export_steering_vectors``
``command``   ``actspace steer``: generate with a stored vector
``summary``   headline numbers beside the published ones
``figures``   KL and norms against the index, combinations, MELBO curves and the sweep
"""
