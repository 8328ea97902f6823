"""Snakemake script for rule `check_sources`: probe every source URL (headers only)."""
from workflow_lib.fileutils import get_logger
from workflow_lib.preflight import run_check

p = snakemake.params
run_check(dict(p.entries), snakemake.output.tsv, snakemake.output.summary, p.source, timeout=p.timeout,
          workers=p.workers, logger=get_logger(snakemake.log[0]))
