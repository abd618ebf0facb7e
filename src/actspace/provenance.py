"""Provenance: package versions and content hashes of the code a job runs.

Snakemake tracks a rule's script file but not the package the script imports. The workflow
therefore passes :func:`code_hash` of each job's entry module as a ``params:`` entry, so that
editing any module a job (transitively) imports reruns that job and only that job.
"""

from __future__ import annotations

import ast
import datetime as _dt
import functools
import hashlib
import importlib.metadata
import platform
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent

TRACKED_DISTRIBUTIONS = (
    "actspace",
    "torch",
    "transformers",
    "numpy",
    "zarr",
    "safetensors",
    "gguf",
    "snakemake",
)


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a result (missing ones are left out)."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_DISTRIBUTIONS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def utc_now() -> str:
    """Creation time stamp, ISO 8601 in UTC."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _module_path(module: str) -> Path:
    parts = module.split(".")
    if parts[0] != "actspace":
        raise ValueError(f"not an actspace module: {module}")
    base = PACKAGE_ROOT.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return base.with_suffix(".py")


def _imported_actspace_modules(module: str, path: Path) -> frozenset[str]:
    """Names of the actspace modules that ``module`` imports (absolute or relative)."""
    return _imports_in_source(module, str(path), path.read_text())


@functools.lru_cache(maxsize=1024)
def _imports_in_source(module: str, filename: str, source: str) -> frozenset[str]:
    """:func:`_imported_actspace_modules` of one version of a module's source: parsed once
    per process (the workflow hashes ~30 entry points sharing most modules when it is parsed;
    keyed on the text itself, so an edited file is parsed again)."""
    package = module if filename.endswith("__init__.py") else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] == "actspace" and _module_path(name).is_file():
                found.add(name)
    return frozenset(found)


def module_closure(entry: str) -> list[str]:
    """All actspace modules ``entry`` imports, directly or through others, sorted."""
    seen: set[str] = set()
    todo = [entry]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_path(name)
        if not path.is_file():
            raise ValueError(f"no source for module {name} at {path}")
        seen.add(name)
        # importing a submodule runs its parent packages' __init__ too
        parents = [".".join(name.split(".")[:i]) for i in range(1, len(name.split(".")))]
        todo.extend(parents)
        todo.extend(_imported_actspace_modules(name, path))
    return sorted(seen)


def code_hash(*entries: str) -> str:
    """SHA-256 (first 16 hex digits) of the sources of ``entries`` and all they import."""
    digest = hashlib.sha256()
    modules = sorted({m for entry in entries for m in module_closure(entry)})
    for name in modules:
        digest.update(name.encode())
        digest.update(_module_path(name).read_bytes())
    return digest.hexdigest()[:16]
