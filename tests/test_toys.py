"""Toy copy transformers: data, head scores on hand-built patterns, model format, training."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from actspace.errors import ActspaceError
from actspace.models.sources import load_model, materialise
from actspace.methods.toys.heads import bigram_targets, head_scores, induction_targets
from actspace.methods.toys.job import toy_search_job
from actspace.methods.toys.model import build_toy_model, toy_tokenizer
from actspace.data.task_batches import make_batch
from actspace.data.tasks import CopyTask, has_unique_bigrams, make_sequence, unique_bigram_walk
from actspace.methods.toys.spec import ToyArchitecture, TrainSettings
from actspace.methods.toys.training import checkpoint_steps, train, training_batch
from actspace.store import read_csv
from conftest import TINY_TOYS, with_defaults

SPEC = ("toys", "specs", "*")  # where a toy's entry sits in the config schema


def task_of(**values) -> CopyTask:
    """A copy task: the schema's defaults with ``values``."""
    return CopyTask(**with_defaults(values, *SPEC, "task"))


def shape(**values) -> ToyArchitecture:
    """A toy's GPT-2 shape: the schema's defaults with ``values``."""
    return ToyArchitecture(**with_defaults(values, *SPEC, "model"))


def settings(**values) -> TrainSettings:
    """Training settings: the schema's defaults with ``values`` (no longer-x evaluation)."""
    return TrainSettings(**with_defaults(values, *SPEC, "train"), long_len=None)


COPY = task_of(kind="copy", vocab=10, min_len=3, max_len=6)
BIGRAM = task_of(kind="bigram-copy", vocab=3, min_len=6, max_len=8)


def one_hot_pattern(width: int, pick) -> torch.Tensor:
    """(1, 1, T, T) attention: query q puts all its mass on key pick(q) (or on itself)."""
    attn = torch.zeros(1, 1, width, width)
    for q in range(width):
        attn[0, 0, q, pick(q)] = 1.0
    return attn


def test_sequence_layout_and_loss_mask():
    x = np.array([4, 7, 1])
    tokens, target = make_sequence(COPY, x)
    assert tokens.tolist() == [10, 4, 7, 1, 11, 4, 7, 1, 12]  # <bos> x <sep> x <eos>
    assert target.tolist() == [False] * 5 + [True] * 4
    two = task_of(kind="copy", vocab=10, min_len=3, max_len=6, repetitions=2)
    tokens, target = make_sequence(two, x)
    assert tokens.tolist() == [10, 4, 7, 1, 11, 4, 7, 1, 11, 4, 7, 1, 12]
    assert len(tokens) == two.sequence_length(3)
    assert target.sum() == 8  # both copies, the separator between them and <eos>


def test_generated_data_obeys_the_task():
    rng = np.random.default_rng(0)
    batch = make_batch(COPY, rng, 200)
    for row, length in zip(batch.tokens, batch.lengths):
        x = row[1 : 1 + length].tolist()
        assert len(set(x)) == len(x) and max(x) < COPY.vocab
        assert row[2 + length : 2 + 2 * length].tolist() == x
    assert set(batch.lengths.tolist()) == set(range(3, 7))
    for length in range(2, 10):
        walk = unique_bigram_walk(rng, 3, length).tolist()
        assert has_unique_bigrams(walk) and len(walk) == length
    with pytest.raises(ActspaceError):
        unique_bigram_walk(rng, 2, 6)  # only 4 bigrams over 2 tokens


def test_induction_and_prev_token_scores_on_hand_built_patterns():
    tokens, _ = make_sequence(COPY, np.array([4, 7, 1, 3]))
    batch = torch.from_numpy(tokens)[None]
    lengths = torch.tensor([4])
    width = len(tokens)  # <bos> 4 7 1 3 <sep> 4 7 1 3 <eos>: copy at 6..9
    # perfect induction head: copy position q (token x_i at 6+i) attends to x_{i+1} at 2+i
    induction = one_hot_pattern(width, lambda q: q - 4 if 6 <= q <= 9 else q)
    scores = head_scores(induction, batch, lengths, COPY.vocab)
    assert scores["induction_score"].item() == pytest.approx(1.0)
    # perfect previous-token head
    prev = one_hot_pattern(width, lambda q: max(q - 1, 0))
    scores = head_scores(prev, batch, lengths, COPY.vocab)
    assert scores["prev_token_score"].item() == pytest.approx(1.0)
    assert scores["induction_score"].item() == pytest.approx(0.0)
    # uniform causal attention: query q spreads 1/(q+1); induction targets of the 4 copy
    # queries are single keys, so the score is the mean of 1/(q+1) over q = 6..9
    uniform = torch.tril(torch.ones(width, width))
    uniform = (uniform / uniform.sum(-1, keepdim=True))[None, None]
    scores = head_scores(uniform, batch, lengths, COPY.vocab)
    expected = np.mean([1 / (q + 1) for q in range(6, 10)])
    assert scores["induction_score"].item() == pytest.approx(expected)
    assert scores["prev_token_score"].item() == pytest.approx(np.mean([1 / 3, 1 / 4, 1 / 5]))
    # the last query (x_3 in the copy) has no j+1 < q target once j+1 == q... check the masks
    targets = induction_targets(batch, COPY.vocab)[0]
    assert targets.any(-1).nonzero().flatten().tolist() == [6, 7, 8, 9]
    assert targets[9].nonzero().flatten().tolist() == [5]  # x_3's successor is <sep>


def test_bigram_score_and_decoy_mass():
    x = np.array([0, 1, 0, 2, 1, 1])  # bigrams 01 10 02 21 11: unique; tokens repeat
    assert has_unique_bigrams(x.tolist())
    tokens, _ = make_sequence(BIGRAM, x)  # <bos>=3 at 0, x at 1..6, <sep> at 7, copy at 8..13
    batch = torch.from_numpy(tokens)[None]
    lengths = torch.tensor([len(x)])
    targets = bigram_targets(batch, BIGRAM.vocab)[0]
    queries = targets.any(-1).nonzero().flatten().tolist()
    assert queries == [9, 10, 11, 12, 13]  # every copy position but the first (after <sep>)
    # query 11 holds x_3=0... (copy index 3 at 8+3=11: token 2, bigram (0, 2) at x_2, x_3)
    assert targets[11].nonzero().flatten().tolist() == [5]  # x_4 at position 5
    # a head that puts 0.7 on the bigram target and 0.3 on one plain-induction decoy
    width = len(tokens)
    induction = induction_targets(batch, BIGRAM.vocab)[0]
    attn = torch.zeros(1, 1, width, width)
    for q in range(width):
        attn[0, 0, q, q] = 1.0
    decoy_queries = 0
    for q in queries:
        attn[0, 0, q] = 0
        decoys = (induction[q] & ~targets[q]).nonzero().flatten().tolist()
        target = targets[q].nonzero().flatten().item()
        if decoys:
            attn[0, 0, q, target], attn[0, 0, q, decoys[0]] = 0.7, 0.3
            decoy_queries += 1
        else:
            attn[0, 0, q, target] = 1.0
    scores = head_scores(attn, batch, lengths, BIGRAM.vocab)
    n = len(queries)
    assert decoy_queries > 0
    assert scores["bigram_score"].item() == pytest.approx(
        (0.7 * decoy_queries + n - decoy_queries) / n
    )
    assert scores["decoy_mass"].item() == pytest.approx(0.3 * decoy_queries / n)


def test_checkpoint_steps_are_log_spaced_with_ends():
    steps = checkpoint_steps(3000, 12)
    assert steps[0] == 0 and steps[-1] == 3000 and 1 in steps
    ratios = np.diff(np.log(steps[1:]))
    assert len(steps) <= 12 and ratios.max() < 1.2


TINY = dict(
    steps=30, batch_size=16, checkpoints=4, eval_sequences=32, eval_every=10, shared_length=True
)


def test_same_seed_same_weights_and_attention_only_is_exact():
    arch = shape(n_layers=2, n_heads=2, d_model=16, n_positions=16)
    first, metrics, history = train(COPY, arch, settings(**TINY), progress=False)
    second, _, _ = train(COPY, arch, settings(**TINY), progress=False)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name
    other, _, _ = train(COPY, arch, settings(**TINY, seed=1), progress=False)
    assert not torch.equal(first.transformer.wte.weight, other.transformer.wte.weight)
    assert [row["step"] for row in metrics] == checkpoint_steps(30, 4)
    assert history[0]["step"] == 0 and history[-1]["step"] == 30
    for block in first.transformer.h:  # MLPs stayed zero through training
        assert all(not p.any() for p in block.mlp.parameters())
    assert metrics[-1]["loss"] < metrics[0]["loss"]


def test_a_killed_training_resumes_to_the_same_weights(tmp_path):
    """Killed right after the state of step 20 was saved, a second attempt continues from
    there and ends bit-identical to an uninterrupted run (dropout and the data stream
    included); a state of other settings is ignored."""
    from actspace.methods.toys.resume import Resume

    class KilledAfter(Resume):
        def save_state(self, state):
            super().save_state(state)
            if state.step == 20:
                raise KeyboardInterrupt

    arch = shape(n_layers=2, n_heads=1, d_model=16, n_positions=16, attn_only=False, dropout=0.1)
    config = settings(**TINY)
    whole, whole_metrics, whole_history = train(COPY, arch, config, progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(COPY, arch, config, progress=False, resume=KilledAfter(tmp_path, "k", 10))
    assert Resume(tmp_path, "k", 10).load_state().step == 20
    assert Resume(tmp_path, "other settings", 10).load_state() is None
    resumed, metrics, history = train(
        COPY, arch, config, progress=False, resume=Resume(tmp_path, "k", 10)
    )
    for (name, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    strip = lambda rows: [
        {k: v for k, v in r.items() if k != "seconds"} for r in rows
    ]  # noqa: E731
    same = lambda a, b: json.dumps(strip(a)) == json.dumps(strip(b))  # noqa: E731  (NaN-safe)
    assert same(metrics, whole_metrics) and same(history, whole_history)


def test_a_diverging_training_stops_naming_the_step():
    from actspace.errors import ActspaceError

    arch = shape(n_layers=2, n_heads=2, d_model=16, n_positions=16)
    with pytest.raises(ActspaceError, match=r"copy loss is (nan|inf) at step \d+; lower train.lr"):
        train(COPY, arch, settings(**{**TINY, "lr": 1e30}), progress=False)


def test_shared_length_batches_have_no_padding_and_every_length():
    """One x length per batch (no padding), drawn over the task's whole range."""
    shared = settings(steps=1, batch_size=8, shared_length=True)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        batch = training_batch(BIGRAM, rng, shared)
        assert (batch.lengths == batch.lengths[0]).all()
        assert not (batch.tokens == BIGRAM.pad).any()
        assert batch.tokens.shape[1] == BIGRAM.sequence_length(int(batch.lengths[0]))
        seen.add(int(batch.lengths[0]))
    assert seen == set(range(BIGRAM.min_len, BIGRAM.max_len + 1))
    mixed = training_batch(BIGRAM, rng, settings(steps=1, batch_size=64))
    assert len(set(mixed.lengths.tolist())) > 1 and (mixed.tokens == BIGRAM.pad).any()


def test_mlp_width_is_configurable():
    arch = shape(n_layers=2, n_heads=2, d_model=16, n_positions=16, attn_only=False, d_mlp=24)
    model = build_toy_model(COPY, arch, seed=0)
    assert model.transformer.h[0].mlp.c_fc.weight.shape == (16, 24)
    wide = build_toy_model(
        COPY, shape(n_layers=2, n_heads=2, d_model=16, n_positions=16, attn_only=False), seed=0
    )
    assert wide.transformer.h[0].mlp.c_fc.weight.shape == (16, 64)


def test_toy_directory_is_an_ordinary_pipeline_model(tmp_path):
    from actspace.models.sources import write_model_dir

    arch = shape(n_layers=2, n_heads=2, d_model=16, n_positions=16)
    model = build_toy_model(COPY, arch, seed=0)
    write_model_dir(model, toy_tokenizer(COPY), tmp_path / "toy", "toy", {"source": "toy"}, True)
    manifest = materialise(
        "toy-copy", {"source": "toy", "toy": "t"}, tmp_path / "m", tmp_path / "toy"
    )
    assert manifest["attn_only"] is True and manifest["vocab_size"] == 14
    adapter = load_model(tmp_path / "m")
    assert adapter.attn_only
    ids = adapter.tokenizer("4 7 1 <sep> 4", return_tensors="pt").input_ids
    assert ids.tolist() == [[10, 4, 7, 1, 11, 4]]
    _, cache = adapter.run_with_cache(ids, adapter.hook_names())
    for layer in range(2):
        assert not cache[f"blocks.{layer}.hook_mlp_out"].any()
    with pytest.raises(ActspaceError, match="no MLP weights"):
        adapter.mlp_weights(0)
    from actspace.methods.weights_svd.matrices import matrix_kinds, weight_matrices

    assert matrix_kinds(adapter) == ["ov"]
    assert {m.kind for m in weight_matrices(adapter)} == {"ov"}
    # a manifest claiming attention-only over non-zero MLPs is refused
    torch.nn.init.normal_(adapter.model.transformer.h[0].mlp.c_proj.weight)
    from actspace.models import ModelAdapter

    with pytest.raises(ActspaceError, match="non-zero"):
        ModelAdapter(adapter.model, adapter.tokenizer, attn_only=True)


def test_decompiling_transformers_layout_loads_without_unpickling(tmp_path):
    """config.json + model.safetensors + training_args.bin (never read), no tokenizer files."""
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path / "unique_copy-@2l1h64d3lr01drop"
    folder.mkdir()
    config = GPT2Config(
        vocab_size=24,
        n_positions=50,
        n_embd=16,
        n_layer=2,
        n_head=1,
        bos_token_id=20,
        eos_token_id=22,
        pad_token_id=23,
    )
    model = GPT2LMHeadModel(config).eval()
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config.to_dict()))
    (folder / "training_args.bin").write_bytes(b"\x80\x04not a pickle to be read")
    spec = {"source": "local", "path": str(folder), "tokenizer": "copy-task"}
    materialise("decompiled", spec, tmp_path / "m")
    adapter = load_model(tmp_path / "m")
    ids = adapter.tokenizer("3 19 <sep> 3", return_tensors="pt").input_ids
    assert ids.tolist() == [[20, 3, 19, 21, 3]]
    with torch.no_grad():
        expected = model(ids).logits
    assert torch.allclose(adapter.model(ids).logits, expected, atol=1e-5)
    assert not adapter.attn_only


def test_search_is_attention_only_unless_it_says_otherwise(tmp_path):
    """The toy's own shape has MLPs and dropout; the issue's search is attention-only."""
    entry = copy.deepcopy(TINY_TOYS["tiny-bigram"])
    entry["model"].update(attn_only=False, dropout=0.1)
    entry["search"] = {"n_layers": [1], "n_heads": [2], "d_model": [8]}
    toy_search_job("t", with_defaults(entry, *SPEC), tmp_path / "a.csv")
    entry["search"]["attn_only"] = False
    toy_search_job("t", with_defaults(entry, *SPEC), tmp_path / "m.csv")
    attn_only, with_mlp = read_csv(tmp_path / "a.csv")[0], read_csv(tmp_path / "m.csv")[0]
    d, vocab, positions = 8, 4 + 4, 20
    embeddings = (vocab + positions) * d
    block = 2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d)  # two norms, qkv, attention out
    assert attn_only["params"] == embeddings + block + 2 * d  # + final norm; MLPs frozen
    assert with_mlp["params"] == attn_only["params"] + (d * 4 * d + 4 * d) + (4 * d * d + d)
    assert attn_only["steps"] == entry["train"]["steps"]
    entry["search"]["train"] = {"steps": 3}
    toy_search_job("t", with_defaults(entry, *SPEC), tmp_path / "s.csv")
    assert read_csv(tmp_path / "s.csv")[0]["steps"] == 3


def test_public_bigram_walk_follows_the_published_generator():
    """Replaying each sequence: a prefix of min(V, L) tokens with distinct bigrams, then at
    every step a successor whose bigram is new and that has the most unused onward bigrams."""
    from actspace.data.tasks import public_bigram_walk

    rng = np.random.default_rng(0)
    vocab = 5
    for length in (3, 5, 12, 20):
        for _ in range(20):
            walk = public_bigram_walk(rng, vocab, length).tolist()
            assert len(walk) == length and has_unique_bigrams(walk)
            used = {(a, b) for a, b in zip(walk[: vocab - 1], walk[1:vocab])}
            for i in range(min(vocab, length), length):
                last = walk[i - 1]
                free = [t for t in range(vocab) if (last, t) not in used]
                onward = {t: sum((t, u) not in used for u in range(vocab)) for t in free}
                assert walk[i] in free and onward[walk[i]] == max(onward.values())
                used.add((last, walk[i]))
    task = task_of(kind="bigram-copy", vocab=3, min_len=6, max_len=8)
    assert task.walk == "public"  # the schema's default


def test_a_killed_train_toy_job_resumes_and_cleans_up(tmp_path, monkeypatch):
    """The job keeps its state and checkpoints in `.resume` beside its outputs until the end:
    killed after step 20, its second attempt writes the same model, metrics and checkpoints
    as an uninterrupted job, and leaves no `.resume` behind."""
    from actspace.methods.toys import job as toy_job
    from actspace.methods.toys.resume import Resume

    monkeypatch.setattr(toy_job, "RESUME_EVERY", 10)
    entry = with_defaults(copy.deepcopy(TINY_TOYS["tiny-copy"]), *SPEC)

    def run(folder):
        outputs = [folder / n for n in ("model", "checkpoints", "m.csv", "log.csv", "heads.csv")]
        toy_job.train_toy_job("tiny-copy", entry, *map(str, outputs))
        return outputs

    whole = run(tmp_path / "whole")
    original = Resume.save_state

    def killed(self, state):
        original(self, state)
        if state.step == 20:
            raise KeyboardInterrupt

    monkeypatch.setattr(Resume, "save_state", killed)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "again")
    assert (tmp_path / "again" / ".resume" / "state").is_dir()
    assert not (tmp_path / "again" / "model").exists()
    monkeypatch.setattr(Resume, "save_state", original)
    again = run(tmp_path / "again")
    assert not (tmp_path / "again" / ".resume").exists()
    a = load_model(whole[0]).model.state_dict()
    b = load_model(again[0]).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert sorted(p.name for p in whole[1].iterdir()) == sorted(p.name for p in again[1].iterdir())
    drop_seconds = lambda rows: [
        {k: v for k, v in r.items() if k != "seconds"} for r in rows
    ]  # noqa: E731
    same = json.dumps(drop_seconds(read_csv(whole[2]))) == json.dumps(
        drop_seconds(read_csv(again[2]))
    )
    assert same  # (compared as JSON: train_loss is NaN at step 0)
