# Stage "polarbear": Polarbear (semi-supervised) and Polarbear co-assay.
#   pretrain_vae      one beta-VAE per modality and grid point (polarbear: single-assay + co-assay
#                     TRAIN cells; polarbear_coassay: co-assay TRAIN cells; early stopping on VAL)
#   train_translators the two linear latent translators of a grid point (frozen VAEs, co-assay cells)
#   select_polarbear  grid point with the lowest validation translation loss
#   predict_polarbear TEST-cell predictions per the prediction contract
# The grid-point wildcard is `pbpoint` (e.g. latent10_beta0.5) so it never collides with BABEL's.

PB_DIR = f"{R}/models/{{variant}}/{{scenario}}/{{method}}"
PB_METHODS = ["polarbear", "polarbear_coassay"]
PB_RUNS = [r for r in method_runs() if run_method(r[2]) in PB_METHODS]
# {method} of the rules below is a run name (polarbear, polarbear~s1, ...); the scripts get the
# method and the seed as params.
PB_RUN_REGEX = run_constraint(PB_METHODS)


rule pretrain_vae:
    """Train the RNA (ZINB) or ATAC (depth-aware Bernoulli) beta-VAE of one grid point."""
    input:
        # polarbear: co-assay + single-assay cells; polarbear_coassay: co-assay cells only
        unpack(
            lambda wc: {
                "coassay": processed(wc.variant, f"coassay_{wc.modality}"),
                **({"single": processed(wc.variant, f"single_{wc.modality}")} if run_method(wc.method) == "polarbear" else {}),
            }
        ),
    output:
        model=f"{PB_DIR}/grid/{{pbpoint}}/vae_{{modality}}.pt",
        config=f"{PB_DIR}/grid/{{pbpoint}}/vae_{{modality}}.json",
    params:
        fit=vae_fit_params(),
        method=lambda wc: run_method(wc.method),
        seed=lambda wc: run_seed(wc.method),
    wildcard_constraints:
        method=PB_RUN_REGEX,
        modality="rna|atac",
        pbpoint=point_regex("latent", "beta"),
    log:
        f"{R}/logs/pretrain_vae/{{variant}}/{{scenario}}/{{method}}/{{pbpoint}}_{{modality}}.log",
    benchmark:
        f"{R}/benchmarks/pretrain_vae/{{variant}}/{{scenario}}/{{method}}/{{pbpoint}}_{{modality}}.tsv"
    threads: 1 if DEMO else 8
    resources:
        mem_mb=RES["train"]["mem_mb"],
        runtime=RES["train"]["runtime"],
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/polarbear_pretrain_vae.py"


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
        seed=lambda wc: run_seed(wc.method),
    wildcard_constraints:
        method=PB_RUN_REGEX,
        pbpoint=point_regex("latent", "beta"),
    log:
        f"{R}/logs/train_translators/{{variant}}/{{scenario}}/{{method}}/{{pbpoint}}.log",
    benchmark:
        f"{R}/benchmarks/train_translators/{{variant}}/{{scenario}}/{{method}}/{{pbpoint}}.tsv"
    threads: 1 if DEMO else 8
    resources:
        mem_mb=RES["train"]["mem_mb"],
        runtime=RES["train"]["runtime"],
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/polarbear_train_translators.py"


rule select_polarbear:
    """Pick the grid point with the lowest validation translation loss (sum of both directions)."""
    input:
        scores=expand(f"{PB_DIR}/grid/{{pbpoint}}/scores.json", pbpoint=polarbear_grid(), allow_missing=True),
    output:
        f"{PB_DIR}/selected.json",
    params:
        points=polarbear_grid(),
    wildcard_constraints:
        method=PB_RUN_REGEX,
    log:
        f"{R}/logs/select_polarbear/{{variant}}/{{scenario}}/{{method}}.log",
    benchmark:
        f"{R}/benchmarks/select_polarbear/{{variant}}/{{scenario}}/{{method}}.tsv"
    threads: 1
    resources:
        mem_mb=RES["default"]["mem_mb"],
        runtime=RES["default"]["runtime"],
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/polarbear_select.py"


rule predict_polarbear:
    """Translate the scenario's TEST cells with the selected grid point (prediction contract)."""
    input:
        rna=processed("{variant}", "coassay_rna"),
        atac=processed("{variant}", "coassay_atac"),
        selected=f"{PB_DIR}/selected.json",
        models=expand(
            f"{PB_DIR}/grid/{{pbpoint}}/{{f}}",
            pbpoint=polarbear_grid(),
            f=["vae_rna.pt", "vae_atac.pt", "translator_rna_to_atac.pt", "translator_atac_to_rna.pt"],
            allow_missing=True,
        ),
    output:
        predictions("{variant}", "{scenario}", "{method}"),
    params:
        model_dir=lambda wc: f"{R}/models/{wc.variant}/{wc.scenario}/{wc.method}",
        method=lambda wc: run_method(wc.method),
        ridge_alphas=config["polarbear"]["ridge_alphas"],
    wildcard_constraints:
        method=PB_RUN_REGEX,
    log:
        f"{R}/logs/predict_polarbear/{{variant}}/{{scenario}}/{{method}}.log",
    benchmark:
        f"{R}/benchmarks/predict_polarbear/{{variant}}/{{scenario}}/{{method}}.tsv"
    threads: 1 if DEMO else 8
    resources:
        mem_mb=RES["train"]["mem_mb"],
        runtime=RES["default"]["runtime"],
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/polarbear_predict.py"


rule polarbear_all:
    """All Polarbear / Polarbear co-assay predictions of method_runs() (stage target)."""
    input:
        [p for v, s, m in PB_RUNS for p in predictions(v, s, m)],
