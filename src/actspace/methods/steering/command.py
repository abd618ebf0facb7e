"""``actspace steer``: try a stored steering vector on any prompt without writing code."""

from __future__ import annotations

from actspace.errors import ActspaceError
from actspace.methods.steering.job import frozen_model, read_vector_set
from actspace.methods.steering.math import to_sphere
from actspace.methods.steering.passes import generate_steered
from actspace.models import read_manifest


def steer_text(
    vectors: str,
    model_dir: str,
    vector_set: str,
    index: int,
    prompt: str,
    tokens: int,
    seed: int | None = None,
    norm: float | None = None,
    device: str = "cpu",
) -> str:
    """The completion of ``prompt`` with row ``index`` of ``vector_set`` added after the
    run's source block (greedy, or sampled from ``seed``; rescaled to ``norm`` if given)."""
    rows, metadata = read_vector_set(vectors, vector_set)
    if not 0 <= index < len(rows):
        raise ActspaceError(f"{vector_set} has rows 0..{len(rows) - 1}, not {index}")
    manifest = read_manifest(model_dir)
    if metadata.get("model") not in (None, manifest["name"]):
        raise ActspaceError(
            f"{vectors} was learned on {metadata['model']!r}, not {manifest['name']!r}"
        )
    vector = rows[index].float()
    if norm is not None:
        vector = to_sphere(vector, norm)
    adapter = frozen_model(model_dir, device)
    ids = adapter.tokenizer(prompt)["input_ids"]
    new = generate_steered(adapter, ids, vector[None], int(metadata["source_block"]), tokens, seed)
    return adapter.tokenizer.decode(new[0])
