"""Corpora: prompts, files and samples become token stores; bad documents are named."""

import json

import numpy as np
import pytest

from actspace.data.corpora import build_corpus, read_corpus, read_documents
from actspace.errors import ActspaceError
from actspace.models.sources import materialise
from conftest import with_defaults


def build(name, spec, model_dir, out):
    """build_corpus on a spec completed with the schema's defaults, as the workflow runs it."""
    return build_corpus(name, with_defaults(spec, "corpora", "*"), model_dir, out, "cpu")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tiny_llama_dir):
    out = tmp_path_factory.mktemp("models") / "tiny"
    materialise("tiny", {"source": "local", "path": str(tiny_llama_dir)}, out)
    return out


def test_prompt_corpus_tokens_and_offsets(tmp_path, tiny_model):
    prompts = ["the cat sat", "a dog", "one two three four"]
    build("p", {"type": "prompts", "prompts": prompts}, tiny_model, tmp_path / "p.zarr")
    tokens, offsets = read_corpus(tmp_path / "p.zarr")
    assert tokens.dtype == np.int32 and offsets.dtype == np.int64
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    for i, prompt in enumerate(prompts):
        assert tokens[offsets[i] : offsets[i + 1]].tolist() == tokenizer(prompt)["input_ids"]
    assert offsets.tolist() == [0, 4, 7, 12]


def test_file_corpora(tmp_path, tiny_model):
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text(
        json.dumps({"text": "the cat"}) + "\n\n" + json.dumps({"text": "a mat"}) + "\n"
    )
    assert read_documents(jsonl, "text") == ["the cat", "a mat"]
    txt = tmp_path / "docs.txt"
    txt.write_text("the cat\nsat\n\n\na mat\n")
    assert read_documents(txt, "text") == ["the cat\nsat", "a mat"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"body": "x"}\n')
    with pytest.raises(ActspaceError, match="bad.jsonl:1 .*'text'"):
        read_documents(bad, "text")


def test_too_long_document_is_named_or_truncated(tmp_path, tiny_model):
    long = " ".join(["the"] * 100)  # context of the tiny model is 64
    spec = {"type": "prompts", "prompts": ["a cat", long]}
    with pytest.raises(ActspaceError, match="document 1 has 101 tokens, more than .* 64"):
        build("long", spec, tiny_model, tmp_path / "long.zarr")
    assert not (tmp_path / "long.zarr").exists()
    build("long", {**spec, "truncate": True}, tiny_model, tmp_path / "cut.zarr")
    _, offsets = read_corpus(tmp_path / "cut.zarr")
    assert np.diff(offsets).tolist() == [3, 64]


def test_generated_corpus_is_seeded(tmp_path, tiny_model):
    spec = {"type": "generated", "n_texts": 5, "n_tokens": 6, "seed": 3, "batch_size": 2}
    build("g", spec, tiny_model, tmp_path / "a.zarr")
    build("g", spec, tiny_model, tmp_path / "b.zarr")
    build("g", {**spec, "seed": 4}, tiny_model, tmp_path / "c.zarr")
    a, offsets = read_corpus(tmp_path / "a.zarr")
    b, _ = read_corpus(tmp_path / "b.zarr")
    c, _ = read_corpus(tmp_path / "c.zarr")
    assert len(offsets) == 6 and np.array_equal(a, b) and not np.array_equal(a, c)
    bos = 17  # len(WORDS): texts start from BOS, then at most n_tokens sampled tokens
    lengths = np.diff(offsets)
    assert all(a[start] == bos for start in offsets[:-1]) and lengths.max() <= 7
