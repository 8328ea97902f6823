# Stage "babel": the BABEL baseline (grid search, per-task selection, prediction) and the two
# simple baselines (knn, ridge). BABEL and the baselines are trained on the co-assay TRAIN cells
# of a scenario only; BABEL uses the VAL cells for early stopping and model selection.

# {seedtag} is empty for the first seed of `seeds` (today's paths) and ~s<seed> for the others
# (run babel~s1, workflow_lib/seeds.py)
BABEL_DIR = f"{R}/models/{{variant}}/{{scenario}}/babel{{seedtag}}"
# Torch intra-op threads: the demo networks are tiny, and several threads on a small/busy machine
# are much slower than one (measured 20x on a 2-core runner); real-scale training uses more.
BABEL_THREADS = 1 if DEMO else 8
BASELINE_THREADS = 1 if DEMO else 4


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
        grid=lambda wc: parse_point(wc.point),
        seed=lambda wc: run_seed(f"babel{wc.seedtag}"),
    log:
        f"{R}/logs/train_babel/{{variant}}/{{scenario}}/{{point}}{{seedtag}}.log",
    benchmark:
        f"{R}/benchmarks/train_babel/{{variant}}/{{scenario}}/{{point}}{{seedtag}}.tsv"
    threads: BABEL_THREADS
    resources:
        mem_mb=RES["train"]["mem_mb"],
        runtime=RES["train"]["runtime"],
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/babel_train.py"


rule select_babel:
    """Pick the best BABEL grid point per task on the validation cells."""
    input:
        configs=expand(f"{BABEL_DIR}/grid/{{point}}/config.json", point=babel_grid(), allow_missing=True),
    output:
        f"{BABEL_DIR}/selected.json",
    log:
        f"{R}/logs/select_babel/{{variant}}/{{scenario}}{{seedtag}}.log",
    benchmark:
        f"{R}/benchmarks/select_babel/{{variant}}/{{scenario}}{{seedtag}}.tsv"
    threads: 1
    resources:
        mem_mb=RES["default"]["mem_mb"],
        runtime=RES["default"]["runtime"],
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/babel_select.py"


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
        grid_dir=lambda wc: f"{R}/models/{wc.variant}/{wc.scenario}/babel{wc.seedtag}/grid",
    log:
        f"{R}/logs/predict_babel/{{variant}}/{{scenario}}{{seedtag}}.log",
    benchmark:
        f"{R}/benchmarks/predict_babel/{{variant}}/{{scenario}}{{seedtag}}.tsv"
    threads: BABEL_THREADS
    resources:
        mem_mb=RES["train"]["mem_mb"],
        runtime=RES["default"]["runtime"],
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/babel_predict.py"


# knn/ridge settings + the RidgeCV alphas of the ATAC depth regressor (paper Section 2.4)
BASELINE_PARAMS = {
    **config["baselines"],
    "seed": SEEDS[0],   # deterministic methods: one run, with the first seed
    "depth_alphas": config["polarbear"]["ridge_alphas"],
}


rule predict_knn:
    """Seurat-style kNN translation baseline (fit on TRAIN cells, predict TEST cells)."""
    input:
        rna=processed("{variant}", "coassay_rna"),
        atac=processed("{variant}", "coassay_atac"),
    output:
        predictions("{variant}", "{scenario}", "knn"),
    params:
        baseline={**BASELINE_PARAMS, "method": "knn"},
    log:
        f"{R}/logs/predict_knn/{{variant}}/{{scenario}}.log",
    benchmark:
        f"{R}/benchmarks/predict_knn/{{variant}}/{{scenario}}.tsv"
    threads: BASELINE_THREADS
    resources:
        mem_mb=RES["train"]["mem_mb"],
        runtime=RES["default"]["runtime"],
    conda:
        "../envs/baselines.yaml"
    script:
        "../scripts/baseline_predict.py"


rule predict_ridge:
    """Ridge regression between PCA/LSI components baseline (fit on TRAIN, predict TEST)."""
    input:
        rna=processed("{variant}", "coassay_rna"),
        atac=processed("{variant}", "coassay_atac"),
    output:
        predictions("{variant}", "{scenario}", "ridge"),
    params:
        baseline={**BASELINE_PARAMS, "method": "ridge"},
    log:
        f"{R}/logs/predict_ridge/{{variant}}/{{scenario}}.log",
    benchmark:
        f"{R}/benchmarks/predict_ridge/{{variant}}/{{scenario}}.tsv"
    threads: BASELINE_THREADS
    resources:
        mem_mb=RES["train"]["mem_mb"],
        runtime=RES["default"]["runtime"],
    conda:
        "../envs/baselines.yaml"
    script:
        "../scripts/baseline_predict.py"
