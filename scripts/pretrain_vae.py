"""Rule pretrain_vae: train one Polarbear beta-VAE (one modality, one grid point)."""
from workflow_lib.fileutils import get_logger
from workflow_lib.polarbear import pretrain_vae

sm = snakemake  # noqa: F821
pretrain_vae(
    sm.wildcards.modality, sm.input.coassay, sm.input.get("single"), sm.wildcards.scenario, sm.params.method,
    sm.wildcards.pbpoint, sm.params.fit, sm.params.seed, sm.output.model, sm.output.config,
    threads=sm.threads, logger=get_logger(sm.log[0]),
)
