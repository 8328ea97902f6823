"""Stage functions of rules/features.smk, one per rule: co-assay pairing (coassay), reference genes
(gene_features) and peaks (peak_features), liftover of single-assay peak sets (lift_peaks),
SnapATAC export (snap_export), the single-assay files (single_atac, single_rna) and the mapping
report. Each reads its inputs, calls the tested building blocks in io/genome/annotation/cells/snap
and writes its outputs atomically; scripts/*.py only unpack ``snakemake`` objects.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import annotation, cells, genome, io
from . import snap as io_snap
from .fileutils import InputFormatError, get_logger, timed, write_h5ad, write_json, write_tsv


def _log(logger):
    return logger or get_logger(None)

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


def build_peak_features(coassay_atac, out_bed, min_cells: int, max_frac: float, logger=None) -> None:
    """Reference peaks: SNARE-seq peaks in [min_cells, max_frac * n_cells] cells, autosomes, sorted."""
    log = _log(logger)
    atac = ad.read_h5ad(coassay_atac)
    peaks, rep = cells.reference_peaks(atac, min_cells, max_frac)
    log.info("peak filter on %d co-assay cells: %s", atac.n_obs, rep)
    if len(peaks) == 0:
        raise ValueError("no co-assay peak passes the frequency filter")
    io.write_bed(peaks, out_bed)


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
    io.write_bed(lifted, out_bed, name_col="query_index")
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
    io.write_bed(feats, out_bed)
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
    lifted = io.read_bed4(lifted_bed)
    ref = io.read_bed4(ref_bed)
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
    genes = io.read_gene_features(genes_tsv)
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
    ref = io.read_bed4(ref_bed)
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
