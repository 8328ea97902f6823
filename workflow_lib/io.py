"""Parsers for the raw input files (GEO MatrixMarket sets, BED peaks, loom, SNARE-seq metadata).

Every parser returns cells x features AnnData objects with a scipy CSR float32 ``X`` and raises
:class:`~workflow_lib.fileutils.InputFormatError` naming the offending file (and line, where one
line is at fault) on malformed input: a count matrix whose shape does not match its barcode and
feature files, malformed ``chrN:start-end`` peaks, truncated or corrupt gzip files, duplicated
barcodes and co-assay barcodes that do not pair between RNA and ATAC.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from pathlib import Path
from typing import Iterable, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .fileutils import InputFormatError, atomic_path, check_values
from .genome import peak_names

PEAK_RE = re.compile(r"^(?P<chrom>[^:\s]+):(?P<start>\d+)-(?P<end>\d+)$")
_GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, OSError)


# --------------------------------------------------------------------------------------------
# small text files
# --------------------------------------------------------------------------------------------
def _is_gzip(path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def open_text(path):
    """Open a plain or gzip-compressed text file (detected from its magic bytes)."""
    path = Path(path)
    if not path.exists():
        raise InputFormatError(path, "file not found")
    if _is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def read_lines(path) -> list[str]:
    """All lines of a (gzipped) text file without trailing newlines; empty trailing lines dropped."""
    try:
        with open_text(path) as fh:
            lines = fh.read().splitlines()
    except InputFormatError:
        raise
    except _GZIP_ERRORS as e:
        raise InputFormatError(path, f"truncated or corrupt gzip file ({e.__class__.__name__}: {e})") from e
    except UnicodeDecodeError as e:
        raise InputFormatError(path, f"not a UTF-8 text file ({e})") from e
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _check_unique(values: Sequence[str], path, what: str) -> None:
    s = pd.Index(values)
    if s.has_duplicates:
        dup = s.duplicated(keep="first")
        i = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero(s == s[i])[0])
        raise InputFormatError(
            path, f"duplicate {what} {s[i]!r} (first seen on line {first + 1})", line=i + 1
        )


def read_barcodes(path) -> pd.Index:
    """One barcode per line (extra tab-separated columns are ignored); duplicates are an error."""
    lines = read_lines(path)
    if not lines:
        raise InputFormatError(path, "no barcodes")
    bcs = [ln.split("\t", 1)[0].strip() for ln in lines]
    for i, b in enumerate(bcs):
        if not b:
            raise InputFormatError(path, "empty barcode", line=i + 1)
    _check_unique(bcs, path, "barcode")
    return pd.Index(bcs, name="barcode")


def read_genes(path) -> pd.DataFrame:
    """Gene file: 1 column (symbol) or 10x style ``id<TAB>symbol[<TAB>type]`` (symbol used).

    Returns a DataFrame with columns ``gene_name`` (and ``gene_id`` for 2+ column files), one row
    per line, in file order.
    """
    lines = read_lines(path)
    if not lines:
        raise InputFormatError(path, "no genes")
    rows = [ln.split("\t") for ln in lines]
    ncol = len(rows[0])
    for i, r in enumerate(rows):
        if len(r) != ncol:
            raise InputFormatError(path, f"expected {ncol} tab-separated columns, found {len(r)}", line=i + 1)
    if ncol == 1:
        df = pd.DataFrame({"gene_name": [r[0].strip() for r in rows]})
    else:
        df = pd.DataFrame({"gene_id": [r[0].strip() for r in rows], "gene_name": [r[1].strip() for r in rows]})
    empty = np.flatnonzero(df["gene_name"].to_numpy() == "")
    if len(empty):
        raise InputFormatError(path, "empty gene symbol", line=int(empty[0]) + 1)
    return df


def _peak_frame(chrom, start, end, path, line_offset: int = 0) -> pd.DataFrame:
    start = np.asarray(start, dtype=np.int64)
    end = np.asarray(end, dtype=np.int64)
    bad = np.flatnonzero(end <= start)
    if len(bad):
        raise InputFormatError(path, f"peak end <= start ({start[bad[0]]}-{end[bad[0]]})",
                               line=int(bad[0]) + 1 + line_offset)
    chrom = np.asarray(chrom, dtype=object)
    df = pd.DataFrame({"chrom": chrom, "start": start, "end": end})
    df.index = pd.Index(df["chrom"] + ":" + df["start"].astype(str) + "-" + df["end"].astype(str), name="peak")
    return df


def parse_peak_strings(values: Sequence[str], path="<peaks>", line_offset: int = 0) -> pd.DataFrame:
    """``chrN:start-end`` strings -> DataFrame(chrom, start, end) indexed by the peak string."""
    s = pd.Series(list(values), dtype=object).str.strip()
    parts = s.str.extract(PEAK_RE)
    bad = np.flatnonzero(parts["chrom"].isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise InputFormatError(path, f"malformed peak {s.iloc[i]!r} (expected chrN:start-end)",
                               line=i + 1 + line_offset)
    return _peak_frame(parts["chrom"].to_numpy(), parts["start"].astype(np.int64),
                       parts["end"].astype(np.int64), path, line_offset)


def read_peak_strings(path) -> pd.DataFrame:
    """A GEO ``peaks.tsv`` file: one ``chrN:start-end`` per line."""
    lines = read_lines(path)
    if not lines:
        raise InputFormatError(path, "no peaks")
    return parse_peak_strings([ln.split("\t", 1)[0] for ln in lines], path)


def read_bed_peaks(path) -> pd.DataFrame:
    """A BED file (>= 3 tab-separated columns, no header; track/browser/# lines skipped)."""
    lines = read_lines(path)
    chrom, start, end, lineno = [], [], [], []
    for i, ln in enumerate(lines):
        if not ln.strip() or ln.startswith(("#", "track", "browser")):
            continue
        f = ln.split("\t")
        if len(f) < 3:
            raise InputFormatError(path, f"expected >= 3 tab-separated BED columns, found {len(f)}", line=i + 1)
        try:
            a, b = int(f[1]), int(f[2])
        except ValueError:
            raise InputFormatError(path, f"non-integer BED coordinates {f[1]!r} {f[2]!r}", line=i + 1) from None
        if a < 0 or b <= a:
            raise InputFormatError(path, f"invalid BED interval {a}-{b} (need 0 <= start < end)", line=i + 1)
        chrom.append(f[0])
        start.append(a)
        end.append(b)
        lineno.append(i + 1)
    if not chrom:
        raise InputFormatError(path, "no peaks")
    return _peak_frame(chrom, start, end, path)


# --------------------------------------------------------------------------------------------
# MatrixMarket
# --------------------------------------------------------------------------------------------
def _mtx_header(fh, path):
    """Parse the banner + size line; returns (field, nrows, ncols, nnz, n_header_lines)."""
    banner = fh.readline()
    if not banner.startswith("%%MatrixMarket"):
        raise InputFormatError(path, "not a MatrixMarket file (missing %%MatrixMarket banner)", line=1)
    tok = banner.lower().split()
    if len(tok) < 5 or tok[1] != "matrix" or tok[2] != "coordinate":
        raise InputFormatError(path, f"unsupported MatrixMarket header {banner.strip()!r}", line=1)
    field, symmetry = tok[3], tok[4]
    if field not in ("integer", "real", "pattern") or symmetry != "general":
        raise InputFormatError(path, f"unsupported MatrixMarket type {field} {symmetry}", line=1)
    n = 1
    while True:
        line = fh.readline()
        n += 1
        if not line:
            raise InputFormatError(path, "missing size line", line=n)
        if line.startswith("%") or not line.strip():
            continue
        try:
            nrows, ncols, nnz = (int(x) for x in line.split())
        except ValueError:
            raise InputFormatError(path, f"malformed size line {line.strip()!r}", line=n) from None
        return field, nrows, ncols, nnz, n


def read_mtx_shape(path) -> tuple[int, int, int]:
    """(nrows, ncols, nnz) of a MatrixMarket file, reading only its header."""
    try:
        with open_text(path) as fh:
            _, nr, nc, nnz, _ = _mtx_header(fh, path)
    except InputFormatError:
        raise
    except _GZIP_ERRORS as e:
        raise InputFormatError(path, f"truncated or corrupt gzip file ({e})") from e
    return nr, nc, nnz


def read_mtx_csr(path, transpose: bool, keep_rows: np.ndarray | None = None,
                 chunksize: int = 5_000_000) -> sp.csr_matrix:
    """Read a coordinate MatrixMarket file into CSR float32, streaming in chunks.

    ``transpose=True`` returns the transpose (file is features x cells -> cells x features).
    ``keep_rows``: optional sorted array of row indices of the *returned* matrix to keep (entries
    of other rows are discarded while streaming, so a downsampled matrix never exists in full).
    Entry count, index ranges and gzip integrity are checked with errors naming file and line.
    """
    try:
        fh = open_text(path)
    except InputFormatError:
        raise
    rows_parts, cols_parts, vals_parts = [], [], []
    with fh:
        try:
            field, nr, nc, nnz, nhead = _mtx_header(fh, path)
        except _GZIP_ERRORS as e:
            raise InputFormatError(path, f"truncated or corrupt gzip file ({e})") from e
        out_rows, out_cols = (nc, nr) if transpose else (nr, nc)
        remap = None
        if keep_rows is not None:
            keep_rows = np.asarray(keep_rows, dtype=np.int64)
            remap = np.full(out_rows, -1, dtype=np.int64)
            remap[keep_rows] = np.arange(len(keep_rows))
        ncols_expected = 2 if field == "pattern" else 3
        seen = 0
        names = ["i", "j", "v"][:ncols_expected]
        dtypes = {"i": np.int64, "j": np.int64, "v": np.float64}
        try:
            reader = pd.read_csv(fh, sep=r"\s+", header=None, names=names, comment="%",
                                 chunksize=chunksize, dtype=dtypes, engine="c")
            for chunk in reader:
                ij_na = chunk[["i", "j"]].isna().to_numpy().any(axis=1)
                if ij_na.any():
                    bad = int(np.flatnonzero(ij_na)[0])
                    raise InputFormatError(path, "incomplete matrix entry", line=nhead + seen + bad + 1)
                if field != "pattern":
                    vv = chunk["v"].to_numpy()
                    badv = np.flatnonzero(~np.isfinite(vv) | (vv < 0))
                    if len(badv):
                        b = int(badv[0])
                        what = "missing" if np.isnan(vv[b]) else f"{vv[b]:g}"
                        raise InputFormatError(path, f"matrix value {what} (counts must be finite and >= 0)",
                                               line=nhead + seen + b + 1)
                i = chunk["i"].to_numpy() - 1
                j = chunk["j"].to_numpy() - 1
                badi = np.flatnonzero((i < 0) | (i >= nr) | (j < 0) | (j >= nc))
                if len(badi):
                    b = int(badi[0])
                    raise InputFormatError(
                        path, f"entry ({i[b] + 1}, {j[b] + 1}) outside the declared {nr} x {nc} matrix",
                        line=nhead + seen + b + 1)
                v = chunk["v"].to_numpy(np.float32) if field != "pattern" else np.ones(len(i), np.float32)
                seen += len(i)
                r, c = (j, i) if transpose else (i, j)
                if remap is not None:
                    r = remap[r]
                    m = r >= 0
                    r, c, v = r[m], c[m], v[m]
                rows_parts.append(r.astype(np.int32))
                cols_parts.append(c.astype(np.int32))
                vals_parts.append(v)
        except InputFormatError:
            raise
        except _GZIP_ERRORS as e:
            raise InputFormatError(path, f"truncated or corrupt gzip file ({e.__class__.__name__}: {e})") from e
        except (ValueError, pd.errors.ParserError) as e:
            line, text = _first_malformed_mtx_line(path, ncols_expected)
            raise InputFormatError(path, f"malformed matrix entry {text!r} ({e})", line=line) from e
    if seen != nnz:
        raise InputFormatError(path, f"header declares {nnz} entries but the file has {seen} (truncated?)")
    n_out = len(keep_rows) if keep_rows is not None else out_rows
    def cat(parts, dt):  # concatenate and free the parts one array at a time (peak memory)
        out = np.concatenate(parts) if parts else np.zeros(0, dt)
        parts.clear()
        return out

    r = cat(rows_parts, np.int32)
    c = cat(cols_parts, np.int32)
    v = cat(vals_parts, np.float32)
    X = sp.coo_matrix((v, (r, c)), shape=(n_out, out_cols)).tocsr()
    X.sum_duplicates()
    return X.astype(np.float32, copy=False)


def _first_malformed_mtx_line(path, n_fields: int) -> tuple[int | None, str]:
    """(line number, text) of the first body line of a MatrixMarket file that is not
    ``n_fields`` numbers (integer indices), or (None, '') if none is found. Slow path: only run
    after the fast parser failed, to name the line."""
    seen_size = False
    with open_text(path) as fh:
        for n, line in enumerate(fh, start=1):
            t = line.strip()
            if not t or t.startswith("%"):
                continue
            if not seen_size:
                seen_size = True
                continue
            f = t.split()
            try:
                ok = len(f) == n_fields
                if ok:
                    int(f[0]), int(f[1])
                    if n_fields == 3:
                        float(f[2])
            except ValueError:
                ok = False
            if not ok:
                return n, t[:80]
    return None, ""


def _orientation(path, shape_rc, n_cells: int, n_features: int, barcodes, features) -> bool:
    """True if the file is features x cells (needs transposing)."""
    nr, nc = shape_rc
    if (nr, nc) == (n_features, n_cells):
        return True  # GEO convention (also the pick when square: unambiguous only then)
    if (nr, nc) == (n_cells, n_features):
        return False
    raise InputFormatError(
        path, f"matrix is {nr} x {nc} but {barcodes} lists {n_cells} barcodes and {features} lists "
              f"{n_features} features (expected {n_features} x {n_cells}, features x cells)")


def _counts_anndata(counts, barcodes_path, features_path, var: pd.DataFrame, cells=None) -> ad.AnnData:
    bcs = read_barcodes(barcodes_path)
    nr, nc, _ = read_mtx_shape(counts)
    transpose = _orientation(counts, (nr, nc), len(bcs), len(var), barcodes_path, features_path)
    keep = None
    if cells is not None:
        keep = np.sort(np.asarray(cells, dtype=np.int64))
        bcs = bcs[keep]
    X = read_mtx_csr(counts, transpose=transpose, keep_rows=keep)  # values checked per line
    obs = pd.DataFrame(index=pd.Index(np.asarray(bcs, dtype=str), name=None))
    a = ad.AnnData(X=X, obs=obs, var=var)
    a.uns["source"] = {"counts": str(counts), "barcodes": str(barcodes_path), "features": str(features_path)}
    return a


def read_geo_mtx(counts, barcodes, features, kind: str = "genes", cells=None) -> ad.AnnData:
    """A GEO MatrixMarket set -> AnnData cells x features (CSR float32).

    ``kind='genes'``: ``features`` is a 1- or 2-column gene file; var index = symbol (made unique
    with a ``-1`` suffix if duplicated), column ``gene_name`` keeps the plain symbol.
    ``kind='peaks'``: ``features`` holds ``chrN:start-end`` strings (or a ``.bed``/``.bed.gz``);
    var index = ``chrom:start-end`` with columns ``chrom``, ``start``, ``end``.
    ``cells``: optional indices (into the barcode file) of cells to keep while streaming.
    The counts file may be features x cells (GEO) or cells x features; a square matrix is taken
    as features x cells.
    """
    if kind == "genes":
        g = read_genes(features)
        var = pd.DataFrame({"gene_name": g["gene_name"].to_numpy()})
        if "gene_id" in g:
            var["gene_id"] = g["gene_id"].to_numpy()
        idx = pd.Index(g["gene_name"].to_numpy(), dtype=str)
        var.index = _make_unique(idx)
    elif kind == "peaks":
        name = str(features)
        var = read_bed_peaks(features) if re.search(r"\.bed(\.gz)?$", name) else read_peak_strings(features)
        var.index = _make_unique(var.index)
    else:
        raise ValueError(f"kind must be 'genes' or 'peaks', not {kind!r}")
    return _counts_anndata(counts, barcodes, features, var, cells=cells)


def read_atac_set(counts, barcodes, bed, cells=None) -> ad.AnnData:
    """A single-assay ATAC set: MatrixMarket peaks x cells + barcodes + 3-column BED peaks."""
    var = read_bed_peaks(bed)
    var.index = _make_unique(var.index)
    return _counts_anndata(counts, barcodes, bed, var, cells=cells)


def _make_unique(idx: pd.Index) -> pd.Index:
    idx = pd.Index(np.asarray(idx, dtype=str))
    if not idx.has_duplicates:
        return idx
    counts = pd.Series(idx).groupby(idx).cumcount().to_numpy()
    vals = np.where(counts == 0, idx.to_numpy(), idx.to_numpy() + "-" + counts.astype(str))
    return pd.Index(vals.astype(str))


# --------------------------------------------------------------------------------------------
# loom
# --------------------------------------------------------------------------------------------
def _decode(a) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind in ("S", "O"):
        return np.array([x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in a], dtype=object)
    return a.astype(str).astype(object)


def read_loom(path, chunk_cells: int = 4096, gene_attr: str = "Gene", cell_attr: str = "CellID") -> ad.AnnData:
    """A loom file (``/matrix`` genes x cells) -> AnnData cells x genes CSR float32, via h5py.

    The matrix is read in column (cell) chunks, each converted to sparse immediately, so the
    dense matrix never exists in memory. var index = gene symbol made unique; ``gene_name`` keeps
    the plain symbol, ``accession`` the Accession row attribute when present.
    """
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as e:
        raise InputFormatError(path, f"cannot open as HDF5/loom ({e})") from e
    with f:
        if "matrix" not in f:
            raise InputFormatError(path, "no /matrix dataset (not a loom file)")
        M = f["matrix"]
        if M.ndim != 2:
            raise InputFormatError(path, f"/matrix must be 2-D, is {M.ndim}-D")
        n_genes, n_cells = M.shape
        try:
            genes = _decode(f[f"row_attrs/{gene_attr}"][()])
        except KeyError:
            raise InputFormatError(path, f"missing /row_attrs/{gene_attr}") from None
        acc = _decode(f["row_attrs/Accession"][()]) if "row_attrs/Accession" in f else None
        cells = (_decode(f[f"col_attrs/{cell_attr}"][()]) if f"col_attrs/{cell_attr}" in f
                 else np.array([f"cell{i}" for i in range(n_cells)], dtype=object))
        if len(genes) != n_genes:
            raise InputFormatError(path, f"/row_attrs/{gene_attr} has {len(genes)} entries, /matrix has {n_genes} rows")
        if len(cells) != n_cells:
            raise InputFormatError(path, f"/col_attrs/{cell_attr} has {len(cells)} entries, /matrix has {n_cells} columns")
        _check_unique(list(cells), path, "cell id")
        blocks = []
        try:
            for s in range(0, n_cells, chunk_cells):
                block = np.asarray(M[:, s:s + chunk_cells], dtype=np.float32)
                blocks.append(sp.csr_matrix(block.T))
                del block
        except OSError as e:
            raise InputFormatError(path, f"corrupt HDF5 data in /matrix ({e})") from e
    X = sp.vstack(blocks, format="csr").astype(np.float32) if blocks else sp.csr_matrix((0, n_genes), dtype=np.float32)
    check_values(X, path, "/matrix", cells.astype(str), genes.astype(str))
    var = pd.DataFrame({"gene_name": genes.astype(str)})
    if acc is not None:
        var["accession"] = acc.astype(str)
    var.index = _make_unique(pd.Index(genes.astype(str)))
    a = ad.AnnData(X=X, obs=pd.DataFrame(index=pd.Index(cells.astype(str))), var=var)
    a.uns["source"] = {"loom": str(path)}
    return a


# --------------------------------------------------------------------------------------------
# SNARE-seq metadata and co-assay pairing
# --------------------------------------------------------------------------------------------
def read_snare_metadata(path, label_col: str = "Ident") -> pd.Series:
    """Cell-type labels from an R data.frame (.rds): row names or a ``barcode`` column -> ``Ident``."""
    import pyreadr

    path = Path(path)
    if not path.exists():
        raise InputFormatError(path, "file not found")
    try:
        res = pyreadr.read_r(str(path))
    except Exception as e:  # pyreadr raises its own LibrdataError / PyreadrError types
        raise InputFormatError(path, f"cannot read as an R data file ({e.__class__.__name__}: {e})") from e
    frames = [v for v in res.values() if isinstance(v, pd.DataFrame)]
    if not frames:
        raise InputFormatError(path, "no data.frame inside")
    df = frames[0]
    if label_col not in df.columns:
        raise InputFormatError(path, f"no column {label_col!r} (columns: {list(df.columns)})")
    if "barcode" in df.columns:
        bcs = df["barcode"].astype(str).to_numpy()
    elif not isinstance(df.index, pd.RangeIndex) and df.index.dtype == object:
        bcs = df.index.astype(str).to_numpy()
    else:
        raise InputFormatError(path, "no barcodes: need data.frame row names or a 'barcode' column")
    _check_unique(list(bcs), path, "barcode")
    labels = df[label_col].astype(str).to_numpy()
    return pd.Series(labels, index=pd.Index(bcs, name="barcode"), name="cell_type")


def pair_coassay(rna: ad.AnnData, atac: ad.AnnData, metadata: pd.Series, drop_label: str = "Mis",
                 metadata_path=None, logger=None) -> tuple[ad.AnnData, ad.AnnData]:
    """Align the RNA and ATAC halves of a co-assay by barcode and attach cell types.

    RNA and ATAC must hold the same barcode set (any order) -> InputFormatError naming both
    barcode files otherwise. Cells without a metadata label and cells labelled ``drop_label``
    are dropped. Both outputs share obs_names (RNA file order) and obs ``cell_type`` (categorical).
    """
    src_r = rna.uns.get("source", {}).get("barcodes", "<rna barcodes>")
    src_a = atac.uns.get("source", {}).get("barcodes", "<atac barcodes>")
    r_idx, a_idx = rna.obs_names, atac.obs_names
    if len(r_idx) != len(a_idx) or not r_idx.isin(a_idx).all():
        only_r = r_idx.difference(a_idx)
        only_a = a_idx.difference(r_idx)
        ex = list(only_r[:3]) or list(only_a[:3])
        raise InputFormatError(
            src_r, f"RNA and ATAC barcodes do not pair with {src_a}: {len(only_r)} RNA-only and "
                   f"{len(only_a)} ATAC-only barcodes (e.g. {ex})")
    meta = metadata.reindex(r_idx)
    have = meta.notna().to_numpy()
    if not have.any():
        raise InputFormatError(metadata_path or "<metadata>", f"no barcode of {src_r} has a cell-type label")
    keep = have & (meta.to_numpy() != drop_label)
    if logger:
        logger.info("co-assay: %d paired cells, %d without label, %d labelled %r, %d kept",
                    len(r_idx), int((~have).sum()), int((meta == drop_label).sum()), drop_label, int(keep.sum()))
    cells = r_idx[keep]
    rna2 = rna[cells].copy()
    atac2 = atac[cells].copy()
    ct = pd.Categorical(meta.to_numpy()[keep].astype(str))
    ct = ct.remove_unused_categories()
    for a in (rna2, atac2):
        a.obs["cell_type"] = ct
    return rna2, atac2


# ----------------------------------------------------------------------------- workflow tables


def read_gene_features(path) -> pd.DataFrame:
    """genes.tsv of the features stage, indexed by gene symbol."""
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return df.set_index(pd.Index(df["gene_name"].to_numpy(), dtype=str))


def write_bed(peaks: pd.DataFrame, path, name_col: str | None = None) -> None:
    """4-column BED (chrom, start, end, name = ``name_col`` or the index), written atomically."""
    names = peaks[name_col].astype(str).to_numpy() if name_col else np.asarray(peaks.index, dtype=str)
    df = pd.DataFrame({"c": peaks["chrom"].astype(str).to_numpy(), "s": peaks["start"].to_numpy(np.int64),
                       "e": peaks["end"].to_numpy(np.int64), "n": names})
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", header=False, index=False)


def read_bed4(path) -> pd.DataFrame:
    """A BED written by write_bed (chrom, start, end, name); index = chrom:start-end."""
    df = pd.read_csv(path, sep="\t", header=None, names=["chrom", "start", "end", "name"],
                     dtype={"chrom": str, "start": np.int64, "end": np.int64, "name": str})
    df.index = peak_names(df)
    return df
