"""MELBO and MELBO-ortho: the hook, the objective, the hard orthogonality, determinism, and
agreement with a plain transcription of the reference loop (tiny random models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actspace.methods.steering.math import (
    OrthonormalBasis,
    combinations,
    kl_divergences,
    max_abs_cosine,
    melbo_objective,
    moving_average,
    orthogonalise_block,
)
from actspace.methods.steering.passes import (
    PromptBatch,
    generate_steered,
    resid_post,
    steered_last_logprobs,
    steered_target,
)
from actspace.methods.steering.train import learn_melbo, learn_ortho
from actspace.models import ModelAdapter
from tests.conftest import build_tiny_model

PROMPTS = [[0, 1, 2, 3, 4], [5, 6, 7], [8, 9, 10, 11]]


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = build_tiny_model("llama", seed=3)
    for param in model.parameters():
        param.requires_grad_(False)
    return ModelAdapter(model.double(), tokenizer)


@pytest.fixture(scope="module")
def prompts(tiny):
    return PromptBatch.of(PROMPTS, tiny.tokenizer.pad_token_id, tiny.device)


def test_hook_adds_theta_at_the_source_output_only(tiny, prompts):
    theta = torch.randn(1, tiny.d_model, dtype=torch.float64)
    names = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", "blocks.1.hook_attn_out"]
    ids, mask = prompts.ids, prompts.mask
    _, plain = tiny.run_with_cache(ids, names, attention_mask=mask)
    from actspace.methods.steering.passes import add_vectors

    with tiny.hooks({resid_post(0): add_vectors(theta, len(prompts))}):
        _, steered = tiny.run_with_cache(ids, names, attention_mask=mask)
    # the recording hook on the same site runs after the adding one
    assert torch.equal(steered["blocks.0.hook_resid_pre"], plain["blocks.0.hook_resid_pre"])
    diff = steered["blocks.0.hook_resid_post"] - plain["blocks.0.hook_resid_post"]
    assert torch.allclose(diff, theta.expand_as(diff), atol=1e-12)
    assert not torch.allclose(steered["blocks.1.hook_attn_out"], plain["blocks.1.hook_attn_out"])
    # no module parameter changed, and nothing stays attached
    _, after = tiny.run_with_cache(ids, names, attention_mask=mask)
    assert torch.equal(after["blocks.1.hook_attn_out"], plain["blocks.1.hook_attn_out"])


def test_batched_vectors_equal_one_at_a_time(tiny, prompts):
    thetas = torch.randn(3, tiny.d_model, dtype=torch.float64)
    together = steered_target(tiny, prompts, thetas, 0, 1)
    for i in range(3):
        alone = steered_target(tiny, prompts, thetas[i : i + 1], 0, 1)
        assert torch.allclose(together[i], alone[0], atol=1e-10)
    zero = steered_target(tiny, prompts, torch.zeros(1, tiny.d_model, dtype=torch.float64), 0, 1)
    assert torch.allclose(zero, steered_target(tiny, prompts, None, 0, 1), atol=1e-12)
    # the target is the HF hidden state after block 1
    out = tiny.model(prompts.ids, attention_mask=prompts.mask, output_hidden_states=True)
    unsteered = steered_target(tiny, prompts, None, 0, 0)[0]
    assert torch.allclose(unsteered, out.hidden_states[1], atol=1e-10)


def test_objective_norm_conventions_against_loops():
    delta = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]])
    for p, q in ((2, 2), (4, 4), (4, 1), (2, 1)):
        for v in range(2):
            paper, code = 0.0, 0.0
            for i in range(3):
                rows = delta[v, i, mask[i].bool()]
                paper += (rows.norm(dim=-1) ** p).sum() ** (1 / q)
                code += (rows.norm(dim=0) ** p).sum() ** (1 / q)
            got_paper = melbo_objective(delta, mask, p, q, "per_token")[v]
            got_code = melbo_objective(delta, mask, p, q, "per_unit")[v]
            assert torch.isclose(got_paper, paper) and torch.isclose(got_code, code)
    # the conventions coincide for p = 2 and differ otherwise
    assert torch.allclose(
        melbo_objective(delta, mask, 2, 1, "per_token"),
        melbo_objective(delta, mask, 2, 1, "per_unit"),
    )
    assert not torch.allclose(
        melbo_objective(delta, mask, 4, 4, "per_token"),
        melbo_objective(delta, mask, 4, 4, "per_unit"),
    )


def test_target_positions_slice_each_prompts_own_tokens():
    batch = PromptBatch.of([[5, 6, 7, 8, 9], [5, 6], [5, 6, 7]], 0, torch.device("cpu"))
    lengths = [5, 2, 3]
    for start, stop in ((1, None), (None, None), (-3, None), (0, 2), (-2, -1)):
        mask = batch.positions(start, stop)
        for i, n in enumerate(lengths):
            expected = torch.zeros(batch.ids.shape[1], dtype=mask.dtype)
            expected[list(range(n))[start:stop]] = 1
            assert torch.equal(mask[i], expected), (start, stop, i)
    # the objective ignores what happens at excluded positions (here: the first token)
    delta = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    changed = delta.clone()
    changed[:, :, 0] *= 1000.0
    without_first = batch.positions(1, None)
    assert torch.allclose(
        melbo_objective(delta, without_first, 2, 2), melbo_objective(changed, without_first, 2, 2)
    )
    assert not torch.allclose(
        melbo_objective(delta, batch.mask, 2, 2), melbo_objective(changed, batch.mask, 2, 2)
    )
    with pytest.raises(ValueError, match="select no token of prompt 1"):
        batch.positions(2, None)


def test_objective_gradient_matches_finite_differences(tiny, prompts):
    unsteered = steered_target(tiny, prompts, None, 0, 1).detach()

    def objective(theta):
        return melbo_objective(
            steered_target(tiny, prompts, theta, 0, 1) - unsteered, prompts.mask, 2, 2
        )

    theta = torch.randn(1, tiny.d_model, dtype=torch.float64, requires_grad=True)
    objective(theta).sum().backward()
    eps = 1e-3  # Llama's RMSNorm computes in float32 even in a float64 model
    for j in (0, 7, 19):
        step = torch.zeros_like(theta)
        step[0, j] = eps
        with torch.no_grad():
            numeric = (objective(theta + step) - objective(theta - step)) / (2 * eps)
        assert torch.isclose(theta.grad[0, j], numeric[0], rtol=1e-3, atol=1e-6)


def reference_melbo(objective, d, n, radius, steps, lr, seed):
    """A plain transcription of the reference code's loop (one vector at a time, U = the
    learned vectors / R), with the same initial draws as learn_melbo(block=1)."""
    generator = torch.Generator().manual_seed(seed)
    learned = torch.zeros(n, d)
    for i in range(n):
        U = (learned[:i] / radius).T.double()
        draw = torch.randn(1, d, generator=generator, dtype=torch.float64)
        draw = draw - (draw @ U) @ U.T
        theta = torch.nn.Parameter((radius * draw / draw.norm()).float())
        opt = torch.optim.AdamW([theta], lr=lr, betas=(0.9, 0.98), weight_decay=0.0, amsgrad=True)
        Uf = U.float()
        for _ in range(steps):
            opt.zero_grad()
            (-objective(theta).sum()).backward()
            with torch.no_grad():
                g = theta.grad - (theta.grad @ Uf) @ Uf.T
                g = g - (g * theta).sum() * theta / radius**2
                theta.grad.copy_(g)
            opt.step()
            with torch.no_grad():
                theta.copy_(theta - (theta @ Uf) @ Uf.T)
                theta.copy_(radius * theta / theta.norm())
        learned[i] = theta.detach()[0]
    return learned


def test_melbo_matches_the_reference_loop_and_is_hard_orthogonal(tiny, prompts):
    model32 = ModelAdapter(build_tiny_model("llama", seed=3)[0].float(), tiny.tokenizer)
    for param in model32.model.parameters():
        param.requires_grad_(False)
    unsteered = steered_target(model32, prompts, None, 0, 1).detach()

    def objective(theta):
        return melbo_objective(
            steered_target(model32, prompts, theta, 0, 1) - unsteered, prompts.mask, 2, 2
        )

    ours = learn_melbo(objective, 32, 4, 2.0, 25, 0.01, block=1, seed=5, progress=False)
    reference = reference_melbo(objective, 32, 4, 2.0, 25, 0.01, seed=5)
    assert torch.allclose(ours.vectors, reference, atol=2e-4)
    assert torch.allclose(ours.vectors.norm(dim=1), torch.full((4,), 2.0), atol=1e-5)
    assert max_abs_cosine(ours.vectors) < 1e-6
    again = learn_melbo(objective, 32, 4, 2.0, 25, 0.01, block=1, seed=5, progress=False)
    assert torch.equal(ours.vectors, again.vectors)  # same seed, same vectors
    blocked = learn_melbo(objective, 32, 6, 2.0, 40, 0.01, block=3, seed=5, progress=False)
    assert blocked.vectors.shape == (6, 32) and blocked.history.shape == (6, 40)
    assert max_abs_cosine(blocked.vectors) < 1e-6
    assert torch.allclose(blocked.vectors.norm(dim=1), torch.full((6,), 2.0), atol=1e-5)
    # the objective climbs: every learned vector beats its own start
    assert (ours.history[:, -1] > ours.history[:, 0]).all()


def test_a_block_learned_together_leaves_no_vector_below_its_start():
    """One dominant direction u: projecting a block's vectors sequentially (vector i off the
    moving vectors before it) pushes the last vector out of what it climbed, to 0 (checked
    here with that variant); the symmetric orthonormalisation leaves every vector above its
    start."""
    import actspace.methods.steering.train as train
    from actspace.methods.steering.math import to_sphere

    generator = torch.Generator().manual_seed(0)
    u, v = torch.linalg.qr(torch.randn(16, 2, generator=generator))[0].T

    def objective(theta):
        return (theta @ u) ** 2 + 0.3 * (theta @ v) ** 2

    result = learn_melbo(objective, 16, 3, 1.0, 200, 0.02, block=3, seed=1, progress=False)
    assert (result.objective > result.history[:, 0]).all()
    assert abs(result.objective.sum() - 1.3) < 0.3  # the block holds u and v between them
    sequential = pytest.MonkeyPatch()
    sequential.setattr(
        train,
        "symmetric_orthonormal",
        lambda theta, basis: to_sphere(orthogonalise_block(theta, basis), 1.0),
    )
    try:
        greedy = learn_melbo(objective, 16, 3, 1.0, 200, 0.02, block=3, seed=1, progress=False)
    finally:
        sequential.undo()
    assert greedy.objective[-1] < greedy.history[-1, 0]


def test_ortho_stays_orthogonal_over_the_whole_complement():
    d = 24
    torch.manual_seed(0)
    W = torch.randn(d, d) / d**0.5

    def f(thetas):  # a smooth nonlinear map standing in for the layers 9..16
        return torch.tanh(thetas @ W)

    theta0 = torch.randn(d)
    target = f(theta0[None])[0]

    def loss(thetas):
        return (f(thetas) - target).norm(dim=-1)

    result = learn_ortho(
        loss,
        theta0,
        n_max=100,
        steps=30,
        lr=0.05,
        block=5,
        min_norm=1e-3,
        collapse_blocks=100,
        seed=0,
        progress=False,
    )
    assert len(result.vectors) == d - 1  # n_max capped at the orthogonal complement
    every = torch.cat([theta0[None], result.vectors])
    assert max_abs_cosine(every.double()) < 1e-5
    basis = OrthonormalBasis(d)
    for row in every:
        basis.add(row)
    assert torch.allclose(basis.rows @ basis.rows.T, torch.eye(d, dtype=torch.float64), atol=1e-12)


def test_ortho_stops_when_norms_collapse():
    d = 12
    theta0 = torch.randn(d)

    def loss(thetas):  # minimised at theta = 0: every vector collapses
        return thetas.norm(dim=-1)

    result = learn_ortho(loss, theta0, 11, 200, 0.1, 2, 0.1, 2, seed=0, progress=False)
    assert not result.kept.any()
    assert len(result.vectors) == 4 and "collapsed" in result.stopped


def test_symmetric_orthonormal_rows_in_the_complement():
    from actspace.methods.steering.math import symmetric_orthonormal

    basis = OrthonormalBasis(6)
    basis.add(torch.tensor([1.0, 0, 0, 0, 0, 0]))
    block = torch.randn(3, 6, dtype=torch.float64)
    out = symmetric_orthonormal(block, basis)
    assert torch.allclose(out @ out.T, torch.eye(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(out[:, 0], torch.zeros(3, dtype=torch.float64), atol=1e-12)
    # symmetric: permuting the rows permutes the result
    assert torch.allclose(symmetric_orthonormal(block.flip(0), basis), out.flip(0), atol=1e-10)
    one = symmetric_orthonormal(block[:1], basis)
    expected = block[:1].clone()
    expected[0, 0] = 0
    assert torch.allclose(one, expected / expected.norm(), atol=1e-12)


def test_orthogonalise_block_sequential_constraint():
    basis = OrthonormalBasis(6)
    basis.add(torch.tensor([1.0, 0, 0, 0, 0, 0]))
    block = torch.randn(3, 6, dtype=torch.float64)
    out = orthogonalise_block(block, basis)
    assert torch.allclose(out[:, 0], torch.zeros(3, dtype=torch.float64), atol=1e-12)
    gram = out @ out.T
    assert torch.allclose(
        gram - torch.diag(gram.diag()), torch.zeros(3, 3, dtype=torch.float64), atol=1e-10
    )
    # row 0 only loses the basis component
    expected = block[0].clone()
    expected[0] = 0
    assert torch.allclose(out[0], expected)


def test_kl_both_directions_against_torch():
    logp_i = torch.log_softmax(torch.randn(4, 10, dtype=torch.float64), -1)
    logp_0 = torch.log_softmax(torch.randn(10, dtype=torch.float64), -1)
    forward, backward = kl_divergences(logp_i, logp_0)
    for k in range(4):
        # F.kl_div(input=log Q, target=P) = KL(P || Q), the reference's call
        ref_forward = torch.nn.functional.kl_div(logp_0, logp_i[k].exp(), reduction="sum")
        ref_backward = torch.nn.functional.kl_div(logp_i[k], logp_0.exp(), reduction="sum")
        assert torch.isclose(forward[k], ref_forward) and torch.isclose(backward[k], ref_backward)


def test_combinations_and_moving_average():
    q, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))
    vectors = 3.0 * q.T  # 8 orthogonal vectors of norm 3
    out = combinations(vectors, [1, 4, 8])
    assert torch.allclose(
        out["mean"].norm(dim=1), 3.0 / torch.tensor([1.0, 2.0, 8**0.5], dtype=torch.float64)
    )
    assert torch.allclose(
        out["scaled_mean"].norm(dim=1), torch.full((3,), 3.0, dtype=torch.float64)
    )
    assert torch.allclose(out["sum"][1], vectors[:4].sum(0))
    series = torch.arange(10, dtype=torch.float64)
    assert torch.allclose(moving_average(series, 4), torch.arange(1.5, 8.0, dtype=torch.float64))


def test_low_kl_prefix_against_a_loop_over_windows():
    from actspace.methods.steering.summary import low_kl_prefix

    rng = np.random.default_rng(0)
    control = rng.uniform(0.05, 0.15, 300)
    kl = np.concatenate([rng.uniform(0.0, 0.04, 120), rng.uniform(0.1, 0.3, 180)])
    width = 50
    first = next(
        j
        for j in range(len(kl) - width + 1)
        if kl[j : j + width].mean() >= control[j : j + width].mean()
    )
    assert low_kl_prefix(kl, control, width) == first + width // 2
    assert 100 < low_kl_prefix(kl, control, width) < 140  # the jump at 120
    assert low_kl_prefix(kl[:100], control[:100], width) == 100  # never crosses
    assert low_kl_prefix(kl[:10], control[:10] - 1, width) == 5  # window narrowed to 10


def test_the_complement_searches_every_direction_with_the_runs_settings():
    from actspace.methods.steering.complement import complement_settings

    ortho = {"n_max": 32, "steps": 200, "seed": 0, "combination_ns": [1, 2]}
    settings = complement_settings(ortho, 576, [1, 100])
    assert settings == {"n_max": 575, "steps": 200, "seed": 0, "combination_ns": [1, 100]}
    assert ortho["n_max"] == 32  # the run's own settings untouched


def test_last_logprobs_and_generation_use_the_vector(tiny, prompts):
    theta = 5 * torch.randn(2, tiny.d_model, dtype=torch.float64)
    logp = steered_last_logprobs(tiny, prompts, theta, 0)
    plain = steered_last_logprobs(tiny, prompts, None, 0)[0]
    logits = tiny.model(prompts.ids, attention_mask=prompts.mask).logits
    expected = torch.log_softmax(logits[torch.arange(3), prompts.last].float(), -1)
    assert torch.allclose(plain, expected, atol=1e-5)
    assert not torch.allclose(logp[0], plain, atol=1e-3)
    first = generate_steered(tiny, PROMPTS[0], theta[:1], 0, 6)
    assert first == generate_steered(tiny, PROMPTS[0], theta[:1], 0, 6)
    sampled = generate_steered(tiny, PROMPTS[0], theta[:1], 0, 6, sample_seed=3)
    assert sampled == generate_steered(tiny, PROMPTS[0], theta[:1], 0, 6, sample_seed=3)


def test_unsteered_kl_against_a_plain_forward_hook(tiny, prompts):
    """The unsteered prompts' KL to theta_0 equals one computed with a forward hook on the
    decoder layer (not the adapter's hook points) and torch's kl_div; zero for theta_0 = 0."""
    from actspace.methods.steering.baseline import unsteered_kl

    theta0 = 3 * torch.randn(tiny.d_model, dtype=torch.float64)
    forward, backward = unsteered_kl(tiny, prompts, theta0, 1)

    def add(_module, _args, output):
        if isinstance(output, tuple):
            return (output[0] + theta0, *output[1:])
        return output + theta0

    def last_logp():
        logits = tiny.model(prompts.ids, attention_mask=prompts.mask).logits
        return torch.log_softmax(logits[torch.arange(len(PROMPTS)), prompts.last], -1)

    plain = last_logp()
    handle = tiny.model.model.layers[1].register_forward_hook(add)
    try:
        steered = last_logp()
    finally:
        handle.remove()
    for k in range(len(PROMPTS)):
        expected = torch.nn.functional.kl_div(steered[k], plain[k].exp(), reduction="sum")
        assert torch.isclose(forward[k].double(), expected, rtol=1e-4)
        expected = torch.nn.functional.kl_div(plain[k], steered[k].exp(), reduction="sum")
        assert torch.isclose(backward[k].double(), expected, rtol=1e-4)
    assert (forward > 1e-4).all()
    zero = unsteered_kl(tiny, prompts, torch.zeros_like(theta0), 1)
    assert torch.allclose(torch.stack(zero), torch.zeros(2, len(PROMPTS)), atol=1e-7)


def test_a_base_vector_file_is_read_and_checked(tmp_path):
    from safetensors.torch import save_file

    from actspace.errors import ActspaceError
    from actspace.methods.steering.job import read_vector_set

    path = tmp_path / "vectors.safetensors"
    rows = torch.randn(3, 8)
    save_file({"melbo": rows}, str(path))
    assert torch.equal(read_vector_set(str(path), "melbo")[0], rows)
    with pytest.raises(ActspaceError, match="has no set 'ortho'"):
        read_vector_set(str(path), "ortho")
    with pytest.raises(ActspaceError, match="does not exist"):
        read_vector_set(str(tmp_path / "missing.safetensors"), "melbo")


def test_ortho_drops_vectors_that_turn_nan():
    d = 6
    theta0 = torch.ones(d)

    def loss(thetas):  # NaN for every vector of the first block, finite afterwards
        scale = torch.full((len(thetas),), float("nan") if loss.calls == 0 else 1.0)
        loss.calls += 1 if len(thetas) == 2 and loss.calls == 0 else 0
        return thetas.norm(dim=-1) * scale

    loss.calls = 0
    result = learn_ortho(loss, theta0, 4, 1, 0.01, 2, 0.0, 5, seed=0, progress=False)
    assert not result.kept[:2].any() and result.kept[2:].all()
    assert max_abs_cosine(torch.cat([theta0[None], result.vectors[2:]]).double()) < 1e-6


def test_margins_of_a_greedy_completion_against_one_forward_per_prefix(tiny, tmp_path):
    """Each generated token's margin equals top-1 minus top-2 logit of a separate forward
    pass over its prefix (greedy: never negative); a token that is not the argmax gets a
    negative margin; a vector's shifts equal those of a plain forward hook on the decoder
    layer, and a vector that overturns a token is one whose greedy completion leaves the
    unsteered one there; the summary's profile counts per prompt."""
    from actspace.methods.steering.margins import (
        chosen_margins,
        completion_margins,
        margin_profile,
        margin_shifts,
    )
    from actspace.store import write_csv

    prompt = PROMPTS[0]
    completion = generate_steered(tiny, prompt, None, 0, 6)[0]
    margins = completion_margins(tiny, prompt, completion)[0]
    assert margins.shape == (len(completion),) == (6,)
    for t, margin in enumerate(margins.tolist()):
        logits = tiny.model(torch.tensor([prompt + completion[:t]])).logits[0, -1]
        top = logits.sort(descending=True).values
        assert logits.argmax() == completion[t]
        assert margin == pytest.approx(float(top[0] - top[1]), abs=1e-5)
        assert margin >= 0
    logits = torch.tensor([[1.0, 3.0, 2.0], [1.0, 3.0, 2.0]])
    assert chosen_margins(logits, torch.tensor([0, 1])).tolist() == [-2.0, 1.0]

    vectors = torch.randn(3, tiny.d_model, dtype=torch.float64)
    vectors = vectors / vectors.norm(dim=1, keepdim=True) * torch.tensor([[1e-3], [0.1], [8.0]])
    shifts = margin_shifts(tiny, prompt, completion, vectors, 1)
    assert shifts.shape == (3, 6)
    ids = torch.tensor([prompt + completion])
    firsts = []
    for v, theta in enumerate(vectors):

        def add(_module, _args, output, theta=theta):
            if isinstance(output, tuple):
                return (output[0] + theta, *output[1:])
            return output + theta

        handle = tiny.model.model.layers[1].register_forward_hook(add)
        try:
            logits = tiny.model(ids).logits[0, len(prompt) - 1 : -1]
        finally:
            handle.remove()
        expected = chosen_margins(logits, ids[0, len(prompt) :]) - margins
        assert torch.allclose(shifts[v], expected, atol=1e-5)
        overturned = (margins + shifts[v] < 0).nonzero()
        steered = generate_steered(tiny, prompt, theta[None], 1, 6)[0]
        first = next((t for t, (a, b) in enumerate(zip(steered, completion)) if a != b), 6)
        assert first == (int(overturned[0]) if len(overturned) else 6)
        firsts.append(first)
    assert min(firsts) < 6 and max(firsts) == 6  # the largest vector changes it, the smallest not

    rows = [(0, 0.2, 0.3, 0.1), (0, 0.7, 0.1, 0.8), (0, 2.0, 0.0, 0.0), (1, 1.5, 2.0, 0.0)]
    rows += [(1, 0.1, -0.2, 0.05)]
    path = tmp_path / "margins.csv"
    write_csv(
        path,
        [
            {"prompt_index": p, "position": 0, "token": 0, "margin": m}
            | {"learned_drop": a, "learned_shift": a, "random_drop": b, "random_shift": b}
            for p, m, a, b in rows
        ],
    )
    profile = margin_profile(str(path))
    assert profile == pytest.approx(
        {
            "below_0.5": 1.0,
            "below_1": 1.5,
            "overturned_learned": 1.0,  # 0.3 > 0.2 and 2.0 > 1.5
            "overturned_random": 0.5,  # 0.8 > 0.7
            "shift_learned": 0.1,
            "shift_random": 0.05,
            "tokens": 2.5,
            "smallest": 0.1,
        }
    )
