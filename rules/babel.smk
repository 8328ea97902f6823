# Stage "babel": the BABEL baseline (grid search, per-task selection, prediction) and the two
# simple baselines (knn, ridge). BABEL and the baselines are trained on the co-assay TRAIN cells
# of a scenario only; BABEL uses the VAL cells for early stopping and model selection.

wildcard_constraints:
    point=point_regex("latent", "weight"),
    seedtag=SEED_TAG_REGEX,


rule train_babel:
    """Train BABEL at one grid point (latent dimension x ATAC loss weight); babel.architecture
    picks the authors' model (default) or the compact one."""
    input:
        rna=processed("{variant}", "coassay_rna"),
        atac=processed("{variant}", "coassay_atac"),
    output:
        model=f"{BABEL_DIR}/grid/{{point}}/model.pt",
        config=f"{BABEL_DIR}/grid/{{point}}/config.json",
    params:
        fit=babel_fit_params(),
        architecture=BABEL_SETTINGS["architecture"],
        model=BABEL_SETTINGS["model"],
        grid=babel_point_params,
        seed=babel_seed,
    log:
        log_path("train_babel", "{variant}/{scenario}/{point}{seedtag}"),
    benchmark:
        bench_path("train_babel", "{variant}/{scenario}/{point}{seedtag}")
    resources:
        **rule_resources("train"),
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/train_babel.py"


rule select_babel:
    """Pick the best BABEL grid point per task on the validation cells."""
    input:
        configs=expand(f"{BABEL_DIR}/grid/{{point}}/config.json", point=babel_grid(), allow_missing=True),
    output:
        f"{BABEL_DIR}/selected.json",
    log:
        log_path("select_babel", "{variant}/{scenario}{seedtag}"),
    benchmark:
        bench_path("select_babel", "{variant}/{scenario}{seedtag}")
    resources:
        **rule_resources("default"),
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/select_babel.py"


rule predict_babel:
    """Predict the TEST cells with the selected BABEL grid point of each task."""
    input:
        rna=processed("{variant}", "coassay_rna"),
        atac=processed("{variant}", "coassay_atac"),
        selected=f"{BABEL_DIR}/selected.json",
        models=expand(f"{BABEL_DIR}/grid/{{point}}/model.pt", point=babel_grid(), allow_missing=True),
    output:
        predictions("{variant}", "{scenario}", "babel{seedtag}"),
    params:
        grid_dir=babel_grid_dir,
    log:
        log_path("predict_babel", "{variant}/{scenario}{seedtag}"),
    benchmark:
        bench_path("predict_babel", "{variant}/{scenario}{seedtag}")
    resources:
        **rule_resources("train", runtime_of="default"),
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/predict_babel.py"


rule predict_baseline:
    """knn (Seurat-style kNN translation) or ridge (ridge regression between PCA/LSI components):
    fit on the TRAIN cells, predict the TEST cells."""
    input:
        rna=processed("{variant}", "coassay_rna"),
        atac=processed("{variant}", "coassay_atac"),
    output:
        predictions("{variant}", "{scenario}", "{baseline}"),
    params:
        baseline=baseline_params,
    wildcard_constraints:
        baseline="|".join(BASELINES),
    log:
        log_path("predict_baseline", "{baseline}/{variant}/{scenario}"),
    benchmark:
        bench_path("predict_baseline", "{baseline}/{variant}/{scenario}")
    resources:
        **rule_resources("train", runtime_of="default"),
    conda:
        "../envs/baselines.yaml"
    script:
        "../scripts/predict_baseline.py"
