"""Rule figure: Fig. {fig} (PDF + PNG) from the evaluation tables; logic in workflow_lib.figures."""
from workflow_lib.figures import run_figure

sm = snakemake  # noqa: F821
run_figure(int(sm.wildcards.fig), sm.input, sm.output.pdf, sm.output.png, log_path=sm.log[0],
           comparators=sm.params.comparators, dpi=sm.params.dpi)
