"""Differential expression: vectorised one-sided Wilcoxon rank-sum tests + Benjamini-Hochberg.

The rank-sum test is computed for every feature (column) at once. Sparse non-negative data are
ranked without densifying: explicit non-zeros are sorted per column (one lexsort per column
chunk) and all implicit zeros of a column form one tie group. Statistics follow scipy's
``mannwhitneyu(method="asymptotic", use_continuity=True)``:
``U1 = R1 - n1(n1+1)/2``, ``mu = n1 n2 / 2``,
``sigma^2 = n1 n2 / 12 * ((n + 1) - sum(t^3 - t) / (n (n - 1)))``,
``z = (U1 - mu -/+ 0.5) / sigma`` and ``p = sf(z)`` ("greater") or ``cdf(z)`` ("less").
A feature that is constant over all compared cells (sigma == 0) gets p = NaN; NaN p-values are
left out of the Benjamini-Hochberg correction (their FDR is NaN) and never count as DE.
``ranksum_two_samples`` ranks two dense matrices (model predictions) column chunk by column
chunk with one argsort per column, without stacking or sparsifying them.

Fig. 5G DE under the two evaluation definitions (see evaluate.py): ``paper_test_vs_train_de``
(the authors' comparison, R conventions: p = 1 for constant genes) and ``test_vs_rest_de`` (v1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import norm

MAX_ENTRIES = 8_000_000


def _column_ranks(Xc: sp.csc_matrix):
    """Average ranks of the explicit entries of each column (implicit zeros included in ranking).

    Returns (rank CSC with Xc's pattern, zero_rank per column, tie term sum(t^3 - t) per column).
    """
    n, k = Xc.shape
    Xc = sp.csc_matrix(Xc, dtype=np.float64, copy=True)
    Xc.eliminate_zeros()
    Xc.sort_indices()
    v = Xc.data
    col = np.repeat(np.arange(k), np.diff(Xc.indptr))
    order = np.lexsort((v, col))
    vs, cs = v[order], col[order]
    nnz = np.bincount(col, minlength=k)
    starts = np.concatenate([[0], np.cumsum(nnz)[:-1]])
    pos = np.arange(vs.size) - starts[cs]                      # 0-based position within column
    new = np.ones(vs.size, dtype=bool)
    if vs.size > 1:
        new[1:] = (cs[1:] != cs[:-1]) | (vs[1:] != vs[:-1])
    gid = np.cumsum(new) - 1
    gsize = np.bincount(gid).astype(np.float64)
    gstart = pos[new].astype(np.float64)
    nneg = np.bincount(col[v < 0], minlength=k).astype(np.float64)
    nzero = (n - nnz).astype(np.float64)
    rank_sorted = gstart[gid] + (gsize[gid] - 1.0) / 2.0 + 1.0
    rank_sorted += np.where(vs > 0, nzero[cs], 0.0)            # zeros sit between neg and pos
    ranks = np.empty_like(rank_sorted)
    ranks[order] = rank_sorted
    R = sp.csc_matrix((ranks, Xc.indices.copy(), Xc.indptr.copy()), shape=(n, k))
    zero_rank = nneg + (nzero + 1.0) / 2.0
    tie = np.bincount(cs[new], weights=gsize ** 3 - gsize, minlength=k) + nzero ** 3 - nzero
    return R, Xc, zero_rank, tie


def ranksum_groups(X, groups: np.ndarray, alternative: str = "greater",
                   max_entries: int = MAX_ENTRIES) -> dict[str, np.ndarray]:
    """Wilcoxon rank-sum test of each group (True rows of ``groups[:, g]``) vs all other rows.

    ``X``: cells x features (scipy sparse or dense); ``groups``: cells x n_groups bool.
    Returns dict of (n_groups x features) arrays: ``u`` (U of the group), ``z``, ``pvalue``,
    ``auc`` (U / (n1 n2)).
    """
    if alternative not in ("greater", "less"):
        raise ValueError("alternative must be 'greater' or 'less'")
    groups = np.asarray(groups, dtype=bool)
    if groups.ndim == 1:
        groups = groups[:, None]
    n, m = X.shape
    if groups.shape[0] != n:
        raise ValueError("groups must have one row per cell")
    G = sp.csr_matrix(groups.T.astype(np.float64))
    n1 = groups.sum(0).astype(np.float64)[:, None]
    n2 = n - n1
    Xs = sp.csc_matrix(X) if sp.issparse(X) else None
    nnz_total = Xs.nnz if Xs is not None else n * m
    step = max(1, int(m * min(1.0, max_entries / max(1, nnz_total))))
    if Xs is None:
        step = max(1, min(step, int(max_entries // max(1, n))))
    U = np.empty((groups.shape[1], m))
    tie = np.empty(m)
    for i in range(0, m, step):
        sl = slice(i, min(m, i + step))
        Xc = Xs[:, sl] if Xs is not None else sp.csc_matrix(np.asarray(X[:, sl], dtype=np.float64))
        R, pattern, zero_rank, tie[sl] = _column_ranks(Xc)
        pattern.data[:] = 1.0
        sum_nz = np.asarray((G @ R).todense())
        cnt_nz = np.asarray((G @ pattern).todense())
        R1 = sum_nz + (n1 - cnt_nz) * zero_rank[None, :]
        U[:, sl] = R1 - n1 * (n1 + 1.0) / 2.0
    return _ranksum_stats(U, tie, n1, n2, n, alternative)


def _ranksum_stats(U, tie, n1, n2, n, alternative: str) -> dict[str, np.ndarray]:
    """z, p-value and AUC from U statistics and per-column tie terms (see module docstring)."""
    mu = n1 * n2 / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        var = n1 * n2 / 12.0 * ((n + 1.0) - tie[None, :] / (n * (n - 1.0)))
        sd = np.sqrt(np.maximum(var, 0.0))
        if alternative == "greater":
            z = (U - mu - 0.5) / sd
            p = norm.sf(z)
        else:
            z = (U - mu + 0.5) / sd
            p = norm.cdf(z)
        auc = U / (n1 * n2)
    bad = ~(sd > 0) | (n1 == 0) | (n2 == 0)
    bad = np.broadcast_to(bad, U.shape)
    z = np.where(bad, np.nan, z)
    p = np.where(bad, np.nan, p)
    auc = np.where((n1 == 0) | (n2 == 0), np.nan, auc)
    return {"u": U, "z": z, "pvalue": p, "auc": auc}


def _dense_rank_sums(Xc: np.ndarray, n1: int):
    """Sum of the average ranks of rows ``< n1`` and the tie term sum(t^3 - t), per column."""
    n, k = Xc.shape
    order = np.argsort(Xc, axis=0, kind="stable").T               # k x n
    s = np.take_along_axis(Xc.T, order, axis=1)
    new = np.ones((k, n), dtype=bool)
    new[:, 1:] = s[:, 1:] != s[:, :-1]
    del s
    flat_new = new.ravel()
    gid = np.cumsum(flat_new) - 1                                  # groups never span columns
    gsize = np.bincount(gid).astype(np.float64)
    gstart = np.tile(np.arange(n, dtype=np.float64), k)[flat_new]
    rank = gstart[gid] + (gsize[gid] - 1.0) / 2.0 + 1.0            # average rank, sorted order
    in1 = order.ravel() < n1
    R1 = np.bincount(np.repeat(np.arange(k), n), weights=np.where(in1, rank, 0.0), minlength=k)
    tie = np.bincount(np.repeat(np.arange(k), new.sum(axis=1)), weights=gsize ** 3 - gsize,
                      minlength=k)
    return R1, tie


def ranksum_two_samples(A, B, alternative: str = "greater", max_entries: int = MAX_ENTRIES):
    """Rank-sum test of the rows of A (group 1) against the rows of B (group 2), per column.

    Dense A and B (model predictions) are ranked column chunk by column chunk without stacking
    or sparsifying the whole matrices; otherwise both are stacked as sparse (see ranksum_groups).
    """
    if alternative not in ("greater", "less"):
        raise ValueError("alternative must be 'greater' or 'less'")
    if A.shape[1] != B.shape[1]:
        raise ValueError("A and B need the same columns")
    if not sp.issparse(A) and not sp.issparse(B):
        n1, n2 = A.shape[0], B.shape[0]
        n, m = n1 + n2, A.shape[1]
        U, tie = np.empty((1, m)), np.empty(m)
        step = max(1, int(max_entries // max(1, n)))
        for i in range(0, m, step):
            sl = slice(i, min(m, i + step))
            Xc = np.vstack([np.asarray(A[:, sl], dtype=np.float64),
                            np.asarray(B[:, sl], dtype=np.float64)])
            R1, tie[sl] = _dense_rank_sums(Xc, n1)
            U[0, sl] = R1 - n1 * (n1 + 1.0) / 2.0
        res = _ranksum_stats(U, tie, np.array([[float(n1)]]), np.array([[float(n2)]]), n,
                             alternative)
        return {k: v[0] for k, v in res.items()}
    X = sp.vstack([sp.csr_matrix(A), sp.csr_matrix(B)], format="csc")
    g = np.zeros(A.shape[0] + B.shape[0], dtype=bool)
    g[: A.shape[0]] = True
    res = ranksum_groups(X, g, alternative, max_entries)
    return {k: v[0] for k, v in res.items()}


def bh_fdr(pvalues) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values; NaN inputs stay NaN and are not counted in m."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return out
    pv = p[ok]
    o = np.argsort(pv, kind="stable")
    adj = pv[o] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(adj[::-1])[::-1]
    res = np.empty(m)
    res[o] = np.minimum(adj, 1.0)
    out[ok] = res
    return out


def celltype_de(X, cell_types, features, max_entries: int = MAX_ENTRIES) -> pd.DataFrame:
    """One-vs-rest up-regulation test per cell type on TRUE data (all given cells).

    Returns a DataFrame indexed by feature with one column of BH FDR per cell type (BH within
    each cell type over all testable features).
    """
    ct = pd.Categorical(np.asarray(cell_types).astype(str))
    groups = np.stack([ct == c for c in ct.categories], axis=1)
    res = ranksum_groups(X, groups, "greater", max_entries)
    fdr = np.vstack([bh_fdr(p) for p in res["pvalue"]]).T
    return pd.DataFrame(fdr, index=pd.Index(list(map(str, features)), name="feature"),
                        columns=list(ct.categories))


def de_flags(fdr_table: pd.DataFrame, cell_types, fdr: float) -> np.ndarray:
    """is_de: FDR <= ``fdr`` in at least one of ``cell_types`` (columns of ``fdr_table``)."""
    cols = [c for c in map(str, cell_types) if c in fdr_table.columns]
    if not cols:
        return np.zeros(len(fdr_table), dtype=bool)
    return (fdr_table[cols].to_numpy() <= fdr).any(axis=1)


def test_vs_rest_de(pred_test, truth_test, truth_rest, pred_rest, genes, fdr: float) -> pd.DataFrame:
    """DE of the test cells against the rest of the co-assay cells (Fig. 5G).

    - truth: ``truth_test`` vs ``truth_rest`` (deconvolution-normalised true expression of the
      test cells vs all non-test co-assay cells), one-sided "greater", BH -> ``true_de``.
    - prediction: ``pred_test`` (predicted norm estimation of the test cells) vs ``pred_rest``,
      the reference profile of the rest of the cells on the same scale (see evaluate.py for
      what is passed), one-sided "greater", BH.
    Returns gene, pred_pvalue, pred_fdr, true_pvalue, true_fdr, true_de.
    """
    t = ranksum_two_samples(truth_test, truth_rest, "greater")
    p = ranksum_two_samples(pred_test, pred_rest, "greater")
    true_fdr = bh_fdr(t["pvalue"])
    return pd.DataFrame({
        "gene": list(map(str, genes)),
        "pred_pvalue": p["pvalue"], "pred_fdr": bh_fdr(p["pvalue"]),
        "true_pvalue": t["pvalue"], "true_fdr": true_fdr,
        "true_de": np.nan_to_num(true_fdr, nan=np.inf) <= fdr,
    })


def r_wilcox_greater(A, B, max_entries: int = MAX_ENTRIES) -> np.ndarray:
    """p-values of R's ``wilcox.test(a, b, alternative = "greater")`` per column (normal
    approximation with tie and continuity correction; the paper's test sets are far above R's
    exact-test limit of 50 cells per group). A column constant over both groups has SIGMA = 0 in
    R, z = -Inf and p = 1 (here likewise, instead of NaN)."""
    p = ranksum_two_samples(A, B, "greater", max_entries)["pvalue"]
    if A.shape[0] and B.shape[0]:
        p = np.where(np.isnan(p), 1.0, p)
    return p


def paper_test_vs_train_de(pred_test, pred_train, truth_test, truth_rest, genes,
                           fdr: float) -> pd.DataFrame:
    """Fig. 5G DE as the authors' ``bin/evaluate_polarbear.R`` computes it (lines 288-321).

    - truth: deconvolution-normalised true expression of the test cells vs ALL other co-assay
      cells (``!barcodes %in% test``: train + validation), one-sided "greater" Wilcoxon rank-sum,
      BH over all genes -> ``true_fdr``; ``true_de`` = ``true_fdr <= fdr``.
    - prediction: predicted norm estimation of the test cells vs the predicted norm estimation of
      the TRAINING cells only (``_train_rnanorm_pred.txt``), one-sided "greater"; the raw p-value
      ranks the genes of the precision-recall curve (``-p`` in ROCR).
    - ``paper_set``: genes the authors keep for the curve, i.e. with a defined log fold change
      ``log(mean test / mean rest)`` of the true profile (not both means zero).
    Returns gene, pred_pvalue, pred_fdr, true_pvalue, true_fdr, true_de, paper_set.
    """
    tp = r_wilcox_greater(truth_test, truth_rest)
    pp = r_wilcox_greater(pred_test, pred_train)
    true_fdr = bh_fdr(tp)
    m_test = np.asarray(truth_test.mean(axis=0)).ravel()
    m_rest = np.asarray(truth_rest.mean(axis=0)).ravel()
    return pd.DataFrame({
        "gene": list(map(str, genes)),
        "pred_pvalue": pp, "pred_fdr": bh_fdr(pp),
        "true_pvalue": tp, "true_fdr": true_fdr,
        "true_de": np.nan_to_num(true_fdr, nan=np.inf) <= fdr,
        "paper_set": (m_test > 0) | (m_rest > 0),
    })
