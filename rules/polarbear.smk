# Stage "polarbear": Polarbear (semi-supervised) and Polarbear co-assay.
#   pretrain_vae      one beta-VAE per modality and grid point (polarbear: single-assay + co-assay
#                     TRAIN cells; polarbear_coassay: co-assay TRAIN cells; early stopping on VAL)
#   train_translators the two linear latent translators of a grid point (frozen VAEs, co-assay cells)
#   select_polarbear  grid point with the lowest validation translation loss
#   predict_polarbear TEST-cell predictions per the prediction contract
# The grid-point wildcard is `pbpoint` (e.g. latent10_beta0.5) so it never collides with BABEL's.

rule pretrain_vae:
    """Train the RNA (ZINB) or ATAC (depth-aware Bernoulli) beta-VAE of one grid point."""
    input:
        unpack(pretrain_vae_inputs),
    output:
        model=f"{PB_DIR}/grid/{{pbpoint}}/vae_{{modality}}.pt",
        config=f"{PB_DIR}/grid/{{pbpoint}}/vae_{{modality}}.json",
    params:
        fit=vae_fit_params(),
        method=pb_method,
        seed=pb_seed,
    wildcard_constraints:
        method=PB_RUN_REGEX,
        modality="rna|atac",
        pbpoint=point_regex("latent", "beta"),
    log:
        log_path("pretrain_vae", "{variant}/{scenario}/{method}/{pbpoint}_{modality}"),
    benchmark:
        bench_path("pretrain_vae", "{variant}/{scenario}/{method}/{pbpoint}_{modality}")
    resources:
        **rule_resources("train"),
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/pretrain_vae.py"


rule train_translators:
    """Train the RNA->ATAC and ATAC->RNA latent translators of one grid point (VAEs frozen)."""
    input:
        rna=processed("{variant}", "coassay_rna"),
        atac=processed("{variant}", "coassay_atac"),
        vae_rna=f"{PB_DIR}/grid/{{pbpoint}}/vae_rna.pt",
        vae_rna_config=f"{PB_DIR}/grid/{{pbpoint}}/vae_rna.json",
        vae_atac=f"{PB_DIR}/grid/{{pbpoint}}/vae_atac.pt",
        vae_atac_config=f"{PB_DIR}/grid/{{pbpoint}}/vae_atac.json",
    output:
        rna_to_atac=f"{PB_DIR}/grid/{{pbpoint}}/translator_rna_to_atac.pt",
        rna_to_atac_config=f"{PB_DIR}/grid/{{pbpoint}}/translator_rna_to_atac.json",
        atac_to_rna=f"{PB_DIR}/grid/{{pbpoint}}/translator_atac_to_rna.pt",
        atac_to_rna_config=f"{PB_DIR}/grid/{{pbpoint}}/translator_atac_to_rna.json",
        scores=f"{PB_DIR}/grid/{{pbpoint}}/scores.json",
    params:
        fit=translator_fit_params(),
        seed=pb_seed,
        ridge_alphas=config["polarbear"]["ridge_alphas"],
    wildcard_constraints:
        method=PB_RUN_REGEX,
        pbpoint=point_regex("latent", "beta"),
    log:
        log_path("train_translators", "{variant}/{scenario}/{method}/{pbpoint}"),
    benchmark:
        bench_path("train_translators", "{variant}/{scenario}/{method}/{pbpoint}")
    resources:
        **rule_resources("train"),
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/train_translators.py"


rule select_polarbear:
    """Pick a grid point per task on the validation cells (config polarbear.selection: each task's statistic)."""
    input:
        scores=pb_grid_files(["scores.json"]),
    output:
        f"{PB_DIR}/selected.json",
    params:
        points=polarbear_grid(),
        selection=config["polarbear"]["selection"],
    wildcard_constraints:
        method=PB_RUN_REGEX,
    log:
        log_path("select_polarbear", "{variant}/{scenario}/{method}"),
    benchmark:
        bench_path("select_polarbear", "{variant}/{scenario}/{method}")
    resources:
        **rule_resources("default"),
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/select_polarbear.py"


rule predict_polarbear:
    """Translate the scenario's TEST cells, each task with its selected grid point (prediction contract)."""
    input:
        rna=processed("{variant}", "coassay_rna"),
        atac=processed("{variant}", "coassay_atac"),
        selected=f"{PB_DIR}/selected.json",
        models=pb_grid_files(PB_MODULE_FILES),
    output:
        predictions("{variant}", "{scenario}", "{method}"),
    params:
        **PB_MODEL_PARAMS,
    wildcard_constraints:
        method=PB_RUN_REGEX,
    log:
        log_path("predict_polarbear", "{variant}/{scenario}/{method}"),
    benchmark:
        bench_path("predict_polarbear", "{variant}/{scenario}/{method}")
    resources:
        **rule_resources("train", runtime_of="default"),
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/predict_polarbear.py"


rule polarbear_all:
    """All Polarbear / Polarbear co-assay predictions of method_runs() (stage target)."""
    input:
        [p for v, s, m in PB_RUNS for p in predictions(v, s, m)],
