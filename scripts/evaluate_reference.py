"""Thin entry point of rule evaluate_reference: size factors + true cell-type DE of one variant."""
from workflow_lib.evaluate import run_reference

run_reference(
    snakemake.input.rna, snakemake.input.atac,  # noqa: F821
    snakemake.output.size_factors, snakemake.output.genes_de, snakemake.output.peaks_de,  # noqa: F821
    log_path=snakemake.log[0],  # noqa: F821
)
