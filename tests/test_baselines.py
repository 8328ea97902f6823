"""Tests of the knn and ridge translation baselines (workflow_lib.baselines)."""

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.metrics import roc_auc_score

from synthetic_coassay import make_coassay, write_coassay
from workflow_lib.baselines import (AtacLSI, RnaPCA, depth_scale, knn_translate, normalize_rows,
                                    ridge_translate, rna_frequencies, run_baseline)
from workflow_lib.fileutils import InputFormatError
from workflow_lib.models.distributions import depth_scaled_prob
from workflow_lib.predictions import LATENT_KEYS, PREDICTION_NAMES

PARAMS = {"knn_k": 10, "knn_n_pcs": 8, "ridge_n_components": 8, "ridge_alphas": [0.1, 1, 10, 100], "seed": 0}


@pytest.fixture(scope="module")
def synth():
    rna, atac, truth = make_coassay(n_cells=300, seed=1)
    split = rna.obs["split_random"].to_numpy()
    return rna, atac, truth, np.flatnonzero(split == "train"), np.flatnonzero(split == "test")


def _outputs(d):
    return [d / f"{k}.h5ad" for k in PREDICTION_NAMES]


def _gene_corr(pred, true):
    return float(np.nanmean([np.corrcoef(pred[:, j], true[:, j])[0, 1] for j in range(true.shape[1])]))


def _peak_auroc(pred, y):
    ok = [j for j in range(y.shape[1]) if 0 < y[:, j].sum() < y.shape[0]]
    return float(np.mean([roc_auc_score(y[:, j], pred[:, j]) for j in ok]))


@pytest.mark.parametrize("method", ["knn", "ridge"])
@pytest.mark.parametrize("scenario", ["random", "unseen"])
def test_run_baseline_writes_valid_predictions(tmp_path, method, scenario):
    rp, ap, _ = write_coassay(tmp_path, seed=2)
    out = _outputs(tmp_path / "pred")
    run_baseline(method, rp, ap, scenario, PARAMS, out, threads=1)
    rna, atac = ad.read_h5ad(rp), ad.read_h5ad(ap)
    test_names = rna.obs_names[rna.obs[f"split_{scenario}"] == "test"]
    a2r, r2a, lat, rest = (ad.read_h5ad(p) for p in out)
    for a in (a2r, r2a, lat):
        assert list(a.obs_names) == list(test_names)
    for a in (a2r, r2a, lat, rest):
        assert a.uns["method"] == method and a.uns["point"] == ""
    assert list(rest.obs_names) == list(rna.obs_names[rna.obs[f"split_{scenario}"] != "test"])
    assert list(rest.var_names) == list(rna.var_names)
    assert rest.X.dtype == np.float32 and not sp.issparse(rest.X) and rest.X.min() >= 0
    np.testing.assert_allclose(rest.X.sum(1), 1.0, atol=1e-4)
    assert list(a2r.var_names) == list(rna.var_names) and list(r2a.var_names) == list(atac.var_names)
    assert a2r.X.dtype == np.float32 and not sp.issparse(a2r.X)
    np.testing.assert_allclose(a2r.X.sum(1), 1.0, atol=1e-4)
    assert a2r.X.min() >= 0
    for m in (r2a.X, r2a.layers["norm"]):
        assert m.min() >= 0 and m.max() <= 1
    assert lat.n_vars == 0 and set(LATENT_KEYS) <= set(lat.obsm)
    assert lat.obsm["rna_query"].shape == lat.obsm["atac_reference"].shape
    assert lat.obsm["atac_query"].shape == lat.obsm["rna_reference"].shape


@pytest.mark.parametrize("fn", [knn_translate, ridge_translate])
def test_baselines_recover_planted_relation_better_than_shuffled(synth, fn):
    rna, atac, truth, train, test = synth
    kw = {"n_components": 8, "alphas": [0.1, 1, 10, 100]} | ({"k": 10} if fn is knn_translate else {})
    res = fn(rna.X, atac.X, train, test, **kw)
    # break the pairing of the training cells: RNA of one cell, ATAC of another
    perm = np.arange(rna.n_obs)
    perm[train] = np.random.default_rng(0).permutation(train)
    shuf = fn(rna.X[perm], atac.X, train, test, **kw)
    true_freq, y = truth["freq"][test], atac.X[test].toarray()
    assert _gene_corr(res["atac_to_rna"], true_freq) > _gene_corr(shuf["atac_to_rna"], true_freq) + 0.3
    assert _peak_auroc(res["rna_to_atac"], y) > max(0.7, _peak_auroc(shuf["rna_to_atac"], y) + 0.1)
    # the latent matches cells: the true partner is much closer than a random cell
    lat = res["latent"]
    d = ((lat["rna_query"][:, None] - lat["atac_reference"][None]) ** 2).sum(-1)
    foscttm = np.mean((d < np.diag(d)[:, None]).sum(1) / (len(test) - 1))
    assert foscttm < 0.3


@pytest.mark.parametrize("fn", [knn_translate, ridge_translate])
def test_baselines_deterministic(synth, fn):
    rna, atac, _, train, test = synth
    a = fn(rna.X, atac.X, train, test, n_components=6, seed=3)
    b = fn(rna.X, atac.X, train, test, n_components=6, seed=3)
    for key in ("atac_to_rna", "rna_to_atac", "rna_to_atac_norm"):
        np.testing.assert_array_equal(a[key], b[key])
    for key in LATENT_KEYS:
        np.testing.assert_array_equal(a["latent"][key], b["latent"][key])


def test_depth_scale_matches_torch_twin_and_normalize_rows():
    rng = np.random.default_rng(0)
    q = rng.random((5, 7)).astype(np.float32)
    d = rng.uniform(0.2, 3.0, 5)
    ref = depth_scaled_prob(torch.from_numpy(q), torch.from_numpy(d[:, None]).float()).numpy()
    np.testing.assert_allclose(depth_scale(q, d), ref, atol=1e-5)
    assert np.all(depth_scale(q, np.full(5, 10.0)) >= q)  # deeper cell -> more peaks seen
    P = normalize_rows(np.array([[1.0, 3.0], [0.0, 0.0]]))
    np.testing.assert_allclose(P, [[0.25, 0.75], [0.5, 0.5]])


def test_representations_fit_on_train_only(synth):
    rna, atac, _, train, test = synth
    pca = RnaPCA(5).fit(rna.X[train])
    assert pca.transform(rna.X[test]).shape == (len(test), 5)
    # predicted frequencies equal to the observed ones embed like the observed counts
    freq = np.asarray(rna.X[test].todense()) / rna.X[test].sum(1).A
    np.testing.assert_allclose(pca.transform_freq(freq), pca.transform(rna.X[test]), atol=1e-3)
    lsi = AtacLSI(5).fit(atac.X[train])
    Z_sparse = lsi.transform(atac.X[test])
    np.testing.assert_allclose(Z_sparse, lsi.transform(atac.X[test].toarray()), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(Z_sparse, axis=1), 1.0, atol=1e-5)


def test_mismatched_cells_are_rejected(tmp_path):
    rp, ap, _ = write_coassay(tmp_path, seed=0)
    atac = ad.read_h5ad(ap)
    atac = atac[::-1].copy()
    atac.write_h5ad(ap)
    with pytest.raises(InputFormatError, match="obs_names"):
        run_baseline("knn", rp, ap, "random", PARAMS, _outputs(tmp_path / "p"))
    assert not (tmp_path / "p" / "latent.h5ad").exists()


@pytest.mark.parametrize("fn", [knn_translate, ridge_translate])
def test_rest_predictions_match_test_predictions_for_the_same_cells(synth, fn):
    """``rest`` uses the same fitted model: rest = the test cells reproduces the test prediction."""
    rna, atac, _, train, test = synth
    kw = {"n_components": 6} | ({"k": 5} if fn is knn_translate else {})
    res = fn(rna.X, atac.X, train, test, rest=test, **kw)
    np.testing.assert_allclose(res["atac_to_rna_rest"], res["atac_to_rna"], rtol=1e-5, atol=1e-7)
    assert fn(rna.X, atac.X, train, test, **kw)["atac_to_rna_rest"] is None


def test_knn_rest_excludes_the_training_cell_itself(synth):
    """With k = 1 a training cell's prediction is the frequency profile of ANOTHER training cell."""
    rna, atac, _, train, test = synth
    res = knn_translate(rna.X, atac.X, train, test, k=1, n_components=6, rest=train)
    F = normalize_rows(rna_frequencies(rna.X[train]).toarray())
    P = res["atac_to_rna_rest"].astype(np.float64)
    d = ((P[:, None, :] - F[None, :, :]) ** 2).sum(-1)
    nearest = d.argmin(1)
    assert np.allclose(d[np.arange(len(train)), nearest], 0.0, atol=1e-10)   # exactly one cell's profile
    assert not np.any(nearest == np.arange(len(train)))                      # never its own
    # without the exclusion k = 1 would return each cell's own profile
    own = knn_translate(rna.X, atac.X, train, train, k=1, n_components=6)["atac_to_rna"]
    assert np.allclose(own, F, atol=1e-6)
