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

from .sparse import as_csr

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


def library_normalized_gene_pearson(counts, pred_freq, mem_bytes: int = DEFAULT_MEM_BYTES) -> np.ndarray:
    """Per gene, Pearson across cells of log1p(counts / library size) and log1p(``pred_freq``):
    the gene-wise correlation the authors' ``run_polarbear.py`` reports for a model's validation
    and test cells (``eval_rna_correlation`` -> ``plot_cor_pergene(x, pred, logscale=True,
    normlib='norm')``). NaN for a gene that is constant (e.g. all zero) in either."""
    X = as_csr(counts).astype(np.float64)
    lib = np.asarray(X.sum(axis=1)).ravel()
    inv = np.divide(1.0, lib, out=np.zeros_like(lib), where=lib > 0)
    truth = sp.diags(inv) @ X
    truth.data = np.log1p(truth.data)
    return pearson_columns(np.log1p(np.asarray(pred_freq, dtype=np.float64)), truth, mem_bytes)


# the statistics of translation_task_statistics; a model is better when they are higher
TASK_STATISTICS = ("rna_cor", "atac_auroc", "atac_auprnorm")
TASK_STATISTICS_HIGHER_IS_BETTER = TASK_STATISTICS
# the statistic that scores each translation task on the validation cells (Polarbear's and BABEL's
# grid selection)
TRANSLATION_TASK_STATISTIC = {"atac_to_rna": "rna_cor", "rna_to_atac": "atac_auroc"}


def translation_task_statistics(rna_counts, pred_rna_freq, atac, pred_atac) -> dict:
    """The translation tasks' statistics the authors' ``run_polarbear.py`` reports for a model's
    validation and test cells: ``rna_cor`` (ATAC -> RNA, ``eval_rna_correlation``: mean over genes
    of :func:`library_normalized_gene_pearson`) and ``atac_auroc`` / ``atac_auprnorm`` (RNA -> ATAC,
    ``eval_atac_AUROC_AUPR``: mean peak-wise AUROC / AUPRnorm of the prediction against the open
    peaks, :func:`auroc_ap_columns`). Means over the features where they are defined (NaN if none)."""
    cor = library_normalized_gene_pearson(rna_counts, pred_rna_freq)
    peaks = auroc_ap_columns(atac, pred_atac)

    def mean(v) -> float:
        v = np.asarray(v, dtype=np.float64)
        return float(v[np.isfinite(v)].mean()) if np.isfinite(v).any() else float("nan")

    return {"rna_cor": mean(cor), "atac_auroc": mean(peaks["auroc"]), "atac_auprnorm": mean(peaks["auprnorm"])}


# ---------------------------------------------------------------------------------------------
# peak-wise AUROC / average precision (one integer-key sort per column chunk)
# ---------------------------------------------------------------------------------------------
# Each column (feature) is turned into integer keys ``2 * order(score) + label`` whose ascending
# sort puts the cells in score order and, inside a tie group, negatives before positives. Only
# the positives are then visited (one entry per run of tied positives): with
#   g      = cells scoring below the run's value (start of its tie group),
#   pos_lt = positives scoring below it, size = positives in the run,
#   end    = position after the run (the end of the tie group, positives come last),
# AUROC = sum_runs size * (neg_lt + neg_eq / 2) / (P N)       (Mann-Whitney U with ties = 1/2,
#         neg_lt = g - pos_lt, neg_eq = end - g - size;        the area of sklearn's ROC curve)
# AP    = sum_runs size * TP_ge / n_ge / P                      (sklearn's step-wise sum over
#         TP_ge = P - pos_lt, n_ge = n - g                       distinct thresholds)
# Keys are 32-bit when the scores of a chunk have one sign (float32 bit patterns are monotone
# for non-negative floats), else 64-bit; float64 scores that float32 holds exactly take the same
# path, others are ranked by a float64 argsort first (exact, slower).
_CELL_BYTES = 40                # working set per (column, cell) of a chunk, all paths, generous
_CACHE_CELLS = 2**18            # chunk width cap: 1 MiB of 32-bit keys (L2-sized; measured
                                # 2**16..2**19 alike, 2**21+ slower)


def _auroc_ap_chunk_width(n: int, mem_bytes: int) -> int:
    by_mem = max(1, int(mem_bytes // max(1, n * _CELL_BYTES)))
    return max(1, min(by_mem, _CACHE_CELLS // max(1, n)))


def _score_keys(s: np.ndarray):
    """Keys ``2 * order(score)`` (k x n, C order, low bit free for the label) of a chunk of
    scores ``s`` (k x n, any layout), or None if only the float64 argsort path is exact.

    ``order`` is the float32 bit pattern: non-negative floats (and -0.0) compare like their bit
    patterns, so ``bits << 1`` (the shift drops the sign bit of -0.0) is a 32-bit key;
    non-positive ones like ``0x7fffffff - magnitude``; mixed signs use a signed 64-bit key.
    """
    if s.dtype == np.float32:
        s32 = s
        lo, hi = s32.min(), s32.max()                   # NaN propagates
    else:
        s64 = np.asarray(s, dtype=np.float64)
        lo, hi = s64.min(), s64.max()
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError("scores contain NaN or infinite values")
        s32 = s64.astype(np.float32)
        if not np.array_equal(s32, s64):
            return None
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError("scores contain NaN or infinite values")
    bits = s32.view(np.uint32)
    K = np.empty(s32.shape, dtype=np.uint32 if (lo >= 0 or hi <= 0) else np.int64)
    if lo >= 0:
        np.left_shift(bits, 1, out=K)
    elif hi <= 0:
        np.bitwise_and(bits, np.uint32(0x7FFFFFFF), out=K)
        np.subtract(np.uint32(0x7FFFFFFF), K, out=K)
        np.left_shift(K, 1, out=K)
    else:
        np.bitwise_and(bits, np.uint32(0x7FFFFFFF), out=K)
        np.negative(K, out=K, where=bits >= np.uint32(0x80000000))
        np.left_shift(K, 1, out=K)
    return K


def _rank_keys(s: np.ndarray, lab_idx: np.ndarray) -> np.ndarray:
    """Keys ``2 * dense_rank(score) + label`` in score order (k x n), exact for float64 scores
    (ties: equal float64 values, -0.0 == 0.0)."""
    s64 = np.ascontiguousarray(s, dtype=np.float64)
    k, n = s64.shape
    order = np.argsort(s64, axis=1)
    v = np.take_along_axis(s64, order, axis=1)
    K = np.zeros((k, n), dtype=np.int64)
    np.cumsum(v[:, 1:] != v[:, :-1], axis=1, out=K[:, 1:])
    K <<= 1
    lab = np.zeros(k * n, dtype=np.int8)
    lab[lab_idx] = 1
    K += np.take_along_axis(lab.reshape(k, n), order, axis=1)
    return K


def _auroc_ap_sorted(K: np.ndarray, n_pos: np.ndarray):
    """AUROC and AP numerators of every row from row-sorted keys (see the block comment)."""
    k, n = K.shape
    Kf = K.reshape(-1)
    pos = np.flatnonzero((K & 1).astype(bool))              # row-major: row, then score order
    auc = np.zeros(k)
    ap = np.zeros(k)
    if pos.size == 0:
        return auc, ap
    row = pos // n
    loc = pos - row * n
    val = Kf[pos] >> 1
    j = np.arange(pos.size) - (np.cumsum(n_pos) - n_pos)[row]   # index among the row's positives
    new_run = np.empty(pos.size, dtype=bool)
    new_run[0] = True
    np.not_equal(val[1:], val[:-1], out=new_run[1:])
    new_run[1:] |= row[1:] != row[:-1]
    first = np.flatnonzero(new_run)
    last = np.empty_like(first)
    last[:-1] = first[1:] - 1
    last[-1] = pos.size - 1
    r = row[first]
    size = (last - first + 1).astype(np.float64)
    pos_lt = j[first].astype(np.float64)
    g = loc[first]                                          # tie group start if no negative ties
    tied = np.flatnonzero(g > 0)
    tied = tied[(Kf[pos[first[tied]] - 1] >> 1) == val[first[tied]]]
    if tied.size:                                           # negatives tie with the run
        g = g.copy()
        rows_t, inv = np.unique(r[tied], return_inverse=True)
        V = K[rows_t] >> 1
        head = np.zeros(V.shape, dtype=np.int32)            # position where a tie group starts
        head[:, 1:] = np.where(V[:, 1:] != V[:, :-1], np.arange(1, n, dtype=np.int32), 0)
        del V
        np.maximum.accumulate(head, axis=1, out=head)
        g[tied] = head[inv, g[tied]]
        del head
    g = g.astype(np.float64)
    end = (loc[last] + 1).astype(np.float64)
    P = n_pos[r].astype(np.float64)
    auc = np.bincount(r, weights=size * ((g - pos_lt) + 0.5 * (end - g - size)), minlength=k)
    ap = np.bincount(r, weights=size * (P - pos_lt) / (n - g), minlength=k)
    return auc, ap


def _positives(T, sl: slice, n: int):
    """Flat indices ``column_in_chunk * n + cell`` of the cells with truth > 0 in columns ``sl``
    (ascending) and their count per column."""
    k = sl.stop - sl.start
    if sp.issparse(T):                                      # canonical CSC (see _prepare_truth)
        a, b = T.indptr[sl.start], T.indptr[sl.stop]
        col = np.repeat(np.arange(k), np.diff(T.indptr[sl.start:sl.stop + 1]))
        keep = T.data[a:b] > 0
        idx = col[keep] * n + T.indices[a:b][keep]           # ascending (canonical CSC)
    else:
        idx = np.flatnonzero(np.asarray(T[:, sl]).T > 0)
    return idx, np.bincount(idx // max(n, 1), minlength=k)


def _prepare_truth(X):
    """CSC with sorted, summed duplicates (a copy if X has duplicates), ndarray otherwise."""
    if not sp.issparse(X):
        return np.asarray(X)
    T = sp.csc_matrix(X)
    if not T.has_canonical_format:
        T = T.copy()
        T.sum_duplicates()
    return T


def auroc_ap_columns(truth, scores, mem_bytes: int = DEFAULT_MEM_BYTES) -> pd.DataFrame:
    """Per-column AUROC, AP (= sklearn average_precision_score), PP and AUPRnorm.

    ``truth`` (cells x features, sparse or dense) is binarised (> 0); ``scores`` (dense or sparse,
    any real dtype; float32 is the fast path) must be finite.
    Ties are handled exactly as scikit-learn does (one ROC/PR point per distinct score).
    Returns a DataFrame with columns auroc, aupr, pp, auprnorm, n_pos (one row per column).
    """
    _check_shapes(truth, scores)
    n, m = scores.shape
    T, S = _prepare_truth(truth), _prepare(scores)
    auroc = np.full(m, np.nan)
    ap = np.full(m, np.nan)
    npos = np.zeros(m, dtype=np.int64)
    step = _auroc_ap_chunk_width(n, mem_bytes)
    for i in range(0, m if n else 0, step):
        sl = slice(i, min(m, i + step))
        s = S[:, sl].toarray().T if sp.issparse(S) else np.asarray(S[:, sl]).T
        idx, cnt = _positives(T, sl, n)
        K = _score_keys(s)
        if K is None:
            K = _rank_keys(s, idx)
        else:
            if K.dtype == np.uint32:
                K.reshape(-1)[idx] |= np.uint32(1)
            else:
                K.reshape(-1)[idx] |= 1
        del s
        K.sort(axis=1)
        auc_num, ap_num = _auroc_ap_sorted(K, cnt)
        del K
        with np.errstate(invalid="ignore", divide="ignore"):
            auroc[sl] = auc_num / (cnt * (n - cnt).astype(np.float64))
            ap[sl] = ap_num / cnt
        auroc[sl][(cnt == 0) | (cnt == n)] = np.nan
        ap[sl][cnt == 0] = np.nan
        npos[sl] = cnt
    pp = npos / n if n else np.full(m, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        auprnorm = np.where(pp < 1, (ap - pp) / (1 - pp), np.nan)
    return pd.DataFrame({"auroc": auroc, "aupr": ap, "pp": pp, "auprnorm": auprnorm,
                         "n_pos": npos})


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
