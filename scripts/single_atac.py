"""Snakemake script for rule `single_atac`: downsample, map onto reference peaks, filter cells."""
from workflow_lib.fileutils import get_logger
from workflow_lib.features import build_single_atac

i, p = snakemake.input, snakemake.params
snap = "h5ad" in i.keys()
build_single_atac(None if snap else i.counts, None if snap else i.barcodes, i.bed, i.lifted, i.ref,
                  snakemake.output[0], dataset=snakemake.wildcards.dataset,
                  downsample_frac=1.0 if snap else p.frac, seed=p.seed, min_features=p.min_features,
                  logger=get_logger(snakemake.log[0]), h5ad=i.h5ad if snap else None)
