"""User-facing errors.

An :class:`ActspaceError` names the problem (which model, which key, which file) in one
sentence; the job wrappers print it without a traceback, so a researcher sees the cause
rather than a stack of library frames.
"""


class ActspaceError(Exception):
    """A problem with the user's input (config, model, corpus, store), not a bug."""
