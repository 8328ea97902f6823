"""The ATAC depth regressor (workflow_lib/depth_regressor.py): one implementation for Polarbear
and the baselines, stored as plain arrays/tensors."""

import numpy as np
import torch
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from workflow_lib.depth_regressor import fit_depth_ridge, predict_log_depth

ALPHAS = [0.01, 0.1, 1, 10, 100]


def _data(seed=0, n=200, k=6):
    rng = np.random.default_rng(seed)
    F = rng.normal(size=(n, k)) * rng.uniform(0.1, 10, k) + rng.normal(size=k)
    y = F @ rng.normal(size=k) * 0.1 + rng.normal(scale=0.3, size=n)
    return F, y


def test_standard_scaler_path_equals_sklearns_pipeline():
    F, y = _data()
    reg = fit_depth_ridge(F[:150], y[:150], ALPHAS)
    ref = make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHAS)).fit(F[:150], y[:150])
    np.testing.assert_allclose(predict_log_depth(reg, F[150:]), ref.predict(F[150:]), rtol=0, atol=1e-12)
    assert float(reg["alpha"]) == ref[-1].alpha_
    # stored as tensors (a model directory) the predictions are the same
    as_tensors = {k: torch.as_tensor(v) for k, v in reg.items()}
    np.testing.assert_array_equal(predict_log_depth(as_tensors, F[150:]), predict_log_depth(reg, F[150:]))


def test_baseline_path_standardises_with_std_plus_eps():
    F, y = _data(1)
    F[:, 0] = 3.0  # a constant feature: scale = eps, its standardised column is 0
    reg = fit_depth_ridge(F, y, ALPHAS, std_eps=1e-8)
    np.testing.assert_allclose(reg["scale"], F.std(0) + 1e-8)
    Z = (F - F.mean(0)) / (F.std(0) + 1e-8)
    ref = RidgeCV(alphas=ALPHAS).fit(Z, y)
    np.testing.assert_allclose(predict_log_depth(reg, F), ref.predict(Z), rtol=0, atol=1e-12)
