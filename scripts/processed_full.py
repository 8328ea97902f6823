"""Snakemake script for rule `processed_full`: the four processed files of the full variant."""
from workflow_lib.fileutils import get_logger
from workflow_lib.cells import build_processed_full

i, o = snakemake.input, snakemake.output
kinds = ("coassay_rna", "coassay_atac", "single_rna", "single_atac")
build_processed_full(i.coassay_rna, i.coassay_atac, i.single_rna,
                     dict(zip(snakemake.params.datasets, i.single_atac)), i.genes, i.peaks, i.splits,
                     {k: o[k] for k in kinds}, logger=get_logger(snakemake.log[0]))
