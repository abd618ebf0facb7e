"""One package per method, each split by role: pure math, the job (one rule's work: read the
validated config section into a settings object, read and write stores), the summary
(headline rows) and the figures. Which methods exist: :mod:`actspace.registry`."""
