"""Stage functions of rules/smk (splits, processed_full, processed_variant) and the contract
check of the processed files, with their building blocks: the SNARE-seq peak filter, the
single-assay cell filter and downsampling, the feature-subset variants (full / exp / var) and the
batch annotation of the processed files."""

from __future__ import annotations

import zlib
from typing import Mapping, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import genome, io, splits
from .fileutils import get_logger, timed, write_h5ad, write_tsv
from .genome import is_autosome, sort_peaks
from .sparse import binarize

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
    """Variant 'exp': features non-zero in at least ``min_frac`` of the """
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


# --------------------------------------------------------------------------------------------
# stage functions (rules/smk)
# --------------------------------------------------------------------------------------------
RNA_KINDS = ("coassay_rna", "single_rna")
ATAC_KINDS = ("coassay_atac", "single_atac")


def _log(logger):
    return logger or get_logger(None)


def build_splits(coassay_rna, genes_tsv, out_tsv, seed: int, fracs: Sequence[float], resolution: float,
                 n_pcs: int, n_neighbors: int, unseen_rule: str = "largest_test", logger=None) -> None:
    """Random and unseen splits of the co-assay cells (Leiden on the reference genes)."""
    log = _log(logger)
    rna = ad.read_h5ad(coassay_rna)
    genes = io.read_gene_features(genes_tsv)
    rna = _select_genes(rna, genes)
    with timed(log, "Leiden clustering of the co-assay RNA"):
        df = splits.make_splits(rna, seed=seed, fracs=fracs, resolution=resolution, n_pcs=n_pcs,
                                n_neighbors=n_neighbors, unseen_rule=unseen_rule)
    log.info("random split: %s", df["split_random"].value_counts().to_dict())
    log.info("unseen split (rule %s, Leiden resolution %g): %s; leiden clusters: %d", unseen_rule, resolution,
             df["split_unseen"].value_counts().to_dict(), df["leiden"].nunique())
    log.info("cell types in unseen test: %s",
             df.loc[df["split_unseen"] == "test", "cell_type"].value_counts().head(5).to_dict())
    write_tsv(df.reset_index(), out_tsv)


def _select_genes(rna: ad.AnnData, genes: pd.DataFrame) -> ad.AnnData:
    """Co-assay RNA restricted to the reference genes (by gene_name, first column per symbol)."""
    sym = pd.Index(rna.var["gene_name"].astype(str).to_numpy())
    first = ~sym.duplicated()
    pos = pd.Series(np.flatnonzero(first), index=sym[first])
    idx = pos.reindex(genes.index)
    if idx.isna().any():
        raise ValueError(f"reference genes missing from the co-assay: {list(genes.index[idx.isna().to_numpy()][:5])}")
    out = rna[:, idx.to_numpy().astype(np.int64)].copy()
    out.var = genes[["gene_name", "chrom"]].copy()
    return out


def build_processed_full(coassay_rna, coassay_atac, single_rna: str, single_atac: Mapping[str, str],
                         genes_tsv, peaks_bed, splits_tsv, outputs: Mapping[str, str],
                         rna_dataset: str = "zeisel", logger=None) -> None:
    """The four processed files of the 'full' variant (contract in CONTRACT.md)."""
    log = _log(logger)
    genes = io.read_gene_features(genes_tsv)
    ref = io.read_bed4(peaks_bed)
    sp_df = splits.read_splits(splits_tsv)

    rna = _select_genes(ad.read_h5ad(coassay_rna), genes)
    rna.X = sp.csr_matrix(rna.X, dtype=np.float32)
    atac_all = ad.read_h5ad(coassay_atac)
    pos = pd.Series(np.arange(atac_all.n_vars), index=genome.peak_names(atac_all.var))
    pos = pos[~pos.index.duplicated()]
    idx = pos.reindex(ref.index)
    if idx.isna().any():
        raise ValueError(f"reference peaks missing from the co-assay ATAC: {list(ref.index[idx.isna().to_numpy()][:3])}")
    atac = atac_all[:, idx.to_numpy().astype(np.int64)].copy()
    del atac_all
    atac.X = binarize(atac.X)
    atac.var = ref[["chrom", "start", "end"]].copy()
    if not rna.obs_names.equals(atac.obs_names):
        atac = atac[rna.obs_names].copy()
    rna_cats = ["snare", rna_dataset]
    atac_cats = ["snare", *single_atac.keys()]
    for a, cats in ((rna, rna_cats), (atac, atac_cats)):
        a.obs = a.obs[["cell_type"]].copy()
        a.obs["cell_type"] = pd.Categorical(a.obs["cell_type"].astype(str))
        set_batch(a, "snare", cats)
        attach_splits(a, sp_df)
    # co-assay cell_type categories identical in both files
    cats = sorted(rna.obs["cell_type"].cat.categories)
    for a in (rna, atac):
        a.obs["cell_type"] = a.obs["cell_type"].cat.set_categories(cats)
        a.obs = a.obs[["batch", "dataset", "cell_type", "split_random", "split_unseen"]]

    srna = ad.read_h5ad(single_rna)
    if not srna.var_names.equals(rna.var_names):
        raise ValueError(f"{single_rna}: var differs from the reference genes {genes_tsv}")
    srna.var = rna.var.copy()
    srna.obs = srna.obs[["barcode"]].copy()
    set_batch(srna, rna_dataset, rna_cats)
    srna.X = sp.csr_matrix(srna.X, dtype=np.float32)

    parts = []
    for name, path in single_atac.items():
        a = ad.read_h5ad(path)
        if not a.var_names.equals(atac.var_names):
            raise ValueError(f"{path}: var differs from the reference peaks {peaks_bed}")
        a.obs = a.obs[["barcode"]].copy()
        set_batch(a, name, atac_cats)
        a.var = atac.var.copy()
        parts.append(a)
    satac = ad.concat(parts, axis=0, join="outer", merge="first") if len(parts) > 1 else parts[0]
    satac.var = atac.var.copy()
    for col in ("batch", "dataset"):
        satac.obs[col] = pd.Categorical(satac.obs[col].astype(str), categories=atac_cats)
    satac.X = sp.csr_matrix(satac.X, dtype=np.float32)
    satac.uns = {}

    objs = {"coassay_rna": rna, "coassay_atac": atac, "single_rna": srna, "single_atac": satac}
    for k, a in objs.items():
        a.uns = {"variant": "full", "kind": k}
        log.info("%s: %d cells x %d features, nnz %d, batches %s", k, a.n_obs, a.n_vars, a.X.nnz,
                 a.obs["batch"].value_counts().to_dict())
        write_h5ad(a, outputs[k])


def build_variant(full: Mapping[str, str], outputs: Mapping[str, str], variant: str, exp_min_frac: float,
                  var_top_frac: float, logger=None) -> None:
    """exp / var variants from the full processed files: feature masks computed on the co-assay
    cells, applied identically to the single-assay files."""
    log = _log(logger)
    objs = {k: ad.read_h5ad(full[k]) for k in (*RNA_KINDS, *ATAC_KINDS)}
    masks = {}
    for mod, (co, single) in {"rna": RNA_KINDS, "atac": ATAC_KINDS}.items():
        if variant == "exp":
            m = exp_mask(objs[co].X, exp_min_frac)
        elif variant == "var":
            m = var_mask(objs[co], var_top_frac)
        else:
            raise ValueError(f"unknown variant {variant!r}")
        masks[mod] = m
        log.info("%s %s: %d/%d features kept", variant, mod, int(m.sum()), len(m))
    for k, a in objs.items():
        m = masks["rna" if k in RNA_KINDS else "atac"]
        b = a[:, m].copy()
        b.uns = {"variant": variant, "kind": k}
        if k.startswith("single"):
            nf = features_per_cell(b.X)
            if (nf == 0).any():
                log.info("%s: removing %d single-assay cells with no feature left", k, int((nf == 0).sum()))
                b = b[nf > 0].copy()
        _restore_categories(b, a)
        write_h5ad(b, outputs[k])


def _restore_categories(sub: ad.AnnData, full: ad.AnnData) -> None:
    """AnnData subsetting drops unused categories; put the full category lists back (batch
    one-hot encodings must agree across files and variants)."""
    for col in full.obs.columns:
        if isinstance(full.obs[col].dtype, pd.CategoricalDtype) and col in sub.obs:
            sub.obs[col] = pd.Categorical(sub.obs[col].astype(object), categories=full.obs[col].cat.categories)


# --------------------------------------------------------------------------------------------
# contract check
# --------------------------------------------------------------------------------------------
def validate_processed(paths: Mapping[str, str], atac_sets: Sequence[str] = ("li", "fang"),
                       rna_dataset: str = "zeisel", categories: Mapping[str, Mapping[str, list]] | None = None,
                       extra_splits: Sequence[str] = ()) -> list[str]:
    """Check the four processed files of one variant against the data contract; returns a list of
    problems (empty = OK). ``categories`` = {column: {"rna": [...], "atac": [...]}} overrides the
    expected batch/dataset categories (source authors: one-hot batch columns); ``extra_splits``:
    further split columns (``split_babel``, which may also hold ``none``)."""
    from .genome import chrom_sort_key

    p: list[str] = []
    a = {k: ad.read_h5ad(v) for k, v in paths.items()}
    cats = {"rna": ["snare", rna_dataset], "atac": ["snare", *atac_sets]}
    expected = {col: (categories or {}).get(col, cats) for col in ("batch", "dataset")}
    for k, x in a.items():
        mod = "rna" if k.endswith("rna") else "atac"
        if not sp.isspmatrix_csr(x.X) or x.X.dtype != np.float32:
            p.append(f"{k}: X is {type(x.X).__name__} {x.X.dtype}, expected CSR float32")
        d = x.X.data
        if mod == "atac" and len(d) and not np.all(d == 1):
            p.append(f"{k}: ATAC X not binary")
        if mod == "rna" and len(d) and not np.all(d == np.round(d)):
            p.append(f"{k}: RNA X not integer counts")
        for col in ("batch", "dataset"):
            if col not in x.obs or not isinstance(x.obs[col].dtype, pd.CategoricalDtype):
                p.append(f"{k}: obs {col} missing or not categorical")
            elif list(x.obs[col].cat.categories) != list(expected[col][mod]):
                p.append(f"{k}: obs {col} categories {list(x.obs[col].cat.categories)} != {expected[col][mod]}")
        if k.startswith("coassay"):
            for col in ("cell_type", "split_random", "split_unseen"):
                if col not in x.obs:
                    p.append(f"{k}: obs {col} missing")
            for col in ("split_random", "split_unseen", *extra_splits):
                allowed = {"train", "val", "test"} | ({"none"} if col in extra_splits else set())
                if col not in x.obs:
                    p.append(f"{k}: obs {col} missing")
                elif not set(x.obs[col].astype(str)) <= allowed:
                    p.append(f"{k}: {col} has values {set(x.obs[col].astype(str))}")
        want = ["gene_name", "chrom"] if mod == "rna" else ["chrom", "start", "end"]
        if [c for c in want if c not in x.var]:
            p.append(f"{k}: var columns {list(x.var.columns)} lack {want}")
        elif mod == "atac":
            if not x.var_names.equals(genome.peak_names(x.var)):
                p.append(f"{k}: var index is not chrom:start-end")
            if not is_sorted_peaks(x.var, chrom_sort_key):
                p.append(f"{k}: peaks not sorted by chromosome then start")
            if not genome.is_autosome(x.var["chrom"].to_numpy()).all():
                p.append(f"{k}: non-autosomal peaks")
        elif mod == "rna":
            if not (x.var_names == x.var["gene_name"].astype(str).to_numpy()).all():
                p.append(f"{k}: var index != gene_name")
            known = x.var["chrom"].astype(str).to_numpy()
            known = known[known != ""]   # "" = unknown (source authors: the gene file lists symbols only)
            if not genome.is_autosome(known).all():
                p.append(f"{k}: non-autosomal genes")
        if not x.obs_names.is_unique:
            p.append(f"{k}: obs_names not unique")
    if not a["coassay_rna"].obs_names.equals(a["coassay_atac"].obs_names):
        p.append("coassay_rna and coassay_atac obs_names differ")
    for c in ("cell_type", "split_random", "split_unseen", *extra_splits):
        if not a["coassay_rna"].obs[c].astype(str).equals(a["coassay_atac"].obs[c].astype(str)):
            p.append(f"co-assay obs {c} differs between RNA and ATAC")
    for mod, (co, single) in {"rna": RNA_KINDS, "atac": ATAC_KINDS}.items():
        if not a[co].var.equals(a[single].var):
            p.append(f"{single} var != {co} var")
    return p


def is_sorted_peaks(var: pd.DataFrame, key) -> bool:
    k = [(*key(c), s) for c, s in zip(var["chrom"].astype(str), var["start"].to_numpy())]
    return all(k[i] <= k[i + 1] for i in range(len(k) - 1))
