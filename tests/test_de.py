"""Vectorised rank-sum tests agree with scipy.stats.mannwhitneyu; BH agrees with scipy."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import false_discovery_control, mannwhitneyu

from workflow_lib import de


def _data(rng, n=70, m=25):
    X = rng.poisson(0.6, (n, m)).astype(float)
    X[:, 3] = np.round(rng.normal(size=n), 1)          # negative values + ties (dense path only)
    X[:, 4] = 0                                        # all zero
    X[:, 5] = 2.5                                      # constant non-zero
    X[:, 6] = rng.random(n) < 0.3                      # binary (peaks)
    X[:20, 7] += 3                                     # up in the first group
    return X


@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_ranksum_matches_scipy_dense_and_sparse(alternative):
    rng = np.random.default_rng(0)
    X = _data(rng)
    g = np.zeros(X.shape[0], dtype=bool)
    g[:20] = True
    for inp, max_entries in ((X, 10**7), (X, 70 * 4), (sp.csr_matrix(X), 10**7), (sp.csr_matrix(X), 100)):
        res = de.ranksum_groups(inp, g, alternative, max_entries=max_entries)
        for j in range(X.shape[1]):
            a, b = X[g, j], X[~g, j]
            if j in (4, 5):
                assert np.isnan(res["pvalue"][0, j])
                continue
            sc = mannwhitneyu(a, b, alternative=alternative, method="asymptotic", use_continuity=True)
            assert res["u"][0, j] == pytest.approx(sc.statistic, abs=1e-9)
            assert res["pvalue"][0, j] == pytest.approx(sc.pvalue, rel=1e-9, abs=1e-12)
    if alternative == "greater":
        assert res["pvalue"][0, 7] < 1e-6
    else:
        assert res["pvalue"][0, 7] > 0.999


def test_ranksum_multiple_groups_and_two_samples():
    rng = np.random.default_rng(1)
    X = sp.csr_matrix(rng.poisson(1.0, (60, 12)).astype(float))
    labels = rng.integers(0, 3, 60)
    groups = np.stack([labels == k for k in range(3)], axis=1)
    res = de.ranksum_groups(X, groups)
    D = X.toarray()
    for k in range(3):
        for j in range(12):
            sc = mannwhitneyu(D[labels == k, j], D[labels != k, j], alternative="greater",
                              method="asymptotic")
            assert res["pvalue"][k, j] == pytest.approx(sc.pvalue, rel=1e-9, abs=1e-12)
    A, B = rng.random((15, 6)), sp.csr_matrix(rng.poisson(0.3, (40, 6)).astype(float))
    two = de.ranksum_two_samples(A, B)
    for j in range(6):
        sc = mannwhitneyu(A[:, j], B[:, j].toarray().ravel(), alternative="greater", method="asymptotic")
        assert two["pvalue"][j] == pytest.approx(sc.pvalue, rel=1e-9, abs=1e-12)


def test_bh_matches_scipy_and_keeps_nan():
    rng = np.random.default_rng(2)
    p = rng.random(200) ** 3
    np.testing.assert_allclose(de.bh_fdr(p), false_discovery_control(p), rtol=1e-12)
    q = p.copy()
    q[[3, 50]] = np.nan
    out = de.bh_fdr(q)
    assert np.isnan(out[[3, 50]]).all()
    ok = np.isfinite(q)
    np.testing.assert_allclose(out[ok], false_discovery_control(q[ok]), rtol=1e-12)


def test_celltype_de_finds_planted_markers_and_flags():
    rng = np.random.default_rng(3)
    n, m = 150, 40
    cts = np.array(["A"] * 50 + ["B"] * 50 + ["C"] * 50)
    X = rng.poisson(0.5, (n, m)).astype(float)
    X[cts == "A", 0] += 5
    X[cts == "B", 1] += 5
    feats = [f"g{j}" for j in range(m)]
    tab = de.celltype_de(sp.csr_matrix(X), cts, feats)
    assert list(tab.columns) == ["A", "B", "C"]
    assert tab.loc["g0", "A"] < 1e-6 and tab.loc["g1", "B"] < 1e-6
    assert tab.loc["g0", "B"] > 0.5
    flags_all = de.de_flags(tab, ["A", "B", "C"], 0.01)
    assert flags_all[0] and flags_all[1] and flags_all[2:].sum() <= 2
    flags_a = de.de_flags(tab, ["A"], 0.01)
    assert flags_a[0] and not flags_a[1]


def test_test_vs_rest_de_columns():
    rng = np.random.default_rng(4)
    truth_test = rng.poisson(1, (30, 5)).astype(float)
    truth_test[:, 0] += 4
    truth_rest = sp.csr_matrix(rng.poisson(1, (80, 5)).astype(float))
    pred_test = rng.random((30, 5)) + 0.1
    pred_test[:, 0] += 5
    pred_rest = rng.random((80, 5))
    out = de.test_vs_rest_de(pred_test, truth_test, truth_rest, pred_rest, list("abcde"), 0.01)
    assert list(out.columns) == ["gene", "pred_pvalue", "pred_fdr", "true_pvalue", "true_fdr", "true_de"]
    assert out.true_de[0] and out.pred_pvalue[0] < 1e-6


def _planted_de(seed=11, n_test=60, n_rest=240, n_genes=300, n_de=20):
    """Test cells up-regulate ``n_de`` planted genes 4x; predictions are smooth (noisy) frequencies."""
    rng = np.random.default_rng(seed)
    base = rng.lognormal(0.0, 1.5, n_genes)
    de_genes = rng.choice(n_genes, n_de, replace=False)
    up = base.copy()
    up[de_genes] *= 4.0
    freq = np.vstack([np.tile(up / up.sum(), (n_test, 1)), np.tile(base / base.sum(), (n_rest, 1))])
    counts = rng.poisson(freq * rng.lognormal(np.log(300), 0.3, (n_test + n_rest, 1)))
    pred = freq * rng.lognormal(0.0, 0.3, freq.shape)          # a model's smooth norm estimation
    pred /= pred.sum(1, keepdims=True)
    lib = counts.sum(1, keepdims=True)
    obs_freq = counts / lib
    labels = np.zeros(n_genes, dtype=bool)
    labels[de_genes] = True
    t, r = slice(0, n_test), slice(n_test, None)
    return dict(pred_test=pred[t], pred_rest=pred[r], obs_test=obs_freq[t], obs_rest=obs_freq[r],
                labels=labels, genes=[f"g{i}" for i in range(n_genes)])


def test_predicted_rest_recovers_planted_de_genes_observed_rest_does_not():
    """Fig. 5G: predicted test vs PREDICTED rest ranks the planted DE genes first; predicted test vs
    OBSERVED rest (sparse frequencies) is biased: smooth non-zero predictions beat the zeros of
    lowly expressed genes, so most non-DE genes look significant and the ranking degrades."""
    from sklearn.metrics import average_precision_score

    d = _planted_de()
    truth = sp.csr_matrix(d["obs_test"]), sp.csr_matrix(d["obs_rest"])
    new = de.test_vs_rest_de(d["pred_test"], *truth, d["pred_rest"], d["genes"], 0.01)
    old = de.test_vs_rest_de(d["pred_test"], *truth, sp.csr_matrix(d["obs_rest"]), d["genes"], 0.01)
    score = lambda t: -np.log10(t["pred_pvalue"].fillna(1).to_numpy() + 1e-300)  # noqa: E731
    ap_new = average_precision_score(d["labels"], score(new))
    ap_old = average_precision_score(d["labels"], score(old))
    baseline = d["labels"].mean()
    assert ap_new > 0.9
    assert ap_old < ap_new - 0.3
    # the bias: with observed rest most NON-DE genes are called significant, with predicted rest few
    non_de = ~d["labels"]
    assert (old["pred_fdr"].to_numpy()[non_de] <= 0.01).mean() > 0.4
    assert (new["pred_fdr"].to_numpy()[non_de] <= 0.01).mean() < 0.1
    # the truth side is the same data either way and finds the planted genes
    assert new["true_de"].equals(old["true_de"]) and new["true_de"][d["labels"]].mean() > 0.8
    assert ap_new > 5 * baseline


@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_ranksum_two_samples_dense_path_matches_scipy_with_ties_and_chunks(alternative):
    """Dense predictions are ranked column chunk by column chunk (no CSR conversion)."""
    rng = np.random.default_rng(7)
    A = rng.random((33, 20)).astype(np.float32)
    B = rng.random((48, 20)).astype(np.float32)
    A[:, 2], B[:, 2] = np.round(A[:, 2], 1), np.round(B[:, 2], 1)      # ties
    A[:, 3], B[:, 3] = 0.25, 0.25                                      # constant over both
    A[:, 4] += 0.5                                                     # shifted
    A[:, 5], B[:, 5] = -np.abs(A[:, 5]), -np.abs(B[:, 5])              # negative values
    for max_entries in (10**7, 81 * 3, 1):                             # one chunk / 3 cols / 1 col
        res = de.ranksum_two_samples(A, B, alternative, max_entries=max_entries)
        for j in range(20):
            if j == 3:
                assert np.isnan(res["pvalue"][j])
                continue
            sc = mannwhitneyu(A[:, j].astype(float), B[:, j].astype(float), alternative=alternative,
                              method="asymptotic")
            assert res["u"][j] == pytest.approx(sc.statistic, abs=1e-9)
            assert res["pvalue"][j] == pytest.approx(sc.pvalue, rel=1e-9, abs=1e-14)
    # identical to the sparse path
    sparse = de.ranksum_two_samples(sp.csr_matrix(A), sp.csr_matrix(B), alternative)
    np.testing.assert_allclose(res["pvalue"], sparse["pvalue"], rtol=1e-12, equal_nan=True)


def test_paper_de_uses_r_conventions_and_flags_genes_without_fold_change():
    rng = np.random.default_rng(8)
    pred_test, pred_train = rng.random((30, 6)), rng.random((50, 6))
    pred_test[:, 0] += 1.0                                   # predicted up in the test cells
    pred_test[:, 5], pred_train[:, 5] = 0.1, 0.1             # constant prediction
    Tt = rng.poisson(1.0, (30, 6)).astype(float)
    Tr = rng.poisson(1.0, (70, 6)).astype(float)
    Tt[:, 0] += 5                                            # truly up in the test cells
    Tt[:, 4], Tr[:, 4] = 0, 0                                # never observed
    t_test, t_rest = sp.csr_matrix(Tt), sp.csr_matrix(Tr)
    out = de.paper_test_vs_train_de(pred_test, pred_train, t_test, t_rest, list("abcdef"), 0.01)
    assert list(out.columns) == ["gene", "pred_pvalue", "pred_fdr", "true_pvalue", "true_fdr",
                                 "true_de", "paper_set"]
    for j in range(6):
        if j != 5:
            assert out.pred_pvalue[j] == pytest.approx(mannwhitneyu(
                pred_test[:, j], pred_train[:, j], alternative="greater", method="asymptotic").pvalue)
        if j != 4:
            assert out.true_pvalue[j] == pytest.approx(mannwhitneyu(
                Tt[:, j], Tr[:, j], alternative="greater", method="asymptotic").pvalue)
    assert out.pred_pvalue[5] == 1.0 and out.true_pvalue[4] == 1.0   # R: SIGMA = 0 -> p = 1
    # BH over all genes, the p = 1 gene included (as p.adjust does)
    np.testing.assert_allclose(out.true_fdr, false_discovery_control(out.true_pvalue))
    assert list(out.paper_set) == [True, True, True, True, False, True]
    assert out.true_de[0] and out.pred_pvalue[0] < 1e-6
