"""Benchmark: reading SnapATAC .snap samples (snap_export) at a real sample's size.

Default: one sample of 15,000 barcodes x the 5 kb bin matrix of the mm10 autosomes (~493,000 bins), 5,000
non-zero bins per barcode (7.5e7 triplets; a CEMBA snATAC nucleus has ~5-10k unique fragments),
the shape SnapATAC writes (AM/5000, gzip-compressed uint32/uint8 triplets). Measures
:func:`workflow_lib.features.export_snap_set` (QC on BD/UQ, downsampling to 20% before reading, the
whole matrix read in chunks) and a full read, with wall time and peak RSS.

    python3 benchmarks/bench_snap.py                  # default size
    python3 benchmarks/bench_snap.py --cells 2000     # quick run
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from workflow_lib import features as features_stage
from workflow_lib import io as wio
from workflow_lib.snap import read_snap, write_snap

MM10_AUTOSOMES_MB = [195, 182, 160, 157, 152, 150, 145, 129, 125, 131, 122, 120, 121, 125, 104, 98, 95, 91, 61]


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=15000)
    ap.add_argument("--per-cell", type=int, default=5000, help="non-zero bins per barcode")
    ap.add_argument("--bin-size", type=int, default=5000)
    ap.add_argument("--frac", type=float, default=0.2, help="downsampling fraction in export")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    sizes = {f"chr{i + 1}": mb * 1_000_000 for i, mb in enumerate(MM10_AUTOSOMES_MB)}
    chroms, starts = [], []
    for c, L in sizes.items():
        s = np.arange(1, L, args.bin_size)
        chroms += [c] * len(s)
        starts.append(s)
    bins = pd.DataFrame({"chrom": chroms, "start": np.concatenate(starts)})
    n_bins = len(bins)
    t = time.perf_counter()
    rows = np.repeat(np.arange(args.cells, dtype=np.int32), args.per_cell)
    cols = rng.integers(0, n_bins, len(rows)).astype(np.int32)
    X = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(args.cells, n_bins))
    X.sum_duplicates()
    del rows, cols
    uq = rng.integers(300, 20000, args.cells)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "SAMPLE.snap"
        write_snap(path, [f"BC{i:07d}" for i in range(args.cells)], X, bins=(args.bin_size, bins),
                   chrom_sizes=sizes, unique_fragments=uq)
        nnz = X.nnz
        del X
        print(f"wrote {args.cells} barcodes x {n_bins} bins, {nnz:,} triplets "
              f"({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s; RSS so far {rss_gb():.2f} GB")
        t = time.perf_counter()
        features_stage.export_snap_set([str(path)], Path(d) / "out.h5ad", Path(d) / "out.bed", dataset="bench",
                                downsample_frac=args.frac, seed=0, matrix="AM", bin_size=args.bin_size,
                                min_fragments=1000)
        print(f"export_snap_set (UQ >= 1000, frac {args.frac}): {time.perf_counter() - t:.1f} s, "
              f"peak RSS {rss_gb():.2f} GB")
        t = time.perf_counter()
        a = read_snap(path, matrix="AM", bin_size=args.bin_size)
        print(f"read_snap, all {a.n_obs} barcodes, {a.X.nnz:,} nnz: {time.perf_counter() - t:.1f} s, "
              f"peak RSS {rss_gb():.2f} GB")


if __name__ == "__main__":
    main()
