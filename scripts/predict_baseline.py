"""Rule predict_baseline: fit a simple baseline (knn or ridge) on train cells and predict test cells."""
from workflow_lib.baselines import run_baseline

sm = snakemake  # noqa: F821
run_baseline(
    sm.params.baseline["method"], sm.input.rna, sm.input.atac, scenario=sm.wildcards.scenario,
    params=sm.params.baseline, outputs=list(sm.output), threads=sm.threads, log_path=sm.log[0],
)
