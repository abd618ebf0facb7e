"""The workflow profiles (workflow/profiles/): each parses and plans the default run and the
named targets outside it; under the SLURM executor every job carries the threads, memory and
GPU its rule declares (a dry run: no cluster needed)."""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import EVERY_TARGET, REPO, run_workflow

PROFILES = REPO / "workflow" / "profiles"
CONFIG = str(REPO / "config" / "config.yaml")


def _plan(workdir, profile: str) -> dict[str, dict[str, str]]:
    """Every planned job of a dry run of the default config's ``EVERY_TARGET`` under
    ``profile``: its rule, threads and resources, keyed by the job's first output (or its rule
    for a target)."""
    result = run_workflow(
        workdir,
        None,
        "--configfile",
        CONFIG,
        "--profile",
        str(PROFILES / profile),
        "--dry-run",
        *EVERY_TARGET,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = {}
    blocks = re.split(r"\n(?=(?:local)?rule \w+:\n)", result.stdout)
    for block in blocks[1:]:
        rule = re.match(r"(?:local)?rule (\w+):", block).group(1)
        output = re.search(r"\n    output: ([^,\n]+)", block)
        resources = re.search(r"\n    resources: ([^\n]+)", block)
        threads = re.search(r"\n    threads: (\d+)", block)
        job = dict(
            item.split("=", 1) for item in (resources.group(1).split(", ") if resources else [])
        )
        # a dry run does not say which jobs would run locally; target rules (no output) do
        job |= {"rule": rule, "local": output is None}
        job["threads"] = threads.group(1) if threads else "1"
        jobs[output.group(1) if output else rule] = job
    assert jobs, result.stdout[-2000:]
    return jobs


@pytest.fixture(scope="module")
def plans(tmp_path_factory) -> dict[str, dict[str, dict[str, str]]]:
    return {
        profile.name: _plan(tmp_path_factory.mktemp(profile.name), profile.name)
        for profile in sorted(PROFILES.iterdir())
    }


def test_every_profile_is_yaml_and_plans_the_same_jobs(plans):
    assert set(plans) >= {"local-cpu", "local-gpu", "slurm"}
    for profile in PROFILES.iterdir():
        assert isinstance(yaml.safe_load((profile / "config.yaml").read_text()), dict)
    outputs = {name: set(plan) for name, plan in plans.items()}
    assert all(jobs == outputs["local-cpu"] for jobs in outputs.values())


def test_the_gpu_goes_only_to_model_running_jobs(plans):
    assert all(job.get("gpu", "0") == "0" for job in plans["local-cpu"].values())
    on_gpu = {job["rule"] for job in plans["local-gpu"].values() if job.get("gpu") == "1"}
    assert {"capture_residuals", "find_text_subspaces", "learn_melbo"} <= on_gpu
    assert not on_gpu & {"summary_report", "toys_summary", "partition_figures", "train_toy"}


def test_slurm_jobs_carry_their_declared_resources_and_partition(plans):
    settings = yaml.safe_load((PROFILES / "slurm" / "config.yaml").read_text())
    gpu_partition = {rule for rule in settings["set-resources"]}
    local, slurm = plans["local-gpu"], plans["slurm"]
    submitted = [key for key, job in slurm.items() if not job["local"]]
    assert len(submitted) > 50  # every computation of the default run is a SLURM job
    assert any(slurm[key]["threads"] != "1" for key in submitted)  # threads are compared
    for key in submitted:
        job = slurm[key]
        # the same threads, memory and GPU as on one machine with a GPU
        for name in ("threads", "mem_mb", "gpu"):
            assert job.get(name) == local[key].get(name), (key, name, job, local[key])
        assert job["slurm_account"] and job["runtime"]
        wanted = "<gpu-partition>" if job.get("gpu") == "1" else "<cpu-partition>"
        assert job["slurm_partition"] == wanted, (key, job)
    # the profile names no rule that does not exist or does not use the GPU
    rules_on_gpu = {slurm[key]["rule"] for key in submitted if slurm[key].get("gpu") == "1"}
    assert gpu_partition == rules_on_gpu


def test_target_rules_run_locally():
    """A target rule (no output) is declared ``localrule``, so a cluster executor never
    submits it as a job."""
    files = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    for path in files:
        for block in re.split(r"\n(?=rule )", path.read_text())[1:]:
            if "\n    output:" not in block.split("\n\n\n")[0]:
                assert "localrule: True" in block, (path.name, block.splitlines()[0])
