"""Snakemake script for rule `coassay`: pair SNARE-seq RNA and ATAC by barcode, attach cell types."""
from workflow_lib.fileutils import get_logger
from workflow_lib.features import build_coassay

i = snakemake.input
build_coassay(i.rna_counts, i.rna_barcodes, i.rna_genes, i.atac_counts, i.atac_barcodes, i.atac_peaks,
              i.metadata, snakemake.output.rna, snakemake.output.atac, logger=get_logger(snakemake.log[0]))
