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

Two entry points, one per evaluation definition (see evaluate.py):

``scran_size_factors`` (definition "paper") -- what the authors' evaluation computes:
    ``computeSumFactors(counts)`` of scran (Polarbear ``bin/evaluate_polarbear.R`` line 36) on all
    co-assay cells WITHOUT cell types, i.e. scran/scuttle ``pooledSizeFactors`` defaults:
    pool sizes ``seq(21, 101, 5)``, ``max.cluster.size = 3000`` (the cells are split round-robin,
    in matrix order, into ``ceiling(n / 3000)`` arbitrary groups), ``min.mean`` guessed from the
    median library size (UMI data: 0.1), the reference group = the one with the most non-zero
    genes of its average pseudo-cell, rescaling = median ratio of the groups' pseudo-cells,
    non-positive estimates cleaned by the ``cleanSizeFactors`` curve fit, factors centred to mean 1.
``pooled_size_factors`` (definition "v1") -- the same estimator with the cell types as clusters,
    pool sizes 21..101 by 20 and the cluster rescaling of step 5 above.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .sparse import row_sums

_log = logging.getLogger("polarbear")

DEFAULT_POOL_SIZES = (21, 41, 61, 81, 101)
_IDENTITY_WEIGHT = np.sqrt(1e-6)


def ring_order(libsizes: np.ndarray) -> np.ndarray:
    """Cell indices on the library-size ring: odd ranks ascending, then even ranks descending."""
    o = np.argsort(libsizes, kind="stable")
    return np.concatenate([o[0::2], o[1::2][::-1]])


def pool_matrix(n: int, pool_sizes) -> sp.csr_matrix:
    """Sparse (n_pools x n) 0/1 matrix: each row = ``s`` consecutive ring positions (wrapping)."""
    rows, cols = [], []
    offset = 0
    if len(pool_sizes) == 0:
        return sp.csr_matrix((0, n))
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
    lib = row_sums(X)
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
    lib = row_sums(X)
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


# ---------------------------------------------------------------------------------------------
# scran / scuttle pooledSizeFactors (definition "paper")
# ---------------------------------------------------------------------------------------------
SCRAN_POOL_SIZES = tuple(range(21, 102, 5))
SCRAN_MAX_CLUSTER_SIZE = 3000
_LOWWEIGHT = 1e-6


def limit_cluster_size(clusters, max_size: int | None = SCRAN_MAX_CLUSTER_SIZE) -> np.ndarray:
    """scuttle ``.limit_cluster_size``: split every cluster larger than ``max_size`` round-robin.

    A cluster of ``k`` cells (in matrix order) becomes ``ceiling(k / max_size)`` groups assigned
    ``1, 2, .., mult, 1, 2, ..``; clusters are numbered in order of first appearance.
    Returns integer group ids 0..G-1.
    """
    clusters = np.asarray(clusters)
    out = np.empty(clusters.size, dtype=np.int64)
    counter = 0
    _, first = np.unique(clusters, return_index=True)
    for c in clusters[np.sort(first)]:
        idx = np.flatnonzero(clusters == c)
        mult = 1 if max_size is None or idx.size <= max_size else int(np.ceil(idx.size / max_size))
        out[idx] = counter + np.arange(idx.size) % mult
        counter += mult
    return out


def guess_min_mean(libsizes) -> float:
    """scuttle ``.guessMinMean``: 0.1 for UMI-like data (median library size <= 50,000 or between
    50,000 and 100,000), 1 for read counts (>= 100,000)."""
    mid = float(np.median(libsizes)) if len(libsizes) else np.nan
    if not np.isfinite(mid):
        return 1.0
    return 1.0 if mid >= 100_000 else 0.1


def clean_size_factors(size_factors, num_detected, iterations: int = 3, nmads: float = 3.0,
                       logger: logging.Logger | None = None) -> np.ndarray:
    """scuttle ``cleanSizeFactors``: replace non-positive factors using the robust fit
    ``num_detected = a x / (1 + b x)`` of the positive ones (log-scale least squares with
    tricube robustness weights); falls back to the smallest positive factor if the fit fails."""
    from scipy.optimize import least_squares

    sf = np.asarray(size_factors, dtype=np.float64).copy()
    nd = np.asarray(num_detected, dtype=np.float64)
    keep = sf > 0
    if keep.all():
        return sf
    X, Y = sf[keep], nd[keep]

    def fallback(why):
        (logger or _log).warning("cleanSizeFactors fit failed (%s): smallest positive factor used", why)
        sf[~keep] = X.min() if X.size else np.nan
        return sf

    if X.size < 3 or (Y <= 0).any():
        return fallback("fewer than 3 positive factors or cells without detected genes")
    lower = np.median(X) > X
    if not lower.any():
        return fallback("no factor below the median")
    A = float((X[lower] * Y[lower]).sum() / (X[lower] ** 2).sum())
    below = np.flatnonzero(Y < A * X)
    if below.size == 0:
        return fallback("no cell below the initial line")
    top = below[np.argmax(Y[below])]
    B = A / Y[top] - 1.0 / X[top]
    if not (A > 0 and B > 0):
        return fallback("non-positive initial values")
    lY, lX = np.log(Y), np.log(X)

    def model(p):
        return p[0] + lX - np.log(X * np.exp(p[1]) + 1.0)

    init = np.log([A, B])
    w = np.ones_like(Y)
    for _ in range(iterations + 1):
        sw = np.sqrt(w)
        fit = least_squares(lambda p: sw * (lY - model(p)), init)
        if not fit.success or not np.isfinite(fit.x).all():
            return fallback("least squares did not converge")
        init = fit.x
        resid = np.abs(sw * (lY - model(init)))            # nls residuals are weighted
        bw = max(1e-8, float(np.median(resid)) * nmads)
        w = (1.0 - np.minimum(resid / bw, 1.0) ** 3) ** 3
    failed = nd[~keep]
    new = failed / (np.exp(init[0]) - np.exp(init[1]) * failed)
    new[new < 0] = X.max()
    sf[~keep] = new
    return sf


def _ring_pool_medians(Z: sp.csr_matrix, u: np.ndarray, ring: np.ndarray, sizes, max_elems: int):
    """Pool estimates of every (size, start) window on the ring, in ``pool_matrix`` row order:
    ``b[k * n + start] = median_g( sum_{r = start}^{start + s_k - 1} Z[ring[r mod n], g] / u_g )``.

    Windows are differences of a prefix sum over a dense block of consecutive ring positions
    (scran sums each window incrementally in C++), so the cost is one pass over the block per size.
    """
    n, g = Z.shape
    out = np.empty(len(sizes) * n)
    if not len(sizes):
        return out
    smax = max(sizes)
    Zr = sp.csr_matrix(Z[ring])
    inv_u = 1.0 / u
    step = max(1, min(n, int(max_elems // max(1, 3 * g)) - smax))
    for a in range(0, n, step):
        k = min(n, a + step) - a
        D = Zr[np.arange(a, a + k + smax - 1) % n].toarray()
        D *= inv_u[None, :]
        C = np.zeros((D.shape[0] + 1, g))
        np.cumsum(D, axis=0, out=C[1:])
        del D
        for j, s in enumerate(sizes):
            out[j * n + a: j * n + a + k] = np.median(C[s:s + k] - C[:k], axis=1)
    return out


def _scran_cluster(X: sp.csr_matrix, sizes, min_mean: float, max_elems: int, logger):
    """scuttle ``.per_cluster_normalize`` for one group of cells with positive library sizes.

    Returns (normalisation factors on scran's scale, the group's average pseudo-cell over all
    genes, number of cleaned factors)."""
    n = X.shape[0]
    lib = row_sums(X)
    Z = sp.csr_matrix(sp.diags(1.0 / lib) @ X)             # x / library size
    ave = np.asarray(Z.mean(axis=0)).ravel() * lib.mean()  # = calculateAverage()
    keep = ave >= min_mean
    if not keep.any():
        raise ValueError(f"no gene with average count >= min.mean={min_mean}")
    Zf = Z[:, np.flatnonzero(keep)] if not keep.all() else Z
    u = ave[keep]
    sizes = [int(s) for s in sizes if s <= n]
    ring = ring_order(lib)
    perm = np.empty(n, dtype=np.int64)
    perm[ring] = np.arange(n)
    A = sp.csr_matrix(pool_matrix(n, sizes)[:, perm])      # pools over ring positions -> cells
    b = _ring_pool_medians(Zf, u, ring, sizes, max_elems)
    # weighted least squares of [A; sqrt(w) I] phi = [b; sqrt(w) / sum(u)] (normal equations)
    M = (A.T @ A + _LOWWEIGHT * sp.identity(n, format="csr")).tocsc()
    rhs = A.T @ b + _LOWWEIGHT / u.sum() * np.ones(n)
    nf = spla.spsolve(M, rhs) * lib
    n_clean = 0
    if (nf < 0).any():
        n_clean = int((nf <= 0).sum())
        logger.warning("size factors: %d non-positive estimates cleaned (cleanSizeFactors)", n_clean)
        nf = clean_size_factors(nf, np.asarray((Zf > 0).sum(axis=1)).ravel(), logger=logger)
    return nf, ave, n_clean


def scran_size_factors(X, clusters=None, pool_sizes=SCRAN_POOL_SIZES,
                       max_cluster_size: int | None = SCRAN_MAX_CLUSTER_SIZE,
                       min_mean: float | None = None, max_elems: int = 20_000_000,
                       logger: logging.Logger | None = None):
    """scran ``computeSumFactors(x)`` (scuttle ``pooledSizeFactors``) with its defaults.

    ``X``: cells x genes counts (the transpose of R's genes x cells). ``clusters=None`` = one
    cluster, as in the authors' call; it is split by ``max_cluster_size`` like scran does.
    Cells with zero counts (scran refuses them) get NaN and are left out of everything.
    Returns (size factors with mean 1 over the positive ones, info dict).
    """
    logger = logger or _log
    X = sp.csr_matrix(X, dtype=np.float64)
    n = X.shape[0]
    lib = row_sums(X)
    ok = lib > 0
    sf = np.full(n, np.nan)
    if min_mean is None:
        min_mean = guess_min_mean(lib[ok])
    base = np.zeros(n, dtype=np.int64) if clusters is None else np.asarray(clusters)
    groups_ok = limit_cluster_size(base[ok], max_cluster_size)
    cells_ok = np.flatnonzero(ok)
    sizes = sorted(int(s) for s in pool_sizes)
    info = {"n_zero_count_cells": int((~ok).sum()), "min_mean": min_mean, "pool_sizes": sizes,
            "n_groups": 0, "group_sizes": [], "reference_group": None, "rescale": [],
            "n_cleaned": 0}
    if not ok.any():
        return sf, info
    nfs, profiles, idxs = [], [], []
    for gid in range(groups_ok.max() + 1):
        idx = cells_ok[groups_ok == gid]
        nf, ave, n_clean = _scran_cluster(X[idx], sizes, min_mean, max_elems, logger)
        nfs.append(nf)
        profiles.append(ave)
        idxs.append(idx)
        info["n_cleaned"] += n_clean
    info["n_groups"] = len(idxs)
    info["group_sizes"] = [int(i.size) for i in idxs]
    ref = int(np.argmax([(p > 0).sum() for p in profiles]))  # first cluster with most non-zeros
    info["reference_group"] = ref
    ref_prof = profiles[ref]
    for nf, cur, idx in zip(nfs, profiles, idxs):
        cl, rl = cur.sum(), ref_prof.sum()
        use = (cur / cl + ref_prof / rl) / 2 * (cl + rl) / 2 >= min_mean
        c, r = cur[use], ref_prof[use]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = c / r
        ratio = ratio[~np.isnan(ratio)]
        f = float(np.median(ratio)) if ratio.size else np.nan
        if not np.isfinite(f) or f <= 0:
            logger.warning("size factors: inter-cluster rescaling factor not positive, ratio of "
                           "average library sizes used")
            f = float(c.sum() / r.sum())
        info["rescale"].append(f)
        sf[idx] = nf * f
    pos = np.isfinite(sf) & (sf > 0)
    sf /= sf[pos].mean()
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
