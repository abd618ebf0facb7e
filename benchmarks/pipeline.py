"""Pipeline benchmark: Snakemake's own overhead on a finished run, and what a change reruns.

Run from a working directory whose default run has finished (``make run``):

- the wall time of the finished run and of each rule's jobs, read from Snakemake's own
  records (``.snakemake/metadata``: start and end of every job);
- the wall time of a no-op ``snakemake`` (goal: under 5 s), and of its dry run;
- for one setting of each method, changed in a config file layered over
  ``config/config.yaml``: the jobs a dry run plans, which must be that method's jobs, their
  dependents and the summary page only.

    python benchmarks/pipeline.py --workdir . --threads 2

Writes results/benchmarks/pipeline.json (under the working directory).
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from machine import arguments, write_record

REPO = Path(__file__).resolve().parents[1]
# one setting per method, (section, key path, new value), and the rules it may rerun
CHANGES = {
    "text_subspaces": (("text_subspaces", "curve_texts"), 7, ["find_text_subspaces"]),
    "weights_svd": (("weights_svd", "k_tokens"), 19, ["decompose_weights"]),
    "partition": (("partition", "probe_test_share"), 0.3, ["probe_partition"]),
    "steering": (("steering", "generate", "tokens"), 31, ["steering_generations"]),
    "regions": (("regions", "slice_steps"), 17, ["find_stable_regions"]),
}
# jobs any change may add: figures and summaries of the changed method, the summary page
DOWNSTREAM = re.compile(r"(_figures?|_summary|_overview|^summary_report|^probe_figure)$|^all$")


def snakemake(workdir: Path, *args: str) -> tuple[float, str]:
    """Wall seconds and stdout of ``snakemake`` in ``workdir`` on the repo's Snakefile."""
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "2"]
    started = time.perf_counter()
    result = subprocess.run([*command, *args], cwd=workdir, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"snakemake {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return seconds, result.stdout + result.stderr


def planned(output: str) -> dict[str, int]:
    """Job counts of a dry run's job table."""
    table = output.split("Job stats:")[-1] if "Job stats:" in output else ""
    return {
        name: int(count)
        for name, count in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M)
        if name != "total"
    }


def rule_times(workdir: Path) -> tuple[float, dict[str, dict[str, float]]]:
    """Wall seconds from the first job's start to the last job's end, and per rule the jobs
    and their summed seconds, from Snakemake's metadata (one record per output of a job,
    named by the output's path in URL-safe base64; records of outputs that no longer exist,
    such as those of a run before ``results/`` was emptied, are left out)."""
    jobs: dict[int, dict] = {}
    for path in (workdir / ".snakemake" / "metadata").iterdir():
        output = base64.urlsafe_b64decode(path.name + "=" * (-len(path.name) % 4)).decode()
        if not (workdir / output).exists():
            continue
        record = json.loads(path.read_text())
        if record.get("starttime") is None or record.get("endtime") is None:
            continue
        job = jobs.setdefault(record["job_hash"], {"rule": record["rule"], "start": 1e20, "end": 0})
        job["start"] = min(job["start"], record["starttime"])
        job["end"] = max(job["end"], record["endtime"])
    rules: dict[str, dict[str, float]] = {}
    for job in jobs.values():
        row = rules.setdefault(job["rule"], {"jobs": 0, "seconds": 0.0})
        row["jobs"] += 1
        row["seconds"] += job["end"] - job["start"]
    if not jobs:
        return 0.0, rules
    wall = max(j["end"] for j in jobs.values()) - min(j["start"] for j in jobs.values())
    return wall, dict(sorted(rules.items(), key=lambda item: -item[1]["seconds"]))


def main() -> None:
    args = arguments(__doc__, "pipeline", workdir=".")
    workdir = Path(args.workdir).resolve()
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    dry, out = snakemake(workdir, "--dry-run")
    if planned(out):
        raise SystemExit(f"the run in {workdir} is not finished: {planned(out)}")
    wall, rules = rule_times(workdir)
    print(f"the finished run: {wall / 60:.1f} minutes from the first job's start to the last's end")
    for rule, row in rules.items():
        print(f"  {rule:<28} {row['jobs']:>4} jobs {row['seconds'] / 60:>7.1f} min")
    noop, _ = snakemake(workdir)
    record = {
        "run_wall_seconds": wall,
        "rule_seconds": rules,
        "noop_seconds": noop,
        "noop_dry_run_seconds": dry,
        "changes": {},
    }
    print(f"no-op snakemake {noop:.1f} s (dry run {dry:.1f} s); goal < 5 s")
    with tempfile.TemporaryDirectory() as tmp:
        for method, (path, value, rules) in CHANGES.items():
            changed = {path[0]: dict(config[path[0]])}
            section = changed[path[0]]
            for key in path[1:-1]:
                section[key] = dict(section[key])
                section = section[key]
            section[path[-1]] = value
            layer = Path(tmp) / f"{method}.yaml"
            layer.write_text(yaml.safe_dump(changed))
            configfiles = [str(REPO / "config" / "config.yaml"), str(layer)]
            seconds, out = snakemake(workdir, "--dry-run", "--configfile", *configfiles)
            jobs = planned(out)
            unexpected = sorted(
                name for name in jobs if name not in rules and not DOWNSTREAM.search(name)
            )
            only = not unexpected and any(name in jobs for name in rules)
            record["changes"][method] = {
                "setting": ".".join(path) + f" = {value}",
                "planned": jobs,
                "only_that_method": only,
                "dry_run_seconds": seconds,
            }
            verdict = "only its jobs" if only else f"also {unexpected}"
            print(f"{'.'.join(path)} = {value}: {sum(jobs.values())} jobs planned, {verdict}")
    write_record(str(workdir / args.out), record)


if __name__ == "__main__":
    main()
