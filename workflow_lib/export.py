"""Stage function of rules/export.smk: a trained Polarbear run -> a portable model directory
(:mod:`workflow_lib.model_dir` format) through :class:`workflow_lib.models.polarbear.PolarbearModel`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .fileutils import InputFormatError


def _coassay_batch(obs: pd.DataFrame) -> str:
    """The (most common) batch label of the co-assay cells: default decoding batch."""
    return str(obs["batch"].astype(str).value_counts().index[0])


def _dataset_counts(path) -> dict[str, int]:
    """Cells per data set of a processed h5ad (obs only; X is not read)."""
    import anndata as ad

    a = ad.read_h5ad(path, backed="r")
    try:
        col = "dataset" if "dataset" in a.obs else "batch"
        return {str(k): int(v) for k, v in a.obs[col].astype(str).value_counts().sort_index().items()}
    finally:
        a.file.close()


def export_polarbear(method_dir, coassay_rna, coassay_atac, scenario: str, out_dir, *,
                     ridge_alphas: Sequence[float], method: str = "polarbear", variant: str | None = None,
                     single_rna=None, single_atac=None, point: str | None = None, logger=None) -> Path:
    """Export the selected (or given) grid point of a trained Polarbear method directory.

    ``method_dir`` is ``{R}/models/{variant}/{scenario}/{method}`` (with ``selected.json`` and
    ``grid/<point>/{vae_rna,vae_atac,translator_rna_to_atac,translator_atac_to_rna}.pt``). The model
    is built by :func:`workflow_lib.polarbear.fitted_grid_point`, exactly as the workflow's predict
    rule builds it (same depth regressor: same features, training cells and alphas).
    """
    from . import polarbear as pb
    from .fileutils import timed

    log = logger or __import__("logging").getLogger("polarbear")
    method_dir = Path(method_dir)
    sel_path = method_dir / "selected.json"
    selected = json.loads(sel_path.read_text()) if sel_path.is_file() else None
    if point is None:
        if selected is None:
            raise InputFormatError(sel_path, "missing: run model selection first or pass a grid point")
        point = selected["point"]
    gdir = method_dir / "grid" / point
    data = pb.read_coassay(coassay_rna, coassay_atac, scenario)
    model, depth = pb.fitted_grid_point(method_dir, point, data, ridge_alphas, logger=log)
    co_rna, co_atac = data.rna, data.atac
    split = co_rna.obs[f"split_{scenario}"].astype(str).to_numpy()
    rna_cfg, atac_cfg = model.vae("rna").config(), model.vae("atac").config()
    training = {
        "variant": variant,
        "scenario": scenario,
        "method": method,
        "coassay_files": {"rna": str(coassay_rna), "atac": str(coassay_atac)},
        "coassay_cells": {s: int((split == s).sum()) for s in ("train", "val", "test")},
        "coassay_cell_types": sorted(map(str, co_rna.obs["cell_type"].astype(str).unique()))
        if "cell_type" in co_rna.obs else [],
        "vae_training_cells": "co-assay train cells" + (" + all single-assay cells" if method == "polarbear" else ""),
        "translator_training_cells": "co-assay train cells",
    }
    for key, path in (("single_rna", single_rna), ("single_atac", single_atac)):
        if path is not None and method == "polarbear":
            training[f"{key}_cells_per_dataset"] = _dataset_counts(path)
    fit_info = {"vae_rna": rna_cfg.get("fit"), "vae_atac": atac_cfg.get("fit")}
    scores_file = gdir / "scores.json"
    if scores_file.is_file():
        fit_info["translators"] = json.loads(scores_file.read_text()).get("fit")
    card = {
        "model": "Polarbear (Zhang et al.): two beta-VAEs (RNA: ZINB, ATAC: depth-aware Bernoulli) "
                 "+ linear latent translators",
        "point": point,
        "hyperparameters": {"latent": int(model.latent["rna"]), "beta": float(rna_cfg.get("beta", np.nan)),
                            "dropout": float(rna_cfg.get("dropout", 0.0)),
                            "rna_hidden": int(rna_cfg["hidden"]), "atac_hidden": int(atac_cfg["hidden"]),
                            "atac_depth_ref": float(atac_cfg["depth_ref"])},
        "selection": ({k: selected[k] for k in ("point", "params", "val_scores", "all", "per_task", "criteria") if k in selected}
                      if selected else None),
        "validation_scores": (selected or {}).get("val_scores") if (selected or {}).get("point") == point else None,
        "training": training,
        "fit": fit_info,
        "default_batch": {"rna": _coassay_batch(co_rna.obs), "atac": _coassay_batch(co_atac.obs)},
        "depth_regressor": {"features": "[log RNA library size, RNA latent mean mu_x]",
                            "target": "log ATAC depth factor (open peaks / atac_depth_ref)",
                            "alpha": depth["alpha"], "train_r2": depth["train_r2"],
                            "alphas": list(map(float, ridge_alphas))},
    }
    with timed(log, f"write model directory {out_dir}"):
        return model.save(out_dir, rna_features=list(co_rna.var_names), atac_features=list(co_atac.var_names),
                          card=card)
