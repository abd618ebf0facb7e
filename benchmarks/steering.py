"""Steering benchmark: seconds per vector-step of MELBO and MELBO-ortho, in one run.

Same model, prompts and thread count for every row; ratios against the plain loop with the
same math (the reference code's shape: one vector and one prompt at a time, a full forward
pass with ``output_hidden_states`` and the target read from it):

- MELBO step, plain loop: per prompt a full forward, objective, backward; gradient and
  parameter projections; one vector.
- MELBO step, the job's path: all prompts in one padded batch, the forward stopped after the
  target block, ``block`` vectors per pass (``learn_melbo``'s objective).
- MELBO-ortho step: the same two paths for the ortho loss.

    python benchmarks/steering.py --model results/models/smollm2-135m \\
        --corpus results/corpora/smollm2-135m/steering-requests.zarr --threads 2

Writes results/benchmarks/steering.json.
"""

from __future__ import annotations

import time

import torch

from actspace.methods.steering.job import MelboSettings, batch_of, frozen_model, read_prompts
from actspace.methods.steering.math import (
    masked_mean,
    melbo_objective,
    ortho_loss,
    tangent,
    to_sphere,
)
from actspace.methods.steering.passes import add_vectors, resid_post, steered_target
from machine import arguments, smollm2, write_record


def per_step(fn, steps: int) -> float:
    """Mean seconds of ``steps`` calls after one warm-up call."""
    fn()
    started = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - started) / steps


def plain_target(adapter, ids: list[int], theta: torch.Tensor, source: int, target: int):
    """The reference's path: one prompt, a full forward, ``hidden_states[target + 1]``."""
    inputs = torch.tensor([ids])
    with adapter.hooks({resid_post(source): add_vectors(theta, 1)}):
        out = adapter.model(inputs, output_hidden_states=True)
    return out.hidden_states[target + 1]


def main() -> None:
    args = arguments(
        __doc__,
        "steering",
        **smollm2("steering-requests"),
        block=16,
        steps=5,
    )
    adapter = frozen_model(args.model, "cpu")
    docs, _ = read_prompts(args.corpus)
    prompts = batch_of(adapter, docs)
    cfg = MelboSettings(7, None, 4.0, 2, None, "per_token", 1, 1, 1e-3, 1, 0)
    source, target = cfg.blocks(adapter.n_layers)
    d = adapter.d_model
    with torch.no_grad():
        unsteered = [plain_target(adapter, ids, torch.zeros(1, d), source, target) for ids in docs]
        batched_unsteered = steered_target(adapter, prompts, None, source, target)

    def plain_melbo():
        theta = torch.nn.Parameter(to_sphere(torch.randn(1, d), 4.0))
        for ids, base in zip(docs, unsteered):
            delta = plain_target(adapter, ids, theta, source, target) - base
            (-(delta.norm(dim=-1).pow(2).sum())).backward()
        theta.grad = tangent(theta.grad, theta)

    thetas = torch.nn.Parameter(to_sphere(torch.randn(args.block, d), 4.0))

    def job_melbo():
        steered = steered_target(adapter, prompts, thetas, source, target)
        (-melbo_objective(steered - batched_unsteered, prompts.mask, 2, 2).sum()).backward()
        thetas.grad = tangent(thetas.grad, thetas)

    theta0 = to_sphere(torch.randn(1, d), 4.0)
    with torch.no_grad():
        plain_means = [plain_target(adapter, ids, theta0, source, target).mean(1) for ids in docs]
        base_mean = masked_mean(
            steered_target(adapter, prompts, theta0, source, target), prompts.mask
        )[0]

    def plain_ortho():
        theta = torch.nn.Parameter(torch.randn(1, d))
        for ids, base in zip(docs, plain_means):
            (plain_target(adapter, ids, theta, source, target).mean(1) - base).norm().backward()

    def job_ortho():
        acts = steered_target(adapter, prompts, thetas, source, target)
        ortho_loss(masked_mean(acts, prompts.mask), base_mean).sum().backward()

    rows = {
        "MELBO, plain loop": per_step(plain_melbo, args.steps),
        f"MELBO, job path ({args.block} vectors per pass)": per_step(job_melbo, args.steps)
        / args.block,
        "MELBO-ortho, plain loop": per_step(plain_ortho, args.steps),
        f"MELBO-ortho, job path ({args.block} vectors per pass)": per_step(job_ortho, args.steps)
        / args.block,
    }
    print(f"{'seconds per vector-step':<48} {'seconds':>8} {'ratio':>6}")
    for name, seconds in rows.items():
        reference = rows[name.split(",")[0] + ", plain loop"]
        print(f"{name:<48} {seconds:>8.4f} {seconds / reference:>6.2f}")
    record = {
        "seconds_per_vector_step": rows,
        "model": args.model,
        "prompts": len(docs),
        "prompt_tokens": [len(ids) for ids in docs],
        "blocks": [source, target],
    }
    write_record(args.out, record)


if __name__ == "__main__":
    main()
