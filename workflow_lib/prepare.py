"""Stage orchestration for the data layer: one function per Snakemake rule (features and cells
stages). Each reads its inputs, calls the tested building blocks in io/genome/annotation/cells/
splits and writes its outputs atomically. Scripts in scripts/ only unpack ``snakemake`` objects.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import annotation, cells, genome, io, splits
from . import snap as io_snap
from .sparse import binarize
from .fileutils import InputFormatError, atomic_path, get_logger, timed, write_h5ad, write_json, write_tsv

RNA_KINDS = ("coassay_rna", "single_rna")
ATAC_KINDS = ("coassay_atac", "single_atac")


def _log(logger):
    return logger or get_logger(None)


# --------------------------------------------------------------------------------------------
# features stage
# --------------------------------------------------------------------------------------------
def build_coassay(rna_counts, rna_barcodes, rna_genes, atac_counts, atac_barcodes, atac_peaks, metadata,
                  out_rna, out_atac, logger: logging.Logger | None = None) -> None:
    """Raw SNARE-seq files -> paired co-assay interim AnnData (all features, raw counts, cell_type)."""
    log = _log(logger)
    with timed(log, f"reading {rna_counts}"):
        rna = io.read_geo_mtx(rna_counts, rna_barcodes, rna_genes, kind="genes")
    with timed(log, f"reading {atac_counts}"):
        atac = io.read_geo_mtx(atac_counts, atac_barcodes, atac_peaks, kind="peaks")
    log.info("RNA %d cells x %d genes (nnz %d); ATAC %d cells x %d peaks (nnz %d)",
             rna.n_obs, rna.n_vars, rna.X.nnz, atac.n_obs, atac.n_vars, atac.X.nnz)
    meta = io.read_snare_metadata(metadata)
    rna, atac = io.pair_coassay(rna, atac, meta, metadata_path=metadata, logger=log)
    log.info("cell types: %s", rna.obs["cell_type"].value_counts().to_dict())
    write_h5ad(rna, out_rna)
    write_h5ad(atac, out_atac)


def _var_only(path) -> pd.DataFrame:
    a = ad.read_h5ad(path, backed="r")
    try:
        return a.var.copy()
    finally:
        a.file.close()


def build_gene_features(coassay_rna, gtf, out_genes, logger=None) -> None:
    """Reference genes: co-assay symbols that are protein-coding and autosomal in GENCODE."""
    log = _log(logger)
    var = _var_only(coassay_rna)
    with timed(log, f"reading {gtf}"):
        table = annotation.read_gencode_genes(gtf)
    sym = var["gene_name"].astype(str).to_numpy()
    ref = annotation.select_reference_genes(sym, table)
    log.info("genes: %d co-assay symbols, %d in GENCODE, %d protein-coding autosomal kept",
             len(pd.unique(sym)), int(pd.Index(pd.unique(sym)).isin(table["gene_name"]).sum()), len(ref))
    if len(ref) == 0:
        raise InputFormatError(gtf, "no co-assay gene is a protein-coding autosomal gene of this annotation")
    write_tsv(ref[["gene_name", "chrom"]], out_genes)


def read_gene_features(path) -> pd.DataFrame:
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return df.set_index(pd.Index(df["gene_name"].to_numpy(), dtype=str))


def write_bed(peaks: pd.DataFrame, path, name_col: str | None = None) -> None:
    names = peaks[name_col].astype(str).to_numpy() if name_col else np.asarray(peaks.index, dtype=str)
    df = pd.DataFrame({"c": peaks["chrom"].astype(str).to_numpy(), "s": peaks["start"].to_numpy(np.int64),
                       "e": peaks["end"].to_numpy(np.int64), "n": names})
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", header=False, index=False)


def read_bed4(path) -> pd.DataFrame:
    """A BED written by write_bed (chrom, start, end, name); index = chrom:start-end."""
    df = pd.read_csv(path, sep="\t", header=None, names=["chrom", "start", "end", "name"],
                     dtype={"chrom": str, "start": np.int64, "end": np.int64, "name": str})
    df.index = genome.peak_names(df)
    return df


def build_peak_features(coassay_atac, out_bed, min_cells: int, max_frac: float, logger=None) -> None:
    """Reference peaks: SNARE-seq peaks in [min_cells, max_frac * n_cells] cells, autosomes, sorted."""
    log = _log(logger)
    atac = ad.read_h5ad(coassay_atac)
    peaks, rep = cells.reference_peaks(atac, min_cells, max_frac)
    log.info("peak filter on %d co-assay cells: %s", atac.n_obs, rep)
    if len(peaks) == 0:
        raise ValueError("no co-assay peak passes the frequency filter")
    write_bed(peaks, out_bed)


def lift_peaks(bed, out_bed, out_report, chain=None, dataset: str = "", logger=None) -> None:
    """Single-assay peaks -> mm10 (liftover with a local chain, or identity when chain is None).
    The output BED's name column holds the row of the peak in the input BED (``query_index``)."""
    log = _log(logger)
    peaks = io.read_bed_peaks(bed)
    if chain is None:
        lifted = peaks[["chrom", "start", "end"]].copy()
        lifted["query_index"] = np.arange(len(peaks))
        rep = {"n_input": len(peaks), "n_lifted": len(peaks), "n_unmapped": 0, "n_split": 0}
    else:
        with timed(log, f"liftover of {len(peaks)} peaks with {chain}"):
            lifted, rep = genome.liftover_peaks(peaks, chain, logger=log)
    rep = {"dataset": dataset, "lifted_with": str(chain) if chain else "", **rep}
    log.info("%s", rep)
    write_bed(lifted, out_bed, name_col="query_index")
    write_json(rep, out_report)


def export_snap_set(snaps: Sequence[str], out_h5ad, out_bed, dataset: str, downsample_frac: float,
                    seed: int, matrix: str = "auto", bin_size: int = 5000, min_fragments: int = 0,
                    logger=None) -> None:
    """The snap files (samples) of one single-assay ATAC set -> one cells x features h5ad (raw
    counts, not yet mapped) + the BED of its features in column order (for liftover).

    Barcodes with < ``min_fragments`` unique fragments (``BD/UQ``) are dropped, then cells are
    downsampled over all samples together BEFORE any matrix is read. Features are the union over
    samples (sorted by chrom, start, end); obs names are ``<sample>:<barcode>`` (sample = file
    name without ``.snap``), since barcodes repeat across samples.
    """
    log = _log(logger)
    samples = [Path(s).name.removesuffix(".snap") for s in snaps]
    if len(set(samples)) != len(samples):
        raise ValueError(f"{dataset}: snap files with the same sample name: {samples}")
    passing = []
    for path, name in zip(snaps, samples):
        bcs, ok = io_snap.read_snap_barcodes(path, min_fragments=min_fragments)
        log.info("%s: %d barcodes, %d with >= %d unique fragments", path, len(bcs), int(ok.sum()), min_fragments)
        passing.append(np.flatnonzero(ok))
    total = sum(len(p) for p in passing)
    keep = cells.downsample_indices(total, downsample_frac, seed, key=dataset)
    log.info("%s: downsampling %d -> %d cells (frac %g, seed %d)", dataset, total, len(keep), downsample_frac, seed)
    offsets = np.cumsum([0] + [len(p) for p in passing])
    parts = []
    for k, (path, name) in enumerate(zip(snaps, samples)):
        sel = keep[(keep >= offsets[k]) & (keep < offsets[k + 1])] - offsets[k]
        with timed(log, f"reading {len(sel)} cells of {path}"):
            parts.append(io_snap.read_snap(path, cells=passing[k][sel], matrix=matrix, bin_size=bin_size, sample=name))
    feats = pd.concat([p.var[["chrom", "start", "end"]] for p in parts]).drop_duplicates()
    feats = feats.sort_values(["chrom", "start", "end"], kind="stable")
    col = pd.Series(np.arange(len(feats)), index=feats.index)
    blocks = []
    for p in parts:
        X = p.X.tocoo()
        blocks.append(sp.csr_matrix((X.data, (X.row, col.loc[p.var_names].to_numpy()[X.col])),
                                    shape=(p.n_obs, len(feats)), dtype=np.float32))
    X = sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, len(feats)), dtype=np.float32)
    obs = pd.concat([p.obs for p in parts])
    obs["sample"] = np.repeat(samples, [p.n_obs for p in parts])
    out = ad.AnnData(X=X, obs=obs, var=feats.copy())
    out.uns["source"] = {"snap": [str(s) for s in snaps], "matrix": parts[0].uns["source"]["matrix"] if parts else matrix}
    log.info("%s: %d cells x %d features from %d snap file(s) (%s)", dataset, out.n_obs, out.n_vars,
             len(snaps), out.uns["source"]["matrix"])
    write_bed(feats, out_bed)
    write_h5ad(out, out_h5ad)


def _read_single_atac(counts, barcodes, bed, h5ad, dataset, downsample_frac, seed, log):
    """Raw counts of one single-assay ATAC set: MatrixMarket + barcodes + BED (downsampled while
    streaming) or an h5ad from :func:`export_snap_set` (already downsampled)."""
    if h5ad is not None:
        a = ad.read_h5ad(h5ad)
        return a, a.n_obs
    bcs = io.read_barcodes(barcodes)
    keep = cells.downsample_indices(len(bcs), downsample_frac, seed, key=dataset)
    log.info("%s: downsampling %d -> %d cells (frac %g, seed %d)", dataset, len(bcs), len(keep), downsample_frac, seed)
    with timed(log, f"reading {counts}"):
        a = io.read_atac_set(counts, barcodes, bed, cells=keep)
    return a, len(keep)


def build_single_atac(counts, barcodes, bed, lifted_bed, ref_bed, out_h5ad, dataset: str,
                      downsample_frac: float, seed: int, min_features: int, logger=None,
                      h5ad=None) -> None:
    """One single-assay ATAC set -> cells x reference peaks (binary), downsampled BEFORE reading
    the matrix, mapped by >= 1 bp overlap, cells with < min_features mapped peaks removed.

    Input is either ``counts``/``barcodes``/``bed`` (mtx_bed format) or ``h5ad`` (snap format,
    exported and downsampled by :func:`export_snap_set`; its features are ``bed``'s rows).
    """
    log = _log(logger)
    a, n_sampled = _read_single_atac(counts, barcodes, bed, h5ad, dataset, downsample_frac, seed, log)
    lifted = read_bed4(lifted_bed)
    ref = read_bed4(ref_bed)
    qrows = lifted["name"].astype(np.int64).to_numpy()
    if len(qrows) and qrows.max() >= a.n_vars:
        raise InputFormatError(lifted_bed, f"query peak row {qrows.max()} outside the {a.n_vars} features of {dataset}")
    with timed(log, "overlap mapping"):
        qi, ri = genome.overlap_pairs(lifted, ref)
        M = sp.csr_matrix((np.ones(len(qi), np.float32), (qrows[qi], ri)), shape=(a.n_vars, len(ref)))
        M.sum_duplicates()
        M.data[:] = 1.0
    with timed(log, "mapping the matrix"):
        X = genome.map_atac(a.X, M)
    hits = genome.ref_hits(M)
    n_q_mapped = int((np.diff(M.indptr) > 0).sum())
    var = ref[["chrom", "start", "end"]].copy()
    var["n_query_peaks"] = hits
    out = ad.AnnData(X=X, obs=pd.DataFrame(index=pd.Index([f"{dataset}:{b}" for b in a.obs_names])), var=var)
    out.obs["barcode"] = (a.obs["barcode"] if "barcode" in a.obs else a.obs_names).to_numpy().astype(str)
    out, n_removed = cells.filter_min_features(out, min_features)
    log.info("%s: %d/%d query peaks overlap a reference peak; %d/%d reference peaks hit; "
             "%d cells with < %d mapped peaks removed, %d kept", dataset, n_q_mapped, a.n_vars,
             int((hits > 0).sum()), len(ref), n_removed, min_features, out.n_obs)
    out.uns["mapping"] = {"dataset": dataset, "n_query": int(a.n_vars), "n_lifted": int(len(lifted)),
                          "n_query_mapped": n_q_mapped, "n_cells_sampled": int(n_sampled),
                          "n_cells_removed": int(n_removed), "n_cells": int(out.n_obs)}
    write_h5ad(out, out_h5ad)


def build_single_rna(loom, genes_tsv, out_h5ad, dataset: str, min_features: int, logger=None) -> None:
    """Single-assay RNA loom -> cells x reference genes (same-symbol genes summed), cell filter."""
    log = _log(logger)
    with timed(log, f"reading {loom}"):
        a = io.read_loom(loom)
    genes = read_gene_features(genes_tsv)
    M = genome.gene_mapping(a.var["gene_name"].astype(str).to_numpy(), genes.index)
    X = genome.map_genes(a.X, M)
    n_hit = int((np.asarray(M.sum(axis=0)).ravel() > 0).sum())
    out = ad.AnnData(X=X, obs=pd.DataFrame(index=pd.Index([f"{dataset}:{c}" for c in a.obs_names])),
                     var=genes[["gene_name", "chrom"]].copy())
    out.obs["barcode"] = a.obs_names.to_numpy().astype(str)
    out, n_removed = cells.filter_min_features(out, min_features)
    log.info("%s: %d genes, %d/%d reference genes matched by symbol; %d cells with < %d genes removed, %d kept",
             dataset, a.n_vars, n_hit, len(genes), n_removed, min_features, out.n_obs)
    out.uns["mapping"] = {"dataset": dataset, "n_query": int(a.n_vars), "n_ref_hit": n_hit,
                          "n_cells_removed": int(n_removed), "n_cells": int(out.n_obs)}
    write_h5ad(out, out_h5ad)


def build_mapping_report(single_atac: Mapping[str, str], lift_reports: Mapping[str, str], ref_bed, out_tsv,
                         logger=None) -> None:
    """Fraction of reference peaks hit by each single-assay set, by any and by all sets."""
    import json

    log = _log(logger)
    ref = read_bed4(ref_bed)
    hits, stats = {}, {}
    for name, path in single_atac.items():
        a = ad.read_h5ad(path, backed="r")
        try:
            if not a.var_names.equals(ref.index):
                raise ValueError(f"{path}: var does not match the reference peaks {ref_bed}")
            hits[name] = a.var["n_query_peaks"].to_numpy()
            m = dict(a.uns["mapping"])
        finally:
            a.file.close()
        lr = json.loads(Path(lift_reports[name]).read_text())
        stats[name] = {"n_query_peaks": m["n_query"], "n_lifted": lr["n_lifted"],
                       "n_query_mapped": m["n_query_mapped"],
                       "frac_query_mapped": m["n_query_mapped"] / max(1, m["n_query"])}
    rep = genome.mapping_report(len(ref), hits, stats)
    log.info("mapping report:\n%s", rep.to_string(index=False))
    write_tsv(rep, out_tsv)


# --------------------------------------------------------------------------------------------
# cells stage
# --------------------------------------------------------------------------------------------
def build_splits(coassay_rna, genes_tsv, out_tsv, seed: int, fracs: Sequence[float], resolution: float,
                 n_pcs: int, n_neighbors: int, unseen_rule: str = "largest_test", logger=None) -> None:
    """Random and unseen splits of the co-assay cells (Leiden on the reference genes)."""
    log = _log(logger)
    rna = ad.read_h5ad(coassay_rna)
    genes = read_gene_features(genes_tsv)
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
    genes = read_gene_features(genes_tsv)
    ref = read_bed4(peaks_bed)
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
        cells.set_batch(a, "snare", cats)
        cells.attach_splits(a, sp_df)
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
    cells.set_batch(srna, rna_dataset, rna_cats)
    srna.X = sp.csr_matrix(srna.X, dtype=np.float32)

    parts = []
    for name, path in single_atac.items():
        a = ad.read_h5ad(path)
        if not a.var_names.equals(atac.var_names):
            raise ValueError(f"{path}: var differs from the reference peaks {peaks_bed}")
        a.obs = a.obs[["barcode"]].copy()
        cells.set_batch(a, name, atac_cats)
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
            m = cells.exp_mask(objs[co].X, exp_min_frac)
        elif variant == "var":
            m = cells.var_mask(objs[co], var_top_frac)
        else:
            raise ValueError(f"unknown variant {variant!r}")
        masks[mod] = m
        log.info("%s %s: %d/%d features kept", variant, mod, int(m.sum()), len(m))
    for k, a in objs.items():
        m = masks["rna" if k in RNA_KINDS else "atac"]
        b = a[:, m].copy()
        b.uns = {"variant": variant, "kind": k}
        if k.startswith("single"):
            nf = cells.features_per_cell(b.X)
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
