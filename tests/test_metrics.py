"""Metrics agree with scikit-learn / scipy / brute force, incl. ties and degenerate features."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.spatial.distance import cdist
from scipy.stats import mannwhitneyu, pearsonr, wilcoxon
from sklearn.metrics import average_precision_score, roc_auc_score

from workflow_lib import metrics as M
from workflow_lib.normalize import log_normalize


def _labels_scores(rng, n=60, m=40):
    y = (rng.random((n, m)) < rng.uniform(0.05, 0.6, m)[None, :]).astype(np.float32)
    s = rng.random((n, m)).astype(np.float32)
    s[:, ::3] = np.round(s[:, ::3] * 4) / 4          # heavy ties
    s[:, 1::5] = np.round(s[:, 1::5] + 0.5 * y[:, 1::5], 1)  # ties + informative
    s[:, 2] = 0.5                                    # all tied
    y[:, 4] = 0                                      # no positive
    y[:, 5] = 1                                      # no negative
    y[:, 6] = 0
    y[7, 6] = 1                                      # a single positive
    return y, s


def test_auroc_ap_match_sklearn_with_ties_and_degenerate_columns():
    rng = np.random.default_rng(0)
    y, s = _labels_scores(rng)
    for truth in (y, sp.csr_matrix(y)):
        for mem in (M.DEFAULT_MEM_BYTES, 60 * 8 * 14 * 3):   # one chunk / chunks of 3 columns
            res = M.auroc_ap_columns(truth, s, mem_bytes=mem)
            for j in range(y.shape[1]):
                yj, sj = y[:, j], s[:, j]
                if 0 < yj.sum() < len(yj):
                    assert res.auroc[j] == pytest.approx(roc_auc_score(yj, sj), abs=1e-9)
                else:
                    assert np.isnan(res.auroc[j])
                if yj.sum() > 0:
                    ap = average_precision_score(yj, sj)
                    assert res.aupr[j] == pytest.approx(ap, abs=1e-9)
                    pp = yj.astype(np.float64).mean()
                    if pp < 1:
                        assert res.auprnorm[j] == pytest.approx((ap - pp) / (1 - pp), abs=1e-9)
                    else:
                        assert np.isnan(res.auprnorm[j])
                else:
                    assert np.isnan(res.aupr[j]) and np.isnan(res.auprnorm[j])
                assert res.n_pos[j] == yj.sum()
    assert res.auroc[2] == pytest.approx(0.5)


def _tied_scores(rng, n, m):
    """Scores with many ties: rounded, binary-ish, constant, +-0.0, mixed signs, large values."""
    y = (rng.random((n, m)) < rng.uniform(0.02, 0.7, m)[None, :]).astype(np.float64)
    s = rng.random((n, m)) + 0.3 * y
    kind = np.arange(m) % 8
    s[:, kind == 1] = np.round(s[:, kind == 1] * 5) / 5                 # few levels
    s[:, kind == 2] = (s[:, kind == 2] > 0.8).astype(float)              # binary scores
    s[:, kind == 3] = np.round(s[:, kind == 3], 2) - 0.6                 # ties, mixed signs
    s[:, kind == 4] = -np.round(s[:, kind == 4] * 10)                    # non-positive, -0.0
    s[:, kind == 5] = np.round(s[:, kind == 5] * 3) * 1e6                # large, ties
    s[:, kind == 6] = 0.25                                               # constant
    s[::7, kind == 7] = 0.0                                              # +0.0 and -0.0 tie
    s[1::7, kind == 7] = -0.0
    y[:, 8] = 0                                                          # no positive
    y[:, 9] = 1                                                          # no negative
    y[:, 10] = 0
    y[3, 10] = 1                                                         # one positive
    y[:, 11] = 0
    y[:, 11][s[:, 11] == s[:, 11].max()] = 1                             # positives all tied
    return y, s


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_auroc_ap_equal_sklearn_to_1e12_with_many_ties(dtype):
    rng = np.random.default_rng(20)
    n, m = 97, 64
    y, s = _tied_scores(rng, n, m)
    s = s.astype(dtype)
    if dtype == np.float64:
        s[:, 16:24] += rng.random((n, 8)) * 1e-9       # not representable in float32
        s[::5, 16:24] = np.round(s[::5, 16:24], 1)    # and still tied
    auc_ref = np.full(m, np.nan)
    ap_ref = np.full(m, np.nan)
    for j in range(m):
        if 0 < y[:, j].sum():
            ap_ref[j] = average_precision_score(y[:, j], s[:, j])
            if y[:, j].sum() < n:
                auc_ref[j] = roc_auc_score(y[:, j], s[:, j])
    counts = y * rng.integers(1, 4, y.shape)            # binarised by the function
    counts[0, y[0] == 0] = -1.0                         # negative values are not positives
    for truth in (y, counts, sp.csr_matrix(counts), sp.csc_matrix(y)):
        for mem in (M.DEFAULT_MEM_BYTES, n * 40 * 5):   # one chunk / chunks of 5 columns
            res = M.auroc_ap_columns(truth, s, mem_bytes=mem)
            np.testing.assert_allclose(res.auroc, auc_ref, atol=1e-12, rtol=0)
            np.testing.assert_allclose(res.aupr, ap_ref, atol=1e-12, rtol=0)
            np.testing.assert_array_equal(res.n_pos, y.sum(0))
    for kind in range(8):                    # one sign per chunk: the 32-bit key paths
        sub = np.arange(m) % 8 == kind
        res = M.auroc_ap_columns(sp.csr_matrix(y[:, sub]), s[:, sub])
        np.testing.assert_allclose(res.auroc, auc_ref[sub], atol=1e-12, rtol=0)
        np.testing.assert_allclose(res.aupr, ap_ref[sub], atol=1e-12, rtol=0)
    res = M.auroc_ap_columns(y, s)
    assert np.isnan(res.auroc[[8, 9]]).all() and np.isnan(res.aupr[8]) and res.aupr[9] == 1
    assert res.auroc[6] == 0.5 and res.aupr[6] == pytest.approx(y[:, 6].mean(), abs=1e-12)


def test_auroc_ap_sparse_duplicates_and_no_cells():
    rng = np.random.default_rng(21)
    s = rng.random((30, 4)).astype(np.float32)
    # duplicate entries are summed (as toarray does): (2, 0) is 1 - 1 = 0, not a positive
    t = sp.coo_matrix(([1.0, 1.0, -1.0, 1.0, 1.0], ([0, 2, 2, 5, 5], [0, 0, 0, 1, 1])), (30, 4))
    res = M.auroc_ap_columns(t, s)
    assert list(res.n_pos) == [1, 1, 0, 0]
    assert res.auroc[1] == pytest.approx(roc_auc_score(np.arange(30) == 5, s[:, 1]), abs=1e-12)
    empty = M.auroc_ap_columns(np.zeros((0, 3)), np.zeros((0, 3), np.float32))
    assert empty.shape == (3, 5) and empty.isna()[["auroc", "aupr", "pp"]].all().all()
    with pytest.raises(ValueError, match="NaN"):
        M.auroc_ap_columns(np.ones((3, 1)), np.array([[0.1], [np.nan], [0.2]], np.float32))


def test_auroc_binarises_count_truth():
    rng = np.random.default_rng(1)
    counts = rng.poisson(0.5, (50, 8)).astype(float)
    s = rng.random((50, 8))
    res = M.auroc_ap_columns(sp.csr_matrix(counts), s)
    for j in range(8):
        assert res.auroc[j] == pytest.approx(roc_auc_score(counts[:, j] > 0, s[:, j]), abs=1e-9)


def test_pearson_matches_scipy_and_nan_for_constant():
    rng = np.random.default_rng(2)
    t = rng.poisson(1.0, (80, 30)).astype(float)
    p = t * 0.3 + rng.random((80, 30))
    t[:, 3] = 0            # all-zero truth
    p[:, 4] = 7.25         # constant prediction
    t[:, 5] = 2.0          # constant non-zero truth
    p[:, 6] = np.round(p[:, 6])  # ties are fine
    for truth in (t, sp.csr_matrix(t)):
        r = M.pearson_columns(p.astype(np.float32), truth, mem_bytes=80 * 8 * 6 * 7)
        for j in range(30):
            if j in (3, 4, 5):
                assert np.isnan(r[j])
            else:
                exp = pearsonr(p[:, j].astype(np.float32).astype(float), t[:, j]).statistic
                assert r[j] == pytest.approx(exp, abs=1e-9)


def _foscttm_brute(q, r):
    n = q.shape[0]
    out = np.empty(n)
    for i in range(n):
        d = np.sqrt(((r - q[i]) ** 2).sum(1))
        out[i] = sum(d[j] < d[i] for j in range(n) if j != i) / (n - 1)
    return out


def test_foscttm_matches_brute_force_dense_sparse_and_ties():
    rng = np.random.default_rng(3)
    q = rng.normal(size=(45, 5))
    r = q + rng.normal(scale=0.7, size=q.shape)
    exp = _foscttm_brute(q, r)
    np.testing.assert_allclose(M.foscttm(q, r, mem_bytes=45 * 8 * 8 * 7), exp, atol=1e-12)
    # integer profiles with exact distance ties, high-dim + sparse path
    qi = rng.integers(0, 2, (30, 400)).astype(float)
    ri = qi.copy()
    ri[rng.random(ri.shape) < 0.2] = 0
    ri[5] = ri[6]                      # duplicated reference -> tie with the true match
    exp = _foscttm_brute(qi, ri)
    np.testing.assert_allclose(M.foscttm(qi, sp.csr_matrix(ri)), exp, atol=1e-12)
    np.testing.assert_allclose(M.foscttm(qi.astype(np.float32), ri, mem_bytes=4000 * 30), exp,
                               atol=1e-12)
    # perfect matching -> 0; one cell -> NaN
    assert np.all(M.foscttm(q, q) == 0)
    assert np.isnan(M.foscttm(q[:1], q[:1])).all()


def test_marker_genes_and_auroc():
    cts = np.array(["Ex-L2/3-Rasgrf2"] * 6 + ["Ast"] * 4 + ["In-Sst"] * 5)
    genes = ["Rasgrf2", "Sst", "Gja1"]
    mk = M.marker_genes_from_labels(cts, genes)
    assert mk == {"Ex-L2/3-Rasgrf2": ["Rasgrf2"], "In-Sst": ["Sst"]}
    assert M.marker_genes_from_labels(cts, genes, {"Ast": ["Gja1", "Nope"]}) == {"Ast": ["Gja1"]}
    rng = np.random.default_rng(4)
    pred = rng.random((15, 3))
    truth = sp.csr_matrix(rng.poisson(1, (15, 3)).astype(float))
    res = M.marker_auroc(pred, truth, cts, genes, mk)
    assert list(res.n_pos) == [6, 5]
    assert res.auroc_pred[0] == pytest.approx(roc_auc_score(cts == "Ex-L2/3-Rasgrf2", pred[:, 0]))
    assert res.auroc_true[1] == pytest.approx(roc_auc_score(cts == "In-Sst", truth[:, 1].toarray().ravel()))
    # a type absent from the evaluated cells -> NaN
    res2 = M.marker_auroc(pred[6:], truth[6:], cts[6:], genes, mk)
    assert np.isnan(res2.auroc_pred[0]) and res2.n_pos[0] == 0


def test_nan_summary_excludes_nan():
    s = M.nan_summary([1.0, np.nan, 3.0])
    assert s["mean"] == 2.0 and s["n"] == 2 and s["n_nan"] == 1 and s["sd"] == pytest.approx(np.sqrt(2))


# --------------------------------------------------------------------------------------------
# paper definitions
# --------------------------------------------------------------------------------------------
def test_paper_pearson_matches_direct_numpy_on_a_small_case():
    """log(pred x L + 1) vs log(x / s + 1), gene by gene, against np.corrcoef."""
    rng = np.random.default_rng(10)
    counts = rng.poisson(2.0, (25, 6)).astype(float)
    counts[:, 2] = 0                                   # undefined -> NaN
    sf = rng.uniform(0.5, 2.0, 25)
    freq = rng.dirichlet(np.ones(6), 25)
    L = 1234.5
    r = M.pearson_columns(np.log1p(freq * L), log_normalize(sp.csr_matrix(counts), sf))
    for j in range(6):
        if j == 2:
            assert np.isnan(r[j])
            continue
        exp = np.corrcoef(np.log(freq[:, j] * L + 1), np.log(counts[:, j] / sf + 1))[0, 1]
        assert r[j] == pytest.approx(exp, abs=1e-12)
    # the scale matters: log(L p + 1) and log1p(1e4 p) give different correlations
    r_v1 = M.pearson_columns(np.log1p(1e4 * freq), log_normalize(sp.csr_matrix(counts), sf))
    assert np.nanmax(np.abs(r - r_v1)) > 1e-4


@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_ranksum_pvalue_matches_mannwhitneyu_as_r_chooses_the_method(alternative):
    rng = np.random.default_rng(11)
    x, y = rng.normal(0.3, 1, 30), rng.normal(0, 1, 45)           # < 50 each, no ties: exact
    assert M.ranksum_pvalue(x, y, alternative) == pytest.approx(
        mannwhitneyu(x, y, alternative=alternative, method="exact").pvalue, rel=1e-12)
    xt, yt = np.round(x, 0), np.round(y, 0)                        # ties: normal approximation
    assert M.ranksum_pvalue(xt, yt, alternative) == pytest.approx(
        mannwhitneyu(xt, yt, alternative=alternative, method="asymptotic",
                     use_continuity=True).pvalue, rel=1e-12)
    xl, yl = rng.normal(0.1, 1, 300), rng.normal(0, 1, 50)         # n >= 50: normal approximation
    assert M.ranksum_pvalue(xl, yl, alternative) == pytest.approx(
        mannwhitneyu(xl, yl, alternative=alternative, method="asymptotic").pvalue, rel=1e-12)
    xn = np.append(xl, np.nan)                                     # NaN dropped
    assert M.ranksum_pvalue(xn, yl, alternative) == M.ranksum_pvalue(xl, yl, alternative)
    # R: all values tied -> SIGMA = 0 -> p = 1; an empty sample -> NaN
    assert M.ranksum_pvalue(np.ones(5), np.ones(7), alternative) == 1.0
    assert np.isnan(M.ranksum_pvalue([], y, alternative))
    # unpaired: not the signed-rank test
    assert M.signedrank_pvalue(x, y[:30], alternative) == pytest.approx(
        wilcoxon(x, y[:30], alternative=alternative).pvalue)
    assert M.ranksum_pvalue(x, y[:30], alternative) != pytest.approx(
        M.signedrank_pvalue(x, y[:30], alternative))
    assert np.isnan(M.signedrank_pvalue(x, x, alternative))


def test_paper_marker_set_needs_more_than_eight_positive_cells():
    n_pos = np.array([0, 5, 8, 9, 10, 200])
    assert list(M.paper_marker_set(n_pos)) == [False, False, False, True, True, True]


def test_paper_peak_set_needs_n_over_100_positive_test_cells():
    n_pos = np.array([0, 2, 3, 3, 4, 50])
    is_de = np.array([True, True, True, False, True, True])
    assert list(M.paper_peak_set(n_pos, is_de, 300)) == [False, False, True, False, True, True]
    assert list(M.paper_peak_set(n_pos, is_de, 301)) == [False, False, False, False, True, True]
    assert list(M.paper_peak_set(n_pos, is_de, 50)) == [False, True, True, False, True, True]


def test_foscttm_in_both_latent_spaces_on_a_constructed_case():
    """1-D latent spaces where the two query directions differ (worked out by hand)."""
    atac_ref = np.array([[0.0], [1.0], [2.0]])      # ATAC cells in the ATAC latent
    rna_q = np.array([[0.9], [1.0], [5.0]])         # RNA cells translated into the ATAC latent
    rna_ref = np.array([[0.0], [10.0], [20.0]])     # RNA cells in the RNA latent
    atac_q = np.array([[10.0], [10.0], [20.0]])     # ATAC cells translated into the RNA latent
    res = M.foscttm_latent_spaces(rna_q, atac_ref, atac_q, rna_ref)
    # RNA cell 0 (0.9): ATAC cell 1 (d 0.1) is closer than its partner (d 0.9)
    np.testing.assert_allclose(res["atac_latent_rna_query"], [0.5, 0.0, 0.0])
    # ATAC cell 2 (2.0): RNA cells 0 (d 1.1) and 1 (d 1.0) are closer than its partner (d 3)
    np.testing.assert_allclose(res["atac_latent_atac_query"], [0.0, 0.0, 1.0])
    # RNA cell 0 (0): ATAC cell 1 is at the same distance as the partner: a tie does not count
    np.testing.assert_allclose(res["rna_latent_rna_query"], [0.0, 0.0, 0.0])
    # ATAC cell 0 (10): RNA cell 1 (d 0) is closer than the partner (d 10); RNA cell 2 ties
    np.testing.assert_allclose(res["rna_latent_atac_query"], [0.5, 0.0, 0.0])
    rng = np.random.default_rng(12)
    z = [rng.normal(size=(20, 3)) for _ in range(4)]
    res = M.foscttm_latent_spaces(*z)
    np.testing.assert_allclose(res["atac_latent_atac_query"], _foscttm_brute(z[1], z[0]), atol=1e-12)
    np.testing.assert_allclose(res["rna_latent_rna_query"], _foscttm_brute(z[3], z[2]), atol=1e-12)


def test_foscttm_both_directions_mean():
    """BABEL's validation score: 0 for identical codes, about 0.5 for unrelated ones, and the mean
    of the two per-query FOSCTTM vectors."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    assert M.foscttm_both(a, a) == 0.0
    assert 0.35 < M.foscttm_both(a, b) < 0.65
    assert M.foscttm_both(a, b) == pytest.approx((M.foscttm(a, b).mean() + M.foscttm(b, a).mean()) / 2)
    assert np.isnan(M.foscttm_both(a[:1], b[:1]))


def test_library_normalized_gene_pearson_is_the_authors_validation_correlation():
    """run_polarbear.py's eval_rna_correlation: per gene, Pearson of log1p(x / library size) and
    log1p(predicted frequency), NaN where either is constant (e.g. an all-zero gene)."""
    rng = np.random.default_rng(3)
    X = rng.poisson(0.8, (40, 12)).astype(float)
    X[:, 5] = 0
    P = rng.dirichlet(np.ones(12), 40)
    r = M.library_normalized_gene_pearson(sp.csr_matrix(X), P)
    x, y = np.log1p(X / X.sum(1, keepdims=True)), np.log1p(P)
    ref = [pearsonr(x[:, j], y[:, j])[0] if x[:, j].any() else np.nan for j in range(12)]
    np.testing.assert_allclose(r, ref, rtol=1e-10, atol=1e-12)
    assert np.isnan(r[5]) and np.isfinite(np.delete(r, 5)).all()
    np.testing.assert_allclose(M.library_normalized_gene_pearson(X, P), r)   # dense counts too


def test_translation_task_statistics_average_the_defined_features():
    rng = np.random.default_rng(4)
    X = rng.poisson(0.8, (30, 10)).astype(float)
    X[:, 2] = 0                                         # an all-zero gene: no correlation
    P = rng.dirichlet(np.ones(10), 30)
    A = (rng.random((30, 15)) < 0.3).astype(float)
    A[:, 4] = 0                                         # a peak closed in every cell: no AUROC
    S = rng.random((30, 15))
    st = M.translation_task_statistics(sp.csr_matrix(X), P, sp.csr_matrix(A), S)
    cor = M.library_normalized_gene_pearson(X, P)
    assert st["rna_cor"] == pytest.approx(np.nanmean(cor))
    aurocs = [roc_auc_score(A[:, j], S[:, j]) for j in range(15) if j != 4]
    assert st["atac_auroc"] == pytest.approx(np.mean(aurocs))
    assert np.isfinite(st["atac_auprnorm"])
    assert np.isnan(M.translation_task_statistics(np.zeros((5, 3)), np.full((5, 3), 1 / 3), np.zeros((5, 2)),
                                                  np.ones((5, 2)))["atac_auroc"])
