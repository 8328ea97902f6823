"""Training throughput of the Polarbear VAEs at the paper's full scale (run by hand, not in CI).

Synthetic sparse inputs with the real dimensions: 17,271 genes (RNA) and 220,526 peaks over 19
autosomes (ATAC), ~3% non-zero. Measures cells/s of optimisation steps (loader densification of
each minibatch + forward + backward + Adam) and the process peak RSS.

    python3 benchmarks/bench_training.py [--steps 5] [--cells 4096] [--threads 2] [--device cuda]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import scipy.sparse as sp
import torch

from workflow_lib.data import SparseCellLoader
from workflow_lib.models.chromsplit import proportional_sizes
from workflow_lib.models.vae import ATACVAE, RNAVAE
from workflow_lib.polarbear import vae_loss_fn

N_GENES, N_PEAKS, N_CHROMS = 17_271, 220_526, 19


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def random_csr(rng, n, m, density, counts):
    nnz_per_row = rng.binomial(m, density, n)
    indptr = np.r_[0, np.cumsum(nnz_per_row)]
    indices = np.concatenate([np.sort(rng.choice(m, k, replace=False)) for k in nnz_per_row])
    data = (rng.geometric(0.5, indices.size) if counts else np.ones(indices.size)).astype(np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(n, m))


def bench(model, X, cov, batch_size, steps, warmup=1, device="cpu"):
    loader = SparseCellLoader(X, np.arange(X.shape[0]), batch_size, True, 0, cov, device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = vae_loss_fn(1.0, 0)
    model.train()
    it = iter(loader)
    n, t0 = 0, None
    for i in range(warmup + steps):
        if i == warmup:
            if torch.device(device).type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        batch = next(it)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model, batch, 0)
        loss.backward()
        opt.step()
        if i >= warmup:
            n += batch["x"].shape[0]
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return n / dt, dt / steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--cells", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--latent", type=int, default=25)
    ap.add_argument("--device", default="cpu", help="torch device, e.g. cuda (the same numbers on a GPU machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__}, threads {args.threads}, latent {args.latent}")
    Xr = random_csr(rng, args.cells, N_GENES, 0.03, counts=True)
    Xa = random_csr(rng, args.cells, N_PEAKS, 0.03, counts=False)
    chrom_sizes = proportional_sizes(N_PEAKS, [1] * N_CHROMS)
    b2 = np.eye(2, dtype=np.float32)[rng.integers(0, 2, args.cells)]
    b3 = np.eye(3, dtype=np.float32)[rng.integers(0, 3, args.cells)]
    print(f"data ready, peak RSS {peak_rss_mb():.0f} MB")
    rna = RNAVAE(N_GENES, 2, args.latent)
    atac = ATACVAE(N_PEAKS, 3, args.latent, chrom_sizes, depth_ref=0.03 * N_PEAKS)
    for name, model, X, cov in (
        ("rna", rna, Xr, {"b": b2, "size": rna.size_covariate(Xr)}),
        ("atac", atac, Xa, {"b": b3, "size": atac.size_covariate(Xa)}),
    ):
        n_par = sum(p.numel() for p in model.parameters())
        model.to(args.device)
        for bs in (128, 16):
            cps, sps = bench(model, X, cov, bs, args.steps, device=args.device)
            print(f"{name:4s} params {n_par / 1e6:6.1f} M  batch {bs:3d}: {cps:8.1f} cells/s  "
                  f"{sps * 1000:8.1f} ms/step  peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
