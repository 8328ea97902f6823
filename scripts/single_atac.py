"""Snakemake script for rule `single_atac`: downsample, map onto reference peaks, filter cells."""
from workflow_lib.fileutils import get_logger
from workflow_lib.prepare import build_single_atac

i, p = snakemake.input, snakemake.params
build_single_atac(i.counts, i.barcodes, i.bed, i.lifted, i.ref, snakemake.output[0],
                  dataset=snakemake.wildcards.dataset, downsample_frac=p.frac, seed=p.seed,
                  min_features=p.min_features, logger=get_logger(snakemake.log[0]))
