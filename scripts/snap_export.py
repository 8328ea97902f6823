"""Snakemake script for rule `snap_export`: snap files of one set -> downsampled counts h5ad + BED."""
from workflow_lib.fileutils import get_logger
from workflow_lib.features import export_snap_set

p = snakemake.params
export_snap_set(list(snakemake.input), snakemake.output.h5ad, snakemake.output.bed,
                dataset=snakemake.wildcards.dataset, downsample_frac=p.frac, seed=p.seed,
                matrix=p.matrix, bin_size=p.bin_size, min_fragments=p.min_fragments,
                logger=get_logger(snakemake.log[0]))
