# Stage "export": a self-contained model directory per trained Polarbear run, for the `polarbear`
# command line (translate / align / info).
#   export_model   selected grid point -> {R}/models/{variant}/{scenario}/{method}/export/
#                  (model.json + tensors-only .pt files, incl. the ATAC-depth ridge regressor)


rule export_model:
    """Export the selected Polarbear grid point as a portable model directory."""
    input:
        rna=processed("{variant}", "coassay_rna"),
        atac=processed("{variant}", "coassay_atac"),
        selected=f"{PB_DIR}/selected.json",
        models=pb_grid_files(PB_MODULE_FILES + ["scores.json"]),
        single=export_single_inputs,
    output:
        directory(f"{PB_DIR}/export"),
    params:
        **PB_MODEL_PARAMS,
    wildcard_constraints:
        method=PB_RUN_REGEX,
    log:
        log_path("export_model", "{variant}/{scenario}/{method}"),
    benchmark:
        bench_path("export_model", "{variant}/{scenario}/{method}")
    resources:
        **rule_resources("train", runtime_of="default"),
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/export_model.py"


rule export_all:
    """Model directories of every Polarbear / Polarbear co-assay run of method_runs() (stage target)."""
    input:
        [f"{R}/models/{v}/{s}/{m}/export" for v, s, m in PB_RUNS],
