"""A tiny synthetic processed co-assay data set (per the processed data contract) for model tests.

Cells share a low-dimensional latent state ``z`` (cell-type centre + noise). RNA counts are
Poisson with rate ``lib * softmax(z A)`` and ATAC peaks Bernoulli with probability
``depth * sigmoid(z B)``: RNA and ATAC are linked through ``z`` so translation is learnable.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp


def make_coassay(n_cells=240, n_genes=60, n_peaks=90, n_types=4, n_latent=3, chroms=("chr1", "chr2", "chr10"),
                 seed=0):
    rng = np.random.default_rng(seed)
    types = rng.integers(0, n_types, n_cells)
    centres = rng.normal(0, 2.0, (n_types, n_latent))
    z = centres[types] + rng.normal(0, 0.5, (n_cells, n_latent))
    A = rng.normal(0, 1.0, (n_latent, n_genes))
    logits = z @ A
    freq = np.exp(logits - logits.max(1, keepdims=True))
    freq /= freq.sum(1, keepdims=True)
    lib = rng.lognormal(np.log(400), 0.3, n_cells)
    counts = rng.poisson(freq * lib[:, None]).astype(np.float32)
    B = rng.normal(0, 1.5, (n_latent, n_peaks))
    depth = rng.uniform(0.5, 1.0, n_cells)
    p = depth[:, None] / (1 + np.exp(-(z @ B - 1.0)))
    acc = (rng.random((n_cells, n_peaks)) < p).astype(np.float32)

    names = [f"CELL{i:04d}" for i in range(n_cells)]
    split_random = np.array(["train"] * n_cells, dtype=object)
    perm = rng.permutation(n_cells)
    split_random[perm[: n_cells // 5]] = "val"
    split_random[perm[n_cells // 5: 2 * n_cells // 5]] = "test"
    split_unseen = np.where(types == 0, "test", np.where(types == 1, "val", "train")).astype(object)
    obs = pd.DataFrame({
        "cell_type": pd.Categorical([f"T{t}" for t in types]),
        "split_random": split_random, "split_unseen": split_unseen,
    }, index=names)
    rna_obs = obs.copy()
    rna_obs["batch"] = pd.Categorical(["snare"] * n_cells, categories=["snare", "zeisel"])
    rna_obs["dataset"] = "snare"
    atac_obs = obs.copy()
    atac_obs["batch"] = pd.Categorical(["snare"] * n_cells, categories=["snare", "li", "fang"])
    atac_obs["dataset"] = "snare"
    genes = [f"Gene{j}" for j in range(n_genes)]
    rna_var = pd.DataFrame({"gene_name": genes, "chrom": rng.choice(list(chroms), n_genes)}, index=genes)
    per = np.array_split(np.arange(n_peaks), len(chroms))
    rows = []
    for c, idx in zip(chroms, per):
        for i, _ in enumerate(idx):
            rows.append((c, 1000 * (i + 1), 1000 * (i + 1) + 500))
    atac_var = pd.DataFrame(rows, columns=["chrom", "start", "end"])
    atac_var.index = [f"{c}:{s}-{e}" for c, s, e in rows]
    rna = ad.AnnData(X=sp.csr_matrix(counts), obs=rna_obs, var=rna_var)
    atac = ad.AnnData(X=sp.csr_matrix(acc), obs=atac_obs, var=atac_var)
    return rna, atac, {"z": z, "types": types, "freq": freq, "p": p}


def write_coassay(tmp_path, **kw):
    rna, atac, truth = make_coassay(**kw)
    rp, ap = tmp_path / "coassay_rna.h5ad", tmp_path / "coassay_atac.h5ad"
    rna.write_h5ad(rp)
    atac.write_h5ad(ap)
    return rp, ap, truth
