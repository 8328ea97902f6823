"""Training throughput of the Polarbear VAEs (run by hand, not in CI).

Default: synthetic sparse inputs with the paper's dimensions: 17,271 genes (RNA) and 220,526
peaks over 19 autosomes (ATAC), ~3% non-zero. ``--demo RESULTS`` uses the demo's processed
single-assay matrices instead (``RESULTS/processed/full/single_{rna,atac}.h5ad``: real sparsity,
the demo's uneven chromosome blocks), i.e. what a demo training step costs.
Measures cells/s of optimisation steps (loader densification of each minibatch + forward +
backward + fused Adam, as in ``train.fit``) and the process peak RSS.

``--before GIT_REV`` also builds the ATAC VAE with the chromosome-split layers of that revision
(``workflow_lib/models/chromsplit.py`` loaded with ``git show``) and alternates the two models in
one process ``--repeats`` times, so the ratio is robust to the machine's changing speed.
``--profile`` prints a torch.profiler table of a few steps of each model.

    python3 benchmarks/bench_training.py [--steps 5] [--cells 2048] [--threads 2] [--device cuda]
        [--models rna,atac] [--batches 128,16] [--atac-hidden per_chromosome|total]
        [--demo results] [--before GIT_REV [--repeats 4]] [--profile]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from workflow_lib.data import SparseCellLoader
from workflow_lib.models import vae as vae_module
from workflow_lib.models.chromsplit import chrom_block_sizes, proportional_sizes
from workflow_lib.models.vae import ATACVAE, RNAVAE
from workflow_lib.polarbear import vae_loss_fn

from gitrev import module_at  # benchmarks/, the script's folder

N_GENES, N_PEAKS, N_CHROMS = 17_271, 220_526, 19


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def random_csr(rng, n, m, density, counts):
    nnz_per_row = rng.binomial(m, density, n)
    indptr = np.r_[0, np.cumsum(nnz_per_row)]
    indices = np.concatenate([np.sort(rng.choice(m, k, replace=False)) for k in nnz_per_row])
    data = (rng.geometric(0.5, indices.size) if counts else np.ones(indices.size)).astype(np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(n, m))


def load_chromsplit(rev):
    """The chromsplit module of git revision ``rev``."""
    return module_at(rev, "workflow_lib/models/chromsplit.py", "chromsplit_before")


def build_atac(n_peaks, latent, chrom_sizes, hidden_rule, depth_ref, layers=None):
    """An ATAC VAE, with the chromosome-split layers of module ``layers`` when given."""
    saved = vae_module.ChromSplitLinear, vae_module.BlockLayerNorm
    if layers is not None:
        vae_module.ChromSplitLinear, vae_module.BlockLayerNorm = layers.ChromSplitLinear, layers.BlockLayerNorm
    try:
        torch.manual_seed(0)
        return ATACVAE(n_peaks, 3, latent, chrom_sizes, depth_ref=depth_ref, hidden_rule=hidden_rule)
    finally:
        vae_module.ChromSplitLinear, vae_module.BlockLayerNorm = saved


def make_loader(X, cov, batch_size, device):
    return SparseCellLoader(X, np.arange(X.shape[0]), batch_size, True, 0, cov, device)


def train_steps(model, loader, opt, loss_fn, steps, it=None):
    """Run ``steps`` optimisation steps; returns (cells seen, the loader iterator)."""
    n = 0
    for _ in range(steps):
        try:
            batch = next(it)
        except (StopIteration, TypeError):
            it = iter(loader)
            batch = next(it)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model, batch, 0)
        loss.backward()
        opt.step()
        n += batch["x"].shape[0]
    return n, it


def start_training(model, X, cov, batch_size, device, warmup):
    """(loader, optimizer, loss, iterator) after ``warmup`` untimed steps in train mode."""
    loader = make_loader(X, cov, batch_size, device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-5, fused=True)
    loss_fn = vae_loss_fn(1.0, 0)
    model.train()
    _, it = train_steps(model, loader, opt, loss_fn, warmup)
    return loader, opt, loss_fn, it


def bench(model, X, cov, batch_size, steps, warmup=1, device="cpu"):
    """(cells/s, s/step) of ``steps`` timed steps after ``warmup`` untimed ones."""
    loader, opt, loss_fn, it = start_training(model, X, cov, batch_size, device, warmup)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    n, _ = train_steps(model, loader, opt, loss_fn, steps, it)
    sync()
    dt = time.perf_counter() - t0
    return n / dt, dt / steps


def profile_table(model, X, cov, batch_size, steps, device):
    from torch.profiler import ProfilerActivity, profile
    loader, opt, loss_fn, it = start_training(model, X, cov, batch_size, device, warmup=3)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_steps(model, loader, opt, loss_fn, steps, it)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)


def inputs(args, rng):
    """(RNA CSR, ATAC CSR, ATAC chromosome block sizes, what they are)."""
    if args.demo:
        import anndata as ad
        proc = Path(args.demo) / "processed" / "full"
        rna, atac = ad.read_h5ad(proc / "single_rna.h5ad"), ad.read_h5ad(proc / "single_atac.h5ad")
        Xa = sp.csr_matrix(atac.X, dtype=np.float32)
        Xa.data[:] = 1.0
        return (sp.csr_matrix(rna.X, dtype=np.float32), Xa, chrom_block_sizes(atac.var["chrom"]),
                f"demo matrices of {args.demo}")
    Xr = random_csr(rng, args.cells, N_GENES, 0.03, counts=True)
    Xa = random_csr(rng, args.cells, N_PEAKS, 0.03, counts=False)
    return Xr, Xa, proportional_sizes(N_PEAKS, [1] * N_CHROMS), "synthetic, the paper's dimensions"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--cells", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--latent", type=int, default=25)
    ap.add_argument("--device", default="cpu", help="torch device, e.g. cuda (the same numbers on a GPU machine)")
    ap.add_argument("--models", default="rna,atac")
    ap.add_argument("--batches", default="128,16")
    ap.add_argument("--atac-hidden", default="per_chromosome", choices=("per_chromosome", "total"))
    ap.add_argument("--demo", metavar="RESULTS", help="use the demo's processed matrices under RESULTS")
    ap.add_argument("--before", metavar="GIT_REV", help="alternate with the ATAC layers of this revision")
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    if args.before and "atac" not in args.models.split(","):
        raise SystemExit("--before compares ATAC VAEs: include atac in --models")
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    Xr, Xa, chrom_sizes, what = inputs(args, rng)
    print(f"torch {torch.__version__}, threads {args.threads}, latent {args.latent}, {what}: "
          f"{Xr.shape[1]} genes, {Xa.shape[1]} peaks in {len(chrom_sizes)} blocks")
    print(f"data ready, peak RSS {peak_rss_mb():.0f} MB")
    batches = [int(b) for b in args.batches.split(",")]
    b2 = np.eye(2, dtype=np.float32)[rng.integers(0, 2, Xr.shape[0])]
    b3 = np.eye(3, dtype=np.float32)[rng.integers(0, 3, Xa.shape[0])]
    depth_ref = float(np.median(np.diff(Xa.indptr)))
    models = []
    for name in args.models.split(","):
        if name == "rna":
            torch.manual_seed(0)
            m = RNAVAE(Xr.shape[1], 2, args.latent)
            models.append(("rna", m, Xr, {"b": b2, "size": m.size_covariate(Xr)}))
        elif name == "atac":
            m = build_atac(Xa.shape[1], args.latent, chrom_sizes, args.atac_hidden, depth_ref)
            cov = {"b": b3, "size": m.size_covariate(Xa)}
            models.append(("atac", m, Xa, cov))
            if args.before:
                old = build_atac(Xa.shape[1], args.latent, chrom_sizes, args.atac_hidden, depth_ref,
                                 load_chromsplit(args.before))
                models.append((f"atac@{args.before}", old, Xa, cov))
        else:
            raise SystemExit(f"--models: unknown model {name!r} (rna, atac)")
    for _, m, _, _ in models:
        m.to(args.device)
    for bs in batches:
        times: dict[str, list] = {}
        for _ in range(args.repeats if args.before else 1):
            for name, model, X, cov in models:
                cps, sps = bench(model, X, cov, bs, args.steps, device=args.device)
                times.setdefault(name, []).append((cps, sps))
        for (name, model, _, _) in models:
            cps = np.median([t[0] for t in times[name]])
            sps = np.median([t[1] for t in times[name]])
            n_par = sum(p.numel() for p in model.parameters())
            print(f"{name:12s} params {n_par / 1e6:6.2f} M  batch {bs:3d}: {cps:8.1f} cells/s  "
                  f"{sps * 1000:8.2f} ms/step  peak RSS {peak_rss_mb():.0f} MB"
                  + (f"  (median of {len(times[name])} alternated runs)" if args.before else ""))
        if args.before:
            new, old = times["atac"], times[f"atac@{args.before}"]
            ratios = [o[1] / n[1] for o, n in zip(old, new)]
            print(f"batch {bs}: ATAC step {args.before} / now = {np.median(ratios):.2f}x "
                  f"(runs: {', '.join(f'{r:.2f}' for r in ratios)})")
    if args.profile:
        for name, model, X, cov in models:
            print(f"\n{name}, batch {batches[-1]}:")
            print(profile_table(model, X, cov, batches[-1], args.steps, args.device))


if __name__ == "__main__":
    main()
