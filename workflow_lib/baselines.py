"""Two simple, honest translation baselines: Seurat-style kNN averaging and ridge regression.

Both are fitted on the TRAIN co-assay cells of a scenario only and predict the TEST cells.
Everything stays sparse until the (test cells x features) output is produced.

Shared representations (all fitted on TRAIN cells):

* RNA space (:class:`RnaPCA`): ``normalize_total`` to the median train library size, ``log1p``,
  PCA (sparse ARPACK with implicit centring). Predicted frequencies are embedded by the same map
  (frequency x target sum, ``log1p``, PCA).
* ATAC space for neighbour search (:class:`AtacLSI`): TF-IDF (term frequency = peak / accessible
  peaks of the cell, IDF from train cells), ``log1p(tf * idf * 1e4)``, truncated SVD; the first
  component (sequencing depth) is dropped and rows are L2-normalised (cosine geometry).
* ATAC depth: the depth of a cell is its number of accessible peaks; its depth factor is that
  divided by the mean over train cells. The depth-normalised profile of a cell is
  ``binary / depth_factor``. A test cell's depth factor is predicted from its RNA profile by
  :class:`AtacDepthModel` (RidgeCV on log library size, log detected genes and the RNA PCs, as in
  the paper's Section 2.4). Unnormalised probabilities are ``1 - (1 - norm) ** depth_factor``
  (:func:`depth_scale`, the numpy twin of ``models.distributions.depth_scaled_prob``: ~ norm x
  depth for small probabilities, always in [0, 1]).

Latent outputs (``latent.h5ad``):

* knn: ``rna_query`` = ATAC-LSI embedding of the kNN-predicted ATAC profile of the RNA test cell,
  ``atac_reference`` = ATAC-LSI embedding of the measured ATAC test cell; ``atac_query`` = RNA-PCA
  embedding of the kNN-predicted RNA profile of the ATAC test cell, ``rna_reference`` = RNA-PCA
  embedding of the measured RNA test cell.
* ridge: the regression outputs themselves, i.e. ``rna_query`` = predicted ATAC-PCA components,
  ``atac_reference`` = ATAC-PCA components of the measured (depth-normalised) ATAC cell, and
  symmetrically ``atac_query`` = predicted RNA-PCA components, ``rna_reference`` = RNA-PCA
  components of the measured RNA cell.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.linear_model import RidgeCV
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_limits

from .depth_regressor import fit_depth_ridge, predict_log_depth
from .fileutils import get_logger, timed
from .sparse import row_scale, row_sums
from .predictions import (build_prediction_adatas, load_coassay, prediction_paths, rest_rows,
                          write_predictions)

CHUNK = 2048  # test cells per block when back-projecting to all features


# --------------------------------------------------------------------------------------------
# small sparse helpers


def _n_comp(n: int, X_shape) -> int:
    """Clamp a requested number of components to what ARPACK/SVD can give."""
    return int(max(1, min(n, X_shape[0] - 1, X_shape[1] - 1)))


def rna_frequencies(X: sp.csr_matrix) -> sp.csr_matrix:
    lib = np.maximum(row_sums(X), 1.0)
    return row_scale(X, 1.0 / lib)


def normalize_rows(P: np.ndarray) -> np.ndarray:
    """Rows -> frequencies (rows that are all zero become uniform)."""
    P = np.maximum(np.asarray(P, dtype=np.float64), 0.0)
    s = P.sum(axis=1, keepdims=True)
    uniform = np.full((1, P.shape[1]), 1.0 / P.shape[1])
    out = np.where(s > 0, P / np.where(s > 0, s, 1.0), uniform)
    return out.astype(np.float32)


def depth_scale(norm: np.ndarray, depth_factor: np.ndarray) -> np.ndarray:
    """Unnormalised accessibility ``1 - (1 - norm) ** d`` per cell (rows), as
    ``workflow_lib.models.distributions.depth_scaled_prob`` (numpy here: no torch needed)."""
    d = np.asarray(depth_factor, dtype=np.float64).reshape(-1, 1)
    q = np.clip(np.asarray(norm, dtype=np.float64), 0.0, 1.0 - 1e-7)
    return (-np.expm1(d * np.log1p(-q))).astype(np.float32)


# --------------------------------------------------------------------------------------------
# representations


class RnaPCA:
    """normalize_total(target = median train library) + log1p + PCA, fitted on train cells."""

    def __init__(self, n_components: int, seed: int = 0):
        self.n_components = n_components
        self.seed = seed

    def _lognorm_counts(self, X: sp.csr_matrix) -> sp.csr_matrix:
        Xn = row_scale(X, self.target_sum / np.maximum(row_sums(X), 1.0))
        Xn.data = np.log1p(Xn.data)
        return Xn

    def fit(self, X: sp.csr_matrix) -> "RnaPCA":
        self.target_sum = float(np.median(np.maximum(row_sums(X), 1.0)))
        L = self._lognorm_counts(X)
        self.pca = PCA(n_components=_n_comp(self.n_components, L.shape), svd_solver="arpack",
                       random_state=self.seed).fit(L)
        return self

    def transform(self, X: sp.csr_matrix) -> np.ndarray:
        return self.pca.transform(self._lognorm_counts(X)).astype(np.float32)

    def transform_freq(self, F: np.ndarray) -> np.ndarray:
        """Embed predicted expression frequencies (dense, rows sum to 1)."""
        return self.pca.transform(np.log1p(np.asarray(F, dtype=np.float64) * self.target_sum)).astype(np.float32)

    def inverse_freq(self, Z: np.ndarray) -> np.ndarray:
        """Back-project PCs to expression frequencies (log space clipped at 0, expm1, rows -> 1)."""
        L = self.pca.inverse_transform(np.asarray(Z, dtype=np.float64))
        return normalize_rows(np.expm1(np.clip(L, 0.0, None)))


class AtacLSI:
    """TF-IDF + truncated SVD (LSI) of binary accessibility, fitted on train cells.

    The first SVD component mostly tracks sequencing depth and is dropped (Signac convention);
    rows of the embedding are L2-normalised.
    """

    def __init__(self, n_components: int, seed: int = 0, scale: float = 1e4):
        self.n_components = n_components
        self.seed = seed
        self.scale = scale

    def _tfidf(self, Y):
        if sp.issparse(Y):
            T = row_scale(Y.tocsr(), 1.0 / np.maximum(row_sums(Y), 1e-12))
            T = (T @ sp.diags(self.idf * self.scale)).tocsr()
            T.data = np.log1p(T.data)
            return T
        Y = np.asarray(Y, dtype=np.float64)
        T = Y / np.maximum(Y.sum(axis=1, keepdims=True), 1e-12)
        return np.log1p(T * (self.idf[None, :] * self.scale))

    def fit(self, Y: sp.csr_matrix) -> "AtacLSI":
        n = Y.shape[0]
        self.idf = (n / (1.0 + np.asarray(Y.sum(axis=0)).ravel())).astype(np.float64)
        T = self._tfidf(Y)
        k = _n_comp(self.n_components + 1, T.shape)
        self.svd = TruncatedSVD(n_components=max(k, 2), algorithm="randomized", n_iter=5,
                                random_state=self.seed).fit(T)
        return self

    def transform(self, Y) -> np.ndarray:
        Z = self.svd.transform(self._tfidf(Y))[:, 1:]
        Z /= np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
        return Z.astype(np.float32)


class AtacDepth:
    """Depth factors (accessible peaks / train mean) and depth-normalised profiles."""

    def fit(self, Y: sp.csr_matrix) -> "AtacDepth":
        self.mean_depth = float(max(row_sums(Y).mean(), 1e-12))
        return self

    def factor(self, Y: sp.csr_matrix) -> np.ndarray:
        return np.maximum(row_sums(Y), 1.0) / self.mean_depth

    def normalised(self, Y: sp.csr_matrix) -> sp.csr_matrix:
        return row_scale(Y, 1.0 / self.factor(Y))


class AtacDepthModel:
    """Predict a cell's log ATAC depth factor from its RNA profile (RidgeCV, Section 2.4)."""

    def __init__(self, alphas):
        self.alphas = list(alphas)

    @staticmethod
    def features(X_rna: sp.csr_matrix, rna_pcs: np.ndarray) -> np.ndarray:
        lib = np.log1p(row_sums(X_rna))
        ngenes = np.log1p(np.diff(X_rna.indptr).astype(np.float64))
        return np.column_stack([lib, ngenes, rna_pcs]).astype(np.float64)

    def fit(self, X_rna, rna_pcs, depth_factor) -> "AtacDepthModel":
        self.tensors = fit_depth_ridge(self.features(X_rna, rna_pcs), np.log(depth_factor), self.alphas, std_eps=1e-8)
        return self

    def predict(self, X_rna, rna_pcs) -> np.ndarray:
        return np.exp(predict_log_depth(self.tensors, self.features(X_rna, rna_pcs)))


class AtacPCA:
    """PCA of depth-normalised binary ATAC (sparse ARPACK); back-projects to probabilities."""

    def __init__(self, n_components: int, seed: int = 0):
        self.n_components = n_components
        self.seed = seed

    def fit(self, Yn: sp.csr_matrix) -> "AtacPCA":
        self.pca = PCA(n_components=_n_comp(self.n_components, Yn.shape), svd_solver="arpack",
                       random_state=self.seed).fit(Yn)
        return self

    def transform(self, Yn) -> np.ndarray:
        return self.pca.transform(Yn).astype(np.float32)

    def inverse_prob(self, Z: np.ndarray) -> np.ndarray:
        out = np.empty((Z.shape[0], self.pca.components_.shape[1]), dtype=np.float32)
        for i in range(0, Z.shape[0], CHUNK):
            block = self.pca.inverse_transform(np.asarray(Z[i:i + CHUNK], dtype=np.float64))
            out[i:i + CHUNK] = np.clip(block, 0.0, 1.0)
        return out


# --------------------------------------------------------------------------------------------
# the two baselines


def _neighbour_average(train_emb: np.ndarray, query_emb: np.ndarray, values: sp.csr_matrix,
                       k: int, self_index: np.ndarray | None = None) -> np.ndarray:
    """Dense (n_query x n_features) mean of ``values`` rows over each query's k nearest train cells.

    ``self_index[i]`` = position of query i among the train cells (-1 if it is not a train cell):
    a train cell is never its own neighbour (k + 1 neighbours are searched and the cell itself,
    or else the farthest one, is dropped).
    """
    n_train = train_emb.shape[0]
    nq = query_emb.shape[0]
    exclude = self_index is not None and bool(np.any(np.asarray(self_index) >= 0))
    k = int(min(k, n_train - 1 if exclude else n_train))
    if k < 1:
        raise ValueError("too few training cells for a neighbour average")
    nn = NearestNeighbors(n_neighbors=k + 1 if exclude else k).fit(train_emb)
    _, ind = nn.kneighbors(query_emb)
    if exclude:
        drop = ind == np.asarray(self_index)[:, None]
        drop[~drop.any(axis=1), -1] = True                     # not its own neighbour: drop the farthest
        ind = ind[~drop].reshape(nq, k)
    W = sp.csr_matrix((np.full(nq * k, 1.0 / k), ind.ravel(), np.arange(0, nq * k + 1, k)),
                      shape=(nq, train_emb.shape[0]))
    out = np.empty((nq, values.shape[1]), dtype=np.float32)
    for i in range(0, nq, CHUNK):
        out[i:i + CHUNK] = (W[i:i + CHUNK] @ values).toarray()
    return out


def _common(X_rna, Y_atac, train, test, n_comp, alphas, seed):
    rna = RnaPCA(n_comp, seed).fit(X_rna[train])
    lsi = AtacLSI(n_comp, seed).fit(Y_atac[train])
    depth = AtacDepth().fit(Y_atac[train])
    rna_pcs_train = rna.transform(X_rna[train])
    rna_pcs_test = rna.transform(X_rna[test])
    dmodel = AtacDepthModel(alphas).fit(X_rna[train], rna_pcs_train, depth.factor(Y_atac[train]))
    d_test = dmodel.predict(X_rna[test], rna_pcs_test)
    return rna, lsi, depth, rna_pcs_train, rna_pcs_test, d_test


def knn_translate(X_rna: sp.csr_matrix, Y_atac: sp.csr_matrix, train: np.ndarray, test: np.ndarray,
                  k: int = 20, n_components: int = 50, alphas=(0.1, 1, 10, 100), seed: int = 0,
                  rest: np.ndarray | None = None) -> dict:
    """Seurat-style kNN translation (see module docstring). Returns dense predictions + latents.

    ``rest`` (optional, e.g. the train + val cells): also predict their RNA from ATAC
    (``atac_to_rna_rest``); a training cell's own RNA is excluded from its neighbour average.
    """
    rna, lsi, depth, pcs_tr, pcs_te, d_test = _common(X_rna, Y_atac, train, test, n_components, alphas, seed)
    lsi_tr = lsi.transform(Y_atac[train])
    lsi_te = lsi.transform(Y_atac[test])
    # ATAC -> RNA: neighbours by ATAC LSI, average their RNA frequencies
    freq_tr = rna_frequencies(X_rna[train])
    a2r = normalize_rows(_neighbour_average(lsi_tr, lsi_te, freq_tr, k))
    a2r_rest = None
    if rest is not None:
        pos = np.full(X_rna.shape[0], -1)
        pos[train] = np.arange(len(train))
        a2r_rest = normalize_rows(_neighbour_average(lsi_tr, lsi.transform(Y_atac[rest]), freq_tr, k,
                                                     self_index=pos[rest]))
    # RNA -> ATAC: neighbours by RNA PCA, average their depth-normalised accessibility
    norm = np.clip(_neighbour_average(pcs_tr, pcs_te, depth.normalised(Y_atac[train]), k), 0.0, 1.0)
    r2a = depth_scale(norm, d_test)
    latent = {
        "rna_query": lsi.transform(r2a), "atac_reference": lsi_te,
        "atac_query": rna.transform_freq(a2r), "rna_reference": pcs_te,
    }
    return {"atac_to_rna": a2r, "rna_to_atac": r2a, "rna_to_atac_norm": norm.astype(np.float32),
            "latent": latent, "depth_factor": d_test, "atac_to_rna_rest": a2r_rest}


def ridge_translate(X_rna: sp.csr_matrix, Y_atac: sp.csr_matrix, train: np.ndarray, test: np.ndarray,
                    n_components: int = 50, alphas=(0.1, 1, 10, 100), seed: int = 0,
                    rest: np.ndarray | None = None) -> dict:
    """RidgeCV between source and target PCA/SVD components, back-projected (module docstring).

    ``rest`` (optional): also predict those cells' RNA from ATAC (``atac_to_rna_rest``).
    """
    rna, lsi, depth, pcs_tr, pcs_te, d_test = _common(X_rna, Y_atac, train, test, n_components, alphas, seed)
    lsi_tr = lsi.transform(Y_atac[train])
    lsi_te = lsi.transform(Y_atac[test])
    Yn_tr = depth.normalised(Y_atac[train])
    apca = AtacPCA(n_components, seed).fit(Yn_tr)
    apcs_tr = apca.transform(Yn_tr)
    apcs_te = apca.transform(depth.normalised(Y_atac[test]))
    # ATAC LSI -> RNA PCs
    m_a2r = RidgeCV(alphas=list(alphas)).fit(lsi_tr, pcs_tr)
    z_a2r = m_a2r.predict(lsi_te).astype(np.float32)
    a2r = rna.inverse_freq(z_a2r)
    a2r_rest = None
    if rest is not None:
        a2r_rest = rna.inverse_freq(m_a2r.predict(lsi.transform(Y_atac[rest])).astype(np.float32))
    # RNA PCs -> ATAC PCs of depth-normalised accessibility
    m_r2a = RidgeCV(alphas=list(alphas)).fit(pcs_tr, apcs_tr)
    z_r2a = m_r2a.predict(pcs_te).astype(np.float32)
    norm = apca.inverse_prob(z_r2a)
    r2a = depth_scale(norm, d_test)
    latent = {"rna_query": z_r2a, "atac_reference": apcs_te, "atac_query": z_a2r, "rna_reference": pcs_te}
    return {"atac_to_rna": a2r, "rna_to_atac": r2a, "rna_to_atac_norm": norm, "latent": latent,
            "depth_factor": d_test, "alphas": {"atac_to_rna": float(m_a2r.alpha_), "rna_to_atac": float(m_r2a.alpha_)},
            "atac_to_rna_rest": a2r_rest}


# --------------------------------------------------------------------------------------------
# stage entry point


def run_baseline(method: str, rna_path, atac_path, scenario: str, params: dict, outputs, threads: int = 1,
                 log_path=None, logger: logging.Logger | None = None) -> None:
    """Fit ``method`` ('knn' or 'ridge') on the scenario's TRAIN cells, write TEST predictions.

    params: knn_k, knn_n_pcs, ridge_n_components, ridge_alphas, depth_alphas (RidgeCV alphas of the
    ATAC depth regressor; default ridge_alphas), seed. ``outputs``: the four prediction paths
    (common.smk predictions(); atac_to_rna_rest = RNA predicted for the train + val cells).
    """
    log = logger or get_logger(log_path)
    with threadpool_limits(limits=max(1, int(threads))):
        _run_baseline(method, rna_path, atac_path, scenario, params, outputs, log)


def _run_baseline(method, rna_path, atac_path, scenario, params, outputs, log) -> None:
    with timed(log, f"load co-assay data ({scenario})"):
        data = load_coassay(rna_path, atac_path, scenario)
    log.info("train %d, val %d (unused), test %d cells; %d genes, %d peaks", len(data.train),
             len(data.val), len(data.test), data.rna.n_vars, data.atac.n_vars)
    seed = int(params.get("seed", 0))
    rest = rest_rows(data)
    depth_alphas = params.get("depth_alphas", params["ridge_alphas"])
    with timed(log, f"fit + predict {method}"):
        if method == "knn":
            res = knn_translate(data.rna_X, data.atac_X, data.train, data.test, k=int(params["knn_k"]),
                                n_components=int(params["knn_n_pcs"]), alphas=depth_alphas, seed=seed,
                                rest=rest)
        elif method == "ridge":
            res = ridge_translate(data.rna_X, data.atac_X, data.train, data.test,
                                  n_components=int(params["ridge_n_components"]),
                                  alphas=params["ridge_alphas"], seed=seed, rest=rest)
            log.info("ridge alphas chosen by LOO-CV: %s", res["alphas"])
        else:
            raise ValueError(f"unknown baseline {method!r}")
    adatas = build_prediction_adatas(data, data.test, res["atac_to_rna"], res["rna_to_atac"],
                                     res["rna_to_atac_norm"], res["latent"], method,
                                     rest_atac_to_rna=res["atac_to_rna_rest"])
    with timed(log, "write predictions"):
        write_predictions(adatas, prediction_paths(outputs))
