"""Code hashes: a job's params change when any module it imports changes."""

import shutil

from actspace import provenance


def test_closure_follows_imports_transitively():
    closure = provenance.module_closure("actspace.capture")
    for module in (
        "actspace.corpora",
        "actspace.models.adapter",
        "actspace.models.sources",
        "actspace.store",
        "actspace.errors",
        "actspace.provenance",
        "actspace",
    ):
        assert module in closure
    assert "actspace.textsub" not in closure and "actspace.plots" not in closure


def test_code_hash_changes_with_an_imported_module(tmp_path, monkeypatch):
    copy = tmp_path / "actspace"
    shutil.copytree(provenance.PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "PACKAGE_ROOT", copy)
    before = provenance.code_hash("actspace.capture")
    plots_before = provenance.code_hash("actspace.plots")
    summary_before = provenance.code_hash("actspace.summary")
    store = copy / "store.py"
    store.write_text(store.read_text() + "\n# an edit\n")
    assert provenance.code_hash("actspace.capture") != before  # capture imports store
    assert provenance.code_hash("actspace.plots") != plots_before  # so do the plots
    assert provenance.code_hash("actspace.summary") == summary_before  # summary does not
    adapter = copy / "models" / "adapter.py"
    summary_now, capture_now = provenance.code_hash("actspace.summary"), provenance.code_hash(
        "actspace.capture"
    )
    adapter.write_text(adapter.read_text() + "\n# an edit\n")
    assert provenance.code_hash("actspace.summary") == summary_now  # summary never loads a model
    assert provenance.code_hash("actspace.capture") != capture_now
