"""Rule predict_polarbear: TEST-cell predictions with the selected grid point."""
from workflow_lib.fileutils import get_logger
from workflow_lib.polarbear import predict_polarbear
from workflow_lib.predictions import prediction_paths

sm = snakemake  # noqa: F821
predict_polarbear(
    sm.input.selected, sm.params.model_dir, sm.input.rna, sm.input.atac, sm.wildcards.scenario,
    sm.params.method, sm.params.ridge_alphas, prediction_paths(sm.output), threads=sm.threads,
    logger=get_logger(sm.log[0]),
)
