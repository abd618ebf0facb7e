"""What every benchmark records about the machine it ran on (imported by the scripts here)."""

from __future__ import annotations

import os
import platform

import torch


def machine() -> dict[str, object]:
    """Cores, torch threads, torch and Python versions."""
    return {
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
