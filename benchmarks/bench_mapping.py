"""Benchmark: overlap mapping + sparse ATAC mapping + cell filter at the paper's scale.

Default size = the paper's single-assay ATAC after downsampling: 170,000 cells x 250,000 query
peaks mapped onto 220,000 reference (SNARE-seq) peaks. Density 1% (2,500 open query peaks per
cell, the order of a real snATAC cell; 3% = 1.1e9 non-zeros would need ~9 GB per matrix and does
not fit twice in a 24 GB machine next to other jobs). Nothing is densified.

    python3 benchmarks/bench_mapping.py                      # full scale, 1% density
    python3 benchmarks/bench_mapping.py --cells 20000        # quick run

Prints wall time per step and the process peak RSS (ru_maxrss) before and after the mapping.
"""

from __future__ import annotations

import argparse
import resource
import time

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from workflow_lib import cells, genome

CHROMS = [f"chr{i}" for i in range(1, 20)]


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def random_peaks(rng, n: int, width=(200, 2000), gap=(50, 3000)) -> pd.DataFrame:
    """n non-overlapping peaks spread over chr1..chr19, sorted."""
    per = np.full(len(CHROMS), n // len(CHROMS))
    per[: n - per.sum()] += 1
    rows = []
    for c, k in zip(CHROMS, per):
        w = rng.integers(*width, k)
        g = rng.integers(*gap, k)
        start = 3_000_000 + np.cumsum(g + w) - w
        rows.append(pd.DataFrame({"chrom": c, "start": start, "end": start + w}))
    df = pd.concat(rows, ignore_index=True)
    df.index = genome.peak_names(df)
    return df


def random_csr(rng, n_rows: int, n_cols: int, density: float) -> sp.csr_matrix:
    nnz_row = rng.poisson(density * n_cols, n_rows).astype(np.int64)
    indptr = np.zeros(n_rows + 1, np.int64)
    np.cumsum(nnz_row, out=indptr[1:])
    indices = rng.integers(0, n_cols, int(indptr[-1]), dtype=np.int32)
    X = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=(n_rows, n_cols))
    return X


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=170_000)
    ap.add_argument("--query", type=int, default=250_000)
    ap.add_argument("--ref", type=int, default=220_000)
    ap.add_argument("--density", type=float, default=0.01)
    ap.add_argument("--chunk-rows", type=int, default=16384)
    ap.add_argument("--min-features", type=int, default=50)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    t = {}
    t0 = time.perf_counter()
    ref = random_peaks(rng, a.ref)
    query = random_peaks(rng, a.query, width=(150, 1500), gap=(100, 2500))
    X = random_csr(rng, a.cells, a.query, a.density)
    t["generate"] = time.perf_counter() - t0
    rss0 = rss_gb()
    print(f"X: {a.cells} cells x {a.query} query peaks, nnz {X.nnz:,} "
          f"({X.data.nbytes + X.indices.nbytes + X.indptr.nbytes:,} bytes); peak RSS after generation {rss0:.2f} GB")

    t0 = time.perf_counter()
    M = genome.overlap_mapping(query, ref)
    t["overlap_mapping (bedtools)"] = time.perf_counter() - t0
    print(f"mapping: {M.nnz:,} query-ref pairs; {int((genome.ref_hits(M) > 0).sum()):,}/{a.ref:,} ref peaks hit")

    t0 = time.perf_counter()
    Y = genome.map_atac(X, M, chunk_rows=a.chunk_rows)
    t["map_atac"] = time.perf_counter() - t0
    del X
    t0 = time.perf_counter()
    adata = ad.AnnData(X=Y, obs=pd.DataFrame(index=pd.RangeIndex(a.cells).astype(str)))
    kept, removed = cells.filter_min_features(adata, a.min_features)
    t["filter_min_features"] = time.perf_counter() - t0
    print(f"Y: {Y.shape[0]} x {Y.shape[1]}, nnz {Y.nnz:,}; {removed} cells removed, {kept.n_obs} kept")
    for k, v in t.items():
        print(f"  {k:28s} {v:8.1f} s")
    print(f"peak RSS: {rss_gb():.2f} GB (of which {rss0:.2f} GB reached while generating the input)")


if __name__ == "__main__":
    main()
