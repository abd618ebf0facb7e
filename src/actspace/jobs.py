"""Glue between a Snakemake job and the package: logging, threads, clean errors.

Each ``workflow/scripts/*.py`` is three lines: ``with job(snakemake):`` around one package
call. Inside, stdout, stderr and logging go to the rule's log file; an
:class:`~actspace.errors.ActspaceError` (bad input) is written to the log and to the
terminal as one line, and fails the job without a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from actspace.errors import ActspaceError

# disk full, quota exceeded, read-only file system, no permission
UNWRITABLE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


@contextlib.contextmanager
def job(smk: Any) -> Iterator[None]:
    """Run the body of a Snakemake script job with its log, threads and error handling."""
    terminal = sys.stderr
    log_path = smk.log[0] if len(smk.log) else None
    with contextlib.ExitStack() as stack:
        if log_path:
            handle = stack.enter_context(open(log_path, "a", buffering=1, encoding="utf-8"))
            stack.enter_context(contextlib.redirect_stdout(handle))
            stack.enter_context(contextlib.redirect_stderr(handle))
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(name)s %(levelname)s: %(message)s",
            stream=sys.stderr,
            force=True,
        )
        set_torch_threads(max(1, int(smk.threads)))
        try:
            try:
                yield
            except ValueError as err:
                from actspace.store import is_checksum_failure

                if not is_checksum_failure(err):
                    raise
                raise damaged_input(smk, err) from None
            except OSError as err:
                if err.errno not in UNWRITABLE:
                    raise
                where = err.filename or "the results directory"
                raise ActspaceError(
                    f"cannot write {where}: {err.strerror} (free disk space or make results/ "
                    "writable, then rerun; nothing of this job was kept)"
                ) from None
        except ActspaceError as err:
            message = f"actspace: error in rule {smk.rule}: {err}"
            logging.getLogger("actspace").error("%s", err)
            print(message, file=terminal)
            raise SystemExit(1) from None


def set_torch_threads(threads: int) -> None:
    """Give torch the job's threads without importing it: a job that never uses torch (a
    summary, most figures) saves its 1-2 s import. Torch already imported is told directly;
    otherwise OMP_NUM_THREADS, which torch reads when the job imports it."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = str(threads)


def damaged_input(smk: Any, err: Exception) -> ActspaceError:
    """The error for a chunk that failed its checksum: which input store, which chunk, and
    how to rebuild it (found by verifying each input store)."""
    from actspace.store import verify_store

    for path in smk.input:
        if (Path(path) / "zarr.json").is_file():
            try:
                verify_store(path)
            except ActspaceError as found:
                return found
    return ActspaceError(f"an input chunk failed its checksum ({err}); inputs: {list(smk.input)}")


def figure_outputs(smk: Any) -> dict[str, str]:
    """A figures rule's named outputs less ``pdf`` (the PDF copies that
    :func:`actspace.plotting.save_figure` writes beside each PNG)."""
    return {name: path for name, path in smk.output.items() if name != "pdf"}
