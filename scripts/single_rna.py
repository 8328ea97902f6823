"""Snakemake script for rule `single_rna`: loom -> reference genes by symbol, filter cells."""
from workflow_lib.fileutils import get_logger
from workflow_lib.features import build_single_rna

build_single_rna(snakemake.input.loom, snakemake.input.genes, snakemake.output[0], dataset="zeisel",
                 min_features=snakemake.params.min_features, logger=get_logger(snakemake.log[0]))
