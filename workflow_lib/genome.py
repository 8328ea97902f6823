"""Genome coordinates: chromosome order, peak liftover (pyliftover), overlap mapping of peaks
(pybedtools) and symbol mapping of genes, each as a sparse query x reference matrix.

Intervals are BED-like: 0-based start, exclusive end. Two peaks overlap when they share at
least one base (touching intervals such as [0, 10) and [10, 20) do not).
"""

from __future__ import annotations

import logging
import re
from typing import Mapping, Sequence

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .fileutils import InputFormatError

_AUTOSOME = re.compile(r"^chr\d+$")


def chrom_sort_key(chrom: str) -> tuple:
    """Natural chromosome order: chr1..chrN, then chrX, chrY, chrM, then other contigs by name."""
    c = chrom[3:] if chrom.startswith("chr") else chrom
    if c.isdigit():
        return (0, int(c), "")
    special = {"X": 1, "Y": 2, "M": 3, "MT": 3}
    if c in special:
        return (special[c], 0, "")
    return (4, 0, c)


def is_autosome(chrom) -> np.ndarray:
    return np.array([bool(_AUTOSOME.match(str(c))) for c in np.atleast_1d(chrom)])


def sort_peaks(peaks: pd.DataFrame) -> pd.DataFrame:
    """Sort a (chrom, start, end) frame by natural chromosome order, then start, then end."""
    uniq = sorted(pd.unique(peaks["chrom"]), key=chrom_sort_key)
    rank = pd.Series(np.arange(len(uniq)), index=uniq)
    key = rank.reindex(peaks["chrom"]).to_numpy()
    order = np.lexsort((peaks["end"].to_numpy(), peaks["start"].to_numpy(), key))
    return peaks.iloc[order]


def peak_names(peaks: pd.DataFrame) -> pd.Index:
    return pd.Index(peaks["chrom"].astype(str) + ":" + peaks["start"].astype(str) + "-" + peaks["end"].astype(str))


# --------------------------------------------------------------------------------------------
# liftover
# --------------------------------------------------------------------------------------------
def load_chain(chain_path):
    """A pyliftover LiftOver from a LOCAL chain file (plain or .gz); never touches the network."""
    from pyliftover import LiftOver

    try:
        return LiftOver(str(chain_path))
    except Exception as e:  # pyliftover raises bare Exception on malformed chains
        raise InputFormatError(chain_path, f"cannot read liftover chain ({e.__class__.__name__}: {e})") from e


_PRIMARY = {f"chr{i}" for i in range(1, 23)} | {"chrX", "chrY"}


def _check_chain_covers(lo, chroms: np.ndarray, chain) -> None:
    """A primary chromosome (chr1..chr22, chrX, chrY) with peaks but no chain at all means a wrong
    or truncated chain file: fail naming it, rather than silently dropping every peak on it."""
    index = getattr(getattr(lo, "chain_file", None), "chain_index", None)
    if index is None:  # not a pyliftover LiftOver we can inspect
        return
    present, counts = np.unique(chroms, return_counts=True)
    missing = [(c, n) for c, n in zip(present, counts) if c in _PRIMARY and c not in index]
    if missing:
        what = ", ".join(f"{c} ({n} peaks)" for c, n in missing)
        name = chain if isinstance(chain, (str, Path)) else "liftover chain"
        raise InputFormatError(name, f"no chain for chromosome(s) {what}: wrong or truncated chain file?")


def liftover_peaks(peaks: pd.DataFrame, chain, logger: logging.Logger | None = None
                   ) -> tuple[pd.DataFrame, dict]:
    """Lift peaks with a chain (path or LiftOver). Each end is lifted separately (start and the
    last base end-1); a peak is kept when both map, to the same chromosome and strand. The lifted
    interval spans both mapped ends. Returns (lifted frame with column ``query_index`` = row
    position in ``peaks``, report dict with counts)."""
    lo = chain if hasattr(chain, "convert_coordinate") else load_chain(chain)
    chroms = peaks["chrom"].astype(str).to_numpy()
    _check_chain_covers(lo, chroms, chain)
    starts = peaks["start"].to_numpy(np.int64)
    ends = peaks["end"].to_numpy(np.int64)
    out_c, out_s, out_e, out_i = [], [], [], []
    n_fail = n_split = 0
    conv = lo.convert_coordinate
    for i in range(len(chroms)):
        a = conv(chroms[i], int(starts[i]))
        b = conv(chroms[i], int(ends[i] - 1))
        if not a or not b:
            n_fail += 1
            continue
        ca, pa, sa = a[0][0], a[0][1], a[0][2]
        cb, pb, sb = b[0][0], b[0][1], b[0][2]
        if ca != cb or sa != sb:
            n_split += 1
            continue
        out_c.append(ca)
        out_s.append(min(pa, pb))
        out_e.append(max(pa, pb) + 1)
        out_i.append(i)
    lifted = pd.DataFrame({"chrom": np.array(out_c, dtype=object), "start": np.array(out_s, dtype=np.int64),
                           "end": np.array(out_e, dtype=np.int64), "query_index": np.array(out_i, dtype=np.int64)})
    lifted.index = peak_names(lifted)
    report = {"n_input": int(len(chroms)), "n_lifted": int(len(lifted)), "n_unmapped": int(n_fail),
              "n_split": int(n_split)}
    if logger:
        logger.info("liftover: %(n_input)d peaks, %(n_lifted)d lifted, %(n_unmapped)d unmapped, "
                    "%(n_split)d with ends on different chromosomes/strands (dropped)", report)
    return lifted, report


# --------------------------------------------------------------------------------------------
# overlap mapping
# --------------------------------------------------------------------------------------------
def overlap_pairs(query: pd.DataFrame, ref: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(query row, ref row) pairs of intervals sharing >= 1 bp, via ``bedtools intersect``."""
    import pybedtools

    if len(query) == 0 or len(ref) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)

    def bt(df):
        frame = pd.DataFrame({"c": df["chrom"].astype(str).to_numpy(), "s": df["start"].to_numpy(np.int64),
                              "e": df["end"].to_numpy(np.int64), "n": np.arange(len(df))})
        return pybedtools.BedTool.from_dataframe(frame)

    qa, rb = bt(query), bt(ref)
    res = qa.intersect(rb, wa=True, wb=True)
    try:
        tab = pd.read_csv(res.fn, sep="\t", header=None, usecols=[3, 7], dtype=np.int64)
        qi, ri = tab[3].to_numpy(), tab[7].to_numpy()
    except pd.errors.EmptyDataError:
        qi = ri = np.zeros(0, np.int64)
    finally:
        for b in (qa, rb, res):
            try:
                import os
                os.unlink(b.fn)
            except OSError:
                pass
    return qi, ri


def overlap_mapping(query: pd.DataFrame, ref: pd.DataFrame) -> sp.csr_matrix:
    """Sparse 0/1 matrix (n_query x n_ref): entry (i, j) = 1 if query i overlaps ref j by >= 1 bp."""
    qi, ri = overlap_pairs(query, ref)
    M = sp.csr_matrix((np.ones(len(qi), np.float32), (qi, ri)), shape=(len(query), len(ref)))
    M.sum_duplicates()
    M.data[:] = 1.0
    return M


def map_atac(X: sp.spmatrix, M: sp.spmatrix, chunk_rows: int = 16384) -> sp.csr_matrix:
    """cells x query accessibility -> cells x ref, binarised: a ref peak is open in a cell if ANY
    overlapping query peak is. Computed in row chunks (never dense; peak memory ~ one output)."""
    X = sp.csr_matrix(X)
    M = sp.csr_matrix(M, dtype=np.float32)
    M.data = np.ones_like(M.data)
    n = X.shape[0]
    if X.shape[1] != M.shape[0]:
        raise ValueError(f"X has {X.shape[1]} features but the mapping has {M.shape[0]} query rows")
    idx_parts, row_nnz = [], []
    for s in range(0, n, chunk_rows):
        Xc = X[s:s + chunk_rows]
        Xc.data = (Xc.data != 0).astype(np.float32)
        Y = Xc @ M
        Y.eliminate_zeros()
        Y.sort_indices()
        idx_parts.append(Y.indices.astype(np.int32, copy=False))
        row_nnz.append(np.diff(Y.indptr))
        del Xc, Y
    indices = np.concatenate(idx_parts) if idx_parts else np.zeros(0, np.int32)
    del idx_parts
    indptr = np.zeros(n + 1, dtype=np.int64)
    if row_nnz:
        np.cumsum(np.concatenate(row_nnz), out=indptr[1:])
    if indptr[-1] < np.iinfo(np.int32).max:
        indptr = indptr.astype(np.int32)
    return sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=(n, M.shape[1]))


def ref_hits(M: sp.spmatrix) -> np.ndarray:
    """Number of query peaks overlapping each reference peak (column nnz of the mapping)."""
    return np.asarray((sp.csc_matrix(M) != 0).sum(axis=0)).ravel().astype(np.int64)


def mapping_report(n_ref: int, hits: Mapping[str, np.ndarray], query_stats: Mapping[str, dict] | None = None
                   ) -> pd.DataFrame:
    """Fraction of reference peaks hit by each query set, by any set and by all sets.

    ``hits[set]`` = per-ref-peak count of overlapping query peaks (length n_ref).
    ``query_stats[set]``: optional extra columns (e.g. n_query, n_lifted, n_query_mapped).
    """
    rows = []
    mats = []
    for name, h in hits.items():
        h = np.asarray(h)
        if len(h) != n_ref:
            raise ValueError(f"hits for {name} has length {len(h)}, expected {n_ref}")
        hit = h > 0
        mats.append(hit)
        row = {"dataset": name, "n_ref_peaks": n_ref, "n_ref_hit": int(hit.sum()),
               "frac_ref_hit": float(hit.mean()) if n_ref else 0.0}
        row.update((query_stats or {}).get(name, {}))
        rows.append(row)
    if mats:
        H = np.vstack(mats)
        for name, v in (("any", H.any(axis=0)), ("all", H.all(axis=0))):
            rows.append({"dataset": name, "n_ref_peaks": n_ref, "n_ref_hit": int(v.sum()),
                         "frac_ref_hit": float(v.mean()) if n_ref else 0.0})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# genes
# --------------------------------------------------------------------------------------------
def gene_mapping(query_symbols: Sequence[str], ref_symbols: Sequence[str]) -> sp.csr_matrix:
    """Sparse 0/1 matrix (n_query x n_ref): query gene i -> ref gene j when symbols are equal.
    Several query genes with one symbol all map to it (their counts are summed by X @ M)."""
    ref = pd.Index(np.asarray(ref_symbols, dtype=str))
    if ref.has_duplicates:
        raise ValueError(f"reference gene symbols must be unique; duplicated: {list(ref[ref.duplicated()][:5])}")
    q = np.asarray(query_symbols, dtype=str)
    j = ref.get_indexer(q)
    i = np.flatnonzero(j >= 0)
    return sp.csr_matrix((np.ones(len(i), np.float32), (i, j[i])), shape=(len(q), len(ref)))


def map_genes(X: sp.spmatrix, M: sp.spmatrix) -> sp.csr_matrix:
    """cells x query genes -> cells x ref genes (counts of same-symbol genes summed); CSR float32."""
    Y = (sp.csr_matrix(X, dtype=np.float32) @ sp.csr_matrix(M, dtype=np.float32)).tocsr()
    Y.eliminate_zeros()
    Y.sort_indices()
    return Y.astype(np.float32, copy=False)
