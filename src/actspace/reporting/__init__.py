"""Reporting: the summary of results, kept apart from every computation.

``rows``            a method summary's row (ours beside the published value) and the reader
                    of ``published.yaml``
``published.yaml``  every published reference value: study, model, setting, value
``page``            renders ``results/summary.md`` from the per-method summaries

Only summary jobs import this package, so editing it never reruns a computation.
"""
