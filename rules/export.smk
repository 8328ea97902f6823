# Stage "export": a self-contained model directory per trained Polarbear run, for the `polarbear`
# command line (translate / align / info). Include after rules/polarbear.smk (uses PB_DIR, PB_RUNS).
#   export_model   selected grid point -> {R}/models/{variant}/{scenario}/{method}/export/
#                  (model.json + tensors-only .pt files, incl. the ATAC-depth ridge regressor)


rule export_model:
    """Export the selected Polarbear grid point as a portable model directory."""
    input:
        rna=processed("{variant}", "coassay_rna"),
        atac=processed("{variant}", "coassay_atac"),
        selected=f"{PB_DIR}/selected.json",
        models=expand(
            f"{PB_DIR}/grid/{{pbpoint}}/{{f}}",
            pbpoint=polarbear_grid(),
            f=["vae_rna.pt", "vae_atac.pt", "translator_rna_to_atac.pt", "translator_atac_to_rna.pt", "scores.json"],
            allow_missing=True,
        ),
        # single-assay files only for the semi-supervised method (training-data summary of the card)
        single=lambda wc: (
            [processed(wc.variant, "single_rna"), processed(wc.variant, "single_atac")]
            if run_method(wc.method) == "polarbear"
            else []
        ),
    output:
        directory(f"{PB_DIR}/export"),
    params:
        model_dir=lambda wc: f"{R}/models/{wc.variant}/{wc.scenario}/{wc.method}",
        method=lambda wc: run_method(wc.method),
        ridge_alphas=config["polarbear"]["ridge_alphas"],
    wildcard_constraints:
        method=PB_RUN_REGEX,
    log:
        f"{R}/logs/export_model/{{variant}}/{{scenario}}/{{method}}.log",
    benchmark:
        f"{R}/benchmarks/export_model/{{variant}}/{{scenario}}/{{method}}.tsv"
    threads: 1
    resources:
        mem_mb=RES["train"]["mem_mb"],
        runtime=RES["default"]["runtime"],
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/export_model.py"


rule export_all:
    """Model directories of every Polarbear / Polarbear co-assay run of method_runs() (stage target)."""
    input:
        [f"{R}/models/{v}/{s}/{m}/export" for v, s, m in PB_RUNS],
