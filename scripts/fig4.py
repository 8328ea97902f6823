"""Figure 4 (PDF + PNG) from the evaluation tables; logic in workflow_lib.plots."""
from workflow_lib.plots import run_figure

run_figure(
    4,
    snakemake.input,
    snakemake.output.pdf,
    snakemake.output.png,
    log_path=snakemake.log[0],
    comparators=snakemake.params.comparators,
    dpi=snakemake.params.dpi,
)
