"""The job wrapper of the workflow's scripts: threads reach torch without importing it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("torch_first", [False, True])
def test_a_jobs_threads_reach_torch_imported_before_or_after(torch_first):
    code = (
        "import sys\n"
        + ("import torch\n" if torch_first else "")
        + "from actspace.jobs import set_torch_threads\n"
        "set_torch_threads(1)\n"
        "imported = 'torch' in sys.modules\n"
        "import torch\n"
        "print(imported, torch.get_num_threads())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    # torch's default here is the machine's core count (2 or more); the job asked for 1
    assert result.stdout.split() == [str(torch_first), "1"]
