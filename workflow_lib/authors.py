"""Source ``authors``: the Polarbear authors' processed inputs -> the processed-h5ad contract.

Files (https://noble.gs.washington.edu/~ranz0/Polarbear/data/, read as the authors' code reads
them: Noble-Lab/Polarbear ``bin/run_polarbear.py``, ``bin/evaluate_polarbear.R``):

* ``adultbrainfull50_{rna,atac}_outer_{snareseq,single}.mtx`` -- MatrixMarket, cells x features
  (``mmread(...)``, rows = cells);
* ``..._barcodes.tsv`` next to each matrix -- TSV with a header, barcodes in column ``index``;
* ``..._barcodes_dataset.mtx`` next to each matrix -- one-hot batch per cell (cells x batches);
* ``adultbrainfull50_rna_outer_genes.txt`` -- one gene symbol per line, no header;
* ``adultbrainfull50_atac_outer_peaks.txt`` -- one ``chrN:start-end`` per line, no header; the
  authors drop chrX/chrY peaks and order the rest by chromosome in order of first appearance;
* ``adultbrainfull50_atac_outer_peaks_noXY_diffexp.txt`` -- TSV with header, column ``index`` =
  1-based positions in that autosomal order of the cell-type DE peaks (the paper's peak set);
* ``babel_{train,valid,test}_barcodes.txt`` -- one barcode per line: BABEL's split;
* ``AdBrainCortex_SNAREseq_metadata.rds`` -- cell types (``Ident``) by barcode;
* ``NIHMS1539957-supplement-sup_tab1.xlsx`` sheet ``Adult_cerebral_cortex`` -- Chen et al.
  2019's DE genes (columns ``Gene``, ``Cluster``; header on the 4th row).

:func:`build_authors_processed` writes the four processed files of the ``full`` variant (the
same contract as the raw path; exp/var follow from it as usual), the splits table (random and
unseen as on the raw path, plus ``babel``) and the authors' DE sets as small TSVs.
Departures of the contract, all forced by the files: batches are the one-hot columns
(``authors_1`` ... ``authors_K``, not data-set names); obs ``dataset`` is ``snare`` / ``zeisel``
/ ``li_fang`` (Li and Fang cells are not told apart in the single-assay ATAC file); RNA var
``chrom`` is empty (the gene file lists symbols only).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import anndata as ad
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from . import cells, genome, io, splits
from .fileutils import InputFormatError, get_logger, timed, write_h5ad, write_tsv
from .sparse import binarize
from .xlsx import read_sheet

RNA_DATASETS = ("snare", "zeisel")
ATAC_DATASETS = ("snare", "li_fang")
DE_GENES_SHEET = "Adult_cerebral_cortex"
# Chen et al. 2019 cluster names (Suppl. Table 1) -> the Ident labels of the metadata .rds, as
# the authors' evaluate_polarbear.R maps them (its celltype_mapping table)
CLUSTER_TO_IDENT = {
    "Ast": "Ast", "Claustrum": "Clau", "Endo": "Endo", "Ex-L2/3-Rasgrf2": "E2Rasgrf2",
    "Ex-L3/4-Rmst": "E3Rmst", "Ex-L3/4-Rorb": "E3Rorb", "Ex-L4/5-Il1rapl2": "E4Il1rapl2",
    "Ex-L4/5-Thsd7a": "E4Thsd7a", "Ex-L5-Galnt14": "E5Galnt14", "Ex-L5-Parm1": "E5Parm1",
    "Ex-L5/6-Sulf1": "E5Sulf1", "Ex-L5/6-Tshz2": "E5Tshz2", "Ex-L6-Tle4": "E6Tle4", "In-Npy": "InN",
    "In-Pvalb": "InP", "In-Sst": "InS", "In-Vip": "InV", "Oli-Itpr2": "OliI", "Oli-Mal": "OliM",
    "OPC": "OPC", "Peri": "Peri", "Mic": "Mic",
}
BABEL_FILES = ("babel_train", "babel_valid", "babel_test")
BABEL_SPLIT = {"babel_train": "train", "babel_valid": "val", "babel_test": "test"}
UNLISTED = "none"   # split_babel of co-assay cells in none of BABEL's lists: used by no split


# --------------------------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------------------------
def read_barcodes_tsv(path) -> pd.Index:
    """``*_barcodes.tsv``: TSV with a header; the barcodes are column ``index``."""
    path = Path(path)
    if not path.exists():
        raise InputFormatError(path, "file not found")
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise InputFormatError(path, f"not a readable TSV ({e})") from e
    if "index" not in df.columns:
        raise InputFormatError(path, f"no column 'index' in the header (columns: {list(df.columns)[:5]})", line=1)
    bcs = df["index"].str.strip().to_list()
    empty = [i for i, b in enumerate(bcs) if not b]
    if empty:
        raise InputFormatError(path, "empty barcode", line=empty[0] + 2)
    io._check_unique([str(b) for b in bcs], path, "barcode")
    return pd.Index(bcs, dtype=str)


def read_onehot(path, n_cells: int, barcodes_path=None) -> tuple[np.ndarray, int]:
    """``*_barcodes_dataset.mtx`` (MatrixMarket coordinate or array): (the batch column of each
    of ``n_cells`` cells, the number of columns); every row must hold exactly one 1."""
    path = Path(path)
    if not path.exists():
        raise InputFormatError(path, "file not found")
    try:
        M = scipy.io.mmread(str(path))
    except (ValueError, OSError, IndexError) as e:
        raise InputFormatError(path, f"not a MatrixMarket file ({e})") from e
    M = sp.csr_matrix(M)
    if M.shape[0] != n_cells:
        raise InputFormatError(path, f"one-hot batch matrix has {M.shape[0]} rows but "
                                     f"{barcodes_path or 'its count matrix'} has {n_cells} cells")
    M.eliminate_zeros()
    per_row = np.diff(M.indptr)
    bad = np.flatnonzero((per_row != 1) | (np.asarray(M.max(axis=1).todense()).ravel() != 1))
    if len(bad):
        raise InputFormatError(path, f"row {bad[0] + 1} is not one-hot ({per_row[bad[0]]} non-zero values; "
                                     f"{len(bad)} such rows)")
    return M.indices.astype(np.int64), M.shape[1]


def read_authors_counts(mtx, n_cells: int, n_features: int, barcodes_path, features_path) -> sp.csr_matrix:
    """A cells x features MatrixMarket file, its shape checked against the barcode and feature files."""
    nr, nc, _ = io.read_mtx_shape(mtx)
    if nr != n_cells:
        raise InputFormatError(mtx, f"matrix has {nr} rows (cells) but {barcodes_path} lists {n_cells} barcodes")
    if nc != n_features:
        raise InputFormatError(mtx, f"matrix has {nc} columns (features) but {features_path} lists {n_features}")
    return io.read_mtx_csr(mtx, transpose=False)


def read_peaks(path) -> pd.DataFrame:
    """``chrN:start-end`` per line (file order); duplicates are an error."""
    df = io.read_peak_strings(path)
    io._check_unique(list(df.index), path, "peak")
    return df


def autosomal_order(chroms) -> np.ndarray:
    """Positions of the non-chrX/chrY peaks in the authors' order: chromosome by chromosome in
    order of first appearance, file order within (run_polarbear.py ``chr_list_range``)."""
    c = pd.Series(np.asarray(chroms, dtype=str))
    keep = [ch for ch in pd.unique(c) if ch not in ("chrX", "chrY")]
    return np.concatenate([np.flatnonzero((c == ch).to_numpy()) for ch in keep]) if keep else np.zeros(0, np.int64)


def read_de_peaks(path, peaks: pd.DataFrame) -> list[str]:
    """Names (``chrom:start-end``) of the DE peaks listed by 1-based ``index`` in the autosomal order."""
    path = Path(path)
    if not path.exists():
        raise InputFormatError(path, "file not found")
    try:
        df = pd.read_csv(path, sep="\t", dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise InputFormatError(path, f"not a readable TSV ({e})") from e
    if "index" not in df.columns:
        raise InputFormatError(path, f"no column 'index' in the header (columns: {list(df.columns)[:5]})", line=1)
    order = autosomal_order(peaks["chrom"])
    idx = pd.to_numeric(df["index"], errors="coerce").to_numpy()
    bad = np.flatnonzero(~np.isfinite(idx) | (idx < 1) | (idx > len(order)) | (idx != np.round(idx)))
    if len(bad):
        raise InputFormatError(path, f"index {df['index'].iloc[bad[0]]!r} is not a 1-based position among the "
                                     f"{len(order)} autosomal peaks", line=int(bad[0]) + 2)
    return list(peaks.index[order[idx.astype(np.int64) - 1]])


def read_de_genes(path, sheet: str = DE_GENES_SHEET) -> pd.DataFrame:
    """Chen et al. 2019 Suppl. Table 1: (gene, cluster, ident) rows; the header row is the first
    one holding both ``Gene`` and ``Cluster`` (the 4th in the published file)."""
    rows = read_sheet(path, sheet)
    head = next((i for i, r in enumerate(rows[:20]) if "Gene" in r and "Cluster" in r), None)
    if head is None:
        raise InputFormatError(path, f"sheet {sheet!r}: no header row with 'Gene' and 'Cluster' in its first 20 rows")
    g, c = rows[head].index("Gene"), rows[head].index("Cluster")
    out = [(r[g], r[c]) for r in rows[head + 1:] if len(r) > max(g, c) and r[g] and r[c]]
    if not out:
        raise InputFormatError(path, f"sheet {sheet!r}: no gene rows below the header (row {head + 1})")
    df = pd.DataFrame(out, columns=["gene", "cluster"]).astype(str)
    df["gene"], df["cluster"] = df["gene"].str.strip(), df["cluster"].str.strip()
    df["ident"] = df["cluster"].map(CLUSTER_TO_IDENT).fillna("")
    return df.drop_duplicates(ignore_index=True)


def read_barcode_list(path) -> list[str]:
    lines = [ln.strip() for ln in io.read_lines(path)]
    for i, b in enumerate(lines):
        if not b:
            raise InputFormatError(path, "empty barcode", line=i + 1)
    io._check_unique(lines, path, "barcode")
    return lines


def babel_split(barcodes: pd.Index, lists: Mapping[str, str], log) -> np.ndarray:
    """split_babel of the co-assay cells from BABEL's train/valid/test barcode files; cells in
    none of them are ``none`` (no role in this scenario, like the authors' code)."""
    out = np.full(len(barcodes), UNLISTED, dtype=object)
    pos = pd.Series(np.arange(len(barcodes)), index=barcodes)
    seen: dict[str, str] = {}
    for key in BABEL_FILES:
        path = lists[key]
        bcs = read_barcode_list(path)
        for i, b in enumerate(bcs):
            if b not in pos.index:
                raise InputFormatError(path, f"barcode {b!r} is not a co-assay cell", line=i + 1)
            if b in seen:
                raise InputFormatError(path, f"barcode {b!r} is also in {seen[b]}", line=i + 1)
            seen[b] = str(path)
        out[pos.loc[bcs].to_numpy()] = BABEL_SPLIT[key]
    n_none = int((out == UNLISTED).sum())
    log.info("babel split: %s", pd.Series(out).value_counts().to_dict())
    if n_none:
        log.warning("babel split: %d co-assay cells are in none of BABEL's barcode lists (split_babel = %r: "
                    "neither trained on nor evaluated)", n_none, UNLISTED)
    for s in ("train", "test"):
        if not (out == s).any():
            raise InputFormatError(lists[f"babel_{'train' if s == 'train' else 'test'}"], f"no {s} cells")
    return out


# --------------------------------------------------------------------------------------------
# the processed files
# --------------------------------------------------------------------------------------------
def _modality(counts, barcodes, batches, features_path, n_features, log):
    bcs = read_barcodes_tsv(barcodes)
    with timed(log, f"reading {counts}"):
        X = read_authors_counts(counts, len(bcs), n_features, barcodes, features_path)
    col, k = read_onehot(batches, len(bcs), barcodes)
    return bcs, X, col, k


def _batch(a: ad.AnnData, col, k_total, dataset, datasets):
    cats = [f"authors_{i + 1}" for i in range(k_total)]
    a.obs["batch"] = pd.Categorical(np.asarray(cats, dtype=object)[col], categories=cats)
    a.obs["dataset"] = pd.Categorical([dataset] * a.n_obs, categories=list(datasets))


def _integer_counts(X: sp.csr_matrix, path, log) -> sp.csr_matrix:
    frac = X.data != np.floor(X.data)
    if frac.any():
        log.warning("%s: %d non-integer values truncated to integers (the authors' code: astype(int))", path,
                    int(frac.sum()))
        X = X.copy()
        X.data = np.floor(X.data)
        X.eliminate_zeros()
    return X


def build_authors_processed(inputs: Mapping[str, str], outputs: Mapping[str, str], seed: int, fracs,
                            resolution: float, n_pcs: int, n_neighbors: int, unseen_rule: str = "babel",
                            logger: logging.Logger | None = None) -> None:
    """The authors' files (``inputs``: names of :data:`workflow_lib.sources.AUTHORS_FILES`, plus
    optionally babel_train/_valid/_test and de_peaks/de_genes) -> ``outputs``: coassay_rna,
    coassay_atac, single_rna, single_atac (processed full variant), splits, and de_peaks /
    de_genes when those inputs are given."""
    log = logger or get_logger(None)
    genes = io.read_genes(inputs["rna_genes"])["gene_name"].to_numpy().astype(str)
    peaks = read_peaks(inputs["atac_peaks"])
    parts = {}
    for mod, n_feat, feat_path in (("rna", len(genes), inputs["rna_genes"]), ("atac", len(peaks), inputs["atac_peaks"])):
        for part in ("snareseq", "single"):
            key = f"{mod}_{part}"
            parts[key] = _modality(inputs[key], inputs[f"{key}_barcodes"], inputs[f"{key}_batches"], feat_path, n_feat, log)
    for mod in ("rna", "atac"):
        k_co, k_single = parts[f"{mod}_snareseq"][3], parts[f"{mod}_single"][3]
        if k_co != k_single:
            raise InputFormatError(inputs[f"{mod}_single_batches"], f"{k_single} batch columns, but "
                                   f"{inputs[f'{mod}_snareseq_batches']} has {k_co} (the authors stack them)")

    # co-assay: pair ATAC to the RNA barcodes
    rna_bc, rna_X, rna_col, k_rna = parts["rna_snareseq"]
    atac_bc, atac_X, atac_col, k_atac = parts["atac_snareseq"]
    if not rna_bc.equals(atac_bc):
        if len(rna_bc) != len(atac_bc) or not rna_bc.isin(atac_bc).all():
            raise InputFormatError(inputs["atac_snareseq_barcodes"], f"co-assay barcodes do not pair with "
                                   f"{inputs['rna_snareseq_barcodes']} ({len(atac_bc)} vs {len(rna_bc)} cells)")
        order = pd.Series(np.arange(len(atac_bc)), index=atac_bc).loc[rna_bc].to_numpy()
        atac_X, atac_col = atac_X[order], atac_col[order]
        log.info("co-assay ATAC rows reordered to the RNA barcode order")

    # features: RNA symbols (unique), ATAC autosomal peaks in natural order
    rna_var = pd.DataFrame({"gene_name": io._make_unique(pd.Index(genes)).to_numpy(), "chrom": ""})
    rna_var.index = pd.Index(rna_var["gene_name"].to_numpy(), dtype=str)
    auto = genome.is_autosome(peaks["chrom"].to_numpy())
    keep = np.flatnonzero(auto)
    pv = peaks.iloc[keep]
    pv = pv[["chrom", "start", "end"]].assign(pos=keep)
    cols = genome.sort_peaks(pv)["pos"].to_numpy()
    atac_var = peaks.iloc[cols][["chrom", "start", "end"]].copy()
    atac_var.index = genome.peak_names(atac_var)
    log.info("features: %d genes; %d peaks, %d on chrX/chrY or other non-autosomes dropped", len(rna_var),
             len(peaks), len(peaks) - len(keep))

    meta = io.read_snare_metadata(inputs["metadata"])
    ct = meta.reindex(rna_bc)
    n_missing = int(ct.isna().sum())
    if n_missing == len(rna_bc):
        raise InputFormatError(inputs["metadata"], f"no barcode of {inputs['rna_snareseq_barcodes']} has a cell type")
    ct = ct.fillna("unlabelled").astype(str).to_numpy()
    log.info("co-assay: %d cells, %d without a label in the metadata; cell types %s", len(rna_bc), n_missing,
             pd.Series(ct).value_counts().to_dict())

    def make(X, var, col, k, dataset, datasets, names, rna: bool, path):
        X = sp.csr_matrix(X, dtype=np.float32)
        if rna:
            X = _integer_counts(X, path, log)
        else:
            X = binarize(X[:, cols])
        a = ad.AnnData(X=sp.csr_matrix(X, dtype=np.float32), obs=pd.DataFrame(index=pd.Index(names, dtype=str)),
                       var=var.copy())
        if not a.obs_names.is_unique:
            raise InputFormatError(path, "cell names are not unique")
        _batch(a, col, k, dataset, datasets)
        return a

    co_rna = make(rna_X, rna_var, rna_col, k_rna, "snare", RNA_DATASETS, rna_bc, True, inputs["rna_snareseq"])
    co_atac = make(atac_X, atac_var, atac_col, k_atac, "snare", ATAC_DATASETS, rna_bc, False,
                   inputs["atac_snareseq"])
    s_bc, s_X, s_col, _ = parts["rna_single"]
    single_rna = make(s_X, rna_var, s_col, k_rna, "zeisel", RNA_DATASETS, [f"zeisel:{b}" for b in s_bc],
                      True, inputs["rna_single"])
    single_rna.obs["barcode"] = np.asarray(s_bc, dtype=str)
    a_bc, a_X, a_col, _ = parts["atac_single"]
    single_atac = make(a_X, atac_var, a_col, k_atac, "li_fang", ATAC_DATASETS,
                       [f"li_fang:{b}" for b in a_bc], False, inputs["atac_single"])
    single_atac.obs["barcode"] = np.asarray(a_bc, dtype=str)
    for a in (co_rna, co_atac):
        a.obs["cell_type"] = pd.Categorical(ct, categories=sorted(set(ct)))

    # splits: random and unseen as on the raw path, babel from BABEL's lists
    with timed(log, "Leiden clustering of the co-assay RNA"):
        tab = splits.make_splits(co_rna, seed=seed, fracs=fracs, resolution=resolution, n_pcs=n_pcs,
                                 n_neighbors=n_neighbors, unseen_rule=unseen_rule)
    cols_split = ["split_random", "split_unseen"]
    if all(k in inputs for k in BABEL_FILES):
        tab["split_babel"] = babel_split(rna_bc, {k: inputs[k] for k in BABEL_FILES}, log)
        cols_split.append("split_babel")
    log.info("random split: %s; unseen split (rule %s): %s", tab["split_random"].value_counts().to_dict(),
             unseen_rule, tab["split_unseen"].value_counts().to_dict())
    for a in (co_rna, co_atac):
        for c in cols_split:
            values = tab[c].astype(str).to_numpy()
            cats = cells.SPLIT_CATEGORIES + ([UNLISTED] if (values == UNLISTED).any() else [])
            a.obs[c] = pd.Categorical(values, categories=cats)
        a.obs = a.obs[["batch", "dataset", "cell_type", *cols_split]]

    for key, a in (("coassay_rna", co_rna), ("coassay_atac", co_atac), ("single_rna", single_rna),
                   ("single_atac", single_atac)):
        a.uns = {"variant": "full", "kind": key, "source": "authors"}
        log.info("%s: %d cells x %d features, nnz %d, batches %s", key, a.n_obs, a.n_vars, a.X.nnz,
                 a.obs["batch"].value_counts().to_dict())
        write_h5ad(a, outputs[key])
    write_tsv(tab.reset_index(), outputs["splits"])

    if "de_peaks" in outputs:
        names = read_de_peaks(inputs["de_peaks"], peaks)
        missing = sorted(set(names) - set(atac_var.index))
        if missing:
            raise InputFormatError(inputs["de_peaks"], f"DE peaks not among the autosomal peaks: {missing[:3]}")
        log.info("authors' DE peaks: %d", len(names))
        write_tsv(pd.DataFrame({"peak": names}), outputs["de_peaks"])
    if "de_genes" in outputs:
        de = read_de_genes(inputs["de_genes"])
        unknown = sorted(set(de["cluster"]) - set(CLUSTER_TO_IDENT))
        if unknown:
            log.warning("DE genes: clusters without an Ident mapping (kept, used for the random split only): %s", unknown)
        log.info("authors' DE genes: %d rows, %d genes, %d in the gene list", len(de), de["gene"].nunique(),
                 int(pd.Index(de["gene"].unique()).isin(rna_var.index).sum()))
        write_tsv(de, outputs["de_genes"])
