"""The ATAC depth regressor: ridge regression of a cell's log ATAC depth factor on features of its
RNA profile (the paper's Section 2.4; the authors regress with sklearn's RidgeCV). Torch-free.

One implementation for Polarbear (features: log RNA library size and the RNA latent mean) and the
kNN / ridge baselines (log library size, log detected genes and RNA PCs). A model
directory stores it without pickle: a dict of float64 arrays (``mean``, ``scale``, ``coef``,
``intercept``, ``alpha``), which :mod:`workflow_lib.model_dir` saves as tensors; prediction accepts
either.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np


def fit_depth_ridge(features, log_depth, alphas, std_eps: float | None = None) -> dict[str, np.ndarray]:
    """RidgeCV (efficient leave-one-out CV over ``alphas``) on standardised features.

    Standardisation: sklearn's StandardScaler (``std_eps=None``; constant features get scale 1) or
    the features' mean and standard deviation plus ``std_eps`` (the baselines' rule).
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.preprocessing import StandardScaler

    F = np.asarray(features, dtype=np.float64)
    if std_eps is None:
        scaler = StandardScaler().fit(F)
        mean, scale = scaler.mean_, scaler.scale_
        Z = scaler.transform(F)
    else:
        mean, scale = F.mean(0), F.std(0) + float(std_eps)
        Z = (F - mean) / scale
    ridge = RidgeCV(alphas=list(alphas)).fit(Z, np.asarray(log_depth, dtype=np.float64))
    return {
        "mean": np.asarray(mean, dtype=np.float64),
        "scale": np.asarray(scale, dtype=np.float64),
        "coef": np.asarray(ridge.coef_, dtype=np.float64).ravel(),
        "intercept": np.asarray(ridge.intercept_, dtype=np.float64).reshape(()),
        "alpha": np.asarray(ridge.alpha_, dtype=np.float64).reshape(()),
    }


def predict_log_depth(tensors: Mapping, features) -> np.ndarray:
    """Apply a fitted regressor: standardise, then linear, in float64 (the operations and order of
    sklearn's StandardScaler.transform + Ridge.predict, so the values are the same)."""
    X = np.array(features, dtype=np.float64)
    X -= np.asarray(tensors["mean"], dtype=np.float64)
    X /= np.asarray(tensors["scale"], dtype=np.float64)
    return X @ np.asarray(tensors["coef"], dtype=np.float64) + float(tensors["intercept"])
