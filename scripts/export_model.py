"""Rule export_model: selected Polarbear grid point -> portable model directory (polarbear CLI)."""
from workflow_lib.fileutils import get_logger
from workflow_lib.export import export_polarbear

sm = snakemake  # noqa: F821
single = list(sm.input.single) or [None, None]
export_polarbear(
    sm.params.model_dir, sm.input.rna, sm.input.atac, sm.wildcards.scenario, sm.output[0],
    ridge_alphas=sm.params.ridge_alphas, method=sm.params.method, variant=sm.wildcards.variant,
    single_rna=single[0], single_atac=single[1], logger=get_logger(sm.log[0]),
)
