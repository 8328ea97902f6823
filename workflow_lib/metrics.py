"""Translation metrics of the paper (section 2.3/2.4/2.6), vectorised over features.

All feature-wise metrics work on column chunks (features) of cells x features matrices so memory
stays bounded (``mem_bytes`` per chunk); truth may be scipy sparse, predictions dense.

NaN rules (a metric that is undefined is NaN, never 0; callers exclude NaN from means and report
how many were excluded):
- ``pearson_columns``: NaN if the truth or the prediction is constant across cells (incl. an
  all-zero truth), or fewer than 2 cells.
- ``auroc_ap_columns``: AUROC NaN if the truth has no positive or no negative cell; AP NaN if no
  positive; AUPRnorm NaN if AP is NaN or every cell is positive (PP == 1).
- ``foscttm``: NaN for every cell if fewer than 2 cells.
- ``marker_auroc``: NaN if the cell type has no cell, or only cells, among those evaluated.

Paper-definition helpers (the authors' ``bin/evaluate_polarbear.R`` / ``bin/evaluation_functions.R``):
``ranksum_pvalue`` (R ``wilcox.test(other, polarbear, alternative = "less")``),
``paper_peak_set`` (peaks with >= n/100 positive test cells), ``paper_marker_set`` (markers with
> 8 positive cells) and ``foscttm_latent_spaces`` (both queries in both latent spaces).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.spatial.distance import cdist
from scipy.stats import mannwhitneyu, wilcoxon

DEFAULT_MEM_BYTES = 256 * 2**20


def _chunk_size(n_rows: int, n_arrays: int, mem_bytes: int) -> int:
    return max(1, int(mem_bytes // max(1, n_rows * 8 * n_arrays)))


def _prepare(X):
    """CSC for sparse (fast column slicing), ndarray otherwise."""
    if sp.issparse(X):
        return sp.csc_matrix(X)
    return np.asarray(X)


def _cols_T(X, sl: slice) -> np.ndarray:
    """Columns ``sl`` of X as a C-contiguous float64 (k x n_cells) array (features x cells)."""
    if sp.issparse(X):
        return np.ascontiguousarray(X[:, sl].toarray().T, dtype=np.float64)
    return np.ascontiguousarray(np.asarray(X[:, sl], dtype=np.float64).T)


def _check_shapes(a, b):
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")


# ---------------------------------------------------------------------------------------------
# gene-wise Pearson correlation
# ---------------------------------------------------------------------------------------------
def pearson_columns(pred, truth, mem_bytes: int = DEFAULT_MEM_BYTES) -> np.ndarray:
    """Pearson correlation across cells (rows) for every column; NaN for constant columns."""
    _check_shapes(pred, truth)
    n, m = pred.shape
    out = np.full(m, np.nan)
    if n < 2:
        return out
    P, T = _prepare(pred), _prepare(truth)
    step = _chunk_size(n, 6, mem_bytes)
    for i in range(0, m, step):
        sl = slice(i, min(m, i + step))
        a, b = _cols_T(P, sl), _cols_T(T, sl)
        const = (a.max(1) == a.min(1)) | (b.max(1) == b.min(1))
        a -= a.mean(1, keepdims=True)
        b -= b.mean(1, keepdims=True)
        num = np.einsum("ij,ij->i", a, b)
        den = np.sqrt(np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", b, b))
        with np.errstate(invalid="ignore", divide="ignore"):
            r = num / den
        r[const] = np.nan
        out[sl] = np.clip(r, -1.0, 1.0)
    return out


# ---------------------------------------------------------------------------------------------
# peak-wise AUROC / average precision (one sort per column chunk)
# ---------------------------------------------------------------------------------------------
def _auroc_ap_rows(S: np.ndarray, Y: np.ndarray):
    """AUROC and AP of every row (feature) of scores S against 0/1 labels Y (k x n).

    One sort per row (descending score); the order inside a tie group is irrelevant because
    both measures are evaluated only at tie-group ends (one ROC / PR point per distinct score,
    as scikit-learn does): with TP/FP counts at the end of group g and of the previous group,
    AUROC = sum_g dTP_g * (N - (FP_g + FP_{g-1}) / 2) / (P N)   (trapezoid = Mann-Whitney)
    AP    = sum_g dTP_g * TP_g / (TP_g + FP_g) / P.
    """
    k, n = S.shape
    order = np.argsort(S, axis=1)[:, ::-1]                  # descending; ties in any order
    flat = (order + (np.arange(k) * n)[:, None]).ravel()
    del order
    s = S.ravel().take(flat).reshape(k, n)
    tp = Y.ravel().take(flat).reshape(k, n).cumsum(axis=1)
    del flat
    last = np.empty((k, n), dtype=bool)                     # end of a tie group
    last[:, -1] = True
    np.not_equal(s[:, :-1], s[:, 1:], out=last[:, :-1])
    del s
    row = np.repeat(np.arange(k), last.sum(axis=1))
    idx = np.flatnonzero(last)
    del last
    tp_g = tp.ravel().take(idx)
    cnt_g = (idx - row * n + 1).astype(np.float64)          # cells ranked at or above group end
    fp_g = cnt_g - tp_g
    first = np.empty(idx.size, dtype=bool)
    first[0] = True
    first[1:] = row[1:] != row[:-1]
    tp_prev = np.empty_like(tp_g)
    tp_prev[0] = 0.0
    tp_prev[1:] = tp_g[:-1]
    tp_prev[first] = 0.0
    fp_prev = cnt_g - tp_g                                  # becomes FP of the previous group
    fp_prev[1:] = fp_prev[:-1]
    fp_prev[first] = 0.0
    P = tp[:, -1].copy()
    N = n - P
    d_tp = tp_g - tp_prev
    with np.errstate(invalid="ignore", divide="ignore"):
        auc_num = np.bincount(row, weights=d_tp * (N[row] - 0.5 * (fp_g + fp_prev)), minlength=k)
        ap_num = np.bincount(row, weights=d_tp * tp_g / cnt_g, minlength=k)
        auroc = auc_num / (P * N)
        ap = ap_num / P
    auroc[(P == 0) | (N == 0)] = np.nan
    ap[P == 0] = np.nan
    return auroc, ap, P


def auroc_ap_columns(truth, scores, mem_bytes: int = DEFAULT_MEM_BYTES) -> pd.DataFrame:
    """Per-column AUROC, AP (= sklearn average_precision_score), PP and AUPRnorm.

    ``truth`` (cells x features, sparse or dense) is binarised (> 0); ``scores`` is dense.
    Ties are handled exactly as scikit-learn does (one ROC/PR point per distinct score).
    Returns a DataFrame with columns auroc, aupr, pp, auprnorm, n_pos (one row per column).
    """
    _check_shapes(truth, scores)
    n, m = scores.shape
    T, S = _prepare(truth), _prepare(scores)
    auroc = np.full(m, np.nan)
    ap = np.full(m, np.nan)
    npos = np.zeros(m)
    step = _chunk_size(n, 8, mem_bytes)
    for i in range(0, m, step):
        sl = slice(i, min(m, i + step))
        y = (_cols_T(T, sl) > 0).astype(np.float64)
        s = _cols_T(S, sl)
        if not np.isfinite(s).all():
            raise ValueError("scores contain NaN or infinite values")
        auroc[sl], ap[sl], npos[sl] = _auroc_ap_rows(s, y)
    pp = npos / n if n else np.full(m, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        auprnorm = np.where(pp < 1, (ap - pp) / (1 - pp), np.nan)
    return pd.DataFrame({"auroc": auroc, "aupr": ap, "pp": pp, "auprnorm": auprnorm,
                         "n_pos": npos.astype(np.int64)})


def auroc_columns(labels, scores, mem_bytes: int = DEFAULT_MEM_BYTES) -> np.ndarray:
    """AUROC of every column of ``scores`` against the 0/1 columns of ``labels``."""
    return auroc_ap_columns(labels, scores, mem_bytes)["auroc"].to_numpy()


# ---------------------------------------------------------------------------------------------
# FOSCTTM
# ---------------------------------------------------------------------------------------------
def foscttm(query, reference, mem_bytes: int = DEFAULT_MEM_BYTES) -> np.ndarray:
    """Fraction of samples closer than the true match, for every query cell.

    Row i of ``query`` is matched to row i of ``reference``. For each query cell i:
    ``#{j != i : d(q_i, r_j) < d(q_i, r_i)} / (n - 1)`` with Euclidean distance (strict
    inequality: ties with the true match do not count). Low-dimensional dense inputs use exact
    pairwise squared distances (scipy cdist); sparse or high-dimensional inputs use the
    expansion ``|q|^2 - 2 q.r + |r|^2`` in float64. Query rows are processed in chunks.
    """
    _check_shapes(query, reference)
    n, d = query.shape
    out = np.full(n, np.nan)
    if n < 2:
        return out
    sparse_in = sp.issparse(query) or sp.issparse(reference)
    step = _chunk_size(n, 3 if (sparse_in or d > 256) else 3 + d, mem_bytes)
    if sparse_in or d > 256:
        Rm = sp.csr_matrix(reference, dtype=np.float64) if sp.issparse(reference) else None
        Rd = None if Rm is not None else np.asarray(reference, dtype=np.float64)
        r2 = (np.asarray(Rm.multiply(Rm).sum(1)).ravel() if Rm is not None
              else np.einsum("ij,ij->i", Rd, Rd))
        Q = sp.csr_matrix(query) if sp.issparse(query) else np.asarray(query)
        step = max(1, min(step, int(mem_bytes // max(1, d * 8 * 2))))
        for i in range(0, n, step):
            q = Q[i:i + step]
            q = q.toarray().astype(np.float64) if sp.issparse(q) else np.asarray(q, np.float64)
            cross = np.asarray((Rm @ q.T).T) if Rm is not None else q @ Rd.T
            D = np.einsum("ij,ij->i", q, q)[:, None] - 2.0 * cross + r2[None, :]
            out[i:i + q.shape[0]] = _frac_closer(D, i)
    else:
        Qd = np.asarray(query, dtype=np.float64)
        Rd = np.asarray(reference, dtype=np.float64)
        for i in range(0, n, step):
            D = cdist(Qd[i:i + step], Rd, "sqeuclidean")
            out[i:i + D.shape[0]] = _frac_closer(D, i)
    return out


def foscttm_both(a, b, mem_bytes: int = DEFAULT_MEM_BYTES) -> float:
    """Mean FOSCTTM of matched rows of ``a`` and ``b``, averaged over both query directions (NaN
    for fewer than 2 rows): BABEL's validation score of its shared latent space."""
    if len(a) < 2:
        return float("nan")
    return float((foscttm(a, b, mem_bytes).mean() + foscttm(b, a, mem_bytes).mean()) / 2)


def _frac_closer(D: np.ndarray, offset: int) -> np.ndarray:
    b, n = D.shape
    rows = np.arange(b)
    true = D[rows, offset + rows]
    return (D < true[:, None]).sum(1) / (n - 1)


# ---------------------------------------------------------------------------------------------
# marker genes
# ---------------------------------------------------------------------------------------------
def marker_genes_from_labels(cell_types, genes, configured: dict | None = None) -> dict:
    """Marker genes per cell type present in ``genes``.

    ``configured`` (config ``marker_genes``) maps cell type -> gene list; if None, the marker is
    the suffix after the last '-' of the label (``Ex-L2/3-Rasgrf2`` -> ``Rasgrf2``) when that
    is a gene in ``genes``. Cell types without a usable marker are left out.
    """
    genes = set(map(str, genes))
    out = {}
    for ct in dict.fromkeys(map(str, cell_types)):
        if configured is not None:
            cand = list(configured.get(ct, []))
        else:
            cand = [ct.rsplit("-", 1)[1]] if "-" in ct else []
        cand = [g for g in cand if g in genes]
        if cand:
            out[ct] = cand
    return out


def marker_auroc(pred, truth, cell_types, genes, markers: dict,
                 mem_bytes: int = DEFAULT_MEM_BYTES) -> pd.DataFrame:
    """One-vs-rest AUROC of each marker gene's predicted and true expression per cell type.

    ``pred`` / ``truth``: cells x genes (truth may be sparse); ``cell_types``: per-cell labels;
    ``genes``: column names. Returns cell_type, gene, n_pos, auroc_pred, auroc_true.
    """
    cell_types = np.asarray(cell_types).astype(str)
    gidx = pd.Index(list(map(str, genes)))
    pairs = [(ct, g) for ct, gs in markers.items() for g in gs]
    cols = ["cell_type", "gene", "n_pos", "auroc_pred", "auroc_true"]
    if not pairs:
        return pd.DataFrame(columns=cols)
    j = gidx.get_indexer([g for _, g in pairs])
    labels = np.stack([cell_types == ct for ct, _ in pairs], axis=1).astype(np.float64)
    p = np.asarray(pred[:, j], dtype=np.float64) if not sp.issparse(pred) else pred[:, j].toarray()
    t = truth[:, j].toarray() if sp.issparse(truth) else np.asarray(truth[:, j], dtype=np.float64)
    return pd.DataFrame({
        "cell_type": [ct for ct, _ in pairs], "gene": [g for _, g in pairs],
        "n_pos": labels.sum(0).astype(np.int64),
        "auroc_pred": auroc_columns(labels, p, mem_bytes),
        "auroc_true": auroc_columns(labels, t, mem_bytes),
    }, columns=cols)


def nan_summary(values) -> dict:
    """mean, sd (ddof=1), median, n (finite values) and n_nan of a metric vector."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    f = v[ok]
    return {
        "mean": float(f.mean()) if f.size else np.nan,
        "sd": float(f.std(ddof=1)) if f.size > 1 else np.nan,
        "median": float(np.median(f)) if f.size else np.nan,
        "n": int(f.size), "n_nan": int((~ok).sum()),
    }


# ---------------------------------------------------------------------------------------------
# paper definitions: comparison test, feature subsets, FOSCTTM spaces
# ---------------------------------------------------------------------------------------------
PAPER_MARKER_MIN_POS = 8          # markers kept if n_pos > 8    (evaluate_polarbear.R line 252)
PAPER_PEAK_MIN_POS_FRAC = 0.01    # peaks kept if n_pos >= n/100 (evaluation_functions.R 249, 251)
R_EXACT_LIMIT = 50                # wilcox.test: exact p only if both n < 50 and no ties


def ranksum_pvalue(x, y, alternative: str = "greater") -> float:
    """One-sided Wilcoxon rank-sum (Mann-Whitney) p-value of ``x`` vs ``y``, as R's
    ``wilcox.test(x, y, alternative)`` computes it (unpaired; NaN values dropped).

    R uses the exact null distribution when both samples have fewer than 50 values and there are
    no ties, else the normal approximation with tie and continuity correction; when every value is
    tied the approximation has SIGMA = 0 and R reports p = 1. NaN if a sample is empty.
    The paper's figures call ``wilcox.test(other, polarbear, alternative = "less")``, i.e.
    ``ranksum_pvalue(polarbear, other, "greater")`` here.
    """
    if alternative not in ("greater", "less"):
        raise ValueError("alternative must be 'greater' or 'less'")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if x.size == 0 or y.size == 0:
        return float("nan")
    both = np.concatenate([x, y])
    if np.all(both == both[0]):
        return 1.0
    ties = np.unique(both).size < both.size
    exact = x.size < R_EXACT_LIMIT and y.size < R_EXACT_LIMIT and not ties
    res = mannwhitneyu(x, y, alternative=alternative, use_continuity=True,
                       method="exact" if exact else "asymptotic")
    return float(res.pvalue)


def signedrank_pvalue(x, y, alternative: str = "greater") -> float:
    """One-sided paired Wilcoxon signed-rank p-value of ``x - y`` (pairs with a NaN dropped);
    NaN when no pair differs. The definition used before the paper's rank-sum ("v1")."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if not (x != y).any():
        return float("nan")
    try:
        return float(wilcoxon(x, y, alternative=alternative).pvalue)
    except ValueError:
        return float("nan")


def paper_peak_set(n_pos, is_de, n_cells: int) -> np.ndarray:
    """Peaks of the paper's peak-wise summaries: differential (``is_de``) with at least
    ``n_cells / 100`` positive test cells (``peak_auc_npos >= ncells/100``; the authors apply it on
    both splits)."""
    n_pos = np.asarray(n_pos, dtype=np.float64)
    return np.asarray(is_de, dtype=bool) & (n_pos >= PAPER_PEAK_MIN_POS_FRAC * n_cells)


def paper_marker_set(n_pos) -> np.ndarray:
    """Marker (cell type, gene) pairs of the paper's marker AUROC: more than 8 positive cells."""
    return np.asarray(n_pos, dtype=np.float64) > PAPER_MARKER_MIN_POS


def foscttm_latent_spaces(rna_query, atac_reference, atac_query, rna_reference,
                          mem_bytes: int = DEFAULT_MEM_BYTES) -> dict:
    """FOSCTTM of both query modalities in both latent spaces (latent contract of predictions).

    The ATAC latent holds ``atac_reference`` (ATAC cells encoded, Polarbear ``mu_y``) and
    ``rna_query`` (RNA cells translated into it); the RNA latent holds ``rna_reference`` (``mu_x``)
    and ``atac_query``. For a query modality, each of its cells is matched against all cells of the
    other modality in that space. The authors' ``FOSCTTM(domain1, domain2)``
    (``bin/evaluation_functions.py`` lines 20-41, called on the ATAC-VAE embeddings in
    ``run_polarbear.py`` line 149, plotted by ``evaluate_polarbear.R`` lines 359-366) gives both
    directions of one space; the paper's Fig. 6 uses the ATAC-VAE space for both queries.
    Labels here follow the query cell's modality. The authors' R script labels
    ``sorted_fraction_1to2_atacVAE`` "RNA", but there domain 1 is ``encoded_y`` (ATAC cells,
    ``train_model.py`` l.236, 285, 524), i.e. it holds ATAC queries: their Fig. 6 "scRNA-seq query"
    panel is our ``atac_latent_atac_query`` and vice versa (same two curves, labels swapped).
    Returns keys ``atac_latent_rna_query``, ``atac_latent_atac_query``, ``rna_latent_rna_query``,
    ``rna_latent_atac_query``.
    """
    return {
        "atac_latent_rna_query": foscttm(rna_query, atac_reference, mem_bytes),
        "atac_latent_atac_query": foscttm(atac_reference, rna_query, mem_bytes),
        "rna_latent_rna_query": foscttm(rna_reference, atac_query, mem_bytes),
        "rna_latent_atac_query": foscttm(atac_query, rna_reference, mem_bytes),
    }
