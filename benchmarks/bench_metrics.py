"""Benchmark: vectorised per-peak AUROC + AUPR vs a scikit-learn per-peak loop.

Paper scale: 220,526 peaks x ~2,000 test cells (random 20% of SNARE-seq). The vectorised code
(workflow_lib.metrics.auroc_ap_columns) runs on all peaks; the scikit-learn loop
(roc_auc_score + average_precision_score per peak) is timed on a subset of peaks and
extrapolated linearly to all peaks (reported as such). Run by hand:

    python3 benchmarks/bench_metrics.py [--n-peaks 220526] [--n-cells 2000] [--loop-peaks 1000]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import scipy.sparse as sp
from sklearn.metrics import average_precision_score, roc_auc_score

from workflow_lib.metrics import auroc_ap_columns


def make_data(n_cells, n_peaks, density, seed=0):
    rng = np.random.default_rng(seed)
    nnz = int(n_cells * n_peaks * density)
    rows = rng.integers(0, n_cells, nnz)
    cols = rng.integers(0, n_peaks, nnz)
    truth = sp.csr_matrix((np.ones(nnz, np.float32), (rows, cols)), shape=(n_cells, n_peaks))
    truth.data[:] = 1.0
    scores = rng.random((n_cells, n_peaks), dtype=np.float32) * 0.2
    scores[rows, cols] += 0.05                        # informative
    return truth, scores


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-peaks", type=int, default=220_526)
    ap.add_argument("--n-cells", type=int, default=2_000)
    ap.add_argument("--density", type=float, default=0.03)
    ap.add_argument("--loop-peaks", type=int, default=1_000)
    a = ap.parse_args()
    truth, scores = make_data(a.n_cells, a.n_peaks, a.density)
    print(f"data: {a.n_cells} cells x {a.n_peaks} peaks, truth nnz {truth.nnz}, "
          f"scores {scores.nbytes / 2**30:.2f} GiB float32")

    t0 = time.perf_counter()
    res = auroc_ap_columns(truth, scores)
    t_vec = time.perf_counter() - t0
    print(f"vectorised auroc_ap_columns, all {a.n_peaks} peaks: {t_vec:.1f} s")

    k = min(a.loop_peaks, a.n_peaks)
    tc = truth[:, :k].toarray()
    t0 = time.perf_counter()
    ref_auc = np.empty(k)
    ref_ap = np.empty(k)
    for j in range(k):
        ref_auc[j] = roc_auc_score(tc[:, j], scores[:, j])
        ref_ap[j] = average_precision_score(tc[:, j], scores[:, j])
    t_loop = time.perf_counter() - t0
    extrap = t_loop / k * a.n_peaks
    print(f"sklearn loop on {k} peaks: {t_loop:.2f} s -> extrapolated to {a.n_peaks} peaks: "
          f"{extrap:.0f} s ({extrap / 60:.1f} min)  [EXTRAPOLATED, not measured]")
    print(f"speed-up: {extrap / t_vec:.1f}x")
    print(f"max |diff| vs sklearn on the subset: AUROC {np.abs(res.auroc[:k] - ref_auc).max():.2e}, "
          f"AP {np.abs(res.aupr[:k] - ref_ap).max():.2e}")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
