"""Text subspaces: projector algebra, projected passes, bisection, overlaps and usage."""

import math

import numpy as np
import pytest
import torch

from actspace.methods.capture.record import residuals_of_batch
from actspace.methods.text_subspaces import job as tsjob
from actspace.methods.text_subspaces import math as tsmath
from actspace.methods.text_subspaces import passes
from actspace.models import ModelAdapter
from conftest import build_tiny_model


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = build_tiny_model("llama", seed=5)
    adapter = ModelAdapter(model, tokenizer)
    rng = np.random.RandomState(0)
    texts = [rng.randint(0, 17, size=n) for n in (12, 9, 15)]
    resid = [residuals_of_batch(adapter, [t], 0).numpy() for t in texts]
    bases = [tsmath.right_singular(tsmath.text_matrix(r))[1] for r in resid]
    return adapter, texts, resid, bases


def test_text_matrix_stacks_layers_and_tokens(tiny):
    _, _, resid, _ = tiny
    M = tsmath.text_matrix(resid[0])
    assert M.shape == (12 * 3, 32)
    assert torch.equal(M[3 * 2 + 1], torch.as_tensor(resid[0][2, 1], dtype=torch.float64))
    assert tsmath.text_matrix(resid[0], exclude_first=True).shape == (11 * 3, 32)


def test_projector_is_an_orthogonal_projector(tiny):
    _, _, resid, bases = tiny
    values, V = tsmath.right_singular(tsmath.text_matrix(resid[0]))
    assert torch.all(values[:-1] >= values[1:])
    torch.testing.assert_close(V.T @ V, torch.eye(32, dtype=V.dtype))
    for k in (1, 7, 32):
        P = tsmath.projector(V, k)
        torch.testing.assert_close(P @ P, P)
        torch.testing.assert_close(P, P.T)
        assert math.isclose(float(torch.trace(P)), k, abs_tol=1e-9)
    torch.testing.assert_close(tsmath.projector(V, 32), torch.eye(32, dtype=V.dtype))
    # the top-k directions reconstruct M best: residual norm equals the dropped singular values
    M = tsmath.text_matrix(resid[0])
    dropped = (M - M @ tsmath.projector(V, 5)).norm() ** 2
    assert math.isclose(float(dropped), float((values[5:] ** 2).sum()), rel_tol=1e-9)


def test_full_rank_projection_reproduces_the_logits(tiny):
    adapter, texts, _, bases = tiny
    ids = torch.as_tensor(texts[0].astype(np.int64))[None]
    with torch.no_grad():
        reference = adapter.model(ids).logits
        P = tsmath.projector(bases[0], 32).float()[None]
        with adapter.hooks(passes._projection_hooks(adapter, P)):
            projected = adapter.model(ids).logits
        P_low = tsmath.projector(bases[0], 4).float()[None]
        with adapter.hooks(passes._projection_hooks(adapter, P_low)):
            low = adapter.model(ids).logits
    torch.testing.assert_close(projected, reference, rtol=1e-4, atol=1e-4)
    assert (low - reference).abs().max() > 1e-2


def test_projected_nll_matches_a_direct_computation(tiny):
    adapter, texts, _, bases = tiny
    ks = np.array([3, 20, 32])
    batched = passes.batched_nll(adapter, texts, bases, ks, batch_size=2)  # padded batches
    for i, text in enumerate(texts):
        ids = torch.as_tensor(text.astype(np.int64))[None]
        P = tsmath.projector(bases[i], int(ks[i])).float()[None]
        with torch.no_grad(), adapter.hooks(passes._projection_hooks(adapter, P)):
            logp = adapter.model(ids).logits.log_softmax(-1)[0, :-1]
        direct = -logp[torch.arange(len(text) - 1), ids[0, 1:]].mean()
        assert math.isclose(batched[i], float(direct), rel_tol=1e-5)


def test_bisection_matches_the_scan_on_monotone_curves():
    rng = np.random.RandomState(1)
    d = 576
    curves = np.sort(rng.rand(40, d), axis=1)[:, ::-1].copy()  # non-increasing in k
    baseline = curves[:, -1] + rng.rand(40) * (curves[:, 0] - curves[:, -1])
    calls = []

    def nll_at(active, ks):
        calls.append(len(active))
        return curves[active, ks - 1]

    k_star, n_passes = tsmath.binary_search_k(nll_at, baseline, d)
    scan = np.array([np.flatnonzero(curves[i] <= baseline[i])[0] + 1 for i in range(40)])
    np.testing.assert_array_equal(k_star, scan)
    assert n_passes == len(calls) == math.ceil(math.log2(d))  # O(log d) passes per text


def test_bisection_finds_a_crossing_of_the_full_scan_on_a_model(tiny):
    """On any curve, bisection ends where NLL crosses the baseline: at or below it at k*,
    above it at k* - 1. (A random model's curves are not monotone, so the crossing need not
    be the first one; the SmolLM2 test checks agreement with the first on a real curve.)"""
    adapter, texts, _, bases = tiny
    baseline = passes.batched_nll(adapter, texts, None, None, 8)

    def nll_at(active, ks):
        return passes.batched_nll(
            adapter, [texts[i] for i in active], [bases[i] for i in active], ks, 8
        )

    k_star, n_passes = tsmath.binary_search_k(nll_at, baseline, 32)
    assert n_passes == 5
    grid = np.arange(1, 33)
    for i in range(len(texts)):
        scan = passes.batched_nll(adapter, [texts[i]] * 32, [bases[i]] * 32, grid, 32)
        assert scan[k_star[i] - 1] <= baseline[i]
        assert k_star[i] == 1 or scan[k_star[i] - 2] > baseline[i]


def test_overlap_matches_the_trace_of_projector_products(tiny):
    _, _, _, bases = tiny
    ks = [5, 17, 30]
    overlap = tsmath.overlap_matrix(bases, ks)
    for a in range(3):
        for b in range(3):
            direct = torch.trace(
                tsmath.projector(bases[a], ks[a]) @ tsmath.projector(bases[b], ks[b])
            )
            assert math.isclose(overlap[a, b], float(direct), rel_tol=1e-9, abs_tol=1e-9)
    np.testing.assert_allclose(np.diag(overlap), ks)


def test_random_subspaces_satisfy_the_product_identity():
    """For random subspaces E tr(P_a P_b) = k_a k_b / d: the study's null model."""
    generator = torch.Generator().manual_seed(0)
    d, ks = 400, [100, 200, 300, 250]
    bases = [
        torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))[0] for _ in ks
    ]
    error = tsmath.product_identity_error(tsmath.overlap_matrix(bases, ks), ks, d)
    assert np.nanmax(error) < 0.05
    aligned = tsmath.product_identity_error(tsmath.overlap_matrix([bases[0]] * 4, ks), ks, d)
    assert np.nanmin(aligned) > 0.3  # nested subspaces violate it


def test_usage_spectrum_is_the_squared_singular_values_of_the_concatenation(tiny):
    _, _, _, bases = tiny
    ks = [5, 17, 30]
    concatenated = torch.cat([V[:, :k] for V, k in zip(bases, ks)], dim=1)
    expected = torch.linalg.svdvals(concatenated).numpy() ** 2
    usage = tsmath.usage_spectrum(bases, ks)
    np.testing.assert_allclose(usage[: len(expected)], np.sort(expected)[::-1], atol=1e-9)
    assert math.isclose(usage.sum(), sum(ks), rel_tol=1e-9) and usage.max() <= 3 + 1e-9


def test_generation_under_full_rank_equals_plain_generation(tiny):
    adapter, texts, _, bases = tiny
    plain = passes.generate_projected(adapter, texts[0][:5], None, 6)
    full = passes.generate_projected(adapter, texts[0][:5], tsmath.projector(bases[0], 32), 6)
    assert plain == full and len(plain) == 6


def test_block_reading_gives_each_texts_own_spectrum():
    rng = np.random.RandomState(0)
    lengths = [5, 9, 3, 12, 7]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    resid = rng.randn(offsets[-1], 3, 8)
    spectra, bases = tsjob.text_bases(resid, offsets, exclude_first=True, block_tokens=10)
    assert len(bases) == 5 and bases[0].dtype == torch.float32
    for i in range(5):
        values, _ = tsmath.right_singular(
            tsmath.text_matrix(resid[offsets[i] : offsets[i + 1]], True)
        )
        np.testing.assert_allclose(spectra[i], values.numpy())
