"""The registry of methods: every entry is wired up, and the config checks follow it."""

from __future__ import annotations

import copy
import importlib
import re

import pytest
import yaml

from actspace.config import check_references, order_like
from actspace.errors import ActspaceError
from actspace.registry import METHODS, enabled_methods
from conftest import REPO, SCHEMA, TINY_TOYS, with_defaults

SCHEMA_PATH = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_a_registered_method_has_its_rule_file_section_and_package(method):
    rules = (REPO / "workflow" / "rules" / f"{method.name}.smk").read_text()
    defined = set(re.findall(r"^rule (\w+):", rules, flags=re.M))
    assert {method.name, f"{method.name}_summary"} <= defined  # target and summary rules
    assert f'"results/summary/{method.name}.json"' in rules
    assert method.name in SCHEMA["properties"]
    for key in method.names:
        assert key in SCHEMA["properties"][method.name]["properties"]
    package = importlib.import_module(f"actspace.methods.{method.name}")
    assert package.__doc__  # says what the method is and how its package is split
    importlib.import_module(f"actspace.methods.{method.name}.summary")


def test_the_snakefile_includes_every_method_from_the_registry():
    snakefile = (REPO / "Snakefile").read_text()
    assert "for method in METHODS:" in snakefile
    assert not re.search(r'include: "workflow/rules/(capture|text_subspaces|toys)', snakefile)


def _config() -> dict:
    config = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    return with_defaults(config)


def test_the_ci_profile_passes_and_enables_every_method():
    config = _config()
    check_references(config)
    assert [m.name for m in enabled_methods(config)] == [m.name for m in METHODS]
    del config["toys"]
    assert "toys" not in [m.name for m in enabled_methods(config)]


@pytest.mark.parametrize(
    ("section", "key", "message"),
    [
        ("capture", "corpora", "config capture.corpora names 'nowhere'"),
        ("text_subspaces", "models", "config text_subspaces.models names 'nowhere'"),
        ("weights_svd", "models", "config weights_svd.models names 'nowhere'"),
        ("toys", "train", "config toys.train names 'nowhere'"),
    ],
)
def test_a_name_the_config_does_not_define_is_refused(section, key, message):
    config = _config()
    config[section][key] = [*config[section][key], "nowhere"]
    with pytest.raises(ActspaceError, match=re.escape(message)):
        check_references(config)


@pytest.mark.parametrize(
    "experiment", sorted((REPO / "config" / "experiments").glob("*.yaml")), ids=lambda p: p.stem
)
def test_an_experiment_config_layered_over_the_default_passes_the_checks(experiment):
    from snakemake.utils import update_config

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    update_config(config, yaml.safe_load(experiment.read_text()))  # as --configfile does
    check_references(with_defaults(config))


def test_a_toy_spec_whose_sequences_do_not_fit_is_refused():
    config = _config()
    config["toys"]["specs"]["toy-bigram"]["model"]["n_positions"] = 20
    with pytest.raises(ActspaceError, match="toys.specs.toy-bigram: sequences of up to"):
        check_references(config)
    config = _config()
    config["toys"]["specs"]["toy-copy"] = with_defaults(
        copy.deepcopy(TINY_TOYS["tiny-copy"]), "toys", "specs", "*"
    )
    config["toys"]["specs"]["toy-copy"]["task"]["max_len"] = 13  # unique tokens of 12
    with pytest.raises(ActspaceError, match="toys.specs.toy-copy: copy task: max_len 13"):
        check_references(config)


def test_a_steering_run_needs_a_defined_model_and_a_prompts_corpus():
    config = _config()
    config["steering"]["runs"]["requests"]["model"] = "nowhere"
    with pytest.raises(ActspaceError, match="steering.runs.requests.model names 'nowhere'"):
        check_references(config)
    config = _config()
    config["steering"]["runs"]["requests"]["corpus"] = "generated-4"
    with pytest.raises(ActspaceError, match="must be a corpus of type prompts"):
        check_references(config)


def test_steering_blocks_out_of_range_are_refused():
    from actspace.methods.steering.job import MelboSettings

    section = with_defaults({}, "steering", "melbo")
    assert MelboSettings.from_config(section).blocks(30) == (7, 21)  # the reference's default
    with pytest.raises(ActspaceError, match="source_block"):
        MelboSettings.from_config({**section, "source_block": 25}).blocks(30)
    with pytest.raises(ActspaceError, match="n_layers"):
        MelboSettings.from_config({**section, "target_block": 30}).blocks(30)
    # target positions: by default every token but the first; an empty slice is refused
    import torch

    from actspace.methods.steering.passes import PromptBatch

    batch = PromptBatch.of([[1, 2, 3], [1, 2]], 0, torch.device("cpu"))
    default = MelboSettings.from_config(section)
    assert default.position_mask(batch).tolist() == [[0, 1, 1], [0, 1, 0]]
    with pytest.raises(ActspaceError, match=r"steering.melbo.target positions \[5:None\]"):
        MelboSettings.from_config({**section, "target_positions": [5, None]}).position_mask(batch)


def test_a_regions_run_needs_defined_names_once_and_a_series_with_its_step():
    config = _config()
    config["regions"]["runs"][0]["corpus"] = "nowhere"
    with pytest.raises(ActspaceError, match=r"regions.runs\[0\].corpus names 'nowhere'"):
        check_references(config)
    config = _config()
    config["regions"]["runs"].append(dict(config["regions"]["runs"][0]))
    with pytest.raises(ActspaceError, match="listed twice"):
        check_references(config)
    config = _config()
    config["regions"]["runs"][0]["series"] = "smollm2"
    with pytest.raises(ActspaceError, match="give series and step together"):
        check_references(config)
    config["regions"]["runs"][0]["step"] = 1000
    check_references(config)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["partition"].update(unit_sise=8), "unknown key 'unit_sise' in partition"),
        (lambda c: c["capture"].update(batch_tokens=0), "capture.batch_tokens: 0 is less than"),
        (lambda c: c["steering"]["melbo"].update(p="two"), "steering.melbo.p: 'two' is not of"),
    ],
)
def test_a_schema_error_is_one_line_naming_where(change, message):
    from actspace.config import check_schema

    config = _config()
    check_schema(config, SCHEMA_PATH)  # the CI profile itself passes
    change(config)
    with pytest.raises(ActspaceError, match=re.escape(message)) as err:
        check_schema(config, SCHEMA_PATH)
    assert "\n" not in str(err.value)


def test_settings_take_the_default_configs_key_order():
    """A user's file merged over the defaults, keys reordered and a default restated, comes
    out in the default's order (Snakemake compares params by repr); extra keys and list
    items keep their own order after it."""
    reference = {"a": 1, "b": {"x": 1, "y": 2}, "c": [{"p": 1, "q": 2}]}
    config = {
        "c": [{"q": 2, "p": 1}, {"s": 1, "r": 2}],
        "new": {"z": 1, "w": 2},
        "b": {"y": 2, "x": 1},
        "a": 1,
    }
    order_like(config, reference)
    assert list(config) == ["a", "b", "c", "new"]
    assert list(config["b"]) == ["x", "y"] and list(config["new"]) == ["z", "w"]
    assert [list(item) for item in config["c"]] == [["p", "q"], ["s", "r"]]
    assert config == {
        "a": 1,
        "b": {"x": 1, "y": 2},
        "c": [{"p": 1, "q": 2}, {"s": 1, "r": 2}],
        "new": {"z": 1, "w": 2},
    }
