"""Code hashes follow the real dependencies: a computation's hash covers its method's math and
job modules and the shared layers they import, never a summary, figure or report module, nor
another method."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from actspace import provenance
from conftest import REPO

RULES = REPO / "workflow" / "rules"


def code_modules_by_rule() -> dict[str, list[str]]:
    """rule name -> the modules of its ``code_hash(...)`` param, read from the rule files."""
    found = {}
    for path in sorted(RULES.glob("*.smk")):
        for block in re.split(r"^rule ", path.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0]
            call = re.search(r"code_hash\(([^)]*)\)", block)
            if call:
                found[name] = re.findall(r'"([\w.]+)"', call.group(1))
    return found


def is_presentation(module: str) -> bool:
    """Summary, figure and report modules: they read finished results, never compute them."""
    parts = module.split(".") + ["", "", ""]
    return parts[1] in ("reporting", "plotting") or (
        parts[1] == "methods" and parts[3] in ("summary", "figures")
    )


def presentation_modules() -> list[str]:
    root = provenance.PACKAGE_ROOT
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        module = ".".join(("actspace", *parts)).removesuffix(".__init__")
        if is_presentation(module):
            names.append(module)
    return names


COMPUTE_RULES = {
    rule: modules
    for rule, modules in code_modules_by_rule().items()
    if not any(is_presentation(m) for m in modules)
}


def test_the_rule_files_are_read():
    """The parsing above sees every computation and every presentation rule."""
    assert {"capture_residuals", "find_text_subspaces", "decompose_weights", "train_toy"} <= set(
        COMPUTE_RULES
    )
    assert {"summary_report", "toys_summary", "weights_svd_figures"} <= (
        set(code_modules_by_rule()) - set(COMPUTE_RULES)
    )
    assert len(presentation_modules()) >= 9


@pytest.mark.parametrize("rule", sorted(COMPUTE_RULES))
def test_a_computation_imports_no_presentation_and_no_other_method(rule):
    closure = {m for entry in COMPUTE_RULES[rule] for m in provenance.module_closure(entry)}
    assert not [m for m in closure if is_presentation(m)]
    methods = {m.split(".")[2] for m in closure if m.startswith("actspace.methods.")}
    assert len(methods) <= 1, methods
    assert "actspace.registry" not in closure  # the workflow's wiring is not a computation


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """A copy of the package that hashes are computed on, so a test may edit it."""
    copy = tmp_path / "actspace"
    shutil.copytree(provenance.PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "PACKAGE_ROOT", copy)
    return copy


def _edit(package, module: str) -> None:
    parts = module.split(".")[1:]
    path = package.joinpath(*parts).with_suffix(".py")
    if not path.is_file():
        path = package.joinpath(*parts, "__init__.py")
    path.write_text(path.read_text() + "\n# an edit\n")


@pytest.mark.parametrize("rule", sorted(COMPUTE_RULES))
def test_editing_a_summary_figure_or_report_module_leaves_a_computation_alone(rule, package_copy):
    before = provenance.code_hash(*COMPUTE_RULES[rule])
    for module in presentation_modules():
        _edit(package_copy, module)
    assert provenance.code_hash(*COMPUTE_RULES[rule]) == before


def test_code_hash_changes_with_an_imported_module(package_copy):
    capture = "actspace.methods.capture.job"
    summary = "actspace.methods.capture.summary"
    before, summary_before = provenance.code_hash(capture), provenance.code_hash(summary)
    text_subspaces = provenance.code_hash("actspace.methods.text_subspaces.job")
    _edit(package_copy, "actspace.models.adapter")
    assert provenance.code_hash(capture) != before  # capture runs the model
    assert provenance.code_hash(summary) == summary_before  # its summary never loads one
    assert provenance.code_hash("actspace.methods.text_subspaces.job") != text_subspaces
    toys = provenance.code_hash("actspace.methods.toys.job")
    _edit(package_copy, "actspace.methods.text_subspaces.math")
    assert provenance.code_hash("actspace.methods.toys.job") == toys  # another method


def test_closure_follows_imports_transitively():
    closure = provenance.module_closure("actspace.methods.capture.job")
    for module in (
        "actspace.data.corpora",
        "actspace.data.batching",
        "actspace.models.adapter",
        "actspace.models.sources",
        "actspace.store",
        "actspace.errors",
        "actspace.provenance",
        "actspace.methods",  # parent packages run on import
        "actspace",
    ):
        assert module in closure
    assert "actspace.methods.text_subspaces.math" not in closure


def test_an_import_added_in_the_same_process_joins_the_closure(package_copy):
    """Module imports are cached per source text: a module edited to import another is
    parsed again, and the new import's module joins the hash."""
    entry = "actspace.methods.capture.summary"
    before = provenance.module_closure(entry)
    assert "actspace.methods.steering.math" not in before
    path = package_copy / "methods" / "capture" / "summary.py"
    path.write_text(path.read_text() + "\nfrom actspace.methods.steering import math\n")
    assert "actspace.methods.steering.math" in provenance.module_closure(entry)


def test_parsing_the_workflow_imports_no_torch():
    """The config checks the Snakefile runs at every start (a no-op ``snakemake`` included)
    load no torch, transformers or plotting: about 2.5 s of a 5 s start otherwise."""
    code = (  # what workflow/rules/common.smk runs on the default config
        "import sys, yaml\n"
        "from snakemake.utils import validate\n"
        "from actspace.config import check_references, check_schema\n"
        "from actspace.provenance import code_hash\n"
        "schema = 'workflow/schemas/config.schema.yaml'\n"
        "config = yaml.safe_load(open('config/config.yaml'))\n"
        "check_schema(config, schema)\n"
        "validate(config, schema=schema)\n"
        "check_references(config)\n"
        "code_hash('actspace.methods.toys.job')\n"
        "print(sorted(m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
