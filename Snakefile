# polarbear-workflow: reproduce Polarbear (Zhang, Meng-Papaxanthos, Vert, Noble) end to end.
#   snakemake --cores 2                          demo data (simulated in the real file formats)
#   snakemake --cores N --config source=public   real public data (downloads ~60 GB)
#   snakemake --cores N --config source=authors  the Polarbear authors' processed matrices
#   snakemake --cores 1 check_sources --config source=public|authors   which links answer (no download)
from snakemake.utils import min_version, validate

from workflow_lib.settings import source_config

min_version("9.0")


configfile: "config.yaml"


validate(config, "schemas/config.schema.yaml")
# source: demo -- the demo: block is deep-merged over the settings (one overlay mechanism); the
# merged configuration is validated again, so a typo inside the overlay is refused as well
config.update(source_config(config))
validate(config, "schemas/config.schema.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/download.smk"
include: "rules/features.smk"
include: "rules/cells.smk"
include: "rules/polarbear.smk"
include: "rules/export.smk"
include: "rules/babel.smk"
include: "rules/evaluate.smk"
include: "rules/figures.smk"


rule all:
    input:
        FIGURES,
        f"{R}/eval/table3.tsv",
        REPORT_TABLES,
    default_target: True
