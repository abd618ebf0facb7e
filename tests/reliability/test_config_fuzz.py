"""Config fuzzing against the schema and the cross-reference checks (hypothesis): a damaged
config is refused with one line naming the problem, never a crash of another kind, and a
name that could leave results/ never passes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actspace.config import check_references, check_schema
from actspace.errors import ActspaceError
from conftest import REPO, with_defaults

SCHEMA_PATH = REPO / "workflow" / "schemas" / "config.schema.yaml"
BASE = with_defaults(yaml.safe_load((REPO / "config" / "ci.yaml").read_text()))
WRONG_VALUES = st.one_of(
    st.just("lots"),
    st.just(-1),
    st.just(0),
    st.just(-0.5),
    st.just(None),
    st.just([]),
    st.just({}),
    st.just(True),
    st.text(max_size=300),  # unicode and long strings
    st.integers(min_value=-(10**12), max_value=10**12),
)


def _leaves(node: Any, path: tuple = ()) -> list[tuple]:
    """Paths of every leaf value and every dict (where a key can be added)."""
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _leaves(value, (*path, index))
    return found


PATHS = [p for p in _leaves(BASE) if p]


def _set(config: dict, path: tuple, value: Any) -> None:
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _checked(config: dict) -> None:
    check_schema(config, SCHEMA_PATH)
    check_references(config)


def _refused_cleanly(config: dict) -> str | None:
    """None when the config passes; else the one-line message of its ActspaceError."""
    try:
        _checked(config)
    except ActspaceError as err:
        message = str(err)
        assert message and "\n" not in message, message
        return message
    return None


def test_the_base_config_passes():
    assert _refused_cleanly(copy.deepcopy(BASE)) is None


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=WRONG_VALUES)
def test_a_damaged_value_is_refused_in_one_line_or_accepted(path, value):
    """Any leaf replaced by a value of the wrong type or size: accepted (the schema allows
    it) or refused with one line; never a TypeError, KeyError, ... from deeper code."""
    config = copy.deepcopy(BASE)
    _set(config, path, value)
    _refused_cleanly(config)


@settings(max_examples=60, deadline=None)
@given(
    path=st.sampled_from(["capture", "text_subspaces", "partition", "steering", "regions"]),
    key=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=3, max_size=12),
)
def test_an_unknown_key_is_named(path, key):
    config = copy.deepcopy(BASE)
    if key in config[path]:
        return
    config[path][key] = 1
    message = _refused_cleanly(config)
    assert message is not None and repr(key) in message and "allowed:" in message


@pytest.mark.parametrize(
    "name", ["../escape", "/abs/path", "a/b", ".hidden", "nested/../../x", "", "ünïcode"]
)
def test_a_model_name_that_could_leave_results_is_refused(name):
    config = copy.deepcopy(BASE)
    models = config["models"]
    first = next(iter(models))
    models[name] = models.pop(first)
    config["capture"]["models"] = [name if m == first else m for m in config["capture"]["models"]]
    assert _refused_cleanly(config) is not None
