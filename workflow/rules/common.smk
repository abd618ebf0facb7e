# Config validation, input functions and shared settings of the actspace rules.
from snakemake.utils import validate

from actspace.config import check_references
from actspace.provenance import code_hash

validate(config, schema="../schemas/config.schema.yaml")
check_references(config)

ENV = "../../environment.yml"
DEVICE = config["device"]
GPUS = 0 if DEVICE == "cpu" else 1
THREADS = config["resources"]["threads"]


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


def toy_model_input(wildcards):
    """A toy source's trained model directory (no input for other sources)."""
    spec = model_spec(wildcards)
    if spec["source"] != "toy":
        return {}
    return {"toy": f"results/toys/{spec['toy']}/model"}


def model_mem_mb(wildcards):
    """Memory of a job that holds a model (per-model mem_mb, else the default)."""
    return model_spec(wildcards).get("mem_mb", config["resources"]["mem_mb"])


def model_dir(wildcards):
    """The materialised model directory a job reads."""
    return f"results/models/{wildcards.model}"


def capture_settings():
    """Capture parameters that shape the store (a change reruns the capture)."""
    keys = ("dtype", "batch_tokens", "chunk_tokens", "codec")
    return {key: config["capture"][key] for key in keys}


def all_capture_stores():
    """Activation stores of every configured model x corpus."""
    return expand(
        "results/activations/{model}/{corpus}.zarr",
        model=config["capture"]["models"],
        corpus=config["capture"]["corpora"],
    )


def text_subspaces_settings():
    """Analysis parameters of the text-subspaces study (a change reruns it)."""
    keys = (
        "grid_points",
        "curve_texts",
        "generate_texts",
        "generate_tokens",
        "batch_size",
    )
    return {key: config["text_subspaces"][key] for key in keys}


def text_subspace_figures(model, corpus):
    """The four figure paths of one model x corpus (named outputs of the figures rule)."""
    folder = f"results/text_subspaces/{model}/figures"
    kinds = ("spectrum", "nll", "overlap", "usage")
    return {kind: f"{folder}/{corpus}.{kind}.png" for kind in kinds}


def all_text_subspace_stores():
    """Text-subspace stores of every configured model x corpus."""
    return expand(
        "results/text_subspaces/{model}/{corpus}.zarr",
        model=config["text_subspaces"]["models"],
        corpus=config["text_subspaces"]["corpora"],
    )


def all_text_subspace_figures():
    """Figures of every configured model x corpus."""
    return [
        path
        for model in config["text_subspaces"]["models"]
        for corpus in config["text_subspaces"]["corpora"]
        for path in text_subspace_figures(model, corpus).values()
    ]


# Matrix kinds whose token tables the weight-SVD rule writes. Every model of a run must
# share them (gated MLPs have gate/up, GPT-2-style MLPs a single input matrix).
WEIGHT_KINDS = config["weights_svd"]["kinds"]


def weights_svd_settings():
    """Weight-SVD parameters (a change reruns it)."""
    keys = (
        "k_dirs",
        "k_tokens",
        "fold_final_norm",
        "center_unembedding",
        "n_null",
        "coherent_quantile",
        "coherence_neighbours",
        "coherent_top_dirs",
        "seed",
        "queries",
        "query_threshold",
        "edit",
    )
    return {key: config["weights_svd"][key] for key in keys}


def weights_svd_figure_paths(model):
    """The figure paths of one model (named outputs of the figures rule)."""
    folder = f"results/weights_svd/{model}/figures"
    kinds = ("tokens", "spectra", "coherence", "edits")
    return {kind: f"{folder}/{kind}.png" for kind in kinds}


def all_weights_svd_figures():
    """Figures of every configured model."""
    return [
        path
        for model in config["weights_svd"]["models"]
        for path in weights_svd_figure_paths(model).values()
    ]


def trained_toys():
    """Spec of every toy the default target trains (config.toys.train)."""
    toys = config.get("toys", {})
    return {name: toys["specs"][name] for name in toys.get("train", [])}


def toy_entry(wildcards):
    """The config entry of the toy a job trains or plots."""
    return config["toys"]["specs"][wildcards.toy]


def toy_outputs(toy):
    """Training outputs of one toy (named as in rule train_toy)."""
    folder = f"results/toys/{toy}"
    return {
        "model": f"{folder}/model",
        "checkpoints": f"{folder}/checkpoints",
        "metrics": f"{folder}/metrics.csv",
        "history": f"{folder}/training_log.csv",
        "heads": f"{folder}/heads.csv",
    }


def toy_figure_paths(toy):
    """The two figures of one toy (named outputs of rule toy_figures)."""
    folder = f"results/toys/{toy}/figures"
    return {"training": f"{folder}/training.png", "attention": f"{folder}/attention.png"}


def all_toy_outputs():
    """Metrics, figures and (where configured) the architecture search of every toy."""
    paths = []
    for toy, entry in trained_toys().items():
        paths += [toy_outputs(toy)["metrics"], *toy_figure_paths(toy).values()]
        if "search" in entry:
            paths.append(f"results/toys/{toy}/search.csv")
    return paths


def toys_summary_inputs(wildcards):
    """What the toys summary reads: every toy's metrics and heads, and searches."""
    inputs = {}
    for toy, entry in trained_toys().items():
        inputs[f"{toy}.metrics"] = toy_outputs(toy)["metrics"]
        inputs[f"{toy}.heads"] = toy_outputs(toy)["heads"]
        if "search" in entry:
            inputs[f"{toy}.search"] = f"results/toys/{toy}/search.csv"
    return inputs


def toys_summary_json():
    """The toys' summary, when the config trains any toys."""
    return ["results/summary/toys.json"] if trained_toys() else []
