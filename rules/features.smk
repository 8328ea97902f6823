# Stage "features": co-assay pairing, reference genes (GENCODE protein-coding autosomal) and
# peaks (SNARE-seq frequency filter), liftover + overlap mapping of single-assay ATAC sets,
# symbol mapping of single-assay RNA. Outputs: {R}/features/*, {R}/interim/*.h5ad.

rule coassay:
    input:
        rna_counts=raw("snare_rna_counts"),
        rna_barcodes=raw("snare_rna_barcodes"),
        rna_genes=raw("snare_rna_genes"),
        atac_counts=raw("snare_atac_counts"),
        atac_barcodes=raw("snare_atac_barcodes"),
        atac_peaks=raw("snare_atac_peaks"),
        metadata=raw("snare_metadata"),
    output:
        rna=f"{R}/interim/coassay_rna.h5ad",
        atac=f"{R}/interim/coassay_atac.h5ad",
    log:
        log_path("coassay", "coassay"),
    benchmark:
        bench_path("coassay", "coassay")
    resources:
        **rule_resources("features"),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/coassay.py"


rule gene_features:
    input:
        rna=f"{R}/interim/coassay_rna.h5ad",
        gtf=raw("gencode_gtf"),
    output:
        f"{R}/features/genes.tsv",
    log:
        log_path("gene_features", "gene_features"),
    benchmark:
        bench_path("gene_features", "gene_features")
    resources:
        **rule_resources("default"),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/gene_features.py"


rule peak_features:
    input:
        atac=f"{R}/interim/coassay_atac.h5ad",
    output:
        f"{R}/features/peaks.bed",
    params:
        min_cells=FEAT["peak_min_cells"],
        max_frac=FEAT["peak_max_frac"],
    log:
        log_path("peak_features", "peak_features"),
    benchmark:
        bench_path("peak_features", "peak_features")
    resources:
        **rule_resources("features"),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/peak_features.py"


rule lift_peaks:
    input:
        unpack(lift_peaks_inputs),
    output:
        bed=f"{R}/interim/peaks_mm10/{{dataset}}.bed",
        report=f"{R}/features/liftover/{{dataset}}.json",
    params:
        assembly=atac_set_param("assembly"),
    wildcard_constraints:
        dataset="|".join(SINGLE_ATAC_SETS),
    log:
        log_path("lift_peaks", "{dataset}"),
    benchmark:
        bench_path("lift_peaks", "{dataset}")
    resources:
        **rule_resources("default"),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/lift_peaks.py"


if SNAP_SETS:

    rule snap_export:
        input:
            snap_inputs,
        output:
            h5ad=f"{R}/interim/snap/{{dataset}}.h5ad",
            bed=f"{R}/interim/snap/{{dataset}}.bed",
        params:
            frac=DOWNSAMPLE_FRAC,
            seed=FEAT["downsample_seed"],
            matrix=atac_set_param("snap_matrix", "auto"),
            bin_size=atac_set_param("snap_bin_size", 5000),
            min_fragments=atac_set_param("snap_min_fragments", 0),
        wildcard_constraints:
            dataset="|".join(SNAP_SETS),
        log:
            log_path("snap_export", "{dataset}"),
        benchmark:
            bench_path("snap_export", "{dataset}")
        resources:
            **rule_resources("features"),
        conda:
            "../envs/data.yaml"
        script:
            "../scripts/snap_export.py"


rule single_atac:
    input:
        unpack(single_atac_count_inputs),
        bed=single_atac_bed,
        lifted=f"{R}/interim/peaks_mm10/{{dataset}}.bed",
        ref=f"{R}/features/peaks.bed",
    output:
        f"{R}/interim/single_atac_{{dataset}}.h5ad",
    params:
        frac=DOWNSAMPLE_FRAC,
        seed=FEAT["downsample_seed"],
        min_features=FEAT["min_features_per_cell"],
    wildcard_constraints:
        dataset="|".join(SINGLE_ATAC_SETS),
    log:
        log_path("single_atac", "{dataset}"),
    benchmark:
        bench_path("single_atac", "{dataset}")
    resources:
        **rule_resources("features"),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/single_atac.py"


rule single_rna:
    input:
        loom=raw("zeisel_loom"),
        genes=f"{R}/features/genes.tsv",
    output:
        f"{R}/interim/single_rna_zeisel.h5ad",
    params:
        min_features=FEAT["min_features_per_cell"],
    log:
        log_path("single_rna", "single_rna"),
    benchmark:
        bench_path("single_rna", "single_rna")
    resources:
        **rule_resources("features"),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/single_rna.py"


rule mapping_report:
    input:
        atac=expand(f"{R}/interim/single_atac_{{dataset}}.h5ad", dataset=SINGLE_ATAC_SETS),
        lift=expand(f"{R}/features/liftover/{{dataset}}.json", dataset=SINGLE_ATAC_SETS),
        ref=f"{R}/features/peaks.bed",
    output:
        f"{R}/features/mapping_report.tsv",
    params:
        datasets=SINGLE_ATAC_SETS,
    log:
        log_path("mapping_report", "mapping_report"),
    benchmark:
        bench_path("mapping_report", "mapping_report")
    resources:
        **rule_resources("default"),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/mapping_report.py"
