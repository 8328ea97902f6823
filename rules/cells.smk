# Stage "cells": splits of the co-assay cells and the processed AnnData files of every variant
# ({R}/processed/{variant}/{coassay_rna,coassay_atac,single_rna,single_atac}.h5ad).
# source authors: rule processed_authors builds the full variant from the authors' files instead
# of splits + processed_full (no features stage); exp/var follow from it as on the raw path.
if AUTHORS:

    rule processed_authors:
        """source: authors -- the authors' processed matrices -> the full variant of the processed
        contract, the splits (random, unseen and babel) and the authors' DE sets."""
        input:
            **{name: raw(key) for name, key in AUTHORS_INPUTS.items()},
        output:
            **{k: processed("full", k) for k in MODALITY_KINDS},
            splits=f"{R}/splits/splits.tsv",
            **AUTHORS_DE_TABLES,
        params:
            **SPLIT_PARAMS,
        log:
            log_path("processed_authors", "processed_authors"),
        benchmark:
            bench_path("processed_authors", "processed_authors")
        resources:
            **rule_resources("features"),
        conda:
            "../envs/data.yaml"
        script:
            "../scripts/processed_authors.py"

else:

    rule splits:
        input:
            rna=f"{R}/interim/coassay_rna.h5ad",
            genes=f"{R}/features/genes.tsv",
        output:
            f"{R}/splits/splits.tsv",
        params:
            **SPLIT_PARAMS,
        log:
            log_path("splits", "splits"),
        benchmark:
            bench_path("splits", "splits")
        resources:
            **rule_resources("default"),
        conda:
            "../envs/data.yaml"
        script:
            "../scripts/splits.py"


    rule processed_full:
        input:
            coassay_rna=f"{R}/interim/coassay_rna.h5ad",
            coassay_atac=f"{R}/interim/coassay_atac.h5ad",
            single_rna=f"{R}/interim/single_rna_zeisel.h5ad",
            single_atac=expand(f"{R}/interim/single_atac_{{dataset}}.h5ad", dataset=SINGLE_ATAC_SETS),
            genes=f"{R}/features/genes.tsv",
            peaks=f"{R}/features/peaks.bed",
            splits=f"{R}/splits/splits.tsv",
            report=f"{R}/features/mapping_report.tsv",
        output:
            **{k: processed("full", k) for k in MODALITY_KINDS},
        params:
            datasets=SINGLE_ATAC_SETS,
        log:
            log_path("processed_full", "processed_full"),
        benchmark:
            bench_path("processed_full", "processed_full")
        resources:
            **rule_resources("features"),
        conda:
            "../envs/data.yaml"
        script:
            "../scripts/processed_full.py"


rule processed_variant:
    input:
        **{k: processed("full", k) for k in MODALITY_KINDS},
    output:
        **{k: processed("{variant}", k) for k in MODALITY_KINDS},
    params:
        exp_min_frac=FEAT["exp_min_frac"],
        var_top_frac=FEAT["var_top_frac"],
    wildcard_constraints:
        variant="exp|var",
    log:
        log_path("processed_variant", "{variant}"),
    benchmark:
        bench_path("processed_variant", "{variant}")
    resources:
        **rule_resources("features"),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/processed_variant.py"


rule all_processed:
    input:
        [processed(v, k) for v in VARIANTS for k in MODALITY_KINDS],
        f"{R}/splits/splits.tsv",
        [] if AUTHORS else f"{R}/features/mapping_report.tsv",
