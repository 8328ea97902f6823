"""Small sparse-matrix helpers (CSR in, no densification), shared by every stage.

Torch-free, so the data, baseline and evaluation environments can import it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def as_csr(X) -> sp.csr_matrix:
    """X as float32 CSR (no densification)."""
    if sp.issparse(X):
        X = X.tocsr()
    else:
        X = sp.csr_matrix(np.asarray(X))
    if X.dtype != np.float32:
        X = X.astype(np.float32)
    return X


def binarize(X) -> sp.csr_matrix:
    """0/1 float32 CSR copy of a sparse matrix (explicit zeros dropped; every stored value -> 1)."""
    X = sp.csr_matrix(X, dtype=np.float32, copy=True)
    X.eliminate_zeros()
    X.data[:] = 1.0
    return X


def row_sums(X) -> np.ndarray:
    """Per-row sum of a sparse or dense matrix as float64 1-D array."""
    return np.asarray(X.sum(axis=1)).ravel().astype(np.float64)


def row_nnz(X) -> np.ndarray:
    """Per-row number of non-zero entries (ATAC depth of a binarised matrix)."""
    X = as_csr(X)
    X.eliminate_zeros()
    return np.diff(X.indptr).astype(np.float64)


def row_scale(X, s) -> sp.csr_matrix:
    """Multiply row i of a sparse matrix by s[i] (no densification)."""
    return sp.diags(np.asarray(s, dtype=np.float64)).dot(X).tocsr()
