"""Render Table 3 (eval/table3.tsv) as an HTML page + paper-layout TSV for the report."""
from workflow_lib.figures import run_table3_report

run_table3_report(snakemake.input[0], snakemake.output.html, snakemake.output.tsv,
                  log_path=snakemake.log[0])
