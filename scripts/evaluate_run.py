"""Thin entry point of rule evaluate_run: evaluation tables of one (variant, scenario, method)."""
from workflow_lib.evaluate import run_evaluation

sm = snakemake  # noqa: F821
run_evaluation(
    [sm.input.atac_to_rna, sm.input.rna_to_atac, sm.input.latent, sm.input.atac_to_rna_rest],
    sm.input.rna, sm.input.atac, sm.input.size_factors, sm.input.genes_de, sm.input.peaks_de,
    outputs={k: sm.output[k] for k in ("genes", "peaks", "cells", "markers", "de")},
    scenario=sm.wildcards.scenario, de_fdr=sm.params.de_fdr, marker_genes=sm.params.marker_genes,
    log_path=sm.log[0],
    authors_de_genes=getattr(sm.input, "authors_de_genes", None),
    authors_de_peaks=getattr(sm.input, "authors_de_peaks", None),
)
