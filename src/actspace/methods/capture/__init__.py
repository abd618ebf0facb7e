"""Capture: the residual stream of every token at every layer, into a Zarr v3 store.

``record``   hook points, one batch's residuals, chunk-aligned writing
``job``      rule ``capture_residuals``
``summary``  throughput and storage per activation (pipeline figures)
"""
