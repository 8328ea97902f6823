"""Polarbear stage functions called by scripts/polarbear_*.py (one function per rule).

Variants
--------
* ``polarbear``: each VAE is trained on the single-assay cells of its modality plus the co-assay
  TRAIN cells of the scenario; ``polarbear_coassay``: co-assay TRAIN cells only. In both, the VAE
  validation loss (early stopping) is computed on the co-assay VAL cells.
* Translators are trained on co-assay TRAIN cells (early stopping on co-assay VAL cells).

Model selection
---------------
The grid point with the lowest *sum* of the two validation translation losses (mean per-cell NLL
of the RNA profile given ATAC plus that of the ATAC profile given RNA, i.e. the NLL of the pair
(x, y) under the two translations) is selected; per-direction scores are stored in selected.json.
Translation losses do not depend on beta, so they compare grid points fairly.

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

from .data import SparseCellLoader, as_csr, batch_onehot
from .fileutils import InputFormatError, timed, write_h5ad, write_json
from .models.chromsplit import chrom_block_sizes
from .models.translator import LatentTranslator, TranslationModel, translation_loss
from .models.vae import ATACVAE, RNAVAE, check_choice, features_digest, load_vae, save_module
from .predictions import build_rna_prediction
from .settings import DEFAULTS
from .train import FitConfig, fit, fit_summary, get_device, kl_weight, set_seed

METHODS = ("polarbear", "polarbear_coassay")
TRANSLATOR_INPUTS = ("sample", "mean")
INFER_BATCH = 512


def parse_point(name: str) -> dict:
    """'latent10_beta0.5' -> {'latent': 10, 'beta': 0.5} (same rule as rules/common.smk)."""
    out = {}
    for part in name.split("_"):
        key = part.rstrip("0123456789.e-+")
        val = part[len(key):]
        if not key or not val:
            raise ValueError(f"bad grid point name {name!r}")
        out[key] = int(val) if key == "latent" else float(val)
    return out


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


def _binarize(X: sp.csr_matrix) -> sp.csr_matrix:
    X = X.copy()
    X.eliminate_zeros()
    X.data[:] = 1.0
    return X


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
    """VAE settings of one modality: the shared keys of ``polarbear.vae`` plus its ``rna:`` /
    ``atac:`` block (the authors' learning rate, Adam eps and KL warm-up differ per VAE).
    A key given both shared and in the modality block is ambiguous and refused."""
    out = {k: v for k, v in fit_params.items() if k not in MODALITY_KEYS}
    own = fit_params.get(modality) or {}
    both = sorted(set(out) & set(own))
    if both:
        raise ValueError(f"polarbear.vae: {both} given both for all VAEs and in vae.{modality}; give them in one place")
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
        X = _binarize(X)
    return co, X, batch_onehot(pd.Series(batch)), train, val


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
        model = RNAVAE(X.shape[1], onehot.shape[1], hp["latent"], dropout=dropout, activation=activation,
                       input_transform=str(fit_params.get("rna_input", DEFAULTS["vae"]["rna_input"])),
                       decoder_dropout=float(fit_params.get("rna_decoder_dropout", 0.0)), **meta)
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
    size = model.size_covariate(X)
    if modality == "atac" and model.input_transform == "idf":
        model.set_idf(X, train)
    if fit_params.get("init_output_bias", True):
        _init_output_bias(model, X, train, size)
    model.to(device)
    cfg = FitConfig.from_params(fit_params, seed=seed)
    cov = {"b": onehot, "size": size}
    tl = SparseCellLoader(X, train, cfg.batch_size, True, seed, cov, device)
    vl = SparseCellLoader(X, val, max(cfg.batch_size, INFER_BATCH), False, seed, cov, device)
    ckpt = Path(out_pt).with_suffix(".ckpt")
    fp = dict(model=model.config(), n_rows=X.shape[0], nnz=int(X.nnz), n_train=int(train.size),
              n_val=int(val.size), early_stopping=str(fit_params.get("early_stopping", "reconstruction")))
    es = check_choice("early_stopping", fp["early_stopping"], VAE_EARLY_STOPPING)
    log.info("%s VAE: %s; KL weight 0 for %d epochs, then warm-up to beta=%g over %d epochs; early stopping "
             "on validation %s (patience %d, at least %d steps), Adam lr %g eps %g, batch %d, <= %d epochs",
             modality, {k: v for k, v in model.config().items() if k not in meta and k != "chrom_sizes"},
             cfg.kl_start_epochs, hp["beta"], cfg.kl_warmup_epochs, es, cfg.patience, cfg.min_steps,
             cfg.learning_rate, cfg.adam_eps, cfg.batch_size, cfg.max_epochs)
    with timed(log, f"train {modality} VAE {point}"):
        res = fit(model, vae_loss_fn(hp["beta"], cfg.kl_warmup_epochs, cfg.kl_start_epochs), tl, vl, cfg, ckpt,
                  log, fingerprint=fp, val_fn=vae_recon_loss if es == "reconstruction" else None)
    config = model.config()
    config["fit"] = fit_summary(res) | {"early_stopping": es}
    save_module(model, config, out_pt, out_json)
    ckpt.unlink(missing_ok=True)
    return res


@torch.no_grad()
def latent_posteriors(vae, X, onehot, rows=None, device="cpu", binarize=False) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and log-variances (eval mode, no dropout) of the given rows (default all)."""
    vae.eval()
    rows = np.arange(X.shape[0]) if rows is None else rows
    mus, lvs = [], []
    for batch in SparseCellLoader(X, rows, INFER_BATCH, False, 0, {"b": onehot}, device, binarize):
        mu, lv = vae.encode(batch["x"], batch["b"])
        mus.append(mu.cpu().numpy())
        lvs.append(lv.cpu().numpy())
    if not mus:
        return np.zeros((0, vae.latent), np.float32), np.zeros((0, vae.latent), np.float32)
    return np.concatenate(mus), np.concatenate(lvs)


def latent_means(vae, X, onehot, rows=None, device="cpu", binarize=False) -> np.ndarray:
    """Deterministic latent means (eval mode, no dropout) of the given rows (default all)."""
    return latent_posteriors(vae, X, onehot, rows, device, binarize)[0]


def _load_pair(rna_pt, atac_pt, co_rna, co_atac, device):
    rna_vae = load_vae(rna_pt, device=device)
    atac_vae = load_vae(atac_pt, device=device)
    for vae, co, name in ((rna_vae, co_rna, "rna"), (atac_vae, co_atac, "atac")):
        cfg = vae.config()
        if cfg["features_sha1"] != features_digest(co.var_names):
            raise ValueError(f"{name} VAE was trained on other features than the co-assay file")
        cats = list(co.obs["batch"].astype("category").cat.categories)
        if cats != cfg["batch_categories"]:
            raise ValueError(f"{name} batch categories {cats} differ from the VAE's {cfg['batch_categories']}")
    return rna_vae, atac_vae


def _read_coassay(coassay_rna, coassay_atac):
    co_rna = _read(coassay_rna, "co-assay RNA")
    co_atac = _read(coassay_atac, "co-assay ATAC")
    if not co_rna.obs_names.equals(co_atac.obs_names):
        raise InputFormatError(coassay_atac, "co-assay RNA and ATAC cells differ (obs_names/order)")
    co_atac.X = _binarize(co_atac.X)
    return co_rna, co_atac


def train_translators(rna_pt, atac_pt, coassay_rna, coassay_atac, scenario: str, fit_params: dict, seed: int,
                      out_rna_to_atac, out_atac_to_rna, out_scores, threads: int = 1, logger=None) -> dict:
    """Train t_xy (RNA->ATAC latent) and t_yx (ATAC->RNA latent) with frozen VAEs; write weights + scores."""
    log = _log(logger)
    torch.set_num_threads(max(1, int(threads)))
    device = get_device()
    co_rna, co_atac = _read_coassay(coassay_rna, coassay_atac)
    rna_vae, atac_vae = _load_pair(rna_pt, atac_pt, co_rna, co_atac, device)
    split = _split(co_rna, scenario, coassay_rna).to_numpy()
    train, val = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    b_rna, b_atac = batch_onehot(co_rna.obs["batch"]), batch_onehot(co_atac.obs["batch"])
    with timed(log, "latent posteriors of co-assay cells"):
        mu_x, lv_x = latent_posteriors(rna_vae, co_rna.X, b_rna, device=device)
        mu_y, lv_y = latent_posteriors(atac_vae, co_atac.X, b_atac, device=device)
    cfg = FitConfig.from_params(fit_params, seed=seed)
    cfg.kl_warmup_epochs = 0
    source = str(fit_params.get("input", "sample"))
    check_choice("translator input", source, TRANSLATOR_INPUTS)
    log.info("translators: trained on %s of the source posterior, Adam lr %g eps %g, batch %d, <= %d epochs, "
             "patience %d, at least %d steps", "samples z ~ q(z|x)" if source == "sample" else "the means",
             cfg.learning_rate, cfg.adam_eps, cfg.batch_size, cfg.max_epochs, cfg.patience, cfg.min_steps)
    scores, results = {}, {}
    jobs = (
        ("rna_to_atac", mu_x, lv_x, atac_vae, co_atac.X, b_atac, atac_vae.size_covariate(co_atac.X),
         out_rna_to_atac),
        ("atac_to_rna", mu_y, lv_y, rna_vae, co_rna.X, b_rna, rna_vae.size_covariate(co_rna.X), out_atac_to_rna),
    )
    for name, z_src, lv_src, target, X, onehot, size, out in jobs:
        set_seed(seed)
        tr = LatentTranslator(z_src.shape[1], target.latent)
        model = TranslationModel(tr, target).to(device)
        cov = {"z": z_src.astype(np.float32), "b": onehot, "size": size}
        if source == "sample":
            cov["z_logvar"] = lv_src.astype(np.float32)
        tl = SparseCellLoader(X, train, cfg.batch_size, True, seed, cov, device)
        vl = SparseCellLoader(X, val, max(cfg.batch_size, INFER_BATCH), False, seed, cov, device)
        ckpt = Path(out).with_suffix(".ckpt")
        fp = dict(name=name, rna=rna_vae.config(), atac=atac_vae.config(), n=X.shape[0], nnz=int(X.nnz),
                  input=source)
        fp["rna"].pop("fit", None), fp["atac"].pop("fit", None)
        with timed(log, f"train translator {name}"):
            res = fit(model, translation_loss, tl, vl, cfg, ckpt, log, params=tr.parameters(), fingerprint=fp)
        scores[name] = float(res["best_val_loss"])
        results[name] = fit_summary(res)
        config = tr.config() | {"direction": name, "val_nll": scores[name]}
        save_module(tr, config, out)
        ckpt.unlink(missing_ok=True)
    scores["total"] = scores["rna_to_atac"] + scores["atac_to_rna"]
    vae_fit = {m: v.config().get("fit", {}) for m, v in (("vae_rna", rna_vae), ("vae_atac", atac_vae))}
    write_json({"val_scores": scores, "fit": results, "vae_fit": vae_fit,
                "converged": all(r["converged"] for r in list(results.values()) + list(vae_fit.values()))},
               out_scores)
    log.info("validation translation NLL per cell: %s", scores)
    return scores


def select_polarbear(score_files: dict, out_json, criterion: str = "total", logger=None) -> dict:
    """Pick the grid point with the lowest validation translation loss (``criterion`` key of scores)."""
    log = _log(logger)
    allscores = {}
    for point, path in score_files.items():
        allscores[point] = json.loads(Path(path).read_text())["val_scores"]
    if not allscores:
        raise ValueError("no grid points to select from")
    best = min(sorted(allscores), key=lambda p: allscores[p][criterion])
    sel = {"point": best, "params": parse_point(best), "val_scores": allscores[best], "all": allscores,
           "criterion": f"min validation translation NLL ({criterion}: rna_to_atac + atac_to_rna)"}
    write_json(sel, out_json)
    log.info("selected %s (%s = %.4f) among %d grid points", best, criterion, allscores[best][criterion],
             len(allscores))
    return sel


def _load_translator(pt, device):
    cfg = json.loads(Path(pt).with_suffix(".json").read_text())
    tr = LatentTranslator(cfg["latent_in"], cfg["latent_out"])
    tr.load_state_dict(torch.load(pt, map_location=device, weights_only=True))
    return tr.to(device).eval()


def fit_depth_ridge(features_train, log_depth_train, alphas):
    """RidgeCV (LOO-CV over ``alphas``) on standardised features -> fitted sklearn pipeline."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=list(alphas)))
    model.fit(features_train, log_depth_train)
    return model


@torch.no_grad()
def _decode_rows(fn, z, onehot, device):
    out = []
    for s in range(0, z.shape[0], INFER_BATCH):
        zb = torch.from_numpy(z[s:s + INFER_BATCH]).to(device)
        bb = torch.from_numpy(onehot[s:s + INFER_BATCH]).to(device)
        out.append(fn(zb, bb).cpu().numpy().astype(np.float32))
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def _atac_to_rna_freq(rna_vae, t_yx, mu_y, b_rna, rows, device) -> np.ndarray:
    """Norm estimation (rows sum to 1) of ``rows`` translated from their ATAC latent means."""
    with torch.no_grad():
        z = t_yx(torch.from_numpy(mu_y[rows]).to(device)).cpu().numpy()
    freq = _decode_rows(rna_vae.normalized, z, b_rna[rows], device).astype(np.float64)
    return (freq / freq.sum(axis=1, keepdims=True)).astype(np.float32)


def predict_polarbear(selected_json, model_dir, coassay_rna, coassay_atac, scenario: str, method: str,
                      ridge_alphas, out_atac_to_rna, out_rna_to_atac, out_latent, out_atac_to_rna_rest,
                      threads: int = 1, logger=None) -> dict:
    """Translate the scenario's test cells with the selected grid point and write the prediction files.

    ``out_atac_to_rna_rest``: ATAC->RNA norm estimation of the non-test (train + val) cells, the
    predicted reference of the test-vs-rest DE (Fig. 5G).
    """
    log = _log(logger)
    torch.set_num_threads(max(1, int(threads)))
    device = get_device()
    point = json.loads(Path(selected_json).read_text())["point"]
    gdir = Path(model_dir) / "grid" / point
    co_rna, co_atac = _read_coassay(coassay_rna, coassay_atac)
    rna_vae, atac_vae = _load_pair(gdir / "vae_rna.pt", gdir / "vae_atac.pt", co_rna, co_atac, device)
    t_xy = _load_translator(gdir / "translator_rna_to_atac.pt", device)
    t_yx = _load_translator(gdir / "translator_atac_to_rna.pt", device)
    split = _split(co_rna, scenario, coassay_rna).to_numpy()
    train, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    b_rna, b_atac = batch_onehot(co_rna.obs["batch"]), batch_onehot(co_atac.obs["batch"])
    mu_x = latent_means(rna_vae, co_rna.X, b_rna, device=device)
    mu_y = latent_means(atac_vae, co_atac.X, b_atac, device=device)
    with torch.no_grad():
        zx_t = t_xy(torch.from_numpy(mu_x[test]).to(device)).cpu().numpy()
        zy_t = t_yx(torch.from_numpy(mu_y[test]).to(device)).cpu().numpy()
    with timed(log, f"predict {test.size} test cells"):
        rna_norm = _atac_to_rna_freq(rna_vae, t_yx, mu_y, b_rna, test, device)
        atac_norm = _decode_rows(atac_vae.normalized, zx_t, b_atac[test], device)
    rest = np.setdiff1d(np.arange(co_rna.n_obs), test)
    with timed(log, f"predict RNA of {rest.size} non-test cells"):
        a2r_rest = build_rna_prediction(co_rna, rest, _atac_to_rna_freq(rna_vae, t_yx, mu_y, b_rna, rest, device),
                                        method, point)
    # ATAC depth from RNA: ridge on [log RNA library size, mu_x]
    lib = np.log(rna_vae.size_covariate(co_rna.X).astype(np.float64))
    feats = np.c_[lib, mu_x]
    log_d = np.log(atac_vae.size_covariate(co_atac.X).astype(np.float64))
    ridge = fit_depth_ridge(feats[train], log_d[train], ridge_alphas)
    d_hat = np.exp(ridge.predict(feats[test])).astype(np.float32)
    alpha = float(ridge[-1].alpha_)
    log.info("depth ridge: alpha %.3g, train R^2 %.3f, test corr(log d, pred) %.3f", alpha,
             ridge.score(feats[train], log_d[train]),
             np.corrcoef(log_d[test], np.log(d_hat))[0, 1] if test.size > 2 else float("nan"))
    atac_raw = atac_vae.depth_prob(torch.from_numpy(atac_norm), torch.from_numpy(d_hat).reshape(-1, 1)).numpy()
    obs = co_rna.obs.iloc[test].copy()
    uns = {"method": method, "point": point}
    a2r = ad.AnnData(X=rna_norm, obs=obs.copy(), var=co_rna.var.copy(), uns=dict(uns))
    r2a = ad.AnnData(X=atac_raw.astype(np.float32), obs=obs.copy(), var=co_atac.var.copy(),
                     uns=dict(uns) | {"depth_ridge_alpha": alpha})
    r2a.layers["norm"] = atac_norm
    r2a.obs["predicted_atac_depth_factor"] = d_hat
    lat = ad.AnnData(X=np.zeros((test.size, 0), np.float32), obs=obs.copy(), uns=dict(uns))
    lat.obsm["rna_query"] = zx_t.astype(np.float32)
    lat.obsm["atac_reference"] = mu_y[test].astype(np.float32)
    lat.obsm["atac_query"] = zy_t.astype(np.float32)
    lat.obsm["rna_reference"] = mu_x[test].astype(np.float32)
    write_h5ad(a2r, out_atac_to_rna)
    write_h5ad(r2a, out_rna_to_atac)
    write_h5ad(lat, out_latent)
    write_h5ad(a2r_rest, out_atac_to_rna_rest)
    return {"point": point, "n_test": int(test.size), "n_rest": int(rest.size), "ridge_alpha": alpha}
