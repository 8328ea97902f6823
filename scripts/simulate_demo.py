"""Snakemake script for rule `simulate_demo`: write every raw demo file in the real formats."""
from workflow_lib.fileutils import get_logger, timed
from workflow_lib.simulate import simulate_demo

log = get_logger(snakemake.log[0])
with timed(log, "simulating the demo data set"):
    simulate_demo(snakemake.params.outdir, dict(snakemake.params.demo), dict(snakemake.params.files),
                  dict(snakemake.params.atac_sets))
