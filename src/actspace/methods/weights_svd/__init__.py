"""Weight SVD: OV circuits and MLP weights read in token space (Millidge & Black 2022).

``matrices``  the decomposed matrices (norm gains folded), their SVD and Gaussian controls
``tokens``    top tokens of a direction, neighbourhood coherence, the query locator
``edits``     rank-1 removal of one direction and its effect on log p(token)
``job``       rule ``weights_svd``: every matrix and control, the store and tables
``read``      reading a finished store (kinds, coherent fractions, ad-hoc queries)
``summary``   headline numbers beside the published ones
``figures``   token table, spectra, coherence, edits
"""
