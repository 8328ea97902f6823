"""Snakemake script for rule `peak_features`: reference peaks (frequency filter, autosomes, sorted)."""
from workflow_lib.fileutils import get_logger
from workflow_lib.features import build_peak_features

build_peak_features(snakemake.input.atac, snakemake.output[0], snakemake.params.min_cells,
                    snakemake.params.max_frac, logger=get_logger(snakemake.log[0]))
