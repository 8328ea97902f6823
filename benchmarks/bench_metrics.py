"""Benchmark: vectorised per-peak AUROC + AP vs a scikit-learn per-peak loop, in one process.

Paper scale (``--size paper``, the default): 220,526 peaks x 2,000 test cells. Each repeat times
workflow_lib.metrics.auroc_ap_columns on ALL peaks, then the scikit-learn loop
(roc_auc_score + average_precision_score per peak) on a random subset of ``--loop-peaks`` peaks,
extrapolated linearly to all peaks (printed as such); the two are interleaved so that load from
other processes hits both alike. Prints both timings, the ratio per repeat and its range, the
largest difference from scikit-learn on the subset and the peak RSS. Run from the repository root:

    nice python3 benchmarks/bench_metrics.py [--size paper|small|tiny] [--n-peaks N]
        [--n-cells N] [--loop-peaks 1000] [--repeats N] [--dtype float32|float64] [--ties DECIMALS]
        [--before GIT_REV]

``--before fa82a5f`` also times the implementation before issue 15 (loaded with ``git show``).

Measured numbers (command, sizes, seconds, ratio, memory) are in benchmarks/metrics.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc

import numpy as np
import scipy.sparse as sp
from sklearn.metrics import average_precision_score, roc_auc_score

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
from workflow_lib.metrics import auroc_ap_columns  # noqa: E402
from gitrev import module_at  # noqa: E402  (benchmarks/, the script's folder)

SIZES = {"paper": (220_526, 2_000), "small": (22_050, 2_000), "tiny": (2_000, 500)}


def make_data(n_cells, n_peaks, density, dtype=np.float32, ties=None, seed=0):
    """Binary sparse truth (CSR, like evaluate.py) and dense informative scores."""
    rng = np.random.default_rng(seed)
    nnz = int(n_cells * n_peaks * density)
    rows = rng.integers(0, n_cells, nnz)
    cols = rng.integers(0, n_peaks, nnz)
    truth = sp.csr_matrix((np.ones(nnz, np.float32), (rows, cols)), shape=(n_cells, n_peaks))
    truth.data[:] = 1.0
    scores = rng.random((n_cells, n_peaks), dtype=np.float32) * 0.2
    scores[rows, cols] += 0.05                        # informative
    if ties is not None:
        np.round(scores, ties, out=scores)
    return truth, scores.astype(dtype, copy=False)


def load_before(rev):
    """auroc_ap_columns of workflow_lib/metrics.py at git revision ``rev``."""
    return module_at(rev, "workflow_lib/metrics.py", "metrics_before").auroc_ap_columns


def traced_peak_mib(fn, *args):
    """Peak memory allocated (numpy arrays included) during ``fn(*args)``, inputs excluded."""
    tracemalloc.start()
    fn(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def rss_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="paper",
                    help="preset peaks x cells: paper 220526 x 2000, small 22050 x 2000, "
                         "tiny 2000 x 500")
    ap.add_argument("--n-peaks", type=int, help="overrides --size")
    ap.add_argument("--n-cells", type=int, help="overrides --size")
    ap.add_argument("--density", type=float, default=0.03, help="fraction of positive cells")
    ap.add_argument("--loop-peaks", type=int, default=1000,
                    help="random peaks timed with the scikit-learn loop per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--ties", type=int, default=None,
                    help="round the scores to this many decimals (many ties)")
    ap.add_argument("--before", metavar="GIT_REV",
                    help="also time auroc_ap_columns as of this git revision (interleaved)")
    a = ap.parse_args()
    n_peaks = a.n_peaks or SIZES[a.size][0]
    n_cells = a.n_cells or SIZES[a.size][1]
    truth, scores = make_data(n_cells, n_peaks, a.density, np.dtype(a.dtype), a.ties)
    rss_data = rss_gib()
    print(f"data: {n_cells} cells x {n_peaks} peaks, truth CSR nnz {truth.nnz}, scores "
          f"{scores.dtype} {scores.nbytes / 2**30:.2f} GiB"
          + (f", rounded to {a.ties} decimals" if a.ties is not None else "")
          + f"; peak RSS after making the data {rss_data:.2f} GiB")
    before = load_before(a.before) if a.before else None
    rng = np.random.default_rng(1)
    t_befores = []
    k = min(a.loop_peaks, n_peaks)
    ratios, t_vecs, t_loops = [], [], []
    max_diff = max_diff_before = 0.0
    for rep in range(a.repeats):
        t0 = time.perf_counter()
        res = auroc_ap_columns(truth, scores)
        t_vec = time.perf_counter() - t0
        rss_vec = rss_gib()
        if before is not None:
            t0 = time.perf_counter()
            res_b = before(truth, scores)
            t_befores.append(time.perf_counter() - t0)
            for c in ("auroc", "aupr"):
                d = np.nanmax(np.abs(res_b[c].to_numpy() - res[c].to_numpy()))
                max_diff_before = max(max_diff_before, d)

        sub = np.sort(rng.choice(n_peaks, k, replace=False))
        tc = truth[:, sub].toarray()
        sc = np.ascontiguousarray(scores[:, sub])
        ref = np.full((2, k), np.nan)
        t0 = time.perf_counter()
        for i in range(k):
            if 0 < tc[:, i].sum() < n_cells:
                ref[0, i] = roc_auc_score(tc[:, i], sc[:, i])
            if tc[:, i].sum() > 0:
                ref[1, i] = average_precision_score(tc[:, i], sc[:, i])
        t_loop = time.perf_counter() - t0
        extrap = t_loop / k * n_peaks
        got = np.vstack([res.auroc.to_numpy()[sub], res.aupr.to_numpy()[sub]])
        if not np.array_equal(np.isnan(got), np.isnan(ref)):
            raise SystemExit("NaN pattern differs from scikit-learn")
        ok = ~np.isnan(ref)
        max_diff = max(max_diff, float(np.abs(got[ok] - ref[ok]).max(initial=0.0)))
        ratios.append(extrap / t_vec)
        t_vecs.append(t_vec)
        t_loops.append(extrap)
        print(f"repeat {rep + 1}: auroc_ap_columns on all {n_peaks} peaks {t_vec:.2f} s "
              f"(peak RSS {rss_vec:.2f} GiB) | sklearn loop on {k} random peaks "
              f"{t_loop:.2f} s -> EXTRAPOLATED to {n_peaks} peaks {extrap:.0f} s | "
              f"ratio {extrap / t_vec:.1f}x"
              + (f" | {a.before}: {t_befores[-1]:.2f} s" if before is not None else ""), flush=True)
    print(f"auroc_ap_columns: {min(t_vecs):.2f}-{max(t_vecs):.2f} s; sklearn loop (extrapolated "
          f"from {k} peaks/repeat): {min(t_loops):.0f}-{max(t_loops):.0f} s")
    print(f"speed-up: median {np.median(ratios):.1f}x, range {min(ratios):.1f}-{max(ratios):.1f}x "
          f"over {a.repeats} repeats; pooled (sum of sklearn / sum of vectorised times) "
          f"{sum(t_loops) / sum(t_vecs):.1f}x")
    print(f"max |difference| from scikit-learn (AUROC and AP, {a.repeats * k} peaks): "
          f"{max_diff:.1e}")
    if before is not None:
        rb = np.array(t_loops) / np.array(t_befores)
        print(f"{a.before}: {min(t_befores):.2f}-{max(t_befores):.2f} s, speed-up over sklearn "
              f"median {np.median(rb):.1f}x, range {rb.min():.1f}-{rb.max():.1f}x; now "
              f"{np.median(np.array(t_befores) / np.array(t_vecs)):.1f}x faster (median); "
              f"max |difference| now vs {a.before}: {max_diff_before:.1e}")
    print(f"peak RSS {rss_gib():.2f} GiB (data alone {rss_data:.2f} GiB)")
    print(f"peak memory allocated inside auroc_ap_columns (tracemalloc, untimed call): "
          f"{traced_peak_mib(auroc_ap_columns, truth, scores):.0f} MiB"
          + (f"; {a.before}: {traced_peak_mib(before, truth, scores):.0f} MiB"
             if before is not None else ""))


if __name__ == "__main__":
    main()
