"""Deconvolution-style (pooled) size factors for scRNA-seq counts (after Lun, Bach & Marioni 2016).

Why: the paper correlates predicted "norm estimation" with the TRUE expression normalised by
pooled size factors (scran ``computeSumFactors``). This module is an independent numpy/scipy
implementation of the same estimator:

1. Cells of one cluster are normalised by their library size ``t_j`` (scaled to mean 1):
   ``z_j = x_j / t_j``. The average pseudo-cell is ``u = mean_j z_j``; only genes with
   ``u_g >= min_mean`` are used.
2. Cells are put on a ring ordered by library size (odd ranks ascending, even ranks descending,
   so every window mixes small and large cells) and, for each pool size ``s`` in ``pool_sizes``
   and each start position, the ``s`` consecutive cells form a pool.
3. Pool estimate ``b_k = median_g( sum_{j in pool k} z_jg / u_g )`` estimates
   ``sum_{j in pool k} phi_j`` with ``phi_j = theta_j / t_j``.
4. The over-determined linear system (one row per pool, plus one row ``phi_j = 1`` per cell with
   weight ``sqrt(1e-6)`` for full rank, as in scran) is solved exactly by sparse least squares
   (normal equations, sparse LU). ``theta_j = phi_j * t_j``.
5. Clusters (here: cell types) are estimated separately, then put on a common scale: a
   cluster's factors are multiplied by the median over genes of the ratio of its mean normalised
   profile to that of the reference (largest) cluster. Finally factors are centred to mean 1.

Fallbacks (each is logged and counted in the returned ``info``):
- a cluster smaller than the smallest pool size, or without any gene passing ``min_mean``,
  uses library-size factors (then rescaled across clusters like any other cluster);
- pool sizes larger than a cluster are dropped for that cluster;
- a non-positive or non-finite solved factor is replaced by the cell's library-size factor;
- cells with zero total count get size factor NaN (their normalised profile is all zero).
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

_log = logging.getLogger("polarbear")

DEFAULT_POOL_SIZES = (21, 41, 61, 81, 101)
_IDENTITY_WEIGHT = np.sqrt(1e-6)


def _row_sums(X) -> np.ndarray:
    return np.asarray(X.sum(axis=1)).ravel().astype(np.float64)


def ring_order(libsizes: np.ndarray) -> np.ndarray:
    """Cell indices on the library-size ring: odd ranks ascending, then even ranks descending."""
    o = np.argsort(libsizes, kind="stable")
    return np.concatenate([o[0::2], o[1::2][::-1]])


def pool_matrix(n: int, pool_sizes) -> sp.csr_matrix:
    """Sparse (n_pools x n) 0/1 matrix: each row = ``s`` consecutive ring positions (wrapping)."""
    rows, cols = [], []
    offset = 0
    for s in pool_sizes:
        starts = np.arange(n)
        members = (starts[:, None] + np.arange(s)[None, :]) % n
        rows.append(np.repeat(offset + starts, s))
        cols.append(members.ravel())
        offset += n
    rows = np.concatenate(rows)
    cols = np.concatenate(cols)
    return sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(offset, n))


def _pool_medians(A: sp.csr_matrix, Z: sp.csr_matrix, u: np.ndarray, max_elems: int) -> np.ndarray:
    """median_g((A @ Z)[k, g] / u_g) for every pool k, in row chunks to bound memory."""
    n_pools = A.shape[0]
    step = max(1, int(max_elems // max(1, Z.shape[1])))
    out = np.empty(n_pools)
    inv_u = 1.0 / u
    for i in range(0, n_pools, step):
        P = (A[i:i + step] @ Z).toarray()
        P *= inv_u[None, :]
        out[i:i + step] = np.median(P, axis=1)
    return out


def _solve_cluster(X: sp.csr_matrix, pool_sizes, min_mean: float, max_elems: int):
    """Size factors (arbitrary scale) of one cluster with positive library sizes; or None."""
    n = X.shape[0]
    lib = _row_sums(X)
    t = lib / lib.mean()
    sizes = [int(s) for s in pool_sizes if s <= n]
    if not sizes:
        return None, "cluster smaller than the smallest pool size"
    Z = sp.diags(1.0 / t) @ X
    Z = sp.csr_matrix(Z)
    u = np.asarray(Z.mean(axis=0)).ravel()
    keep = u >= min_mean
    if not keep.any():
        return None, f"no gene with mean normalised count >= {min_mean}"
    Z = Z[:, np.flatnonzero(keep)]
    u = u[keep]
    ring = ring_order(lib)
    A_ring = pool_matrix(n, sizes)                       # columns = ring positions
    # column r of A_ring is cell ring[r]: permute columns to cell order
    perm = np.empty(n, dtype=np.int64)
    perm[ring] = np.arange(n)
    A = sp.csr_matrix(A_ring[:, perm])
    b = _pool_medians(A, Z, u, max_elems)
    w2 = _IDENTITY_WEIGHT ** 2
    M = (A.T @ A + w2 * sp.identity(n, format="csr")).tocsc()
    rhs = A.T @ b + w2 * np.ones(n)
    phi = spla.spsolve(M, rhs)
    theta = phi * t
    bad = ~np.isfinite(theta) | (theta <= 0)
    if bad.any():
        # library-size factor on the same scale as the solved ones
        scale = np.median(theta[~bad] / t[~bad]) if (~bad).any() else 1.0
        theta[bad] = t[bad] * scale
    return theta, int(bad.sum())


def pooled_size_factors(X, clusters=None, pool_sizes=DEFAULT_POOL_SIZES, min_mean: float = 0.1,
                        max_elems: int = 20_000_000, logger: logging.Logger | None = None):
    """Deconvolution size factors of a cells x genes count matrix (CSR or dense).

    Parameters
    ----------
    X : cells x genes raw counts.
    clusters : optional per-cell labels (e.g. cell types); factors are estimated per cluster then
        rescaled onto a common scale (see module docstring). ``None`` = one cluster.
    pool_sizes : pool sizes (scran default 21..101 by 20).
    min_mean : genes with mean library-size-normalised count below this are not used.
    max_elems : dense working-set bound (pools x genes) of the pooled-sum step.

    Returns
    -------
    (size_factors, info): float64 array (mean 1 over cells with counts, NaN for zero-count
    cells) and a dict with fallback counts.
    """
    logger = logger or _log
    X = sp.csr_matrix(X, dtype=np.float64)
    n = X.shape[0]
    lib = _row_sums(X)
    labels = np.zeros(n, dtype=np.int64) if clusters is None else np.asarray(clusters)
    sf = np.full(n, np.nan)
    ok = lib > 0
    info = {"n_zero_count_cells": int((~ok).sum()), "library_fallback_clusters": [],
            "n_nonpositive_replaced": 0, "cluster_rescale": {}}
    groups = {}
    for c in np.unique(labels[ok]):
        idx = np.flatnonzero(ok & (labels == c))
        theta, status = _solve_cluster(X[idx], pool_sizes, min_mean, max_elems)
        if theta is None:
            logger.warning("size factors: cluster %r (%d cells): %s -> library-size factors",
                           c, idx.size, status)
            info["library_fallback_clusters"].append(str(c))
            theta = lib[idx] / lib[idx].mean()
        else:
            info["n_nonpositive_replaced"] += status
            theta = theta / theta.mean()
        sf[idx] = theta
        groups[c] = idx
    if not groups:
        return sf, info
    # rescale clusters onto the reference (largest) cluster
    ref = max(groups, key=lambda c: groups[c].size)
    means = {}
    for c, idx in groups.items():
        means[c] = np.asarray((sp.diags(1.0 / sf[idx]) @ X[idx]).mean(axis=0)).ravel()
    for c, idx in groups.items():
        if c == ref:
            f = 1.0
        else:
            use = (means[c] > 0) & (means[ref] > 0) & (0.5 * (means[c] + means[ref]) >= min_mean)
            f = float(np.median(means[c][use] / means[ref][use])) if use.any() else 1.0
            if not np.isfinite(f) or f <= 0:
                f = 1.0
        sf[idx] *= f
        info["cluster_rescale"][str(c)] = f
    sf[ok] /= sf[ok].mean()
    return sf, info


def normalize_counts(X, size_factors) -> sp.csr_matrix:
    """CSR of ``x_jg / s_j`` (rows with NaN/zero size factor become all-zero)."""
    s = np.asarray(size_factors, dtype=np.float64)
    inv = np.where(np.isfinite(s) & (s > 0), 1.0 / np.where(s > 0, s, 1.0), 0.0)
    out = sp.csr_matrix(sp.diags(inv) @ sp.csr_matrix(X, dtype=np.float64))
    out.eliminate_zeros()
    return out


def log_normalize(X, size_factors) -> sp.csr_matrix:
    """CSR of ``log1p(x_jg / s_j)`` (deconvolution-normalised log expression)."""
    out = normalize_counts(X, size_factors)
    out.data = np.log1p(out.data)
    return out
