"""Snakemake script for rule `processed_variant`: exp / var feature subsets of the full files."""
from workflow_lib.fileutils import get_logger
from workflow_lib.cells import build_variant

kinds = ("coassay_rna", "coassay_atac", "single_rna", "single_atac")
build_variant({k: snakemake.input[k] for k in kinds}, {k: snakemake.output[k] for k in kinds},
              snakemake.wildcards.variant, snakemake.params.exp_min_frac, snakemake.params.var_top_frac,
              logger=get_logger(snakemake.log[0]))
