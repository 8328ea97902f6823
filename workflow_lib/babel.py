"""Stage functions of the BABEL baseline and the simple baselines (rules/babel.smk, called by its scripts).

BABEL is trained on the co-assay TRAIN cells of a scenario, with the VAL cells for early stopping
(full variant). One model per grid point (latent dimension x ATAC loss weight). Selection on the
validation cells, per task, "based on each task's performance on the validation set" (the paper),
with the statistics Polarbear's selection uses (:func:`workflow_lib.metrics.translation_task_statistics`):

* ``atac_to_rna``: highest val gene-wise correlation of the ATAC->RNA prediction (``rna_cor``);
* ``rna_to_atac``: highest val peak-wise AUROC of the RNA->ATAC prediction (``atac_auroc``);
* ``latent``: lowest val FOSCTTM between the RNA and ATAC codes of the same cells (mean of both
  directions) -- the alignment task the latent file is evaluated on;
* until 2026-12-03 the translation tasks were picked by the lowest val loss of their path (RNA NB
  NLL, ATAC BCE; still recorded in ``val_scores``);
* ``point`` in selected.json (the overall pick) = lowest joint validation loss. Since the joint loss
  includes ``weight``, it is only comparable across points of equal weight; it is recorded for
  completeness and the three per-task picks are what the predictions use.

Architectures (``babel.architecture``, see models/babel.py and babel_settings.py): ``authors``
(:class:`BabelAuthorsModel`, the default) or ``compact`` (:class:`BabelModel`). For ``authors`` the
RNA input statistics (median library, per-gene mean/SD, clip range) come from the TRAIN cells
(``rna_input_stats: train``, ours: nothing of the val/test cells is used for training) or, as in
the authors' code, from all co-assay cells (``all``); they are stored in the model's state_dict.

Files of a grid point (``models/{v}/{s}/babel/grid/<point>/``): ``model.pt`` (a plain state_dict,
loadable with ``torch.load(..., weights_only=True)``), ``config.json`` (architecture, constructor
kwargs, hyper-parameters, fit summary, validation scores). A resumable checkpoint ``checkpoint.pt``
lives there while training and is removed on success. A config.json without ``architecture``
(written before the option existed) is a compact model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from .data import SparseCellLoader
from .sparse import row_nnz
from .fileutils import InputFormatError, get_logger, timed, write_json
from .grid import best_point, select_per_task
from .metrics import (TASK_STATISTICS_HIGHER_IS_BETTER, TRANSLATION_TASK_STATISTIC, foscttm_both,
                      translation_task_statistics)
from .models.babel import (ARCHITECTURE_CLASSES, ARCHITECTURES, BabelAuthorsModel, BabelModel, TrainedBabel,
                           rna_input_stats)
from .models.chromsplit import chrom_block_sizes
from .predictions import (build_prediction_adatas, load_coassay, prediction_paths, rest_rows,
                          write_predictions)
from .train import FitConfig, fit, fit_summary, get_device, set_seed

TASKS = ("atac_to_rna", "rna_to_atac", "latent")
TASK_SCORE = {**TRANSLATION_TASK_STATISTIC, "latent": "foscttm"}
HIGHER_IS_BETTER = TASK_STATISTICS_HIGHER_IS_BETTER
RNA_INPUT_STATS = ("train", "all")


# --------------------------------------------------------------------------------------------
# helpers


class PairedLoader:
    """Minibatches of paired co-assay cells: RNA counts ``x`` and binary ATAC ``y`` (same rows).

    Wraps a :class:`SparseCellLoader` over the RNA matrix; the ATAC rows of each batch are
    densified from CSR by the batch's row ids (never the whole matrix). Batches with fewer than
    ``min_batch`` cells are skipped (``min_batch=2`` for BatchNorm in training mode, which cannot
    normalise a batch of one cell -- only a last, partial batch can be that small).
    """

    def __init__(self, X_rna, Y_atac, rows, batch_size, shuffle, seed, device="cpu", min_batch: int = 1):
        self.inner = SparseCellLoader(X_rna, rows, batch_size, shuffle, seed, device=device)
        self.Y = Y_atac.tocsr()
        self.device = torch.device(device)
        self.min_batch = int(min_batch)

    def set_epoch(self, epoch: int) -> None:
        self.inner.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.inner)

    def __iter__(self):
        for batch in self.inner:
            if batch["x"].shape[0] < self.min_batch:
                continue
            idx = batch["idx"].cpu().numpy()
            y = self.Y[idx].toarray()
            batch["y"] = torch.from_numpy((y > 0).astype(np.float32)).to(self.device)
            yield batch


@torch.no_grad()
def _run(model, X_rna, Y_atac, rows, batch_size, device, fn) -> list:
    model.eval()
    loader = PairedLoader(X_rna, Y_atac, rows, batch_size, shuffle=False, seed=0, device=device)
    return [fn(b["x"], b["y"]) for b in loader]


@torch.no_grad()
def validation_scores(model, X_rna, Y_atac, rows, batch_size=256, device="cpu") -> dict:
    """Per-path mean losses and FOSCTTM of the codes on ``rows`` (the val cells)."""
    parts = _run(model, X_rna, Y_atac, rows, batch_size, device,
                 lambda x, y: {k: v.sum().item() for k, v in model.path_losses(x, y).items()}
                 | {"z_r": model.encode_rna(x).cpu().numpy(), "z_a": model.encode_atac(y).cpu().numpy()})
    n = len(rows)
    sums = {k: sum(p[k] for p in parts) / n for k in ("rna_rna", "atac_rna", "atac_atac", "rna_atac")}
    z_r = np.concatenate([p["z_r"] for p in parts])
    z_a = np.concatenate([p["z_a"] for p in parts])
    return {
        "rna_rna_nll": sums["rna_rna"], "atac_rna_nll": sums["atac_rna"],
        "atac_atac_bce": sums["atac_atac"], "rna_atac_bce": sums["rna_atac"],
        "foscttm": foscttm_both(z_r, z_a), "n_cells": n,
    }


_SIZE_DEFAULTS = {"rna_hidden": 64, "chrom_hidden": [32, 16]}


def build_model(rna_var, atac_var, n_latent: int, size_scale: float, architecture: str = "authors",
                model_params: dict | None = None) -> tuple[BabelModel | BabelAuthorsModel, dict]:
    """A fresh model and its constructor kwargs (``model_params``: ``rna_hidden``, ``chrom_hidden``)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, not {architecture!r}")
    kwargs = {"n_genes": int(len(rna_var)), "atac_chrom_sizes": chrom_block_sizes(atac_var["chrom"].astype(str)),
              "n_latent": int(n_latent), "size_scale": float(size_scale)}
    mp = model_params or {}
    sizes = {"rna_hidden": int(mp.get("rna_hidden", 64)),
             "chrom_hidden": [int(h) for h in mp.get("chrom_hidden", (32, 16))]}
    if architecture == "authors":
        kwargs.update(sizes)
    else:  # compact: kwargs as before the option existed unless the sizes are changed
        kwargs.update({k: v for k, v in sizes.items() if v != _SIZE_DEFAULTS[k]})
    return ARCHITECTURE_CLASSES[architecture](**kwargs), kwargs


# --------------------------------------------------------------------------------------------
# stage: train one grid point


def train_babel_point(rna_path, atac_path, scenario: str, point: str, n_latent: int, weight: float,
                      fit_params: dict, model_path, config_path, seed: int = 0, threads: int = 1,
                      log_path=None, logger: logging.Logger | None = None, architecture: str = "authors",
                      model_params: dict | None = None) -> dict:
    """Train BABEL at one grid point on the scenario's train cells (val cells: early stopping).

    ``fit_params``: FitConfig params (babel_settings ``fit``); ``model_params``: ``rna_hidden``,
    ``chrom_hidden``, ``rna_input_stats`` (babel_settings ``model``).
    Writes ``model_path`` (state_dict) and ``config_path`` (JSON: architecture, kwargs, params,
    fit summary, val_scores). Returns the config dict.
    """
    log = logger or get_logger(log_path)
    torch.set_num_threads(max(1, int(threads)))
    device = get_device()
    with timed(log, f"load co-assay data ({scenario})"):
        data = load_coassay(rna_path, atac_path, scenario)
    if data.val.size == 0:
        raise InputFormatError(rna_path, f"no 'val' cells in split_{scenario}: BABEL needs them for early stopping")
    X, Y = data.rna_X, data.atac_X
    log.info("BABEL (%s) %s: latent %d, weight %g; train %d / val %d cells; %d genes, %d peaks; device %s",
             architecture, point, n_latent, weight, len(data.train), len(data.val), X.shape[1], Y.shape[1], device)
    model_params = dict(model_params or {})
    stats_cells = model_params.get("rna_input_stats", "train")
    if stats_cells not in RNA_INPUT_STATS:
        raise ValueError(f"rna_input_stats must be one of {RNA_INPUT_STATS}, not {stats_cells!r}")
    mean_atac_depth = float(row_nnz(Y[data.train]).mean())
    stats = None
    if architecture == "authors":
        rows = data.train if stats_cells == "train" else np.arange(X.shape[0])
        stats = rna_input_stats(X, rows)
        size_scale = stats["size_scale"]
        log.info("RNA input statistics from %s cells (%d): median library %g, clip [%.3f, %.3f]", stats_cells,
                 len(rows), size_scale, *stats["clip"])
    else:
        lib_train = np.asarray(X[data.train].sum(axis=1)).ravel()
        size_scale = float(np.median(np.maximum(lib_train, 1.0)))
    set_seed(seed)
    model, kwargs = build_model(data.rna.var, data.atac.var, n_latent, size_scale, architecture, model_params)
    if stats is not None:
        model.set_rna_stats(stats["size_scale"], stats["mean"], stats["std"], stats["clip"])
    model.to(device)
    cfg = FitConfig.from_params(fit_params, seed=seed)
    train_loader = PairedLoader(X, Y, data.train, cfg.batch_size, shuffle=True, seed=seed, device=device,
                                min_batch=2 if architecture == "authors" else 1)
    val_loader = PairedLoader(X, Y, data.val, max(cfg.batch_size, 256), shuffle=False, seed=seed, device=device)
    w = float(weight)

    def loss_fn(m, batch, epoch):
        return m.loss(batch["x"], batch["y"], w)

    ckpt = Path(model_path).with_name("checkpoint.pt")
    fingerprint = {"kwargs": kwargs, "weight": w, "n_train": int(len(data.train)), "n_val": int(len(data.val)),
                   "scenario": scenario}
    if architecture != "compact":  # (compact: the fingerprint of checkpoints written before the option)
        fingerprint.update(architecture=architecture, rna_input_stats=stats_cells)
    with timed(log, "fit"):
        res = fit(model, loss_fn, train_loader, val_loader, cfg, ckpt, log, fingerprint=fingerprint)
    with timed(log, "validation scores"):
        scores = validation_scores(model, X, Y, data.val, device=device)
        trained = TrainedBabel(model, {"mean_atac_depth_train": mean_atac_depth}, device)
        scores |= translation_task_statistics(X[data.val], trained.predict_rna(Y[data.val]), Y[data.val],
                                              trained.predict_atac(X[data.val])[0])
    scores["joint_loss"] = float(res["best_val_loss"])
    log.info("val scores: %s", scores)
    out = {
        "method": "babel", "point": point, "architecture": architecture,
        "class": f"workflow_lib.models.babel.{type(model).__name__}", "kwargs": kwargs,
        "model_params": model_params,
        "params": {"latent": int(n_latent), "weight": w}, "fit_params": dict(fit_params), "seed": int(seed),
        "scenario": scenario, "mean_atac_depth_train": mean_atac_depth,
        "fit": fit_summary(res) | {"history": res["history"]},
        "val_scores": scores,
    }
    if Path(model_path).name != "model.pt" or Path(config_path) != Path(model_path).with_name("config.json"):
        raise ValueError(f"a BABEL grid point is <dir>/model.pt + <dir>/config.json, not {model_path}, {config_path}")
    TrainedBabel(model, out, device).save(Path(model_path).parent)
    ckpt.unlink(missing_ok=True)
    return out


# --------------------------------------------------------------------------------------------
# stage: select


def select_babel(config_paths, out_path, log_path=None, logger: logging.Logger | None = None) -> dict:
    """Pick the best grid point per task from the points' config.json val_scores (module docstring)."""
    log = logger or get_logger(log_path)
    configs = {}
    for p in config_paths:
        try:
            c = json.loads(Path(p).read_text())
        except json.JSONDecodeError as e:
            raise InputFormatError(p, f"invalid JSON ({e.msg})", line=e.lineno) from e
        for key in ("point", "params", "val_scores"):
            if key not in c:
                raise InputFormatError(p, f"missing key {key!r}")
        missing = sorted(set(TASK_SCORE.values()) - set(c["val_scores"]))
        if missing:
            raise InputFormatError(p, f"val_scores lacks {missing} (written by an older version: retrain, "
                                      "e.g. snakemake --forcerun train_babel)")
        configs[c["point"]] = c
    if not configs:
        raise ValueError("no BABEL grid points to select from")

    scores = {pt: c["val_scores"] for pt, c in configs.items()}
    per_task = select_per_task(scores, TASK_SCORE, {pt: c["params"] for pt, c in configs.items()},
                               higher_is_better=HIGHER_IS_BETTER)
    for task, pick in per_task.items():
        log.info("%s: %s (%s = %.4f)", task, pick["point"], pick["score"], pick["value"])
    overall = best_point(scores, "joint_loss")
    sel = {
        "point": overall, "params": configs[overall]["params"], "val_scores": configs[overall]["val_scores"],
        "all": scores,
        "per_task": per_task,
        "criteria": {**{t: f"{'max' if s in HIGHER_IS_BETTER else 'min'} val {s}" for t, s in TASK_SCORE.items()},
                     "point": "min val joint_loss"},
    }
    write_json(sel, out_path)
    return sel


# --------------------------------------------------------------------------------------------
# stage: predict


def predict_babel(rna_path, atac_path, scenario: str, selected_path, grid_dir, outputs, threads: int = 1,
                  log_path=None, logger: logging.Logger | None = None) -> None:
    """Write BABEL's TEST-cell predictions, each task from its selected grid point.

    atac_to_rna_rest (the non-test cells' ATAC->RNA prediction) uses the atac_to_rna point.
    """
    log = logger or get_logger(log_path)
    torch.set_num_threads(max(1, int(threads)))
    device = get_device()
    sel = json.loads(Path(selected_path).read_text())
    data = load_coassay(rna_path, atac_path, scenario)
    X, Y = data.rna_X, data.atac_X
    test, rest = data.test, rest_rows(data)
    points = {task: sel["per_task"][task]["point"] for task in TASKS}
    models = {task: TrainedBabel.load(Path(grid_dir) / pt, device) for task, pt in points.items()}
    with timed(log, f"atac_to_rna from grid point {points['atac_to_rna']}"):
        a2r = models["atac_to_rna"].predict_rna(Y[test])
        a2r_rest = models["atac_to_rna"].predict_rna(Y[rest])
    with timed(log, f"rna_to_atac from grid point {points['rna_to_atac']}"):
        r2a, r2a_norm, _ = models["rna_to_atac"].predict_atac(X[test])
    with timed(log, f"latent from grid point {points['latent']}"):
        latent = models["latent"].align(X[test], None, Y[test], None)
    adatas = build_prediction_adatas(data, test, a2r, r2a, r2a_norm, latent, "babel", points=points,
                                     rest_atac_to_rna=a2r_rest)
    with timed(log, "write predictions"):
        write_predictions(adatas, prediction_paths(outputs))
