"""Snakemake script for rule `processed_authors`: the authors' processed files -> processed contract."""
from workflow_lib.authors import build_authors_processed
from workflow_lib.fileutils import get_logger

p = snakemake.params
build_authors_processed(dict(snakemake.input.items()), dict(snakemake.output.items()), seed=p.seed, fracs=p.fracs,
                        resolution=p.resolution, n_pcs=p.n_pcs, n_neighbors=p.n_neighbors,
                        unseen_rule=p.unseen_rule, logger=get_logger(snakemake.log[0]))
