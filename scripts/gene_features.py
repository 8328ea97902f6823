"""Snakemake script for rule `gene_features`: reference genes (protein-coding, autosomal)."""
from workflow_lib.fileutils import get_logger
from workflow_lib.features import build_gene_features

build_gene_features(snakemake.input.rna, snakemake.input.gtf, snakemake.output[0],
                    logger=get_logger(snakemake.log[0]))
