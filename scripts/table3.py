"""Thin entry point of rule table3: Table 3 (TSV + Markdown) from the full-variant evaluations."""
from workflow_lib.evaluate import run_table3

sm = snakemake  # noqa: F821
run_table3(dict(zip(sm.params.runs, sm.params.dirs)), sm.output.tsv, sm.output.md, log_path=sm.log[0])
