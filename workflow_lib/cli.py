"""``polarbear`` console entry point: train, translate, align and describe Polarbear models.

    polarbear train     --coassay-rna R.h5ad --coassay-atac A.h5ad [--single-rna ..] [--single-atac ..] --out MODEL
    polarbear translate --model MODEL --input cells.h5ad --output predicted.h5ad [--direction rna-to-atac]
    polarbear align     --model MODEL --rna rna.h5ad --atac atac.h5ad --output pairs.tsv
    polarbear info      --model MODEL [--json]

Models are directories written by :mod:`workflow_lib.model_dir` (``model.json`` + tensors-only
``.pt`` files). Every command reuses the workflow's own functions (``workflow_lib.polarbear``,
``workflow_lib.models``, ``workflow_lib.metrics``); nothing here re-implements the model.

Input rules (``translate`` and ``align``)
------------------------------------------
* X holds raw counts (RNA) or peak counts / 0-1 accessibility (ATAC); ATAC is binarised.
* Features are matched by name: genes by ``var_names`` (or a gene-symbol column of ``var`` such as
  ``gene_name`` when that matches more genes), peaks by ``chrom:start-end`` (``chr1-100-200`` and
  ``chr1_100_200`` are accepted; coordinates must equal the model's mm10 peaks exactly).
* Fill rule: model features missing from the input are filled with zeros (listed in the output's
  ``uns['input_features']['missing_features']`` and reported in a warning); input features unknown to
  the model are dropped; duplicated names are summed. More than ``--max-missing-frac`` (default 0.5)
  missing features is an error.
* Batches: ``obs[--batch-key]`` (default ``batch``) values that are batch categories of the model
  are used; other values, or a missing column, get ``--batch`` (default: the co-assay batch the
  model was trained with, e.g. ``snare``), with a warning. Predictions are decoded in
  ``--target-batch`` (default: the co-assay batch).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .fileutils import InputFormatError, atomic_path, get_logger, timed, write_h5ad, write_json, write_tsv
from .grid import grid_points
from .settings import DEFAULTS, deep_merge, polarbear_settings
from .model_dir import DEFAULT_MAX_MISSING_FRAC, FeatureMatch, looks_like_counts, match_features, read_card
from .models.polarbear import PolarbearModel

DIRECTIONS = {"rna-to-atac": ("rna", "atac"), "atac-to-rna": ("atac", "rna")}

# Defaults of `polarbear train`: the authors' settings (workflow_lib.settings; config.yaml
# `polarbear:` holds the same values); --config overrides.
TRAIN_DEFAULTS = DEFAULTS


class CLIError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


# ----------------------------------------------------------------------------- input handling


def read_input(path, what: str):
    import anndata as ad

    path = Path(path)
    if not path.is_file():
        raise InputFormatError(path, f"{what} file not found")
    try:
        a = ad.read_h5ad(path)
    except Exception as e:  # not HDF5 / not an AnnData
        raise InputFormatError(path, f"cannot read as .h5ad ({e})") from e
    if a.obs_names.has_duplicates:
        raise InputFormatError(path, "obs_names (cell names) are not unique")
    return a


def detect_modality(model: PolarbearModel, adata) -> str:
    """'rna' or 'atac': whichever feature set of the model the input's names overlap more."""
    from .model_dir import input_feature_names

    frac = {}
    for m in ("rna", "atac"):
        feats = model.features(m)
        names, _ = input_feature_names(adata, m, feats)
        s = set(feats)
        frac[m] = sum(n in s for n in names) / max(len(feats), 1)
    if max(frac.values()) == 0:
        raise CLIError("none of the input's features match the model's genes or peaks; "
                       "name genes by symbol and peaks chrom:start-end (mm10)")
    return max(frac, key=frac.get)


def resolve_batch(adata, modality: str, model: PolarbearModel, batch_key: str = "batch",
                  batch: str | None = None, logger=None) -> tuple[np.ndarray, dict]:
    """One-hot batch covariate in the model's categories, and a record of what was done.

    Known labels in ``obs[batch_key]`` are kept; unknown labels and a missing column get
    ``batch`` (default: the model's co-assay batch) with a warning.
    """
    log = logger or logging.getLogger("polarbear")
    cats = model.batch_categories(modality)
    default = batch or model.card.get("default_batch", {}).get(modality) or cats[0]
    if default not in cats:
        raise CLIError(f"--batch {default!r} is not a {modality.upper()} batch of the model; choose one of {cats}")
    if batch_key in adata.obs:
        labels = adata.obs[batch_key].astype(str).to_numpy()
        unknown = sorted(set(labels) - set(cats))
        if unknown:
            msg = (f"{modality.upper()} batch labels {unknown[:5]} are not batches of the model {cats}: "
                   f"those cells are encoded as batch {default!r}")
            log.warning(msg)
            labels = np.where(np.isin(labels, cats), labels, default)
        source = f"obs['{batch_key}']"
    else:
        labels = np.full(adata.n_obs, default, dtype=object)
        unknown = []
        source = f"constant {default!r} (no obs['{batch_key}'])"
        log.info("no obs[%r]: all %s cells are encoded as batch %r", batch_key, modality.upper(), default)
    codes = pd.Categorical(labels, categories=cats).codes
    onehot = np.zeros((adata.n_obs, len(cats)), dtype=np.float32)
    onehot[np.arange(adata.n_obs), codes] = 1.0
    return onehot, {"source": source, "unknown_labels": np.asarray(unknown, dtype=str), "default": default}


def target_onehot(model: PolarbearModel, modality: str, n: int, target_batch: str | None) -> tuple[np.ndarray, str]:
    cats = model.batch_categories(modality)
    tb = target_batch or model.card.get("default_batch", {}).get(modality) or cats[0]
    if tb not in cats:
        raise CLIError(f"--target-batch {tb!r} is not a {modality.upper()} batch of the model; choose one of {cats}")
    onehot = np.zeros((n, len(cats)), dtype=np.float32)
    onehot[:, cats.index(tb)] = 1.0
    return onehot, tb


def _match(model, adata, modality, max_missing_frac, path, logger) -> FeatureMatch:
    log = logger or logging.getLogger("polarbear")
    if not looks_like_counts(adata.X):
        msg = f"{path}: X does not look like raw counts (non-integer values); Polarbear expects raw counts"
        log.warning(msg)
    fm = match_features(adata, modality, model.features(modality), max_missing_frac, path=path)
    if fm.missing or fm.n_extra or fm.n_duplicates:
        log.warning("%s: %s", path, fm.summary())
    else:
        log.info("%s: %s", path, fm.summary())
    return fm


# ----------------------------------------------------------------------------- model operations


class _Translation:
    """Everything of a translation except the (large) predicted profiles, which
    :meth:`profiles` decodes for any block of cells."""

    def __init__(self, model: PolarbearModel, adata, direction: str | None, *, batch_key: str, batch, target_batch,
                 max_missing_frac: float, path, device, logger):
        if direction is None:
            src = detect_modality(model, adata)
            direction = f"{src}-to-{'atac' if src == 'rna' else 'rna'}"
        if direction not in DIRECTIONS:
            raise CLIError(f"unknown direction {direction!r}; use one of {sorted(DIRECTIONS)}")
        self.direction = direction
        self.source, self.target = DIRECTIONS[direction]
        self.model = model.to(device) if device is not None else model
        fm = _match(model, adata, self.source, max_missing_frac, path, logger)
        onehot, binfo = resolve_batch(adata, self.source, model, batch_key, batch, logger)
        self.t_onehot, tb = target_onehot(model, self.target, adata.n_obs, target_batch)
        self.mu = model.encode(self.source, fm.X, onehot)
        self.z = model.translate(self.source, self.mu)
        var = pd.DataFrame(index=pd.Index(model.features(self.target), name=None))
        if self.target == "atac":
            parts = var.index.str.extract(r"^(?P<chrom>[^:]+):(?P<start>\d+)-(?P<end>\d+)$")
            if parts.notna().all().all():
                var["chrom"] = parts["chrom"].to_numpy()
                var["start"] = parts["start"].astype(np.int64).to_numpy()
                var["end"] = parts["end"].astype(np.int64).to_numpy()
        self.var = var
        self.obs = adata.obs.copy()
        self.d_hat = None
        if self.target == "atac":
            self.d_hat = model.atac_depth(fm.X, self.mu)
            self.obs["predicted_atac_depth_factor"] = self.d_hat
        self.uns = {"method": "polarbear", "point": model.point, "direction": direction,
                    "model": str(model.path), "target_batch": tb, "input_features": fm.uns(),
                    "input_batch": binfo}

    def profiles(self, rows: slice) -> tuple[np.ndarray, np.ndarray | None]:
        """(X, layers['norm'] or None) of the cells in ``rows``."""
        norm = self.model.decode(self.target, self.z[rows], self.t_onehot[rows])
        if self.target == "rna":
            return norm, None
        return self.model.depth_scale(norm, self.d_hat[rows]), norm

    def skeleton(self, X=None, norm=None):
        import anndata as ad

        out = ad.AnnData(X=X, obs=self.obs, var=self.var)
        if norm is not None:
            out.layers["norm"] = norm
        out.obsm["latent"] = self.mu.astype(np.float32)
        out.obsm["translated_latent"] = self.z
        out.uns.update(self.uns)
        return out


def translate_adata(model: PolarbearModel, adata, direction: str | None = None, *, batch_key: str = "batch",
                    batch: str | None = None, target_batch: str | None = None,
                    max_missing_frac: float = DEFAULT_MAX_MISSING_FRAC, path="<input>", device=None,
                    logger=None):
    """Predict the other modality of every cell of ``adata``; returns an AnnData (features named).

    rna-to-atac: X = depth-rescaled accessibility probabilities (ATAC depth predicted from RNA by
    the stored ridge regressor), ``layers['norm']`` = depth-normalised probabilities.
    atac-to-rna: X = normalised expression (rows sum to 1, the paper's "norm estimation").
    Both: ``obsm['latent']`` (source VAE mean), ``obsm['translated_latent']`` (in the target space).
    Everything is held in memory: for many cells use :func:`translate_to_file`.
    """
    tr = _Translation(model, adata, direction, batch_key=batch_key, batch=batch, target_batch=target_batch,
                      max_missing_frac=max_missing_frac, path=path, device=device, logger=logger)
    X, norm = tr.profiles(slice(0, adata.n_obs))
    return tr.skeleton(X, norm)


def translate_to_file(model: PolarbearModel, adata, output, direction: str | None = None, *, chunk_cells: int = 512,
                      batch_key: str = "batch", batch: str | None = None, target_batch: str | None = None,
                      max_missing_frac: float = DEFAULT_MAX_MISSING_FRAC, path="<input>", device=None,
                      logger=None) -> tuple[str, tuple[int, int]]:
    """:func:`translate_adata` written straight to ``output`` (h5ad) ``chunk_cells`` cells at a time.

    The dense predictions (n cells x 220k peaks is ~0.9 MB per cell and array) never exist in
    memory as a whole: obs/var/obsm/uns are written by anndata, ``X`` (and ``layers['norm']``)
    are dense HDF5 datasets filled block by block. The file appears under its final name only
    when complete. Returns (direction, shape).
    """
    import h5py

    log = logger or get_logger()
    tr = _Translation(model, adata, direction, batch_key=batch_key, batch=batch, target_batch=target_batch,
                      max_missing_frac=max_missing_frac, path=path, device=device, logger=logger)
    n, p = adata.n_obs, len(tr.var)
    chunk_cells = max(1, int(chunk_cells))
    with atomic_path(output) as tmp:
        tr.skeleton().write_h5ad(tmp)
        with h5py.File(tmp, "a") as f:
            names = ["X"] + (["layers/norm"] if tr.target == "atac" else [])
            dsets = []
            for name in names:
                d = f.create_dataset(name, shape=(n, p), dtype="float32",
                                     chunks=(max(1, min(n, 64)), max(1, min(p, 16384))) if n and p else None)
                d.attrs["encoding-type"] = "array"
                d.attrs["encoding-version"] = "0.2.0"
                dsets.append(d)
            for s in range(0, n, chunk_cells):
                rows = slice(s, min(n, s + chunk_cells))
                X, norm = tr.profiles(rows)
                dsets[0][rows] = X
                if norm is not None:
                    dsets[1][rows] = norm
                log.info("translated cells %d-%d of %d", rows.start + 1, rows.stop, n)
    return tr.direction, (n, p)


def nearest(query: np.ndarray, reference: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Indices and Euclidean distances of the k nearest reference rows of every query row."""
    from sklearn.neighbors import NearestNeighbors

    nn_ = NearestNeighbors(n_neighbors=min(k, len(reference))).fit(reference)
    dist, idx = nn_.kneighbors(query)
    return idx, dist


def align_adatas(model: PolarbearModel, rna, atac, *, truth: str | None = "auto", batch_key: str = "batch",
                 rna_batch: str | None = None, atac_batch: str | None = None,
                 max_missing_frac: float = DEFAULT_MAX_MISSING_FRAC, paths=("<rna>", "<atac>"), device=None,
                 logger=None) -> tuple[pd.DataFrame, dict]:
    """Match cells of an RNA and an ATAC data set by latent distance (both directions).

    RNA as query: ``t_xy(mu_x)`` vs ATAC ``mu_y``; ATAC as query: ``t_yx(mu_y)`` vs RNA ``mu_x``.
    Returns one row per cell and direction: query cell, its nearest cell of the other modality,
    the distance, and (if the truth is known) the true partner and the cell's FOSCTTM.
    ``truth``: None (unknown), ``"obs_names"`` (same cell names in both files), an obs column
    present in both files, or ``"auto"`` (obs_names if both files hold the same set of names).
    """
    from .metrics import foscttm

    if device is not None:
        model.to(device)
    fm_r = _match(model, rna, "rna", max_missing_frac, paths[0], logger)
    fm_a = _match(model, atac, "atac", max_missing_frac, paths[1], logger)
    b_r, _ = resolve_batch(rna, "rna", model, batch_key, rna_batch, logger)
    b_a, _ = resolve_batch(atac, "atac", model, batch_key, atac_batch, logger)
    lat = model.align(fm_r.X, b_r, fm_a.X, b_a)
    spaces = {
        "rna_query": (lat["rna_query"], lat["atac_reference"], rna.obs_names, atac.obs_names),
        "atac_query": (lat["atac_query"], lat["rna_reference"], atac.obs_names, rna.obs_names),
    }
    # truth pairing
    keys = None
    if truth == "auto":
        truth = "obs_names" if set(rna.obs_names) == set(atac.obs_names) else None
    if truth == "obs_names":
        keys = (np.asarray(rna.obs_names, dtype=str), np.asarray(atac.obs_names, dtype=str))
    elif truth:
        for a, p in ((rna, paths[0]), (atac, paths[1])):
            if truth not in a.obs:
                raise InputFormatError(p, f"obs has no truth column {truth!r}")
        keys = (rna.obs[truth].astype(str).to_numpy(), atac.obs[truth].astype(str).to_numpy())
    tables, summary = [], {"n_rna": int(rna.n_obs), "n_atac": int(atac.n_obs), "truth": truth or None}
    if keys is not None:
        for k, p in zip(keys, paths):
            if pd.Index(k).has_duplicates:
                raise InputFormatError(p, f"truth keys ({truth}) are not unique")
        common = np.intersect1d(keys[0], keys[1])
        if common.size < 2:
            raise CLIError(f"fewer than 2 cells can be paired by {truth!r}; cannot compute FOSCTTM")
        summary["n_truth_pairs"] = int(common.size)
        ir = pd.Index(keys[0]).get_indexer(common)
        ia = pd.Index(keys[1]).get_indexer(common)
    for name, (query, ref, qnames, rnames) in spaces.items():
        idx, dist = nearest(query, ref)
        df = pd.DataFrame({"direction": name, "query_cell": np.asarray(qnames, dtype=str),
                           "matched_cell": np.asarray(rnames, dtype=str)[idx[:, 0]], "distance": dist[:, 0]})
        if keys is not None:
            qi, ri = (ir, ia) if name == "rna_query" else (ia, ir)
            # FOSCTTM among the truth-paired cells (row j of query matched to row j of reference)
            f = foscttm(query[qi], ref[ri])
            df["true_cell"] = pd.Series(dtype=object)
            df["foscttm"] = np.nan
            df.loc[qi, "true_cell"] = np.asarray(rnames, dtype=str)[ri]
            df.loc[qi, "foscttm"] = f
            df["correct"] = df["matched_cell"] == df["true_cell"]
            summary[f"foscttm_{name}"] = float(np.nanmean(f))
            summary[f"top1_accuracy_{name}"] = float(df.loc[qi, "correct"].mean())
        tables.append(df)
    if keys is not None:
        summary["foscttm_mean"] = float(np.mean([summary["foscttm_rna_query"], summary["foscttm_atac_query"]]))
        summary["foscttm_random_expectation"] = 0.5
    return pd.concat(tables, ignore_index=True), summary


# ----------------------------------------------------------------------------- info


def card_text(card: dict, n_show: int = 5) -> str:
    """Human-readable model card."""
    lines = [f"Polarbear model (format {card.get('format')} v{card.get('format_version')}, "
             f"package {card.get('package_version')})"]
    if card.get("model"):
        lines.append(f"  {card['model']}")
    lines.append(f"grid point: {card.get('point', '')}")
    hp = card.get("hyperparameters") or {}
    lines.append("hyperparameters: " + ", ".join(f"{k}={v}" for k, v in hp.items()))
    for m in ("rna", "atac"):
        f = card["features"][m]
        head = ", ".join(f["names"][:n_show]) + (" ..." if f["n"] > n_show else "")
        lines.append(f"{m.upper()} features: {f['n']} ({f['kind']}): {head}")
    lines.append("batch categories: " + "; ".join(f"{m.upper()} {v}" for m, v in card["batch_categories"].items())
                 + f" (default {card.get('default_batch')})")
    tr = card.get("training") or {}
    if tr:
        lines.append(f"training data: variant={tr.get('variant')} scenario={tr.get('scenario')} "
                     f"method={tr.get('method')}; co-assay cells {tr.get('coassay_cells')}")
        for key in ("single_rna_cells_per_dataset", "single_atac_cells_per_dataset"):
            if tr.get(key):
                lines.append(f"  {key.replace('_', ' ')}: {tr[key]}")
        lines.append(f"  VAEs trained on {tr.get('vae_training_cells')}; translators on "
                     f"{tr.get('translator_training_cells')}")
    vs = card.get("validation_scores")
    if vs:
        lines.append("validation scores (translation NLL per cell, FOSCTTM; lower is better): "
                     + ", ".join(f"{k}={v:.4g}" for k, v in vs.items()))
    sel = card.get("selection") or {}
    if sel.get("all"):
        crit = sel.get("criteria") or {}
        lines.append(f"selection: {crit.get('point', sel.get('criterion', ''))}")
        for task, pick in (sel.get("per_task") or {}).items():
            lines.append(f"  workflow's {task} predictions: {pick['point']} ({crit.get(task, pick.get('score'))})")
        for p, s in sorted(sel["all"].items()):
            mark = "*" if p == card.get("point") else " "
            lines.append(f"  {mark} {p}: " + ", ".join(f"{k}={v:.4g}" for k, v in s.items()))
    dr = card.get("depth_regressor")
    if dr:
        lines.append(f"ATAC depth regressor: ridge alpha={dr.get('alpha')}, train R^2={dr.get('train_r2', float('nan')):.3f}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- train


def _load_train_config(path) -> dict:
    """The authors' defaults, overlaid by a workflow config's ``polarbear:`` grid/vae/translator/
    ridge_alphas/selection (nested keys merged one by one)."""
    if not path:
        return deep_merge(TRAIN_DEFAULTS, {})
    import yaml

    user = yaml.safe_load(Path(path).read_text()) or {}
    pb = user.get("polarbear", user)
    return deep_merge(TRAIN_DEFAULTS, polarbear_settings(pb))


def _with_split(coassay_rna, coassay_atac, scenario, seed, workdir, logger):
    """Use the files as they are if they have ``split_<scenario>``; else add a random 60/20/20 split."""
    import anndata as ad

    from .splits import random_split

    col = f"split_{scenario}"
    rna = ad.read_h5ad(coassay_rna, backed="r")
    has = col in rna.obs
    n = rna.n_obs
    rna.file.close()
    if has:
        return coassay_rna, coassay_atac
    if scenario != "random":
        raise InputFormatError(coassay_rna, f"obs has no {col!r} column (only a 'random' split can be made here)")
    logger.info("%s has no %r column: adding a seeded random 60/20/20 split", coassay_rna, col)
    split = random_split(n, (0.6, 0.2, 0.2), seed)
    out = []
    for p, name in ((coassay_rna, "coassay_rna.h5ad"), (coassay_atac, "coassay_atac.h5ad")):
        a = ad.read_h5ad(p)
        a.obs[col] = pd.Categorical(split, categories=["train", "val", "test"])
        write_h5ad(a, Path(workdir) / name)
        out.append(Path(workdir) / name)
    return tuple(out)


def train_model(coassay_rna, coassay_atac, out_dir, *, single_rna=None, single_atac=None, scenario="random",
                latents: Sequence[int] | None = None, betas: Sequence[float] | None = None, config=None,
                vae_max_epochs=None, translator_max_epochs=None, seed: int = 0, workdir=None, threads: int = 1,
                logger=None) -> Path:
    """Grid-train Polarbear with the workflow's stage functions, select on validation, export.

    Grid points are trained under ``workdir`` (default ``<out_dir>.work``) exactly like the workflow's
    ``results/models/.../grid/<point>/`` (resumable: finished files are reused).
    """
    from . import polarbear as pb
    from .export import export_polarbear

    log = logger or get_logger()
    cfg = _load_train_config(config)
    latents = list(latents or cfg["grid"]["latent"])
    betas = list(betas if betas is not None else cfg["grid"]["beta"])
    if vae_max_epochs:
        cfg["vae"]["max_epochs"] = int(vae_max_epochs)
    if translator_max_epochs:
        cfg["translator"]["max_epochs"] = int(translator_max_epochs)
    if (single_rna is None) != (single_atac is None):
        raise CLIError("give both --single-rna and --single-atac (semi-supervised Polarbear) or neither "
                       "(co-assay-only model)")
    method = "polarbear" if single_rna is not None else "polarbear_coassay"
    workdir = Path(workdir) if workdir else Path(str(out_dir).rstrip("/") + ".work")
    mdir = workdir / method
    mdir.mkdir(parents=True, exist_ok=True)
    coassay_rna, coassay_atac = _with_split(coassay_rna, coassay_atac, scenario, seed, workdir, log)
    points = grid_points({"latent": latents, "beta": betas})
    log.info("training %s on %d grid point(s): %s", method, len(points), points)
    score_files = {}
    for point in points:
        g = mdir / "grid" / point
        g.mkdir(parents=True, exist_ok=True)
        for modality, co, single in (("rna", coassay_rna, single_rna), ("atac", coassay_atac, single_atac)):
            pt = g / f"vae_{modality}.pt"
            if not (pt.is_file() and pt.with_suffix(".json").is_file()):
                pb.pretrain_vae(modality, co, single, scenario, method, point, cfg["vae"], seed, pt,
                                threads=threads, logger=log)
        scores = g / "scores.json"
        if not scores.is_file():
            pb.train_translators(g / "vae_rna.pt", g / "vae_atac.pt", coassay_rna, coassay_atac, scenario,
                                 cfg["translator"], seed, g / "translator_rna_to_atac.pt",
                                 g / "translator_atac_to_rna.pt", scores, threads=threads, logger=log,
                                 ridge_alphas=cfg["ridge_alphas"])
        score_files[point] = scores
    sel = pb.select_polarbear(score_files, mdir / "selected.json", cfg.get("selection"))
    log.info("selected %s (validation %s)", sel["point"], sel["val_scores"])
    return export_polarbear(mdir, coassay_rna, coassay_atac, scenario, out_dir, ridge_alphas=cfg["ridge_alphas"],
                            method=method, single_rna=single_rna, single_atac=single_atac, logger=log)


# ----------------------------------------------------------------------------- argparse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="polarbear", description="\n\n".join(__doc__.split("\n\n")[:2]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model from processed co-assay (+ single-assay) h5ad files")
    t.add_argument("--coassay-rna", required=True, help="co-assay RNA h5ad (processed-data contract)")
    t.add_argument("--coassay-atac", required=True, help="co-assay ATAC h5ad, same cells in the same order")
    t.add_argument("--single-rna", help="single-assay RNA h5ad (same genes); with --single-atac")
    t.add_argument("--single-atac", help="single-assay ATAC h5ad (same peaks); with --single-rna")
    t.add_argument("--out", required=True, help="model directory to write")
    t.add_argument("--scenario", default="random",
                   help="split column split_<scenario> (default random; added 60/20/20 if missing)")
    t.add_argument("--latent", type=int, nargs="+", help="latent sizes to try (default 10 25 50)")
    t.add_argument("--beta", type=float, nargs="+", help="KL weights to try (default 0 0.5 1 2)")
    t.add_argument("--config", help="workflow config.yaml: use its polarbear: grid/vae/translator/ridge_alphas")
    t.add_argument("--vae-max-epochs", type=int)
    t.add_argument("--translator-max-epochs", type=int)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--workdir", help="grid-point training directory (default <out>.work; reruns resume)")

    def common_input(sp_):
        sp_.add_argument("--model", required=True, help="model directory (polarbear train / export_model rule)")
        sp_.add_argument("--max-missing-frac", type=float, default=DEFAULT_MAX_MISSING_FRAC,
                         help="refuse inputs missing more than this fraction of the model's features "
                              "(default %(default)s); missing ones are filled with zeros")
        sp_.add_argument("--batch-key", default="batch", help="obs column with batch labels (default batch)")

    tr = sub.add_parser("translate", help="predict the other modality of the cells of an h5ad file")
    common_input(tr)
    tr.add_argument("--input", required=True, help="h5ad with raw counts (RNA) or peak counts (ATAC)")
    tr.add_argument("--output", required=True, help="h5ad to write (features of the other modality)")
    tr.add_argument("--direction", choices=sorted(DIRECTIONS), help="default: detected from the feature names")
    tr.add_argument("--batch", help="batch for cells whose label is not a model batch (default: co-assay batch)")
    tr.add_argument("--target-batch", help="batch to decode the prediction in (default: co-assay batch)")
    tr.add_argument("--chunk-cells", type=int, default=512,
                    help="cells decoded and written at a time (bounds memory; default 512)")

    al = sub.add_parser("align", help="match cells of an RNA and an ATAC h5ad by latent distance")
    common_input(al)
    al.add_argument("--rna", required=True)
    al.add_argument("--atac", required=True)
    al.add_argument("--output", required=True, help="pairs TSV; a <output stem>.summary.json is written too")
    al.add_argument("--truth", default="auto",
                    help="'auto' (default: same cell names = same cell), 'obs_names', an obs column in both "
                         "files, or 'none'")
    al.add_argument("--rna-batch")
    al.add_argument("--atac-batch")

    i = sub.add_parser("info", help="print the model card")
    i.add_argument("--model", required=True)
    i.add_argument("--json", action="store_true", help="print model.json (without the feature lists)")
    i.add_argument("--features", type=int, default=5, help="feature names to show per modality")
    return p


def _summary_path(output) -> Path:
    out = Path(output)
    stem = out.name[:-3] if out.name.endswith(".gz") else out.name
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    return out.with_name(stem + ".summary.json")


def _refuse_overwriting_inputs(outputs, inputs) -> None:
    """CLIError if an output path is (or would replace) one of the inputs or lies inside the model
    directory."""
    ins = [Path(p).resolve() for p in inputs]
    for out in map(lambda p: Path(p).resolve(), outputs):
        for src in ins:
            if out == src or src in out.parents:
                raise CLIError(f"output {out} would overwrite the input {src}; choose another --output")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0.0 <= getattr(args, "max_missing_frac", 0.0) <= 1.0:
        parser.error("--max-missing-frac must be between 0 and 1")
    log = get_logger()
    log.setLevel(logging.WARNING if args.quiet else logging.INFO)
    try:
        if args.command == "info":
            card = read_card(args.model)
            if args.json:
                slim = json.loads(json.dumps(card))
                for m in slim.get("features", {}).values():
                    m.pop("names", None)
                print(json.dumps(slim, indent=2, sort_keys=True))
            else:
                print(card_text(card, args.features))
        elif args.command == "translate":
            _refuse_overwriting_inputs([args.output], [args.input, args.model])
            model = PolarbearModel.load(args.model)
            adata = read_input(args.input, "input")
            with timed(log, f"translate {adata.n_obs} cells"):
                direction, shape = translate_to_file(
                    model, adata, args.output, args.direction, chunk_cells=args.chunk_cells,
                    batch_key=args.batch_key, batch=args.batch, target_batch=args.target_batch,
                    max_missing_frac=args.max_missing_frac, path=args.input, logger=log)
            log.info("wrote %s (%s, %d cells x %d features)", args.output, direction, *shape)
        elif args.command == "align":
            _refuse_overwriting_inputs([args.output, _summary_path(args.output)], [args.rna, args.atac, args.model])
            model = PolarbearModel.load(args.model)
            rna, atac = read_input(args.rna, "RNA"), read_input(args.atac, "ATAC")
            truth = None if str(args.truth).lower() == "none" else args.truth
            with timed(log, f"align {rna.n_obs} RNA and {atac.n_obs} ATAC cells"):
                pairs, summary = align_adatas(model, rna, atac, truth=truth, batch_key=args.batch_key,
                                              rna_batch=args.rna_batch, atac_batch=args.atac_batch,
                                              max_missing_frac=args.max_missing_frac, paths=(args.rna, args.atac),
                                              logger=log)
            write_tsv(pairs, args.output)
            write_json(summary | {"model": str(args.model), "pairs": str(args.output)}, _summary_path(args.output))
            if "foscttm_mean" in summary:
                log.info("FOSCTTM: RNA query %.4f, ATAC query %.4f (random: 0.5)", summary["foscttm_rna_query"],
                         summary["foscttm_atac_query"])
            log.info("wrote %s and %s", args.output, _summary_path(args.output))
        elif args.command == "train":
            out = train_model(args.coassay_rna, args.coassay_atac, args.out, single_rna=args.single_rna,
                              single_atac=args.single_atac, scenario=args.scenario, latents=args.latent,
                              betas=args.beta, config=args.config, vae_max_epochs=args.vae_max_epochs,
                              translator_max_epochs=args.translator_max_epochs, seed=args.seed,
                              workdir=args.workdir, threads=args.threads, logger=log)
            log.info("wrote model directory %s", out)
    except (InputFormatError, CLIError) as e:
        print(f"polarbear {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
