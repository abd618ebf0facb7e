# actspace: the geometry of transformer activations and weights.
# This file only includes the rule files and defines the default target; see README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/corpora.smk"
include: "workflow/rules/capture.smk"
include: "workflow/rules/text_subspaces.smk"
include: "workflow/rules/weights_svd.smk"
include: "workflow/rules/toys.smk"
include: "workflow/rules/summary.smk"


rule all:
    default_target: True
    input:
        "results/summary.md",
        all_capture_stores(),
        all_text_subspace_figures(),
        all_weights_svd_figures(),
        all_toy_outputs(),
