"""Train BABEL at one grid point (rule train_babel)."""
from workflow_lib.babel import train_babel_point

sm = snakemake  # noqa: F821
train_babel_point(
    sm.input.rna, sm.input.atac, scenario=sm.wildcards.scenario, point=sm.wildcards.point,
    n_latent=sm.params.grid["latent"], weight=sm.params.grid["weight"], fit_params=sm.params.fit,
    model_path=sm.output.model, config_path=sm.output.config, seed=sm.params.seed, threads=sm.threads,
    log_path=sm.log[0], architecture=sm.params.architecture, model_params=sm.params.model,
)
