"""A tiny, learnable Polarbear co-assay data set (cell types drive both modalities) in the
processed-data contract, and one model trained on it through the ``polarbear train`` command.

Shared by tests/test_cli.py and tests/test_export.py through the session fixture ``cli_model`` of
tests/conftest.py (the model is trained once per test session).
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from workflow_lib import cli
from workflow_lib.splits import random_split

N_CO, N_SINGLE, N_GENES, N_TYPES = 400, 300, 100, 4
CHROMS = {"chr1": 120, "chr2": 100, "chr10": 80}  # natural order: chr1, chr2, chr10


def toy_coassay(seed: int = 0):
    """Co-assay + single-assay RNA/ATAC AnnData in the processed-data contract."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 2.0, (N_TYPES, 3))
    W = rng.normal(0, 1.0, (3, N_GENES))
    n_peaks = sum(CHROMS.values())
    V = rng.normal(0, 2.0, (3, n_peaks))

    def cells(n, prefix):
        t = rng.integers(0, N_TYPES, n)
        z = centers[t] + rng.normal(0, 0.5, (n, 3))
        rates = np.exp(z @ W)
        rates /= rates.sum(1, keepdims=True)
        lib = np.exp(rng.normal(np.log(1500), 0.3, n))
        rna = rng.poisson(rates * lib[:, None]).astype(np.float32)
        depth = np.exp(rng.normal(0, 0.3, n))[:, None]
        p = 1 - (1 - 1 / (1 + np.exp(-(z @ V - 1.5)))) ** depth
        atac = (rng.random((n, n_peaks)) < p).astype(np.float32)
        names = [f"{prefix}{i:04d}" for i in range(n)]
        return names, t, sp.csr_matrix(rna), sp.csr_matrix(atac)

    genes = pd.DataFrame({"gene_name": [f"Gene{i}" for i in range(N_GENES)], "chrom": "chr1"},
                         index=[f"Gene{i}" for i in range(N_GENES)])
    rows = []
    for c, k in CHROMS.items():
        starts = 1000 + 500 * np.arange(k)
        rows += [(c, s, s + 300) for s in starts]
    peaks = pd.DataFrame(rows, columns=["chrom", "start", "end"])
    peaks.index = [f"{c}:{s}-{e}" for c, s, e in rows]

    names, t, rna, atac = cells(N_CO, "co")
    split = random_split(N_CO, (0.6, 0.2, 0.2), seed=1)

    def obs(batch, cats, extra=True):
        o = pd.DataFrame(index=names if extra else None)
        o["batch"] = pd.Categorical([batch] * len(o), categories=cats)
        o["dataset"] = batch
        return o

    o = pd.DataFrame(index=names)
    o["cell_type"] = [f"T{x}" for x in t]
    o["split_random"] = pd.Categorical(split, categories=["train", "val", "test"])
    o_rna, o_atac = o.copy(), o.copy()
    o_rna["batch"] = pd.Categorical(["snare"] * N_CO, categories=["snare", "zeisel"])
    o_atac["batch"] = pd.Categorical(["snare"] * N_CO, categories=["snare", "li", "fang"])
    o_rna["dataset"] = o_atac["dataset"] = "snare"
    co_rna = ad.AnnData(rna, obs=o_rna, var=genes.copy())
    co_atac = ad.AnnData(atac, obs=o_atac, var=peaks.copy())
    sn, _, s_rna, _ = cells(N_SINGLE, "srna")
    sa, _, _, s_atac = cells(N_SINGLE, "satac")
    so_rna = pd.DataFrame({"batch": pd.Categorical(["zeisel"] * N_SINGLE, categories=["snare", "zeisel"]),
                           "dataset": "zeisel"}, index=sn)
    so_atac = pd.DataFrame({"batch": pd.Categorical(["li"] * N_SINGLE, categories=["snare", "li", "fang"]),
                            "dataset": "li"}, index=sa)
    return (co_rna, co_atac, ad.AnnData(s_rna, obs=so_rna, var=genes.copy()),
            ad.AnnData(s_atac, obs=so_atac, var=peaks.copy()))


def train_toy_model(d: Path) -> dict:
    """Write the toy data set into ``d`` and train one model on it through ``cli.main(['train', ...])``
    (two beta values, so the model directory holds a real selection).

    Returns ``dir``, ``model`` (the model directory), ``files`` (the processed h5ad paths),
    ``co_rna``, ``co_atac`` and ``test`` (mask of the co-assay test cells).
    """
    co_rna, co_atac, s_rna, s_atac = toy_coassay()
    files = {}
    for name, a in (("coassay_rna", co_rna), ("coassay_atac", co_atac), ("single_rna", s_rna),
                    ("single_atac", s_atac)):
        files[name] = d / f"{name}.h5ad"
        a.write_h5ad(files[name])
    model = d / "model"
    # a workflow-style config: faster learning for the tiny data set, whose cells have ~20 open
    # peaks (the authors' fixed depth reference of 1000 open peaks would cap p at 0.02)
    cfg = d / "config.yaml"
    cfg.write_text("polarbear:\n  vae: {batch_size: 32, rna: {learning_rate: 0.003, kl_warmup_epochs: 0},\n"
                   "        atac: {learning_rate: 0.003, kl_warmup_epochs: 0}, atac_depth_ref: mean}\n"
                   "  translator: {learning_rate: 0.01, batch_size: 64}\n")
    rc = cli.main(["-q", "train", "--config", str(cfg), "--coassay-rna", str(files["coassay_rna"]), "--coassay-atac",
                   str(files["coassay_atac"]), "--single-rna", str(files["single_rna"]), "--single-atac",
                   str(files["single_atac"]), "--out", str(model), "--latent", "10", "--beta", "0.1", "0.5",
                   "--vae-max-epochs", "30", "--translator-max-epochs", "25"])
    assert rc == 0
    test = co_rna.obs["split_random"].astype(str).to_numpy() == "test"
    return {"dir": d, "model": model, "files": files, "co_rna": co_rna, "co_atac": co_atac, "test": test}
