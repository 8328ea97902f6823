"""Size factors (workflow_lib.normalize): pooled deconvolution (definition v1) and scran's
(definition "paper"), cleaning of non-positive factors, log-normalisation."""

import numpy as np
import pytest
import scipy.sparse as sp

from workflow_lib.normalize import (clean_size_factors, guess_min_mean, limit_cluster_size, log_normalize,
                                    pooled_size_factors, ring_order, scran_size_factors)


# --------------------------------------------------------------------------------------------
# deconvolution size factors
# --------------------------------------------------------------------------------------------
def test_ring_order_alternates():
    lib = np.array([5.0, 1.0, 4.0, 2.0, 3.0])
    assert list(lib[ring_order(lib)]) == [1.0, 3.0, 5.0, 4.0, 2.0]


def test_pooled_size_factors_exact_on_noiseless_data_with_composition_bias():
    rng = np.random.default_rng(5)
    n_per, g = 120, 200
    lam_a = rng.gamma(2.0, 1.0, g)
    lam_b = lam_a.copy()
    lam_b[:30] *= 20.0                       # 15% strongly up-regulated genes in type B
    theta = rng.lognormal(0, 0.5, 2 * n_per)
    X = np.vstack([np.outer(theta[:n_per], lam_a), np.outer(theta[n_per:], lam_b)])
    labels = np.array(["A"] * n_per + ["B"] * n_per)
    sf, info = pooled_size_factors(sp.csr_matrix(X), labels, min_mean=0.0)
    np.testing.assert_allclose(sf, theta / theta.mean(), rtol=1e-6)
    assert info["library_fallback_clusters"] == []
    lib = X.sum(1) / X.sum(1).mean()
    # library-size factors are biased by composition; deconvolution is not
    assert np.abs(lib / (theta / theta.mean()) - 1).max() > 0.3


def test_pooled_size_factors_noisy_counts_and_small_cluster_fallback():
    rng = np.random.default_rng(6)
    g = 300
    lam = rng.gamma(1.0, 2.0, g)
    theta = rng.lognormal(0, 0.4, 400)
    X = rng.poisson(np.outer(theta, lam)).astype(float)
    labels = np.array(["big"] * 390 + ["tiny"] * 10)
    sf, info = pooled_size_factors(sp.csr_matrix(X), labels)
    assert info["library_fallback_clusters"] == ["tiny"]
    assert np.corrcoef(sf, theta)[0, 1] > 0.97
    assert sf.mean() == pytest.approx(1.0)
    # zero-count cell -> NaN factor, zero normalised row
    X[0] = 0
    sf, _ = pooled_size_factors(sp.csr_matrix(X), labels)
    assert np.isnan(sf[0]) and np.isfinite(sf[1:]).all()
    L = log_normalize(sp.csr_matrix(X), sf)
    assert L[0].nnz == 0
    np.testing.assert_allclose(L[1].toarray().ravel(), np.log1p(X[1] / sf[1]))


# --------------------------------------------------------------------------------------------
# scran-style size factors (definition "paper")
# --------------------------------------------------------------------------------------------
def test_limit_cluster_size_splits_round_robin_like_scran():
    assert list(limit_cluster_size(np.zeros(7, int), 3)) == [0, 1, 2, 0, 1, 2, 0]
    assert list(limit_cluster_size(np.zeros(6, int), 3)) == [0, 1, 0, 1, 0, 1]
    assert list(limit_cluster_size(np.zeros(6, int), 6)) == [0, 0, 0, 0, 0, 0]
    # clusters numbered in order of appearance; only the big one is split
    assert list(limit_cluster_size(np.array([1, 1, 0, 0, 1, 1, 1]), 2)) == [0, 1, 3, 3, 2, 0, 1]
    assert guess_min_mean([1000, 3000]) == 0.1 and guess_min_mean([2e5, 3e5]) == 1.0
    assert guess_min_mean([7e4, 8e4]) == 0.1


def test_scran_size_factors_exact_on_noiseless_data_split_into_groups():
    rng = np.random.default_rng(13)
    theta = rng.lognormal(0, 0.5, 250)
    lam = rng.gamma(2.0, 1.0, 150)
    X = sp.csr_matrix(np.outer(theta, lam))
    sf, info = scran_size_factors(X, max_cluster_size=100, min_mean=0.0)
    assert info["n_groups"] == 3 and info["group_sizes"] == [84, 83, 83]
    assert info["pool_sizes"] == list(range(21, 102, 5))
    np.testing.assert_allclose(sf, theta / theta.mean(), rtol=1e-8)


def test_scran_size_factors_noisy_zero_cells_and_no_cell_types():
    rng = np.random.default_rng(14)
    lam_a = rng.gamma(1.0, 2.0, 300)
    lam_b = lam_a.copy()
    lam_b[:40] *= 15.0                      # composition bias of type B
    theta = rng.lognormal(0, 0.4, 400)
    X = rng.poisson(theta[:, None] * np.where(np.arange(400)[:, None] < 200, lam_a, lam_b)).astype(float)
    X[5] = 0
    sf, info = scran_size_factors(sp.csr_matrix(X))
    assert np.isnan(sf[5]) and info["n_zero_count_cells"] == 1
    ok = np.isfinite(sf)
    assert sf[ok].mean() == pytest.approx(1.0) and (sf[ok] > 0).all()
    assert np.corrcoef(sf[ok], theta[ok])[0, 1] > 0.97
    # deconvolution, not library size: the composition bias of type B is (mostly) removed
    typ = np.arange(400) >= 200
    lib = X.sum(1) / X[ok].sum(1).mean()

    def ratio(s):   # type-B over type-A bias of a factor relative to the truth
        return np.median(s[ok & typ] / theta[ok & typ]) / np.median(s[ok & ~typ] / theta[ok & ~typ])
    assert abs(ratio(sf) - 1) < 0.1 < abs(ratio(lib) - 1)


def test_clean_size_factors_replaces_non_positive_values():
    rng = np.random.default_rng(15)
    sf = rng.lognormal(0, 0.5, 200)
    detected = 2000 * sf / (1 + 0.5 * sf) * rng.lognormal(0, 0.05, 200)
    sf_bad = sf.copy()
    sf_bad[[3, 7]] = [-0.2, 0.0]
    out = clean_size_factors(sf_bad, detected)
    assert (out > 0).all()
    np.testing.assert_array_equal(np.delete(out, [3, 7]), np.delete(sf_bad, [3, 7]))
    np.testing.assert_allclose(out[[3, 7]], sf[[3, 7]], rtol=0.2)
