"""What every benchmark records about the machine it ran on (imported by the scripts here)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch


def machine() -> dict[str, object]:
    """Cores, torch threads, torch and Python versions."""
    return {
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


SMOLLM2_DIR = "results/models/smollm2-135m"  # the embedded model as the default run leaves it


def smollm2(corpus: str) -> dict[str, str]:
    """Default ``--model`` and ``--corpus``: the embedded model and one of its corpora as the
    default run leaves them."""
    return {
        "model": SMOLLM2_DIR,
        "corpus": f"results/corpora/smollm2-135m/{corpus}.zarr",
    }


def arguments(doc: str, name: str, **options: Any) -> argparse.Namespace:
    """A benchmark's command line: ``--threads`` (2, applied to torch), ``--out``
    (``results/benchmarks/{name}.json``) and one ``--flag`` per option (its default's type;
    None: a path)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=f"results/benchmarks/{name}.json")
    for option, default in options.items():
        kind = str if default is None else type(default)
        parser.add_argument(f"--{option.replace('_', '-')}", type=kind, default=default)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


def timed(fn: Any) -> tuple[float, Any]:
    """Wall seconds of one call of ``fn`` and its value."""
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def write_record(out: str, record: dict[str, Any]) -> None:
    """Write a benchmark's record (with the machine) as JSON."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps({**record, "machine": machine()}, indent=2) + "\n")
