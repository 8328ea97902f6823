# Stage "evaluate": per-run evaluation tables (genes/peaks/cells/markers/de) and Table 3.
# Logic: workflow_lib/evaluate.py (metrics.py, de.py, normalize.py).


rule evaluate_reference:
    """Deconvolution size factors (paper: scran over all cells; v1: per cell type) and true
    one-vs-rest cell-type DE on all co-assay cells."""
    input:
        rna=processed("{variant}", "coassay_rna"),
        atac=processed("{variant}", "coassay_atac"),
    output:
        size_factors=f"{R}/eval/{{variant}}/reference/size_factors.tsv",
        genes_de=f"{R}/eval/{{variant}}/reference/genes_de.tsv",
        peaks_de=f"{R}/eval/{{variant}}/reference/peaks_de.tsv",
    log:
        log_path("evaluate_reference", "{variant}"),
    benchmark:
        bench_path("evaluate_reference", "{variant}")
    wildcard_constraints:
        variant="|".join(VARIANTS),
    resources:
        **rule_resources("default"),
    conda:
        "../envs/eval.yaml"
    script:
        "../scripts/evaluate_reference.py"


rule evaluate_run:
    """Metrics of one (variant, scenario, method) run on the scenario's test cells."""
    input:
        unpack(evaluate_run_inputs),
    output:
        genes=f"{R}/eval/{{variant}}/{{scenario}}/{{method}}/genes.tsv",
        peaks=f"{R}/eval/{{variant}}/{{scenario}}/{{method}}/peaks.tsv",
        cells=f"{R}/eval/{{variant}}/{{scenario}}/{{method}}/cells.tsv",
        markers=f"{R}/eval/{{variant}}/{{scenario}}/{{method}}/markers.tsv",
        de=f"{R}/eval/{{variant}}/{{scenario}}/{{method}}/de.tsv",
    params:
        de_fdr=config["evaluate"]["de_fdr"],
        marker_genes=config["marker_genes"],
    log:
        log_path("evaluate_run", "{variant}/{scenario}/{method}"),
    benchmark:
        bench_path("evaluate_run", "{variant}/{scenario}/{method}")
    wildcard_constraints:
        variant="|".join(VARIANTS),
        scenario="|".join(SCENARIOS),
        method=run_constraint(METHODS),
    resources:
        # holds a test set's dense 220k-peak prediction (~1.6 GiB for 2k cells) plus the truth
        **rule_resources("evaluate"),
    conda:
        "../envs/eval.yaml"
    script:
        "../scripts/evaluate_run.py"


rule table3:
    """Table 3: mean (SD) per split/definition/metric/method + Wilcoxon tests vs Polarbear."""
    input:
        [t for s, m in TABLE3_RUNS for t in eval_tables("full", s, m)],
    output:
        tsv=f"{R}/eval/table3.tsv",
        md=f"{R}/eval/table3.md",
    params:
        runs=TABLE3_RUNS,
        dirs=[f"{R}/eval/full/{s}/{m}" for s, m in TABLE3_RUNS],
    log:
        log_path("table3", "table3"),
    benchmark:
        bench_path("table3", "table3")
    resources:
        **rule_resources("default"),
    conda:
        "../envs/eval.yaml"
    script:
        "../scripts/table3.py"
