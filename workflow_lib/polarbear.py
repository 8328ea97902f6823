"""Polarbear stage functions of rules/polarbear.smk (one function per rule, called by its scripts).

Variants
--------
* ``polarbear``: each VAE is trained on the single-assay cells of its modality plus the co-assay
  TRAIN cells of the scenario; ``polarbear_coassay``: co-assay TRAIN cells only. In both, the VAE
  validation loss (early stopping) is computed on the co-assay VAL cells.
* Translators are trained on co-assay TRAIN cells (early stopping on co-assay VAL cells).

Model selection
---------------
Per task, on the co-assay VAL cells, as the paper selects BABEL ("each task's performance on the
validation set") and with the validation statistics the authors' ``run_polarbear.py`` reports for a
trained model (``selection: task_metric``, default): ``atac_to_rna`` = highest validation gene-wise
correlation of the predicted RNA (``eval_rna_correlation``: mean over genes of Pearson(log1p(x /
library size), log1p(predicted frequency))), ``rna_to_atac`` = highest validation peak-wise AUROC of
the depth-rescaled ATAC prediction (``eval_atac_AUROC_AUPR``; the depth regressor fitted on the
training cells as for the test predictions), ``latent`` = lowest validation FOSCTTM (encoder means;
mean of the RNA query in the ATAC latent and the ATAC query in the RNA latent, Table 3's two rows).
``selection: nll`` (ours before 2026-12-03) picks both translation tasks by the lowest validation
NLL of the translated profile instead. ``point`` in selected.json, the single model a model
directory exports, is the lowest sum of the two translation NLLs (they do not depend on beta, so
they compare grid points fairly).

Unnormalised ATAC predictions
-----------------------------
The ATAC depth factor d (open peaks / ATAC VAE reference mean) of a test cell is unknown when
translating from RNA; ``log d`` is predicted by ridge regression (sklearn RidgeCV, alphas from
config, efficient leave-one-out CV within the co-assay training cells) from standardised
[log RNA library size, RNA latent mean mu_x]. X of rna_to_atac.h5ad is the ATAC VAE's depth model
at d_hat: ``clip(p_norm * d_hat)`` (default, the authors') or ``1 - (1 - p_norm) ** d_hat``.
(The authors regress the depth with RidgeCV on the raw RNA counts of the training cells.)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from .data import SparseCellLoader, batch_onehot
from .sparse import as_csr, binarize, row_sums
from .fileutils import InputFormatError, timed, write_json
from .grid import best_point, parse_point, select_per_task
from .metrics import (TASK_STATISTICS, TASK_STATISTICS_HIGHER_IS_BETTER, TRANSLATION_TASK_STATISTIC, foscttm,
                      translation_task_statistics)
from .models.chromsplit import chrom_block_sizes
from .models.polarbear import INFER_BATCH, PolarbearModel, latent_posteriors, load_checked_vae
from .models.translator import TRANSLATOR_DISPERSIONS, LatentTranslator, TranslationModel, translation_loss
from .models.vae import ATACVAE, RNAVAE, WEIGHT_INITS, check_choice, features_digest, save_module
from .predictions import CoassayData, build_prediction_adatas, load_coassay, rest_rows, write_predictions
from .settings import DEFAULTS
from .train import FitConfig, fit, fit_summary, get_device, kl_weight, set_seed

METHODS = ("polarbear", "polarbear_coassay")
TRANSLATOR_INPUTS = ("sample", "mean")
# selection score of each prediction task (validation cells; module docstring), per selection rule,
# and of the single point a model directory exports
SELECTIONS = {
    "task_metric": {**TRANSLATION_TASK_STATISTIC, "latent": "foscttm"},
    "nll": {"atac_to_rna": "atac_to_rna", "rna_to_atac": "rna_to_atac", "latent": "foscttm"},
}
TASK_SCORE = SELECTIONS[DEFAULTS["selection"]]
HIGHER_IS_BETTER = TASK_STATISTICS_HIGHER_IS_BETTER
OVERALL_SCORE = "total"
CRITERIA = {
    "rna_cor": "max val gene-wise correlation of the RNA predicted from ATAC (authors' eval_rna_correlation)",
    "atac_auroc": "max val peak-wise AUROC of the ATAC predicted from RNA (authors' eval_atac_AUROC_AUPR)",
    "atac_to_rna": "min val NLL of the RNA profile translated from ATAC",
    "rna_to_atac": "min val NLL of the ATAC profile translated from RNA",
    "total": "min val translation NLL, rna_to_atac + atac_to_rna",
    "foscttm": "min val FOSCTTM, mean of the RNA query (ATAC latent) and the ATAC query (RNA latent)",
}


def _log(logger):
    return logger or logging.getLogger("polarbear")


def _read(path, what: str) -> ad.AnnData:
    path = Path(path)
    if not path.is_file():
        raise InputFormatError(path, f"missing {what} file")
    a = ad.read_h5ad(path)
    if "batch" not in a.obs:
        raise InputFormatError(path, "obs has no 'batch' column")
    a.X = as_csr(a.X)
    return a


def _split(co: ad.AnnData, scenario: str, path) -> pd.Series:
    col = f"split_{scenario}"
    if col not in co.obs:
        raise InputFormatError(path, f"obs has no {col!r} column")
    return co.obs[col].astype(str)


def vae_loss_fn(beta: float, warmup_epochs: int, start_epochs: int = 0):
    """loss_fn for fit: mean(NLL + w * KL); w warms up linearly in training, full beta for validation."""
    def loss(model, batch, epoch):
        w = kl_weight(beta, epoch if model.training else None, warmup_epochs, start_epochs)
        nll, kl = model.loss_terms(batch["x"], batch["b"], batch["size"])
        return (nll + w * kl).mean()
    return loss


def vae_recon_loss(model, batch, epoch=None):
    """Validation loss of the authors' early stopping: mean reconstruction NLL only (no KL)."""
    nll, _ = model.loss_terms(batch["x"], batch["b"], batch["size"])
    return nll.mean()


VAE_EARLY_STOPPING = ("reconstruction", "elbo")
MODALITY_KEYS = ("rna", "atac")


def modality_fit_params(fit_params: dict, modality: str) -> dict:
    """VAE settings of one modality: the shared keys of ``polarbear.vae`` updated by its ``rna:`` /
    ``atac:`` block. The authors' learning rate, Adam eps and KL warm-up differ per VAE; the early
    stopping settings (``patience``, ``max_epochs``, ``min_steps``) are shared and a modality block
    may override them (e.g. the demo's ATAC VAE stops after 10 epochs without improvement, its RNA
    VAE after the authors' 46): the modality's value wins."""
    out = {k: v for k, v in fit_params.items() if k not in MODALITY_KEYS}
    own = fit_params.get(modality) or {}
    out.update(own)
    return out


def _training_matrix(modality, coassay_path, single_path, scenario, method):
    """Stacked CSR of co-assay (+ single-assay) cells, batch one-hot, train and val row ids."""
    co = _read(coassay_path, f"co-assay {modality}")
    split = _split(co, scenario, coassay_path).to_numpy()
    X, batch = co.X, co.obs["batch"]
    train = np.flatnonzero(split == "train")
    if method == "polarbear":
        if single_path is None:
            raise ValueError("method polarbear needs the single-assay file")
        single = _read(single_path, f"single-assay {modality}")
        if not single.var_names.equals(co.var_names):
            raise InputFormatError(single_path, "single-assay features differ from the co-assay features")
        cats = list(co.obs["batch"].astype("category").cat.categories)
        extra = [c for c in single.obs["batch"].astype(str).unique() if c not in cats]
        if extra:
            raise InputFormatError(single_path, f"batch labels {extra} not in the co-assay batch categories {cats}")
        X = sp.vstack([co.X, single.X], format="csr")
        batch = pd.Categorical(np.r_[co.obs["batch"].astype(str), single.obs["batch"].astype(str)], categories=cats)
        train = np.r_[train, co.n_obs + np.arange(single.n_obs)]
    elif method != "polarbear_coassay":
        raise ValueError(f"unknown method {method!r}")
    val = np.flatnonzero(split == "val")
    if train.size == 0 or val.size == 0:
        raise InputFormatError(coassay_path, f"scenario {scenario!r} has no train or no val cells")
    if modality == "atac":
        X = binarize(X)
    return co, X, batch_onehot(pd.Series(batch)), train, val


def median_library_size(X, rows) -> float:
    """Median total count of ``rows`` of the cells x genes CSR ``X`` (at least 1): the library size
    ``rna_input: log1p_norm`` scales every cell to."""
    return float(max(np.median(row_sums(X[rows])), 1.0))


def _init_output_bias(model, X, rows, size):
    """Start the decoder output at the mean (depth-normalised) profile of the training cells.

    A departure from the authors' code (zero biases), kept because it only changes the starting
    point: ``init_output_bias: false`` turns it off.
    """
    sub = X[rows]
    with torch.no_grad():
        if isinstance(model, RNAVAE):
            freq = np.asarray(sub.sum(axis=0)).ravel() + 1.0
            model.dec_scale.bias.copy_(torch.from_numpy(np.log(freq / freq.sum()).astype(np.float32)))
        else:
            p = (np.asarray(sub.sum(axis=0)).ravel() + 0.5) / (len(rows) + 1.0)
            if model.depth_model == "linear":  # p = p_norm * d: start p_norm at p / mean(d)
                p = p / float(np.mean(size[rows]))
            p = np.clip(p, 1e-4, 1 - 1e-4)
            model.dec_out.bias.copy_(torch.from_numpy(np.log(p / (1 - p)).astype(np.float32)))


def _fit_defaults(stage: str) -> dict:
    """The loop settings a stage's ``fit_params`` may leave out, from :data:`DEFAULTS`."""
    return {k: DEFAULTS[stage][k] for k in ("validation", "shuffle", "val_average")}


def pretrain_vae(modality: str, coassay_path, single_path, scenario: str, method: str, point: str,
                 fit_params: dict, seed: int, out_pt, out_json=None, threads: int = 1, logger=None) -> dict:
    """Train the RNA or ATAC beta-VAE of one grid point; write state_dict (.pt) + JSON config."""
    log = _log(logger)
    torch.set_num_threads(max(1, int(threads)))
    hp = parse_point(point)
    device = get_device()
    with timed(log, f"load {modality} data ({method}, {scenario})"):
        co, X, onehot, train, val = _training_matrix(modality, coassay_path, single_path, scenario, method)
    log.info("%s: %d features, %d train cells, %d val cells, device %s", modality, X.shape[1], train.size,
             val.size, device)
    set_seed(seed)
    meta = dict(batch_categories=list(co.obs["batch"].astype("category").cat.categories),
                features_sha1=features_digest(co.var_names), point=point, method=method, scenario=scenario,
                beta=hp["beta"])
    fit_params = modality_fit_params(fit_params, modality)
    dropout = float(fit_params.get("dropout", 0.1))
    activation = str(fit_params.get("activation", "leaky_relu"))
    if modality == "rna":
        rna_input = str(fit_params.get("rna_input", DEFAULTS["vae"]["rna_input"]))
        extra = {"norm_target": median_library_size(X, train)} if rna_input == "log1p_norm" else {}
        model = RNAVAE(X.shape[1], onehot.shape[1], hp["latent"], dropout=dropout, activation=activation,
                       input_transform=rna_input, decoder_dropout=float(fit_params.get("rna_decoder_dropout", 0.0)),
                       dispersion_bias=bool(fit_params.get("dispersion_bias", DEFAULTS["vae"]["dispersion_bias"])),
                       **extra, **meta)
    elif modality == "atac":
        chroms = chrom_block_sizes(co.var["chrom"].astype(str))
        depth_model = str(fit_params.get("atac_depth", "linear"))
        ref = fit_params.get("atac_depth_ref", "mean" if depth_model == "complement" else 1000)
        depth_ref = float(np.mean(np.diff(X.indptr)[train])) if ref == "mean" else float(ref)
        model = ATACVAE(X.shape[1], onehot.shape[1], hp["latent"], chroms, dropout=dropout,
                        hidden_rule=str(fit_params.get("atac_hidden", "per_chromosome")),
                        input_transform=str(fit_params.get("atac_input", "binary")), depth_model=depth_model,
                        activation=activation, depth_ref=depth_ref, **meta)
    else:
        raise ValueError(f"unknown modality {modality!r}")
    init = check_choice("polarbear.vae.init", str(fit_params.get("init", DEFAULTS["vae"]["init"])), WEIGHT_INITS)
    if init == "glorot":
        model.reset_parameters("glorot")
    size = model.size_covariate(X)
    if modality == "atac" and model.input_transform == "idf":
        model.set_idf(X, train)
    if fit_params.get("init_output_bias", True):
        _init_output_bias(model, X, train, size)
    model.to(device)
    cfg = FitConfig.from_params(_fit_defaults("vae") | dict(fit_params), seed=seed)
    cov = {"b": onehot, "size": size}
    tl = SparseCellLoader(X, train, cfg.batch_size, True, seed, cov, device)
    vl = SparseCellLoader(X, val, cfg.val_batch_size(INFER_BATCH), False, seed, cov, device)
    ckpt = Path(out_pt).with_suffix(".ckpt")
    fp = dict(model=model.config(), n_rows=X.shape[0], nnz=int(X.nnz), n_train=int(train.size),
              n_val=int(val.size), early_stopping=str(fit_params.get("early_stopping", "reconstruction")), init=init)
    es = check_choice("early_stopping", fp["early_stopping"], VAE_EARLY_STOPPING)
    log.info("%s VAE: %s; %s weight init; KL weight 0 for %d epochs, then warm-up to beta=%g over %d epochs; early stopping "
             "on validation %s in %s mode (patience %d, at least %d steps), Adam lr %g eps %g, batch %d, <= %d epochs, "
             "training cells shuffled %s",
             modality, {k: v for k, v in model.config().items() if k not in meta and k != "chrom_sizes"}, init,
             cfg.kl_start_epochs, hp["beta"], cfg.kl_warmup_epochs, es, cfg.validation, cfg.patience, cfg.min_steps,
             cfg.learning_rate, cfg.adam_eps, cfg.batch_size, cfg.max_epochs,
             "every epoch" if cfg.shuffle == "epoch" else "once (the same order every epoch)")
    with timed(log, f"train {modality} VAE {point}"):
        res = fit(model, vae_loss_fn(hp["beta"], cfg.kl_warmup_epochs, cfg.kl_start_epochs), tl, vl, cfg, ckpt,
                  log, fingerprint=fp, val_fn=vae_recon_loss if es == "reconstruction" else None)
    config = model.config()
    config["fit"] = fit_summary(res) | {"early_stopping": es, "init": init, "validation": cfg.validation,
                                        "val_average": cfg.val_average, "shuffle": cfg.shuffle}
    save_module(model, config, out_pt, out_json)
    ckpt.unlink(missing_ok=True)
    return res


def batch_categories(a: ad.AnnData) -> list[str]:
    return list(a.obs["batch"].astype("category").cat.categories)


def read_coassay(coassay_rna, coassay_atac, scenario: str) -> CoassayData:
    """The co-assay RNA and (binarised) ATAC of a variant with the scenario's split rows."""
    data = load_coassay(coassay_rna, coassay_atac, scenario)
    for a, path in ((data.rna, coassay_rna), (data.atac, coassay_atac)):
        if "batch" not in a.obs:
            raise InputFormatError(path, "obs has no 'batch' column")
    data.atac.X = binarize(data.atac.X)
    return data


def load_grid_point(grid_dir, data: CoassayData, device=None) -> PolarbearModel:
    """The trained modules of one grid point, checked against the co-assay data's features/batches."""
    return PolarbearModel.from_grid_point(grid_dir, data.rna.var_names, data.atac.var_names,
                                          batch_categories(data.rna), batch_categories(data.atac), device)


def train_translators(rna_pt, atac_pt, coassay_rna, coassay_atac, scenario: str, fit_params: dict, seed: int,
                      out_rna_to_atac, out_atac_to_rna, out_scores, threads: int = 1, logger=None,
                      ridge_alphas=None) -> dict:
    """Train t_xy (RNA->ATAC latent) and t_yx (ATAC->RNA latent) with frozen VAEs; write weights and
    the validation scores of every selection rule (module docstring; ``ridge_alphas`` of the ATAC
    depth regressor behind the validation AUROC, default config ``polarbear.ridge_alphas``)."""
    log = _log(logger)
    torch.set_num_threads(max(1, int(threads)))
    device = get_device()
    data = read_coassay(coassay_rna, coassay_atac, scenario)
    co_rna, co_atac, train, val = data.rna, data.atac, data.train, data.val
    rna_vae = load_checked_vae(rna_pt, "rna", co_rna.var_names, batch_categories(co_rna), device)
    atac_vae = load_checked_vae(atac_pt, "atac", co_atac.var_names, batch_categories(co_atac), device)
    b_rna, b_atac = batch_onehot(co_rna.obs["batch"]), batch_onehot(co_atac.obs["batch"])
    with timed(log, "latent posteriors of co-assay cells"):
        mu_x, lv_x = latent_posteriors(rna_vae, co_rna.X, b_rna, device=device)
        mu_y, lv_y = latent_posteriors(atac_vae, co_atac.X, b_atac, device=device)
    cfg = FitConfig.from_params(_fit_defaults("translator") | dict(fit_params), seed=seed)
    cfg.kl_warmup_epochs = 0
    source = str(fit_params.get("input", "sample"))
    check_choice("translator input", source, TRANSLATOR_INPUTS)
    init = check_choice("polarbear.translator.init", str(fit_params.get("init", DEFAULTS["translator"]["init"])),
                        WEIGHT_INITS)
    dispersion = check_choice("polarbear.translator.dispersion",
                              str(fit_params.get("dispersion", DEFAULTS["translator"]["dispersion"])),
                              TRANSLATOR_DISPERSIONS)
    disp_bias = bool(fit_params.get("dispersion_bias", DEFAULTS["translator"]["dispersion_bias"]))
    log.info("translators: trained on %s of the source posterior, %s weight init, Adam lr %g eps %g, batch %d, "
             "<= %d epochs, patience %d (validation in %s mode), at least %d steps, shuffled %s; ATAC->RNA "
             "dispersion: %s%s",
             "samples z ~ q(z|x)" if source == "sample" else "the means", init, cfg.learning_rate, cfg.adam_eps,
             cfg.batch_size, cfg.max_epochs, cfg.patience, cfg.validation, cfg.min_steps,
             "every epoch" if cfg.shuffle == "epoch" else "once",
             "the translator's own (authors')" if dispersion == "translator" else "the frozen RNA VAE's",
             (" with" if disp_bias else " without") + " a per-gene bias" if dispersion == "translator" else "")
    scores, results, trained = {}, {}, {}
    jobs = (
        ("rna_to_atac", mu_x, lv_x, atac_vae, co_atac.X, b_atac, atac_vae.size_covariate(co_atac.X),
         out_rna_to_atac, None),
        ("atac_to_rna", mu_y, lv_y, rna_vae, co_rna.X, b_rna, rna_vae.size_covariate(co_rna.X), out_atac_to_rna,
         b_atac if dispersion == "translator" else None),
    )
    for name, z_src, lv_src, target, X, onehot, size, out, b_source in jobs:
        set_seed(seed)
        disp = (b_source.shape[1], X.shape[1], disp_bias) if b_source is not None else (0, 0)
        tr = LatentTranslator(z_src.shape[1], target.latent, *disp)
        if init == "glorot":
            tr.reset_parameters("glorot")
        model = TranslationModel(tr, target).to(device)
        cov = {"z": z_src.astype(np.float32), "b": onehot, "size": size}
        if b_source is not None:
            cov["b_source"] = b_source
        if source == "sample":
            cov["z_logvar"] = lv_src.astype(np.float32)
        tl = SparseCellLoader(X, train, cfg.batch_size, True, seed, cov, device)
        vl = SparseCellLoader(X, val, cfg.val_batch_size(INFER_BATCH), False, seed, cov, device)
        ckpt = Path(out).with_suffix(".ckpt")
        fp = dict(name=name, rna=rna_vae.config(), atac=atac_vae.config(), n=X.shape[0], nnz=int(X.nnz),
                  input=source, init=init, **({"dispersion": dispersion} if name == "atac_to_rna" else {}))
        fp["rna"].pop("fit", None), fp["atac"].pop("fit", None)
        with timed(log, f"train translator {name}"):
            res = fit(model, translation_loss, tl, vl, cfg, ckpt, log, params=tr.parameters(), fingerprint=fp)
        scores[name] = float(res["best_val_loss"])
        results[name] = fit_summary(res) | {"validation": cfg.validation, "val_average": cfg.val_average,
                                            "shuffle": cfg.shuffle}
        trained[name] = tr
        config = tr.config() | {"direction": name, "val_nll": scores[name]}
        save_module(tr, config, out)
        ckpt.unlink(missing_ok=True)
    scores["total"] = scores["rna_to_atac"] + scores["atac_to_rna"]
    scores |= validation_foscttm(trained["rna_to_atac"], trained["atac_to_rna"], mu_x[val], mu_y[val], device)
    model = PolarbearModel(rna_vae, atac_vae, trained["rna_to_atac"], trained["atac_to_rna"], device=device)
    with timed(log, f"validation task scores of {val.size} cells"):
        scores |= validation_task_scores(model, data, mu_x, mu_y,
                                         DEFAULTS["ridge_alphas"] if ridge_alphas is None else ridge_alphas)
    vae_fit = {m: v.config().get("fit", {}) for m, v in (("vae_rna", rna_vae), ("vae_atac", atac_vae))}
    write_json({"val_scores": scores, "fit": results, "vae_fit": vae_fit,
                "converged": all(r["converged"] for r in list(results.values()) + list(vae_fit.values()))},
               out_scores)
    log.info("validation scores (translation NLL per cell, task statistics, FOSCTTM): %s", scores)
    return scores


def validation_task_scores(model: PolarbearModel, data: CoassayData, mu_x: np.ndarray, mu_y: np.ndarray,
                           ridge_alphas) -> dict:
    """The translation tasks' validation statistics (:func:`~workflow_lib.metrics.
    translation_task_statistics`, those of the authors' ``run_polarbear.py``) on the co-assay VAL
    cells; the RNA -> ATAC prediction is depth-rescaled, the depth regressor fitted on the TRAIN
    cells as for the test predictions. ``mu_x`` / ``mu_y``: latent means of all co-assay cells."""
    val = data.val
    if val.size < 2:
        return dict.fromkeys(TASK_STATISTICS, float("nan"))
    b_rna, b_atac = batch_onehot(data.rna.obs["batch"]), batch_onehot(data.atac.obs["batch"])
    rna = model.predict_rna(data.atac.X[val], b_atac[val], b_rna[val], mu_y=mu_y[val])
    model.fit_depth_regressor(data.rna.X, b_rna, data.atac.X, data.train, ridge_alphas, mu_x=mu_x)
    atac, _, _ = model.predict_atac(data.rna.X[val], b_rna[val], b_atac[val], mu_x=mu_x[val])
    return translation_task_statistics(data.rna.X[val], rna, data.atac.X[val], atac)


def validation_foscttm(t_xy: LatentTranslator, t_yx: LatentTranslator, mu_x: np.ndarray, mu_y: np.ndarray,
                       device=None) -> dict:
    """FOSCTTM of the validation cells as Table 3 scores it (encoder means): the RNA query
    t_xy(mu_x) against mu_y in the ATAC latent, the ATAC query t_yx(mu_y) against mu_x in the RNA
    latent, and ``foscttm``, their mean (the alignment task's selection score)."""
    if len(mu_x) < 2:
        nan = float("nan")
        return {"foscttm_rna_query": nan, "foscttm_atac_query": nan, "foscttm": nan}
    with torch.no_grad():
        q_rna = t_xy.to(device)(torch.as_tensor(mu_x, dtype=torch.float32, device=device)).cpu().numpy()
        q_atac = t_yx.to(device)(torch.as_tensor(mu_y, dtype=torch.float32, device=device)).cpu().numpy()
    rq = float(foscttm(q_rna, mu_y).mean())
    aq = float(foscttm(q_atac, mu_x).mean())
    return {"foscttm_rna_query": rq, "foscttm_atac_query": aq, "foscttm": (rq + aq) / 2}


def select_polarbear(score_files: dict, out_json, selection: str | None = None, logger=None) -> dict:
    """Pick the best grid point per task from the points' validation scores by the rule
    ``selection`` (:data:`SELECTIONS`, default config ``polarbear.selection``; module docstring):
    ``per_task`` drives the predictions, ``point`` (lowest total translation NLL) is the one model a
    model directory exports."""
    log = _log(logger)
    selection = check_choice("polarbear.selection", DEFAULTS["selection"] if selection is None else selection,
                             tuple(SELECTIONS))
    task_score = SELECTIONS[selection]
    allscores = {}
    for point, path in score_files.items():
        try:
            vs = json.loads(Path(path).read_text())["val_scores"]
        except (json.JSONDecodeError, KeyError) as e:
            raise InputFormatError(path, f"not a translator scores file ({e})") from e
        missing = sorted({*task_score.values(), OVERALL_SCORE} - set(vs))
        if missing:
            raise InputFormatError(path, f"val_scores lacks {missing} (written by an older version: retrain the "
                                         "translators, e.g. snakemake --forcerun train_translators)")
        allscores[point] = vs
    if not allscores:
        raise ValueError("no grid points to select from")
    per_task = select_per_task(allscores, task_score, higher_is_better=HIGHER_IS_BETTER)
    for task, pick in per_task.items():
        log.info("%s: %s (validation %s = %.4f)", task, pick["point"], pick["score"], pick["value"])
    best = best_point(allscores, OVERALL_SCORE)
    sel = {"point": best, "params": parse_point(best), "val_scores": allscores[best], "all": allscores,
           "per_task": per_task, "selection": selection,
           "criteria": {**{t: CRITERIA[s] for t, s in task_score.items()}, "point": CRITERIA[OVERALL_SCORE]}}
    write_json(sel, out_json)
    log.info("model-directory point %s (%s = %.4f) among %d grid points", best, OVERALL_SCORE,
             allscores[best][OVERALL_SCORE], len(allscores))
    return sel


def task_points(selected: dict) -> dict:
    """{task: grid point} of a selected.json (one point for every task if it has no ``per_task``)."""
    per_task = selected.get("per_task") or {}
    return {task: per_task.get(task, {}).get("point", selected["point"]) for task in TASK_SCORE}


def fitted_grid_point(model_dir, point: str, data: CoassayData, ridge_alphas, device=None, logger=None
                      ) -> tuple[PolarbearModel, dict]:
    """The model of one grid point with its ATAC depth regressor fitted on the co-assay TRAIN cells."""
    log = _log(logger)
    model = load_grid_point(Path(model_dir) / "grid" / point, data, device)
    with timed(log, "fit ATAC depth ridge regressor"):
        info = model.fit_depth_regressor(data.rna.X, batch_onehot(data.rna.obs["batch"]), data.atac.X, data.train,
                                         ridge_alphas)
    log.info("depth ridge: alpha %.3g, train R^2 %.3f", info["alpha"], info["train_r2"])
    return model, info


def predict_polarbear(selected_json, model_dir, coassay_rna, coassay_atac, scenario: str, method: str,
                      ridge_alphas, outputs: dict, threads: int = 1, logger=None) -> dict:
    """Translate the scenario's test cells with the selected grid point; write the prediction files
    (``outputs``: key -> path, keys of :data:`workflow_lib.predictions.PREDICTION_NAMES`).

    ``atac_to_rna_rest``: ATAC->RNA norm estimation of the non-test (train + val) cells, the
    predicted reference of the test-vs-rest DE (Fig. 5G).
    """
    log = _log(logger)
    torch.set_num_threads(max(1, int(threads)))
    points = task_points(json.loads(Path(selected_json).read_text()))
    data = read_coassay(coassay_rna, coassay_atac, scenario)
    b_rna, b_atac = batch_onehot(data.rna.obs["batch"]), batch_onehot(data.atac.obs["batch"])
    test, rest = data.test, rest_rows(data)
    r2a, info = fitted_grid_point(model_dir, points["rna_to_atac"], data, ridge_alphas, logger=log)
    models = {points["rna_to_atac"]: r2a}
    for pt in dict.fromkeys(points.values()):
        if pt not in models:
            models[pt] = load_grid_point(Path(model_dir) / "grid" / pt, data)
    a2r, lat = models[points["atac_to_rna"]], models[points["latent"]]
    log.info("grid points per task: %s", points)
    with timed(log, f"predict {test.size} test cells"):
        rna_norm = a2r.predict_rna(data.atac.X[test], b_atac[test], b_rna[test])
        atac_raw, atac_norm, d_hat = r2a.predict_atac(data.rna.X[test], b_rna[test], b_atac[test])
        latent = lat.align(data.rna.X[test], b_rna[test], data.atac.X[test], b_atac[test])
    log.info("depth ridge: test corr(log d, predicted) %.3f", np.corrcoef(
        np.log(r2a.vae("atac").size_covariate(data.atac.X[test])), np.log(d_hat))[0, 1] if test.size > 2 else np.nan)
    with timed(log, f"predict RNA of {rest.size} non-test cells"):
        rest_rna = a2r.predict_rna(data.atac.X[rest], b_atac[rest], b_rna[rest])
    adatas = build_prediction_adatas(data, test, rna_norm, atac_raw, atac_norm, latent, method, points=points,
                                     rest_atac_to_rna=rest_rna)
    adatas["rna_to_atac"].obs["predicted_atac_depth_factor"] = d_hat
    adatas["rna_to_atac"].uns["depth_ridge_alpha"] = info["alpha"]
    write_predictions(adatas, outputs)
    return {"points": points, "n_test": int(test.size), "n_rest": int(rest.size), "ridge_alpha": info["alpha"]}
