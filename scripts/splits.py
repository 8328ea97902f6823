"""Snakemake script for rule `splits`: random and unseen (Leiden) splits of the co-assay cells."""
from workflow_lib.fileutils import get_logger
from workflow_lib.cells import build_splits

p = snakemake.params
build_splits(snakemake.input.rna, snakemake.input.genes, snakemake.output[0], seed=p.seed,
             fracs=p.fracs, resolution=p.resolution, n_pcs=p.n_pcs, n_neighbors=p.n_neighbors,
             unseen_rule=p.unseen_rule,
             logger=get_logger(snakemake.log[0]))
