"""Rule train_translators: the two linear latent translators of one grid point."""
from workflow_lib.fileutils import get_logger
from workflow_lib.polarbear import train_translators

sm = snakemake  # noqa: F821
train_translators(
    sm.input.vae_rna, sm.input.vae_atac, sm.input.rna, sm.input.atac, sm.wildcards.scenario, sm.params.fit,
    sm.params.seed, sm.output.rna_to_atac, sm.output.atac_to_rna, sm.output.scores,
    threads=sm.threads, logger=get_logger(sm.log[0]), ridge_alphas=sm.params.ridge_alphas,
)
