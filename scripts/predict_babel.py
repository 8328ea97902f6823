"""Predict the test cells with the selected BABEL models (rule predict_babel)."""
from workflow_lib.babel import predict_babel

sm = snakemake  # noqa: F821
predict_babel(
    sm.input.rna, sm.input.atac, scenario=sm.wildcards.scenario, selected_path=sm.input.selected,
    grid_dir=sm.params.grid_dir, outputs=list(sm.output), threads=sm.threads, log_path=sm.log[0],
)
