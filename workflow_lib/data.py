"""Minibatch access to sparse single-cell matrices for model training.

Only the rows of one minibatch are ever densified; the full cells x features matrix stays CSR.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .sparse import as_csr


def batch_onehot(batch: pd.Series) -> np.ndarray:
    """One-hot encoding (n, n_categories) float32 of a categorical series, in category order."""
    cat = pd.Series(batch).astype("category")
    codes = cat.cat.codes.to_numpy()
    if (codes < 0).any():
        raise ValueError("batch labels contain missing values")
    out = np.zeros((codes.size, len(cat.cat.categories)), dtype=np.float32)
    out[np.arange(codes.size), codes] = 1.0
    return out


class SparseCellLoader:
    """Iterate minibatches of selected rows of a CSR matrix, densifying only each batch.

    Yields ``dict(x=FloatTensor (b, n_features), idx=LongTensor of row ids, **covariates)`` where
    each covariate array is indexed by the same row ids (``covariates[name][rows]``).
    The shuffle order of epoch ``e`` depends only on ``(seed, e)``: the loader counts its own
    epochs, and :func:`workflow_lib.train.fit` sets the epoch explicitly (``set_epoch``) so a
    resumed run sees the same batches as an uninterrupted one.
    """

    def __init__(self, X, rows, batch_size: int, shuffle: bool, seed: int,
                 covariates: dict | None = None, device="cpu", binarize: bool = False):
        self.X = as_csr(X)
        self.rows = np.asarray(rows, dtype=np.int64)
        if self.rows.size and (self.rows.min() < 0 or self.rows.max() >= self.X.shape[0]):
            raise IndexError("row ids out of range")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.covariates = {}
        for name, arr in (covariates or {}).items():
            arr = np.asarray(arr)
            if arr.shape[0] != self.X.shape[0]:
                raise ValueError(f"covariate {name!r} has {arr.shape[0]} rows, matrix has {self.X.shape[0]}")
            self.covariates[name] = arr
        self.device = torch.device(device)
        self.binarize = bool(binarize)
        # CUDA: batches go through page-locked host memory, copied without blocking (overlaps compute)
        self.pin = self.device.type == "cuda" and torch.cuda.is_available()
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return (self.rows.size + self.batch_size - 1) // self.batch_size

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return self.rows
        rng = np.random.default_rng([self.seed, self.epoch])
        return self.rows[rng.permutation(self.rows.size)]

    def __iter__(self):
        order = self._order()
        self.epoch += 1
        for start in range(0, order.size, self.batch_size):
            idx = order[start:start + self.batch_size]
            xb = self.X[idx].toarray()
            if self.binarize:
                xb = (xb > 0).astype(np.float32)
            batch = {"x": self._to(torch.from_numpy(xb)), "idx": self._to(torch.from_numpy(idx))}
            for name, arr in self.covariates.items():
                v = arr[idx]
                t = torch.from_numpy(np.ascontiguousarray(v))
                if t.is_floating_point():
                    t = t.float()
                batch[name] = self._to(t)
            yield batch

    def _to(self, t: torch.Tensor) -> torch.Tensor:
        if self.pin:
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)
