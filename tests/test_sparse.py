"""Sparse helpers (workflow_lib/sparse.py): CSR in, no densification."""

import numpy as np
import scipy.sparse as sp

from workflow_lib.sparse import as_csr, binarize, row_nnz, row_scale, row_sums


def test_binarize_drops_explicit_zeros_and_keeps_the_input():
    X = sp.csr_matrix(np.array([[0, 2, 0], [3, 0, 1]], dtype=np.float64))
    X.data[0] = 0.0  # an explicit zero
    B = binarize(X)
    assert B.dtype == np.float32 and B.nnz == 2
    np.testing.assert_array_equal(B.toarray(), [[0, 0, 0], [1, 0, 1]])
    assert X.data[0] == 0.0 and X.nnz == 3  # input untouched


def test_row_helpers_match_dense_arithmetic():
    rng = np.random.default_rng(0)
    D = rng.poisson(0.5, size=(6, 9)).astype(np.float32)
    X = sp.csr_matrix(D)
    np.testing.assert_allclose(row_sums(X), D.sum(1))
    np.testing.assert_array_equal(row_nnz(X), (D > 0).sum(1))
    s = rng.uniform(0.5, 2.0, 6)
    np.testing.assert_allclose(row_scale(X, s).toarray(), D * s[:, None], rtol=1e-6)
    C = as_csr(D)
    assert sp.isspmatrix_csr(C) and C.dtype == np.float32
    assert as_csr(X) is X  # already float32 CSR: no copy
