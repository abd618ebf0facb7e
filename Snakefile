# actspace: the geometry of transformer activations and weights.
# This file only includes the rule files and defines the default target; see README.md.
# The methods come from the registry (src/actspace/registry.py): one rule file each.
from snakemake.utils import min_version

from actspace.registry import METHODS

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/corpora.smk"


for method in METHODS:

    include: f"workflow/rules/{method.name}.smk"


include: "workflow/rules/summary.smk"


rule all:
    default_target: True
    input:
        rules.summary_report.output,
        method_targets(),
    localrule: True
