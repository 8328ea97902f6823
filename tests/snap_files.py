"""Writers of SnapATAC ``.snap`` files with plain h5py (not workflow_lib.snap.write_snap), in the
SnapTools layout: 1-based PM/AM idx and idy, PM peaks as BED, AM bins with 1-based starts.
Shared by test_snap (the parser) and test_features (the snap export of the single-assay stage)."""

import h5py
import numpy as np

VLEN = h5py.special_dtype(vlen=bytes)


def _bytes(xs):
    return np.array([x.encode() for x in xs], dtype=object)


def write_raw_snap(path, barcodes, uq=None, pm=None, am=None, chrom_sizes=None, magic="SNAP"):
    """pm = (chroms, starts, ends, idx, idy, count); am = (size, chroms, starts1, idx, idy, count)."""
    with h5py.File(path, "w") as f:
        if magic is not None:
            f["HD/MG"] = np.bytes_(magic)
        if chrom_sizes:
            f.create_dataset("HD/SQ/SN", data=_bytes(chrom_sizes), dtype=VLEN)
            f["HD/SQ/SL"] = np.array(list(chrom_sizes.values()), dtype=np.uint32)
        f.create_dataset("BD/name", data=_bytes(barcodes), dtype=VLEN)
        if uq is not None:
            f["BD/UQ"] = np.asarray(uq, dtype=np.uint32)
        if pm is not None:
            c, s, e, i, j, v = pm
            f.create_dataset("PM/peakChrom", data=_bytes(c), dtype=VLEN)
            f["PM/peakStart"], f["PM/peakEnd"] = np.asarray(s, np.uint32), np.asarray(e, np.uint32)
            f["PM/idx"], f["PM/idy"] = np.asarray(i, np.uint32), np.asarray(j, np.uint32)
            f["PM/count"] = np.asarray(v, np.uint8)
        if am is not None:
            size, c, s1, i, j, v = am
            f["AM/binSizeList"] = np.array([size], dtype=np.uint32)
            g = f"AM/{size}"
            f.create_dataset(f"{g}/binChrom", data=_bytes(c), dtype=VLEN)
            f[f"{g}/binStart"] = np.asarray(s1, np.uint32)
            f[f"{g}/idx"], f[f"{g}/idy"] = np.asarray(i, np.uint32), np.asarray(j, np.uint32)
            f[f"{g}/count"] = np.asarray(v, np.uint8)
