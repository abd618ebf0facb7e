"""``config.partition`` as the workflow needs it: which sites, variants and blocks there are,
each site's settings, and the checks of the section (no torch: the workflow imports this
when it is parsed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actspace.config import check_names
from actspace.data.tasks import CopyTask
from actspace.errors import ActspaceError

RUN_KEYS = ("sites", "circuit_streams", "probe_test_share")  # not settings of a partition job


def stop_suffix(stop_at: int | None) -> str:
    """The file-name suffix of a stop_at variant: '' for the published schedule."""
    return "" if stop_at is None else f".stop{stop_at}"


def sites(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(config.get("partition", {}).get("sites", []))


def partitions(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every partition job: model, corpus, layer and stop suffix."""
    return [
        {"model": s["model"], "corpus": s["corpus"], "layer": layer, "stop": stop_suffix(stop)}
        for s in sites(config)
        for layer in s["layers"]
        for stop in s["stop_at"]
    ]


def circuits(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every block whose input and output streams are both partitioned sites."""
    return [
        {"model": s["model"], "corpus": s["corpus"], "block": layer, "stop": stop_suffix(stop)}
        for s in sites(config)
        for layer in s["layers"]
        if layer + 1 in s["layers"]
        for stop in s["stop_at"]
    ]


def probed(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The partition jobs whose site asks for the known-circuit probes."""
    return [
        {"model": s["model"], "corpus": s["corpus"], "layer": layer, "stop": stop_suffix(stop)}
        for s in sites(config)
        if s["probes"]
        for layer in s["layers"]
        for stop in s["stop_at"]
    ]


def known_circuit_streams(config: Mapping[str, Any]) -> list[list[Any]]:
    """(model, corpus, layer) of each probed site's stream entering its induction block."""
    return [
        [s["model"], s["corpus"], s["induction_block"]]
        for s in sites(config)
        if s["probes"] and s.get("induction_block") is not None
    ]


def _copy_task(config: Mapping[str, Any], corpus: str) -> CopyTask | None:
    """The copy task a corpus draws from; None for corpora that are not task corpora."""
    entry = config["corpora"][corpus]
    return CopyTask.from_config(entry["task"]) if entry.get("type") == "task" else None


def probe_separator(config: Mapping[str, Any], corpus: str) -> int | None:
    """The ``<sep>`` token id of a copy-task corpus (its probes stop at the first copy);
    None for other corpora (every position is probed)."""
    task = _copy_task(config, corpus)
    return None if task is None else task.sep


def probe_tokens(config: Mapping[str, Any], corpus: str) -> int:
    """How many token variables (current, previous, two back) the probes of a corpus
    measure: those its copy task's induction circuit reads at a key, the current token
    (copied) and the one (copy) or two (bigram copy) before it that the query matches; 2 for
    other corpora."""
    task = _copy_task(config, corpus)
    return 3 if task is not None and task.kind == "bigram-copy" else 2


def site_settings(
    config: Mapping[str, Any], model: str, corpus: str, layer: int, stop: str
) -> dict[str, Any]:
    """The settings of one partition job: the section's, the site's overrides, its variant."""
    section = config["partition"]
    settings = {k: v for k, v in section.items() if k not in RUN_KEYS}
    for site in sites(config):
        if (site["model"], site["corpus"]) == (model, corpus) and layer in site["layers"]:
            settings.update(site["settings"])
            break
    settings["stop_at_n_subspaces"] = int(stop.removeprefix(".stop")) if stop else None
    return settings


def check_config(config: Mapping[str, Any]) -> None:
    """Every site names a defined model and corpus, once per (model, corpus, layer), and an
    induction block among its probed layers."""
    seen: set[tuple[str, str, int]] = set()
    for index, site in enumerate(sites(config)):
        for key, defined in (("model", "models"), ("corpus", "corpora")):
            check_names(f"partition.sites[{index}].{key}", [site[key]], config, defined)
        for layer in site["layers"]:
            key = (site["model"], site["corpus"], layer)
            if key in seen:
                raise ActspaceError(
                    f"config partition.sites[{index}]: layer {layer} of {site['model']} on "
                    f"{site['corpus']} is listed twice"
                )
            seen.add(key)
        block = site.get("induction_block")
        if block is not None and (not site["probes"] or block not in site["layers"]):
            raise ActspaceError(
                f"config partition.sites[{index}].induction_block {block}: needs probes: true "
                f"and the stream entering it among the site's layers {site['layers']}"
            )
