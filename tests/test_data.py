"""Batch one-hot encoding and the sparse cell loader (workflow_lib.data)."""

import numpy as np
import pandas as pd
import pytest
import torch

from toy_counts import toy_counts
from workflow_lib.data import SparseCellLoader, batch_onehot


def test_batch_onehot_and_loader():
    oh = batch_onehot(pd.Series(pd.Categorical(["b", "a", "b"], categories=["a", "b", "c"])))
    np.testing.assert_array_equal(oh, [[0, 1, 0], [1, 0, 0], [0, 1, 0]])
    X, _ = toy_counts(10, 5)
    rows = np.array([7, 2, 5, 9, 0])
    cov = {"c": np.arange(10) * 10.0}
    ld = SparseCellLoader(X, rows, 2, shuffle=True, seed=3, covariates=cov, binarize=True)
    assert len(ld) == 3
    seen = []
    for b in ld:
        i = b["idx"].numpy()
        np.testing.assert_array_equal(b["x"].numpy(), (X[i].toarray() > 0).astype(np.float32))
        np.testing.assert_array_equal(b["c"].numpy(), i * 10.0)
        seen += i.tolist()
    assert sorted(seen) == sorted(rows.tolist())
    ld.set_epoch(0)
    first = np.concatenate([b["idx"].numpy() for b in ld])
    ld.set_epoch(0)
    np.testing.assert_array_equal(first, np.concatenate([b["idx"].numpy() for b in ld]))


def test_onehot_and_loader_refuse_bad_inputs():
    with pytest.raises(ValueError, match="missing values"):
        batch_onehot(pd.Series(["a", None, "b"]))
    X, _ = toy_counts(10, 5)
    with pytest.raises(IndexError, match="out of range"):
        SparseCellLoader(X, [0, 10], 4, False, 0)
    with pytest.raises(ValueError, match="covariate 'size' has 9 rows, matrix has 10"):
        SparseCellLoader(X, [0, 1], 4, False, 0, {"size": np.ones(9)})
    # integer covariates keep their dtype, floating ones become float32; no shuffle: rows as given
    ld = SparseCellLoader(X, [3, 1, 2], 2, False, 0, {"k": np.arange(10), "f": np.arange(10.0)})
    batches = list(ld)
    assert [b["idx"].tolist() for b in batches] == [[3, 1], [2]]
    assert batches[0]["k"].dtype == torch.int64 and batches[0]["f"].dtype == torch.float32
