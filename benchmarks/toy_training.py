"""Toy training benchmark: wall time of each configured toy against the 5-minute budget.

Trains every toy of ``toys.train`` in a config (default: config/config.yaml) with its own
settings, in one process on the given threads, and reports seconds, steps per second and the
ratio to the 5-minute budget of the toys issue (budget ratio < 1 passes). The one-layer
control trains the same task with half the layers, so its time is the natural peer: the
ratio column divides each toy's time per step by the control's. ``--plain-steps`` steps of
the simplest faithful loop (the same model, batches and AdamW; no evaluation, schedule or
saved states) give each toy's job-path time per step as a ratio to it.

    python benchmarks/toy_training.py --threads 2

Result on the development machine (2 CPU cores): see README "Toy transformers".
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from snakemake.utils import validate

from actspace.methods.toys.model import build_toy_model
from actspace.methods.toys.spec import ToySpec, passes_bars
from actspace.methods.toys.training import copy_loss, random_position_ids, train, training_batch
from machine import write_record

SCHEMA = Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml"

BUDGET_S = 300.0


def plain_seconds_per_step(spec: ToySpec, steps: int) -> float:
    """Seconds per step of a plain training loop with the toy's model, batches and AdamW."""
    task, arch, settings = spec.task, spec.arch, spec.settings
    model = build_toy_model(task, arch, settings.seed)
    rng = np.random.default_rng([settings.seed, 0])
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    started = time.perf_counter()
    for _ in range(steps):
        batch = training_batch(task, rng, settings)
        position_ids = None
        if settings.position_offsets:
            width = batch.tokens.shape[1]
            position_ids = random_position_ids(rng, batch.lengths, width, task, arch.n_positions)
        logits = model(batch.tokens, attention_mask=batch.mask, position_ids=position_ids).logits
        loss = copy_loss(logits, batch)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peer", default="toy-copy-1layer", help="toy whose s/step is 1.0")
    parser.add_argument("--toys", nargs="*", help="toys to train (default: toys.train)")
    parser.add_argument("--plain-steps", type=int, default=300, help="steps of the plain loop")
    parser.add_argument("--out", default="results/benchmarks/toy_training.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = yaml.safe_load(args.config.read_text())
    validate(config, str(SCHEMA))  # completes every toy spec with the schema's defaults
    toys = config["toys"]
    rows = {}
    for name in args.toys or toys["train"]:
        spec = ToySpec.from_config(name, toys["specs"][name])
        started = time.perf_counter()
        _, metrics, _ = train(spec.task, spec.arch, spec.settings, progress=False)
        seconds = time.perf_counter() - started
        rows[name] = {
            "steps": spec.settings.steps,
            "seconds": seconds,
            "s_per_step": seconds / spec.settings.steps,
            "accuracy": metrics[-1]["accuracy"],
            "passes_bars": passes_bars(spec.task, metrics[-1]),
            "plain_s_per_step": plain_seconds_per_step(spec, args.plain_steps),
        }
    peer = rows.get(args.peer, next(iter(rows.values())))["s_per_step"]
    print(
        f"{'toy':<18} {'steps':>6} {'seconds':>8} {'budget':>7} {'s/step vs peer':>15} "
        f"{'vs plain loop':>14} {'acc':>6} bars"
    )
    for name, row in rows.items():
        print(
            f"{name:<18} {row['steps']:>6} {row['seconds']:>8.1f} "
            f"{row['seconds'] / BUDGET_S:>7.2f} {row['s_per_step'] / peer:>15.2f} "
            f"{row['s_per_step'] / row['plain_s_per_step']:>14.2f} {row['accuracy']:>6.3f} "
            f"{'met' if row['passes_bars'] else 'not met'}"
        )
    write_record(args.out, {"toys": rows, "budget_s": BUDGET_S, "peer": args.peer})


if __name__ == "__main__":
    main()
