"""Determinism of the CI profile itself: run twice in fresh directories, the same config and
seeds write the same stores, every array bit for bit and every attribute but the volatile
ones (``store.VOLATILE_ATTRS``). Two CI-profile runs take about 15 minutes on 2 cores, more
than the test suite's budget allows: this test is deselected from ``make test`` and run by
``make determinism`` (the tiny config's determinism test runs in every ``make test``:
``test_workflow_faults.py::test_the_same_config_writes_identical_stores``)."""

from __future__ import annotations

import pytest

from actspace.store import store_differences
from conftest import REPO, run_workflow

pytestmark = pytest.mark.determinism


def test_the_ci_profile_run_twice_writes_identical_stores(ci_profile_run, tmp_path):
    result = run_workflow(tmp_path, None, "--configfile", str(REPO / "config" / "ci.yaml"))
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = ci_profile_run / "results", tmp_path / "results"
    stores = sorted(p.relative_to(first) for p in first.rglob("*.zarr") if p.is_dir())
    assert len(stores) >= 20, stores  # every method's stores, not a few
    methods = {store.parts[0] for store in stores}
    assert {"activations", "weights_svd", "partition", "steering", "regions"} <= methods
    weights = sorted(p.relative_to(first) for p in first.rglob("toys/*/model/*.safetensors"))
    assert weights
    differing = {}
    for store in stores:
        found = store_differences(first / store, second / store)
        if found:
            differing[str(store)] = found
    for name in weights:
        if (first / name).read_bytes() != (second / name).read_bytes():
            differing[str(name)] = ["bytes differ"]
    print(f"compared {len(stores)} stores and {len(weights)} weight files")
    assert differing == {}
