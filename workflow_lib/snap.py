"""SnapATAC ``.snap`` files (HDF5): the published form of the CEMBA / Fang 2021 snATAC data.

Layout used here (as written by SnapTools ``snap-pre`` / ``snap-add-pmat`` / ``snap-add-bmat``):

- ``HD/MG`` magic ``"SNAP"``; ``HD/SQ/SN`` + ``HD/SQ/SL`` chromosome names and lengths.
- ``BD/name``: cell barcodes; ``BD/UQ``: unique fragments per barcode (plus other QC fields).
- ``PM/peakChrom``, ``PM/peakStart``, ``PM/peakEnd``: peaks as BED (0-based start, end
  exclusive); ``PM/idx`` (barcode, 1-based), ``PM/idy`` (peak, 1-based), ``PM/count``.
- ``AM/binSizeList``; ``AM/<size>/binChrom``, ``AM/<size>/binStart`` (1-based start; the bin
  covers ``start .. start + size - 1``, clipped at the chromosome end); ``AM/<size>/idx``,
  ``idy``, ``count`` as above.

:func:`read_snap` returns cells x features (peaks, or bins when the file has no peak matrix)
as CSR float32 with ``var`` = BED coordinates, reading the sparse triplets in chunks and
keeping only the requested cells, so a downsampled matrix never exists in full.
:func:`write_snap` writes the same layout (used by the demo simulator and the tests).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .fileutils import InputFormatError

CHUNK = 20_000_000  # sparse triplets read per HDF5 slice


def _open(path):
    import h5py

    path = Path(path)
    if not path.exists():
        raise InputFormatError(path, "file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise InputFormatError(path, f"cannot open as a snap (HDF5) file ({e})") from e
    try:
        magic = f["HD/MG"][()] if "HD/MG" in f else None
    except (OSError, KeyError, RuntimeError) as e:
        f.close()
        raise InputFormatError(path, f"corrupt snap (HDF5) file: {e.__class__.__name__}: {e}") from e
    if isinstance(magic, np.ndarray):
        magic = magic.reshape(-1)[0] if magic.size else None
    if isinstance(magic, bytes):
        magic = magic.decode("utf-8", "replace")
    if magic is None or str(magic).strip() != "SNAP":
        f.close()
        raise InputFormatError(path, f"not a snap file (HD/MG is {magic!r}, expected 'SNAP')")
    return f


def _strings(ds) -> np.ndarray:
    a = np.asarray(ds[()]).reshape(-1)
    return np.array([x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in a], dtype=object)


@contextlib.contextmanager
def _reading(path):
    """Open a snap file; HDF5 errors while reading it (a corrupt or truncated file) name the file."""
    with _open(path) as f:
        try:
            yield f
        except (OSError, KeyError, RuntimeError) as e:
            raise InputFormatError(path, f"corrupt snap (HDF5) file: {e.__class__.__name__}: {e}") from e


def read_snap_barcodes(path, min_fragments: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(barcodes, keep) of a snap file: all barcodes in file order and a boolean mask of those
    with at least ``min_fragments`` unique fragments (``BD/UQ``; all True when 0)."""
    with _reading(path) as f:
        if "BD/name" not in f:
            raise InputFormatError(path, "missing BD/name (barcodes)")
        bcs = _strings(f["BD/name"])
        keep = np.ones(len(bcs), bool)
        if min_fragments > 0:
            if "BD/UQ" not in f:
                raise InputFormatError(path, f"missing BD/UQ (unique fragments), needed for min_fragments={min_fragments}")
            uq = np.asarray(f["BD/UQ"][()]).reshape(-1)
            if len(uq) != len(bcs):
                raise InputFormatError(path, f"BD/UQ has {len(uq)} entries, BD/name has {len(bcs)}")
            keep = uq >= min_fragments
    if len(set(bcs)) != len(bcs):
        raise InputFormatError(path, "duplicated barcodes in BD/name")
    return bcs, keep


def _features(f, path, matrix: str, bin_size: int) -> tuple[str, pd.DataFrame]:
    """(group, BED frame) of the matrix to read: PM, or AM/<bin_size>."""
    use = matrix
    if matrix == "auto":
        use = "PM" if "PM" in f else "AM"
    if use == "PM":
        if "PM" not in f:
            raise InputFormatError(path, "no PM (cell x peak) matrix; use snap_matrix: AM for the bin matrix")
        for k in ("peakChrom", "peakStart", "peakEnd"):
            if f"PM/{k}" not in f:
                raise InputFormatError(path, f"missing PM/{k}")
        chrom = _strings(f["PM/peakChrom"])
        start = np.asarray(f["PM/peakStart"][()], dtype=np.int64).reshape(-1)
        end = np.asarray(f["PM/peakEnd"][()], dtype=np.int64).reshape(-1)
        group = "PM"
    elif use == "AM":
        sizes = [int(s) for s in np.asarray(f["AM/binSizeList"][()]).reshape(-1)] if "AM/binSizeList" in f else []
        if int(bin_size) not in sizes:
            raise InputFormatError(path, f"no AM/{bin_size} bin matrix (bin sizes in file: {sizes})")
        group = f"AM/{int(bin_size)}"
        for k in ("binChrom", "binStart"):
            if f"{group}/{k}" not in f:
                raise InputFormatError(path, f"missing {group}/{k}")
        chrom = _strings(f[f"{group}/binChrom"])
        start = np.asarray(f[f"{group}/binStart"][()], dtype=np.int64).reshape(-1) - 1  # 1-based -> BED
        end = start + int(bin_size)
        if "HD/SQ/SN" in f and "HD/SQ/SL" in f:
            lengths = dict(zip(_strings(f["HD/SQ/SN"]), np.asarray(f["HD/SQ/SL"][()]).reshape(-1).astype(np.int64)))
            cap = np.array([lengths.get(c, np.iinfo(np.int64).max) for c in chrom], dtype=np.int64)
            end = np.minimum(end, cap)
    else:
        raise ValueError(f"matrix must be 'auto', 'PM' or 'AM', not {matrix!r}")
    if not (len(chrom) == len(start) == len(end)):
        raise InputFormatError(path, f"{group}: chromosome/start/end lengths differ ({len(chrom)}/{len(start)}/{len(end)})")
    bad = np.flatnonzero((start < 0) | (end <= start))
    if len(bad):
        i = int(bad[0])
        raise InputFormatError(path, f"{group}: feature {i + 1} has an invalid interval {start[i]}-{end[i]}")
    var = pd.DataFrame({"chrom": chrom.astype(str), "start": start, "end": end})
    return group, var


def read_snap(path, cells: Sequence[int] | None = None, matrix: str = "auto", bin_size: int = 5000,
              sample: str | None = None) -> ad.AnnData:
    """A snap file -> AnnData cells x features (CSR float32 counts).

    ``cells``: indices into ``BD/name`` to keep (default all), e.g. from
    :func:`read_snap_barcodes` + downsampling. ``matrix``: ``PM`` (peaks), ``AM`` (bins of
    ``bin_size``) or ``auto`` (PM when present). obs index = ``<sample>:<barcode>`` when
    ``sample`` is given (barcodes repeat across samples), var = chrom/start/end (BED).
    """
    path = Path(path)
    bcs, _ = read_snap_barcodes(path)
    keep = np.arange(len(bcs)) if cells is None else np.sort(np.asarray(cells, dtype=np.int64))
    if len(keep) and (keep[0] < 0 or keep[-1] >= len(bcs)):
        raise ValueError(f"{path}: cell index out of range 0..{len(bcs) - 1}")
    remap = np.full(len(bcs), -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    with _reading(path) as f:
        group, var = _features(f, path, matrix, bin_size)
        for k in ("idx", "idy", "count"):
            if f"{group}/{k}" not in f:
                raise InputFormatError(path, f"missing {group}/{k}")
        n = f[f"{group}/idx"].shape[0]
        if f[f"{group}/idy"].shape[0] != n or f[f"{group}/count"].shape[0] != n:
            raise InputFormatError(path, f"{group}: idx, idy and count lengths differ")
        rows, cols, vals = [], [], []
        for s in range(0, n, CHUNK):
            i = np.asarray(f[f"{group}/idx"][s:s + CHUNK], dtype=np.int64) - 1
            j = np.asarray(f[f"{group}/idy"][s:s + CHUNK], dtype=np.int64) - 1
            v = np.asarray(f[f"{group}/count"][s:s + CHUNK], dtype=np.float32)
            bad = np.flatnonzero((i < 0) | (i >= len(bcs)) | (j < 0) | (j >= len(var)))
            if len(bad):
                b = int(bad[0])
                raise InputFormatError(path, f"{group}: entry {s + b + 1} = (barcode {i[b] + 1}, feature {j[b] + 1}) "
                                             f"outside {len(bcs)} barcodes x {len(var)} features (1-based)")
            badv = np.flatnonzero(~np.isfinite(v) | (v < 0))
            if len(badv):
                b = int(badv[0])
                raise InputFormatError(path, f"{group}/count: entry {s + b + 1} (barcode {i[b] + 1}, feature "
                                             f"{j[b] + 1}) is {v[b]:g}; counts must be finite and >= 0")
            r = remap[i]
            m = r >= 0
            rows.append(r[m].astype(np.int32))
            cols.append(j[m].astype(np.int32))
            vals.append(v[m])
    cat = (lambda parts, dt: np.concatenate(parts) if parts else np.zeros(0, dt))
    X = sp.coo_matrix((cat(vals, np.float32), (cat(rows, np.int32), cat(cols, np.int32))),
                      shape=(len(keep), len(var))).tocsr()
    X.sum_duplicates()
    names = bcs[keep].astype(str)
    if sample:
        names = np.array([f"{sample}:{b}" for b in names], dtype=object)
    var.index = pd.Index([f"{c}:{a}-{b}" for c, a, b in var.itertuples(index=False)])
    a = ad.AnnData(X=X.astype(np.float32, copy=False), obs=pd.DataFrame(index=pd.Index(names, dtype=str)), var=var)
    a.obs["barcode"] = bcs[keep].astype(str)
    a.uns["source"] = {"snap": str(path), "matrix": group}
    return a


def write_snap(path, barcodes: Sequence[str], X: sp.spmatrix, peaks: pd.DataFrame | None = None,
               bins: tuple[int, pd.DataFrame] | None = None, chrom_sizes: dict | None = None,
               unique_fragments: Sequence[int] | None = None) -> None:
    """Write a snap file with a PM matrix (``peaks`` = BED chrom/start/end) or an AM matrix
    (``bins`` = (size, frame with chrom and 1-based ``start``)); ``X`` is cells x features."""
    import h5py

    X = sp.coo_matrix(X)
    vlen = h5py.special_dtype(vlen=bytes)
    enc = (lambda xs: np.array([str(x).encode() for x in xs], dtype=object))
    with h5py.File(path, "w") as f:
        f.create_dataset("HD/MG", data=np.bytes_("SNAP"))
        f.create_dataset("HD/VN", data=np.bytes_("1.0.0"))
        if chrom_sizes:
            f.create_dataset("HD/SQ/SN", data=enc(chrom_sizes), dtype=vlen)
            f.create_dataset("HD/SQ/SL", data=np.array(list(chrom_sizes.values()), dtype=np.uint32))
        f.create_dataset("BD/name", data=enc(barcodes), dtype=vlen)
        uq = np.asarray(X.tocsr().sum(1)).ravel() if unique_fragments is None else np.asarray(unique_fragments)
        f.create_dataset("BD/UQ", data=uq.astype(np.uint32))
        if peaks is not None:
            g = "PM"
            f.create_dataset("PM/peakChrom", data=enc(peaks["chrom"]), dtype=vlen)
            f.create_dataset("PM/peakStart", data=peaks["start"].to_numpy().astype(np.uint32))
            f.create_dataset("PM/peakEnd", data=peaks["end"].to_numpy().astype(np.uint32))
        elif bins is not None:
            size, frame = bins
            g = f"AM/{int(size)}"
            f.create_dataset("AM/nBinSize", data=np.uint32(1))
            f.create_dataset("AM/binSizeList", data=np.array([size], dtype=np.uint32))
            f.create_dataset(f"{g}/binChrom", data=enc(frame["chrom"]), dtype=vlen)
            f.create_dataset(f"{g}/binStart", data=frame["start"].to_numpy().astype(np.uint32))
        else:
            raise ValueError("write_snap needs peaks or bins")
        kw = dict(compression="gzip", compression_opts=4)
        f.create_dataset(f"{g}/idx", data=(X.row + 1).astype(np.uint32), **kw)
        f.create_dataset(f"{g}/idy", data=(X.col + 1).astype(np.uint32), **kw)
        f.create_dataset(f"{g}/count", data=np.minimum(X.data, 255).astype(np.uint8), **kw)
