# Config validation, input functions and shared settings of the actspace rules.
from pathlib import Path

import yaml
from snakemake.utils import validate

from actspace.config import check_references, check_schema, models_in_use, order_like
from actspace.provenance import code_hash
from actspace.registry import METHODS, enabled_methods

# one clear line for a bad key or value; then Snakemake's validation fills in the defaults
check_schema(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")
validate(config, schema="../schemas/config.schema.yaml")
check_references(config)
# settings in the default config's key order: a restated default or a reordered file in a
# user's config changes no job's params (only a changed value reruns anything)
DEFAULT_CONFIG = yaml.safe_load((Path(workflow.basedir) / "config" / "config.yaml").read_text())
validate(DEFAULT_CONFIG, schema="../schemas/config.schema.yaml")
order_like(config, DEFAULT_CONFIG)

ENV = "../../environment.yml"
DEVICE = config["device"]
GPUS = 0 if DEVICE == "cpu" else 1
THREADS = config["resources"]["threads"]
# the published reference values every method summary reads (an input: editing it reruns
# the summaries, nothing else); the checkout's copy, whichever actspace is imported
PUBLISHED = str(Path(workflow.basedir) / "src" / "actspace" / "reporting" / "published.yaml")


wildcard_constraints:
    model=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    corpus=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    toy=r"[A-Za-z0-9][A-Za-z0-9._-]*",


def model_spec(wildcards):
    """The config entry of the model a job works on."""
    return config["models"][wildcards.model]


def corpus_spec(wildcards):
    """The config entry of the corpus a job works on."""
    return config["corpora"][wildcards.corpus]


def model_mem_mb(wildcards):
    """Memory of a job that holds a model (per-model mem_mb, else the default)."""
    return model_spec(wildcards).get("mem_mb", config["resources"]["mem_mb"])


def toy_model_input(wildcards):
    """A toy source's trained model directory (no input for other sources)."""
    spec = model_spec(wildcards)
    if spec["source"] != "toy":
        return {}
    return {"toy": expand(rules.train_toy.output.model, toy=spec["toy"])[0]}


def settings_of(method):
    """A method's validated config section less the lists of what it runs on: the settings
    its jobs take (a change reruns them)."""
    return {k: v for k, v in config[method].items() if k not in ("models", "corpora")}


def per_model_and_corpus(method, pattern):
    """``pattern`` for every model x corpus the method's config section lists."""
    section = config[method]
    return expand(pattern, model=section["models"], corpus=section["corpora"])


def method_targets():
    """Every output of every method the config asks for (their target rules' inputs)."""
    return [getattr(rules, method.name).input for method in enabled_methods(config)]


def method_summaries():
    """The per-method summaries the summary page assembles, in registry order."""
    return [
        getattr(rules, f"{method.name}_summary").output[0] for method in enabled_methods(config)
    ]


TITLES = {method.name: method.title for method in METHODS}


def figure(path, caption):
    """A figure output marked for the report: caption ``workflow/report/{caption}.rst``,
    category = its method's title, subcategory = its model (or toy), labels = the figure and
    its other wildcards."""
    method, name = caption.split("/")
    owner = next((w for w in ("{model}", "{toy}") if w in path), None)
    labels = {"figure": name}
    for wildcard in ("corpus", "run", "layer", "block", "stop"):
        if f"{{{wildcard}}}" in path:
            labels[wildcard] = f"{{{wildcard}}}"
    return report(
        path,
        caption=f"../report/{caption}.rst",
        category=TITLES[method],
        subcategory=owner or "all runs",
        labels=labels,
    )


def pdf_of(folder, *names):
    """The PDF copies that save_figure writes beside the PNG figures ``folder/{name}.png``."""
    return [f"{folder}/{name}.pdf" for name in names]


def figure_targets():
    """Every figure of every enabled method: the files its target rule collects that are
    figures (the PDFs included)."""
    suffixes = (".png", ".pdf", ".gif")
    return [
        path
        for method in enabled_methods(config)
        for path in getattr(rules, method.name).input
        if str(path).endswith(suffixes)
    ]
