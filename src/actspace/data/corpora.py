"""Corpora: turn a corpus spec into a token store, once per model (tokenisers differ).

Spec types (``config.corpora.<name>.type``):

``prompts``
    a list of prompt strings in the config (e.g. ``seed-texts``, the four prompts of the
    "activation subspaces" study); with ``continue_tokens: N`` each document is the prompt
    plus the model's greedy continuation of up to N tokens (what the model read and wrote);
``file``
    a UTF-8 text file with documents separated by blank lines, or a JSONL file with one
    object per line whose ``field`` (default ``text``) holds a document;
``generated``
    ``n_texts`` texts sampled from the model with no prompt (from its BOS token), seeded;
``task``
    ``n_texts`` sequences of a copy task (``<bos> x <sep> x <eos>``, :mod:`actspace.data.tasks`)
    for a model with that task's vocabulary, e.g. a toy: the first copy of x is the prompt.

Output: a Zarr v3 store with ``tokens`` (n_tokens_total,) int32, ``doc_offsets``
(n_docs + 1,) int64 and ``prompt_lengths`` (n_docs,) int64; document ``i`` is
``tokens[doc_offsets[i]:doc_offsets[i + 1]]``, of which the first ``prompt_lengths[i]`` tokens
were given to the model (the whole document for a file, BOS alone for a sampled text).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from actspace.data.generation import greedy_continuations, sample_texts
from actspace.data.tasks import CopyTask, draw_x, make_sequence
from actspace.errors import ActspaceError
from actspace.models import load_model, read_manifest
from actspace.store import atomic_store, open_store, provenance

log = logging.getLogger(__name__)


def read_documents(path: str | os.PathLike, field: str) -> list[str]:
    """Documents of a ``.jsonl`` file (one object per line) or a text file (blank-line separated)."""
    path = Path(path)
    if not path.is_file():
        raise ActspaceError(f"corpus file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        documents = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                documents.append(json.loads(line)[field])
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ActspaceError(
                    f"{path}:{number} is not a JSON object with a {field!r} field ({err})"
                ) from err
    else:
        documents = [doc.strip() for doc in text.split("\n\n") if doc.strip()]
    if not documents:
        raise ActspaceError(f"corpus file {path} holds no documents")
    return documents


def tokenize_documents(
    tokenizer: Any, documents: Sequence[str], n_ctx: int, corpus: str, truncate: bool
) -> list[list[int]]:
    """Token ids of each document (tokenizer's own special tokens), checked against ``n_ctx``."""
    token_lists = []
    for index, document in enumerate(documents):
        if not document.strip():
            raise ActspaceError(f"corpus {corpus!r}: document {index} is empty")
        ids = tokenizer(document)["input_ids"]
        if len(ids) > n_ctx:
            if not truncate:
                raise ActspaceError(
                    f"corpus {corpus!r}: document {index} has {len(ids)} tokens, more than the "
                    f"model's context of {n_ctx} (set truncate: true to cut it)"
                )
            ids = ids[:n_ctx]
        token_lists.append(list(ids))
    return token_lists


def build_corpus(
    corpus: str,
    spec: dict[str, Any],
    model_dir: str | os.PathLike,
    out: str | os.PathLike,
    device: str,
) -> dict[str, Any]:
    """Tokenise (or sample) corpus ``corpus`` for the model in ``model_dir``; write ``out``."""
    from transformers import AutoTokenizer

    manifest = read_manifest(model_dir)
    kind = spec["type"]
    if kind == "task":
        token_lists, prompt_lengths = task_sequences(spec, manifest, corpus)
    elif kind == "generated":
        adapter = load_model(model_dir, device)
        token_lists = sample_texts(
            adapter,
            spec["n_texts"],
            spec["n_tokens"],
            spec["seed"],
            spec["batch_size"],
        )
        prompt_lengths = [1] * len(token_lists)
    else:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if kind == "prompts":
            documents = list(spec["prompts"])
        elif kind == "file":
            documents = read_documents(spec["path"], spec["field"])
        else:
            raise ActspaceError(f"corpus {corpus!r}: unknown type {kind!r}")
        if not documents:
            raise ActspaceError(f"corpus {corpus!r} has no documents")
        token_lists = tokenize_documents(
            tokenizer, documents, manifest["n_ctx"], corpus, spec["truncate"]
        )
        prompt_lengths = [len(ids) for ids in token_lists]
        n_new = spec["continue_tokens"] if kind == "prompts" else 0
        if n_new:
            longest = max(prompt_lengths) + n_new
            if longest > manifest["n_ctx"]:
                raise ActspaceError(
                    f"corpus {corpus!r}: a prompt plus {n_new} continuation tokens makes "
                    f"{longest} tokens, more than the model's context of {manifest['n_ctx']}"
                )
            token_lists = greedy_continuations(load_model(model_dir, device), token_lists, n_new)
    lengths = np.array([len(ids) for ids in token_lists], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = np.fromiter((t for ids in token_lists for t in ids), dtype=np.int32)
    attrs = provenance(
        kind="corpus",
        corpus=corpus,
        spec=spec,
        model=manifest["name"],
        weights_sha256=manifest["weights_sha256"],
        n_docs=len(token_lists),
        n_tokens=int(tokens.size),
    )
    with atomic_store(out, attrs) as group:
        group.create_array("tokens", data=tokens, chunks=(max(1, min(tokens.size, 1 << 20)),))
        group.create_array("doc_offsets", data=offsets)
        group.create_array("prompt_lengths", data=np.asarray(prompt_lengths, dtype=np.int64))
    log.info("corpus %s: %d documents, %d tokens", corpus, len(token_lists), tokens.size)
    return attrs


def task_sequences(
    spec: dict[str, Any], manifest: dict[str, Any], corpus: str
) -> tuple[list[list[int]], list[int]]:
    """``spec['n_texts']`` seeded sequences of the copy task ``spec['task']``, and the length
    of each one's prompt (``<bos> x <sep>``); the model's vocabulary must be the task's."""
    task = CopyTask.from_config(spec["task"])
    if manifest["vocab_size"] != task.vocab_size:
        raise ActspaceError(
            f"corpus {corpus!r}: the task has {task.vocab_size} tokens but model "
            f"{manifest['name']!r} has a vocabulary of {manifest['vocab_size']}"
        )
    rng = np.random.default_rng(spec["seed"])
    token_lists, prompt_lengths = [], []
    for _ in range(spec["n_texts"]):
        length = int(rng.integers(task.min_len, task.max_len + 1))
        tokens, _ = make_sequence(task, draw_x(task, rng, length))
        token_lists.append(tokens.tolist())
        prompt_lengths.append(length + 2)
    return token_lists, prompt_lengths


def read_corpus(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``tokens`` and ``doc_offsets`` of a token store (or an activation store)."""
    group = open_store(path, ["tokens", "doc_offsets"])
    return group["tokens"][:], group["doc_offsets"][:]


def documents_of(tokens: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    """The token ids of each document of a store."""
    return [tokens[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
