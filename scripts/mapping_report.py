"""Snakemake script for rule `mapping_report`: fraction of reference peaks hit per set / any / all."""
from workflow_lib.fileutils import get_logger
from workflow_lib.features import build_mapping_report

names = snakemake.params.datasets
build_mapping_report(dict(zip(names, snakemake.input.atac)), dict(zip(names, snakemake.input.lift)),
                     snakemake.input.ref, snakemake.output[0], logger=get_logger(snakemake.log[0]))
