"""Speed/memory of the knn and ridge baselines on random sparse data of chosen size (run by hand).

    python3 benchmarks/bench_baselines.py --cells 10000 --genes 33000 --peaks 220000
"""
import argparse
import resource
import time

import numpy as np
import scipy.sparse as sp

from workflow_lib.baselines import knn_translate, ridge_translate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=10000)
    ap.add_argument("--genes", type=int, default=33000)
    ap.add_argument("--peaks", type=int, default=220000)
    ap.add_argument("--rna-density", type=float, default=0.05)
    ap.add_argument("--atac-density", type=float, default=0.02)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    X = sp.random(a.cells, a.genes, a.rna_density, format="csr", dtype=np.float32, random_state=rng)
    X.data = rng.poisson(2.0, X.nnz).astype(np.float32) + 1
    Y = sp.random(a.cells, a.peaks, a.atac_density, format="csr", dtype=np.float32, random_state=rng)
    Y.data[:] = 1
    perm = rng.permutation(a.cells)
    train, test = np.sort(perm[: int(0.6 * a.cells)]), np.sort(perm[int(0.8 * a.cells):])
    for name, fn in (("knn", knn_translate), ("ridge", ridge_translate)):
        t = time.perf_counter()
        fn(X, Y, train, test)
        print(f"{name}: {time.perf_counter() - t:.1f} s, max RSS so far "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", flush=True)


if __name__ == "__main__":
    main()
