"""Feature and cell filters: SNARE-seq peak filter, single-assay cell filter and downsampling,
the feature-subset variants (full / exp / var) and the batch annotation of the processed files."""

from __future__ import annotations

import zlib
from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .genome import is_autosome, sort_peaks

SPLIT_CATEGORIES = ["train", "val", "test"]


def cells_per_feature(X: sp.spmatrix) -> np.ndarray:
    """Number of cells with a non-zero value, per feature (column) of a sparse matrix."""
    X = sp.csr_matrix(X)
    nz = X.data != 0
    return np.bincount(X.indices[nz], minlength=X.shape[1]).astype(np.int64)


def features_per_cell(X: sp.spmatrix) -> np.ndarray:
    """Number of non-zero features per cell (row)."""
    X = sp.csr_matrix(X)
    if (X.data == 0).any():
        X = X.copy()
        X.eliminate_zeros()
    return np.diff(X.indptr).astype(np.int64)


def reference_peaks(atac: ad.AnnData, min_cells: int, max_frac: float) -> tuple[pd.DataFrame, dict]:
    """SNARE-seq reference peaks: drop peaks open in < ``min_cells`` or > ``max_frac`` of the
    co-assay cells, keep autosomes only, sort by natural chromosome order then start.
    Returns (DataFrame chrom/start/end indexed ``chrom:start-end``, counts report)."""
    n = cells_per_feature(atac.X)
    n_cells = atac.n_obs
    freq_ok = (n >= min_cells) & (n <= max_frac * n_cells)
    auto = is_autosome(atac.var["chrom"].to_numpy())
    keep = freq_ok & auto
    peaks = atac.var.loc[keep, ["chrom", "start", "end"]].copy()
    peaks["chrom"] = peaks["chrom"].astype(str)
    peaks["start"] = peaks["start"].astype(np.int64)
    peaks["end"] = peaks["end"].astype(np.int64)
    peaks["n_cells"] = n[keep]
    peaks = sort_peaks(peaks)
    rep = {"n_peaks": int(atac.n_vars), "n_too_rare": int((n < min_cells).sum()),
           "n_too_common": int((n > max_frac * n_cells).sum()), "n_freq_ok": int(freq_ok.sum()),
           "n_non_autosomal_after_freq": int((freq_ok & ~auto).sum()), "n_kept": int(keep.sum())}
    return peaks, rep


def downsample_indices(n: int, frac: float, seed: int, key: str = "") -> np.ndarray:
    """Sorted indices of round(frac * n) cells drawn without replacement; reproducible per
    (seed, key) so each data set gets its own stream."""
    if frac >= 1.0:
        return np.arange(n)
    k = max(1, int(round(frac * n))) if n else 0
    rng = np.random.default_rng([int(seed), zlib.crc32(key.encode())])
    return np.sort(rng.choice(n, size=k, replace=False))


def filter_min_features(adata: ad.AnnData, min_features: int) -> tuple[ad.AnnData, int]:
    """Drop cells with fewer than ``min_features`` non-zero features; returns (subset, n_removed)."""
    nf = features_per_cell(adata.X)
    keep = nf >= min_features
    return adata[keep].copy(), int((~keep).sum())


def exp_mask(X: sp.spmatrix, min_frac: float) -> np.ndarray:
    """Variant 'exp': features non-zero in at least ``min_frac`` of the cells."""
    return cells_per_feature(X) >= min_frac * X.shape[0]


def var_mask(adata: ad.AnnData, top_frac: float) -> np.ndarray:
    """Variant 'var': top ``top_frac`` most variable features (scanpy highly_variable_genes,
    seurat flavour, on normalize_total + log1p of the counts; ATAC: of the binary matrix)."""
    import scanpy as sc

    n_top = max(1, int(round(top_frac * adata.n_vars)))
    tmp = ad.AnnData(X=sp.csr_matrix(adata.X, dtype=np.float32, copy=True),
                     obs=pd.DataFrame(index=adata.obs_names.copy()),
                     var=pd.DataFrame(index=pd.RangeIndex(adata.n_vars).astype(str)))
    sc.pp.normalize_total(tmp, target_sum=1e4)
    sc.pp.log1p(tmp)
    hv = sc.pp.highly_variable_genes(tmp, n_top_genes=n_top, flavor="seurat", inplace=False)
    mask = hv["highly_variable"].to_numpy().astype(bool)
    if mask.sum() != n_top:  # ties at the cut: rank by normalised dispersion explicitly
        disp = np.nan_to_num(hv["dispersions_norm"].to_numpy(), nan=-np.inf)
        order = np.argsort(-disp, kind="stable")[:n_top]
        mask = np.zeros(adata.n_vars, bool)
        mask[order] = True
    return mask


def set_batch(adata: ad.AnnData, values, categories: Sequence[str]) -> None:
    """obs ``batch`` and ``dataset``: categorical with a fixed category list (same in co-assay
    and single-assay files of one modality so one-hot encodings agree)."""
    vals = np.broadcast_to(np.asarray(values, dtype=object), (adata.n_obs,))
    for col in ("batch", "dataset"):
        adata.obs[col] = pd.Categorical(vals, categories=list(categories))
    if adata.obs["batch"].isna().any():
        raise ValueError(f"batch values {set(vals)} not all in categories {list(categories)}")


def attach_splits(adata: ad.AnnData, splits: pd.DataFrame) -> None:
    """Copy split_random / split_unseen (and cell_type if absent) from a splits table indexed by barcode."""
    s = splits.reindex(adata.obs_names)
    if s["split_random"].isna().any():
        missing = adata.obs_names[s["split_random"].isna().to_numpy()]
        raise ValueError(f"{len(missing)} co-assay cells have no split (e.g. {list(missing[:3])})")
    for col in ("split_random", "split_unseen"):
        adata.obs[col] = pd.Categorical(s[col].astype(str).to_numpy(), categories=SPLIT_CATEGORIES)
    if "cell_type" not in adata.obs:
        adata.obs["cell_type"] = pd.Categorical(s["cell_type"].astype(str).to_numpy())


def subset_features(adatas: dict[str, ad.AnnData], mask: np.ndarray) -> dict[str, ad.AnnData]:
    """Apply one feature mask identically to several AnnData objects with identical var."""
    out = {}
    for k, a in adatas.items():
        if len(mask) != a.n_vars:
            raise ValueError(f"{k}: mask length {len(mask)} != n_vars {a.n_vars}")
        out[k] = a[:, mask].copy()
    return out
