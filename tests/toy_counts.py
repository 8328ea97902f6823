"""Tiny count matrices and an untrained RNA VAE set-up, shared by the loader (test_data), VAE
(models/test_vae) and training-loop (test_train) tests."""

import numpy as np
import scipy.sparse as sp
import torch

from workflow_lib.models.vae import RNAVAE


def toy_counts(n=64, g=30, seed=0):
    """(CSR counts of ``n`` cells x ``g`` genes from 3 cell types, type per cell)."""
    rng = np.random.default_rng(seed)
    types = rng.integers(0, 3, n)
    prof = rng.gamma(0.5, 2.0, (3, g))
    X = rng.poisson(prof[types] * rng.uniform(0.5, 2.0, (n, 1)))
    return sp.csr_matrix(X.astype(np.float32)), types


def rna_vae_setup(seed=0, dropout=0.0):
    """(RNAVAE of 2 batches and latent 4, counts, covariates {b, size}, all rows) of toy_counts()."""
    X, _ = toy_counts()
    oh = np.eye(2, dtype=np.float32)[np.arange(X.shape[0]) % 2]
    size = RNAVAE.size_covariate(X)
    cov = {"b": oh, "size": size}
    torch.manual_seed(seed)
    model = RNAVAE(X.shape[1], 2, 4, hidden=16, dropout=dropout)
    rows = np.arange(X.shape[0])
    return model, X, cov, rows
