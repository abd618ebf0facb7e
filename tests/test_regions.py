"""Stable regions: the patched pass, the curve and sharpness conventions, the slice's plane,
the window sampling and the variants of a run (tiny random models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actspace.data.windows import sample_windows, window_starts
from actspace.errors import ActspaceError
from actspace.methods.regions import math as rm
from actspace.methods.regions.job import RegionSettings, plan_variants
from actspace.methods.regions.passes import (
    clean_pass,
    patched_outputs,
    patched_outputs_full,
    replace_last,
)
from actspace.models import ModelAdapter, random_init, read_manifest, resid_post
from actspace.models.sources import write_model_dir
from tests.conftest import build_tiny_model, with_defaults

FAMILIES = ["llama", "gpt2"]


@pytest.fixture(scope="module", params=FAMILIES)
def tiny(request):
    model, tokenizer = build_tiny_model(request.param, seed=5)
    return ModelAdapter(model.double(), tokenizer)


def prompts_of(adapter, n=6, length=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, adapter.vocab_size - 4, (n, length), generator=generator)


@torch.no_grad()
def test_alpha_zero_reproduces_the_prompts_own_output(tiny):
    ids = prompts_of(tiny)
    clean = clean_pass(tiny, ids, 0, batch_rows=4)
    # independent path: transformers' own hidden states (the last one is after the final norm)
    out = tiny.model(input_ids=ids, output_hidden_states=True)
    torch.testing.assert_close(clean.output, out.hidden_states[-1][:, -1], rtol=0, atol=1e-12)
    torch.testing.assert_close(clean.write, out.hidden_states[1][:, -1], rtol=0, atol=1e-12)
    assert torch.equal(clean.top, out.logits[:, -1].argmax(-1))
    a, b = rm.consecutive_pairs(len(ids))
    points = rm.interpolate(clean.write[a], clean.write[b], rm.alphas(5))
    patched = patched_outputs(tiny, ids[a].repeat_interleave(5, 0), points.flatten(0, 1), 0, 3)
    patched = patched.reshape(points.shape)
    torch.testing.assert_close(patched[:, 0], clean.output[a], rtol=0, atol=1e-12)
    dist = rm.distances(patched, clean.output[a])
    assert dist[:, 0].max() < 1e-10 and (dist[:, -1] > 1e-3).all()
    curves = rm.relative_curves(dist)
    torch.testing.assert_close(curves[:, -1], torch.ones(len(a), dtype=torch.float64))


@torch.no_grad()
@pytest.mark.parametrize("length", [1, 2, 7])
def test_cached_patching_equals_full_passes(tiny, length):
    """Rows sharing a context reuse one pass over its earlier positions: the same outputs as
    one full pass per row, whatever the batch boundaries and the order of the contexts."""
    ids = prompts_of(tiny, n=4, length=length)
    rows = ids[torch.tensor([2, 2, 0, 3, 3, 3, 0, 1, 2])]
    values = torch.randn(len(rows), tiny.d_model, dtype=torch.float64)
    full = patched_outputs_full(tiny, rows, values, 1)
    for batch_rows in (1, 4, 100):
        cached = patched_outputs(tiny, rows, values, 1, batch_rows)
        torch.testing.assert_close(cached, full, rtol=0, atol=1e-10)
    assert patched_outputs(tiny, rows[:0], values[:0], 1, 4).shape == (0, tiny.d_model)


@torch.no_grad()
def test_patching_touches_only_the_last_position(tiny):
    ids = prompts_of(tiny, n=3)
    values = torch.randn(3, tiny.d_model, dtype=torch.float64)
    plain = tiny.base_model(input_ids=ids).last_hidden_state
    with tiny.hooks({resid_post(1): replace_last(values)}):
        _, cache = tiny.run_with_cache(ids, [resid_post(1), "blocks.0.hook_resid_post"])
        patched = tiny.base_model(input_ids=ids).last_hidden_state
    assert torch.equal(patched[:, :-1], plain[:, :-1])
    assert not torch.allclose(patched[:, -1], plain[:, -1])
    assert torch.equal(cache[resid_post(1)][:, -1], values)
    _, before = tiny.run_with_cache(ids, [resid_post(1)])
    assert torch.equal(cache[resid_post(1)][:, :-1], before[resid_post(1)][:, :-1])
    # the hooks are gone after the block
    assert torch.equal(tiny.base_model(input_ids=ids).last_hidden_state, plain)


@torch.no_grad()
def test_alpha_one_is_b_in_a_context(tiny):
    """At alpha = 1 the pass is B's activation in A's context: B's own output only when the
    prompts share every earlier token (the research note's correction of an earlier draft)."""
    ids = prompts_of(tiny, n=3)
    shared = ids.clone()
    shared[1, :-1] = shared[0, :-1]  # prompts 0 and 1 differ only in their last token
    clean = clean_pass(tiny, shared, 0, batch_rows=8)
    at_one = patched_outputs(tiny, shared[[0, 0]], clean.write[[1, 2]], 0, 8)
    torch.testing.assert_close(at_one[0], clean.output[1], rtol=0, atol=1e-10)
    assert (at_one[1] - clean.output[2]).norm() > 1e-6  # other contexts: not B's own output


def test_interpolation_and_distances_match_loops():
    torch.manual_seed(0)
    start, end = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    weights = rm.alphas(7)
    assert weights[0] == 0 and weights[-1] == 1 and len(weights) == 7
    points = rm.interpolate(start, end, weights)
    for i in range(4):
        for k, w in enumerate(weights.tolist()):
            torch.testing.assert_close(points[i, k], (1 - w) * start[i] + w * end[i])
    assert torch.equal(points[:, 0], start) and torch.equal(points[:, -1], end)
    reference = torch.randn(4, 6, dtype=torch.float64)
    dist = rm.distances(points, reference)
    expected = torch.tensor(
        [[float(np.linalg.norm(points[i, k] - reference[i])) for k in range(7)] for i in range(4)]
    )
    torch.testing.assert_close(dist, expected.double())


def test_sharpness_of_a_line_and_of_a_step():
    steps = 30
    line = torch.linspace(0, 1, steps, dtype=torch.float64)
    assert rm.sharpness(line[None])[0] == pytest.approx(1.0)
    # a curve that stays at 0.1 and jumps by 0.8 between two points
    step = torch.full((steps,), 0.1, dtype=torch.float64)
    step[0], step[12:], step[-1] = 0.0, 0.9, 1.0
    assert rm.sharpness(step[None])[0] == pytest.approx(0.8 * (steps - 1))
    # from raw distances: scale does not matter, r(1) = 1, sharpness >= 1 for any curve
    dist = torch.rand(50, steps, dtype=torch.float64).cumsum(-1) * 7.0
    dist[:, 0] = 0
    curves = rm.relative_curves(dist)
    assert torch.allclose(curves[:, -1], torch.ones(50, dtype=torch.float64))
    torch.testing.assert_close(rm.relative_curves(dist * 3), curves)
    assert (rm.sharpness(curves) >= 1 - 1e-12).all()
    # a pair whose end output equals its start has no curve
    flat = torch.zeros(1, steps, dtype=torch.float64)
    assert torch.isnan(rm.relative_curves(flat)).all()
    assert torch.isnan(rm.sharpness(rm.relative_curves(flat))).all()


def test_quartiles_and_split():
    values = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, float("nan")])
    torch.testing.assert_close(rm.quartiles(values), torch.tensor([2.0, 3.0, 4.0]).double())
    assert torch.isnan(rm.quartiles(torch.tensor([float("nan")]))).all()
    low, high = rm.split_by_sharpness(torch.arange(1.0, 9.0), 0.25)
    assert low.tolist() == [True, True, False, False, False, False, False, False]
    assert high.tolist() == [False, False, False, False, False, False, True, True]


def test_semantic_groups_count_pairs():
    sharp = torch.tensor([1.1, 1.15, 2.0, 3.0, 12.0, 15.0, 4.0, float("nan")])
    same_last = torch.tensor([True, True, False, True, False, False, False, True])
    same_top = torch.tensor([True, False, False, False, False, True, False, False])
    groups = {
        g["group"]: g for g in rm.semantic_groups(sharp, same_last, same_top, 0.25, (1.2, 10))
    }
    assert groups["sharpness < 1.2"] == {
        "group": "sharpness < 1.2",
        "pairs": 2,
        "same_last_token": 2,
        "same_top_prediction": 1,
    }
    assert (groups["sharpness > 10"]["pairs"], groups["sharpness > 10"]["same_last_token"]) == (
        2,
        0,
    )
    assert groups["all pairs"]["pairs"] == 7 and groups["all pairs"]["same_last_token"] == 3
    assert groups["least sharp 25%"]["pairs"] == 2 and groups["sharpest 25%"]["pairs"] == 2


def test_slice_plane_and_colours():
    torch.manual_seed(1)
    a, b, c = (torch.randn(9, dtype=torch.float64) for _ in range(3))
    u, v, t = rm.slice_frame(a, b, c)
    torch.testing.assert_close(a + t * u + v, c)  # C = (t, 1)
    assert abs(float(torch.dot(u, v))) < 1e-10  # the frame's axes are orthogonal
    grid = torch.tensor([0.0, 1.0, 0.5])
    points, t2 = rm.slice_points(a, b, c, grid)
    assert t2 == t and points.shape == (3, 3, 9)
    torch.testing.assert_close(points[0, 0], a)  # [beta, alpha]
    torch.testing.assert_close(points[0, 1], b)
    torch.testing.assert_close(points[1, 0], a + v)
    dist = torch.rand(3, 4, 4, dtype=torch.float64) + 0.1
    dist[0, 0, 0] = 0.0  # the anchor A's own grid point
    colours = rm.slice_colours(dist)
    assert colours.shape == (4, 4, 3)
    assert colours[0, 0, 0] == 1.0  # A's channel is pure at A
    for k in range(3):  # each channel reaches 0 where its distance is largest
        assert colours[..., k].min() == pytest.approx(0.0)
    torch.testing.assert_close(colours[..., 1], 1 - dist[1] / dist[1].max())


def test_windows_are_distinct_non_overlapping_and_skip_bos():
    documents = [np.arange(100, 125), np.array([7, *range(200, 231)]), np.arange(300, 305)]
    starts = window_starts(documents, 10, skip=7)
    assert starts == [(0, 0), (0, 10), (1, 1), (1, 11), (1, 21)]
    tokens, where = sample_windows(documents, 10, 5, seed=3, skip=7)
    assert tokens.shape == (5, 10) and len({tuple(w) for w in where.tolist()}) == 5
    for row, (doc, start) in zip(tokens, where):
        assert np.array_equal(row, documents[doc][start : start + 10])
        assert 7 not in row
    again, _ = sample_windows(documents, 10, 5, seed=3, skip=7)
    assert np.array_equal(tokens, again)
    with pytest.raises(ActspaceError, match="fewer than the 6 prompts"):
        sample_windows(documents, 10, 6, seed=3, skip=7)


def settings(**overrides) -> RegionSettings:
    """The schema's defaults with ``overrides``."""
    return RegionSettings.from_config(with_defaults(overrides, "regions"))


def test_variants_of_a_toy_and_of_a_model(tmp_path):
    for step in (0, 3, 10, 40):
        (tmp_path / "ckpt" / f"step-{step:06d}").mkdir(parents=True)
    full = plan_variants("model", str(tmp_path / "ckpt"), settings())
    assert [(v.kind, v.step) for v in full] == [
        ("random init", 0),
        ("checkpoint", 3),
        ("checkpoint", 10),
        ("trained", 40),
    ]
    ends = plan_variants("model", str(tmp_path / "ckpt"), settings(checkpoints=False))
    assert [v.step for v in ends] == [0, 40]
    plain = plan_variants("model", None, settings())
    assert [(v.kind, v.path) for v in plain] == [("trained", "model"), ("random init", None)]
    assert len(plan_variants("model", None, settings(random_init=False))) == 1
    (tmp_path / "late").mkdir()
    (tmp_path / "late" / "step-000005").mkdir()
    with pytest.raises(ActspaceError, match="step-0"):
        plan_variants("model", str(tmp_path / "late"), settings())


def test_random_init_is_seeded_and_keeps_the_architecture(tmp_path):
    model, tokenizer = build_tiny_model("llama", seed=2)
    folder = tmp_path / "tiny"
    write_model_dir(model, tokenizer, folder, "tiny", {"source": "local", "path": "x"})
    first, second, other = (random_init(folder, seed) for seed in (0, 0, 1))
    assert first.n_layers == model.config.num_hidden_layers and first.d_model == 32
    w = [m.model.model.layers[0].mlp.up_proj.weight for m in (first, second, other)]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])
    assert not torch.equal(w[0], model.model.layers[0].mlp.up_proj.weight)
    assert read_manifest(folder)["name"] == "tiny"


def test_a_write_block_beyond_the_model_stops_naming_the_range(tiny):
    from actspace.methods.regions.job import measure

    with pytest.raises(ActspaceError, match="write_block 5 is not a block of this 2-block model"):
        measure(tiny, prompts_of(tiny), settings(write_block=5), "tiny")
